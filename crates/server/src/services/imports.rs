//! CSV imports read a batch at a time: the header row, what each kind makes of a row (a
//! campaign's recipient, a contact), and the batch reader that parses whole records out of a
//! slice of the file and says where the next batch starts.

use serde_json::{Map, Value};
use wagate_domain::contact::{attribute_key, parse_tags};
use wagate_domain::validation::FieldError;
use wagate_storage::{EntryOutcome, ImportedContact, JobEntry, JobKind, NewRecipient};

use super::campaign_recipients::{self, CsvColumns};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The header row at the start of `head` (the file's first bytes), and the byte offset where the
/// rows start.
pub fn read_header(head: &[u8]) -> Result<(Vec<String>, usize), FieldError> {
    let skip = if head.starts_with(BOM) { BOM.len() } else { 0 };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(&head[skip..]);
    let mut record = csv::StringRecord::new();
    let unreadable = |why: String| FieldError::new("csv", "csv", format!("the header row cannot be read: {why}"));
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(unreadable("the file is empty".into())),
        Err(e) => return Err(unreadable(e.to_string())),
    }
    let end = reader.position().byte() as usize + skip;
    if end >= head.len() && head.len() >= 64 * 1024 {
        return Err(unreadable("it is longer than 64 KiB".into()));
    }
    Ok((record.iter().map(str::to_owned).collect(), end))
}

/// What a kind of import reads from its columns.
pub enum Columns {
    Recipients(CsvColumns),
    Contacts(ContactColumns),
}

impl Columns {
    pub fn for_kind(kind: JobKind, header: &[String]) -> Result<Self, FieldError> {
        match kind {
            JobKind::RecipientsImport => Ok(Self::Recipients(CsvColumns::parse(header)?)),
            JobKind::ContactsImport => Ok(Self::Contacts(ContactColumns::parse(header)?)),
            JobKind::RecipientsExport => Err(FieldError::new("kind", "not_an_import", "an export reads no file")),
        }
    }
}

/// A row refused before the store: an `invalid` entry.
pub fn invalid(line: i64, key: Option<String>, e: &FieldError) -> JobEntry {
    JobEntry {
        line,
        outcome: EntryOutcome::Invalid,
        key,
        code: Some(e.rule.to_owned()),
        message: Some(e.message.clone()),
    }
}

fn nul_free(record: &csv::StringRecord) -> Result<(), FieldError> {
    if record.iter().any(|c| c.contains('\0')) {
        return Err(FieldError::new("csv", "nul_character", "must not contain the NUL character"));
    }
    Ok(())
}

/// A recipient row, checked as the JSON API checks one.
pub fn recipient(
    columns: &CsvColumns,
    record: &csv::StringRecord,
) -> Result<NewRecipient, (Option<String>, FieldError)> {
    let input = columns.row(record);
    let to = Some(input.to.clone()).filter(|t| !t.is_empty());
    nul_free(record).map_err(|e| (to.clone(), e))?;
    campaign_recipients::check_row("", input).map_err(|e| (to, e))
}

/// Where a CSV file of contacts has its columns: a phone number (`phone`, `wa_id`, `to` or
/// `number`), `tags` (separated by `;` or `|`), `marketing_opt_out` (`true`/`false`, `yes`/`no`,
/// `1`/`0`), and any other column an attribute (`attributes.<key>` or just `<key>`).
pub struct ContactColumns {
    phone: usize,
    tags: Option<usize>,
    opt_out: Option<usize>,
    attributes: Vec<(usize, String)>,
}

impl ContactColumns {
    pub fn parse(header: &[String]) -> Result<Self, FieldError> {
        let (mut phone, mut tags, mut opt_out) = (None, None, None);
        let mut attributes = Vec::new();
        for (i, name) in header.iter().enumerate() {
            wagate_domain::input::nul_free_text("csv", name)?;
            match name.to_ascii_lowercase().as_str() {
                "phone" | "phone_number" | "wa_id" | "to" | "number" if phone.is_none() => phone = Some(i),
                "tags" if tags.is_none() => tags = Some(i),
                "marketing_opt_out" | "opted_out" if opt_out.is_none() => opt_out = Some(i),
                "" => {}
                _ => {
                    let key = name.strip_prefix("attributes.").unwrap_or(name);
                    attribute_key(key)
                        .map_err(|e| FieldError::new("csv", e.rule, format!("column '{name}': {}", e.message)))?;
                    attributes.push((i, key.to_owned()));
                }
            }
        }
        let phone = phone.ok_or_else(|| {
            FieldError::new(
                "csv",
                "missing_column",
                "the header row must name a `phone` column (the customer's number)",
            )
        })?;
        Ok(Self { phone, tags, opt_out, attributes })
    }

    /// A contact row, checked: its number, attributes (empty cells set nothing), tags and
    /// marketing preference.
    pub fn row(&self, line: i64, record: &csv::StringRecord) -> Result<ImportedContact, (Option<String>, FieldError)> {
        let cell = |i: usize| record.get(i).unwrap_or("");
        let given = cell(self.phone);
        let key = Some(given.to_owned()).filter(|t| !t.is_empty());
        let fail = |e: FieldError| (key.clone(), e);
        nul_free(record).map_err(fail)?;
        let to = campaign_recipients::normalise_number("phone", given).map_err(fail)?;
        let attributes: Map<String, Value> = self
            .attributes
            .iter()
            .filter(|(i, _)| !cell(*i).is_empty())
            .map(|(i, k)| (k.clone(), Value::String(cell(*i).to_owned())))
            .collect();
        let tags: Vec<String> = match self.tags {
            Some(i) => cell(i).split([';', '|']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            None => Vec::new(),
        };
        let tags = parse_tags(&tags).map_err(fail)?;
        let marketing_opt_out = match self.opt_out.map(cell).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => None,
            Some("true" | "yes" | "1" | "y") => Some(true),
            Some("false" | "no" | "0" | "n") => Some(false),
            Some(other) => {
                return Err(fail(FieldError::new(
                    "marketing_opt_out",
                    "boolean",
                    format!("'{other}' is not true or false"),
                )));
            }
        };
        Ok(ImportedContact { line, wa_id: to.trim_start_matches('+').to_owned(), attributes, tags, marketing_opt_out })
    }
}

/// Records parsed from a slice of the file: each with its line, or a line that could not be
/// read; and how far they reach.
pub struct Parsed {
    pub records: Vec<(i64, Result<csv::StringRecord, String>)>,
    /// Bytes of the slice the records took: the next batch starts after them.
    pub consumed: usize,
    /// The line the next batch starts on.
    pub next_line: i64,
}

/// Parses up to `max` whole records out of `bytes`, which starts at line `line` of the file.
/// Unless `at_end` (the slice ends where the file does) the last record in the slice may be cut
/// short: it is left for the next batch, which reads from its start.
pub fn parse_records(bytes: &[u8], line: i64, at_end: bool, max: usize) -> Parsed {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut records = Vec::new();
    let (mut consumed, mut next_line) = (0usize, line);
    while records.len() < max {
        let mut record = csv::StringRecord::new();
        let result = reader.read_record(&mut record);
        let after = reader.position().clone();
        let reached_end = after.byte() as usize >= bytes.len();
        match result {
            Ok(false) => break,
            // Cut short by the slice, not by the file: read again next time from its start.
            _ if reached_end && !at_end => break,
            Ok(true) => {
                let at = line + record.position().map_or(0, |p| p.line() as i64 - 1);
                records.push((at, Ok(record)));
            }
            Err(e) => {
                let at = line + e.position().map_or(after.line() as i64 - 1, |p| p.line() as i64 - 1);
                records.push((at, Err(e.to_string())));
            }
        }
        consumed = after.byte() as usize;
        next_line = line + after.line() as i64 - 1;
    }
    Parsed { records, consumed, next_line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_leaves_a_record_cut_short_for_the_next() {
        let file = b"+15550100,a\n+15550101,\"b\nb\"\n+15550102,c\n";
        // Cut in the middle of the third record.
        let cut = &file[..file.len() - 4];
        let first = parse_records(cut, 2, false, 100);
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.records[1].0, 3, "the second record starts on line 3");
        assert_eq!(first.next_line, 5, "its quoted field took two lines");
        let rest = parse_records(&file[first.consumed..], first.next_line, true, 100);
        assert_eq!(rest.records.len(), 1);
        assert_eq!(rest.records[0].0, 5);
        assert_eq!(rest.records[0].1.as_ref().unwrap().get(1), Some("c"));
        assert_eq!(first.consumed + rest.consumed, file.len());
    }

    #[test]
    fn at_most_max_records_a_batch() {
        let file = b"a\nb\nc\nd\n";
        let p = parse_records(file, 2, true, 3);
        assert_eq!(p.records.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!((p.consumed, p.next_line), (6, 5));
    }

    #[test]
    fn the_header_may_start_with_a_byte_order_mark() {
        let (header, end) = read_header(b"\xEF\xBB\xBFphone,name\n+15550100,Ana\n").unwrap();
        assert_eq!(header, ["phone", "name"]);
        assert_eq!(end, 14);
    }

    #[test]
    fn contact_rows_are_checked() {
        let header: Vec<String> = ["phone", "first_name", "tags", "opted_out"].map(String::from).into();
        let columns = ContactColumns::parse(&header).unwrap();
        let row = csv::StringRecord::from(vec!["+1 555 0100", "Ana", "vip; lead", "no"]);
        let c = columns.row(7, &row).unwrap();
        assert_eq!((c.line, c.wa_id.as_str(), c.tags.len(), c.marketing_opt_out), (7, "15550100", 2, Some(false)));
        assert_eq!(c.attributes["first_name"], "Ana");
        let bad = csv::StringRecord::from(vec!["12", "Bo", "", ""]);
        assert_eq!(columns.row(8, &bad).unwrap_err().1.rule, "e164");
        let bad = csv::StringRecord::from(vec!["+15550101", "Bo", "", "maybe"]);
        assert_eq!(columns.row(9, &bad).unwrap_err().1.rule, "boolean");
        assert!(ContactColumns::parse(&["name".to_owned()]).is_err(), "a phone column is needed");
    }
}
