//! A campaign's recipients: added from JSON, a CSV file or a contact filter (numbers
//! normalised, duplicates refused, every bad row reported with its line and the rule), removed,
//! listed, and checked by the preflight with the same code sends use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wagate_domain::campaign::RecipientStatus;
use wagate_domain::id::CampaignId;
use wagate_domain::message::SimpleTemplate;
use wagate_domain::phone::PhoneNumber as E164;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{
    Campaign, CampaignRecipient, Contact, ContactFilter, NewRecipient, RecipientFilter, RecipientRemoved,
};

use super::ServiceError;
use super::campaigns::{self, template_of};
use crate::state::AppState;

/// Recipients one request may add as JSON (more: upload a CSV file, or call again).
pub const JSON_MAX: usize = 10_000;
/// Rows written to the store at a time.
const BATCH: usize = 2_000;
/// Bad rows an answer lists (all are counted).
const ERRORS_SHOWN: usize = 1_000;
/// Bytes of a recipient's `params` as JSON, at most.
const PARAMS_MAX_BYTES: usize = 8 * 1024;
/// Recipients the preflight reads at a time.
const PREFLIGHT_PAGE: u32 = 1_000;

/// One recipient of `POST /v1/campaigns/{id}/recipients`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    /// The customer's number: E.164 (`+15551234567`); spaces, dashes, dots and brackets are
    /// ignored, and `00` or bare digits are read as international.
    pub to: String,
    /// The body's values for this recipient: an array for `{{1}}`, `{{2}}`…, an object for
    /// named variables. A string may name the contact's fields: `{{contact.first_name}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// Yours: kept with the recipient and put on its message.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Recipients chosen from the contacts: those with every tag given (and matching `q`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactSelection {
    /// Contacts with all of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Part of the profile name or number, or a whole tag.
    #[serde(default)]
    pub q: Option<String>,
    /// The body's values for every one of them, usually naming their fields
    /// (`{{contact.first_name}}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// A row that was not added: where, and which rule it broke.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RowError {
    /// The CSV line, or the array's index (from 0) for JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The recipient's position in the campaign (from 1), for the preflight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    pub to: String,
    /// The rule's stable name (`e164`, `missing_param`, …).
    pub code: String,
    pub path: String,
    pub message: String,
}

/// What an addition did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Added {
    pub added: u64,
    /// Numbers the campaign had already (or that came twice).
    pub duplicates: u64,
    /// Rows refused; `errors` lists the first thousand.
    pub invalid: u64,
    pub errors: Vec<RowError>,
}

impl Added {
    fn refuse(&mut self, e: RowError) {
        self.invalid += 1;
        if self.errors.len() < ERRORS_SHOWN {
            self.errors.push(e);
        }
    }
}

/// A number as recipients are keyed: `+` and digits, checked as E.164.
pub fn normalise_number(path: &str, input: &str) -> Result<String, FieldError> {
    let mut s: String = input.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
    if let Some(rest) = s.strip_prefix("00") {
        s = format!("+{rest}");
    } else if !s.starts_with('+') && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s = format!("+{s}");
    }
    Ok(E164::parse(path, &s)?.as_str().to_owned())
}

fn check_params(path: &str, params: &Value) -> Result<(), FieldError> {
    if !matches!(params, Value::Array(_) | Value::Object(_)) {
        return Err(FieldError::new(
            path,
            "type",
            "must be an array (for {{1}}, {{2}}…) or an object (named variables)",
        ));
    }
    let size = serde_json::to_vec(params).map_or(usize::MAX, |v| v.len());
    if size > PARAMS_MAX_BYTES {
        return Err(FieldError::new(path, "max_size", format!("must serialise to at most {PARAMS_MAX_BYTES} bytes")));
    }
    Ok(())
}

fn row_error(line: Option<u64>, to: &str, e: FieldError) -> RowError {
    RowError { line, position: None, to: to.to_owned(), code: e.rule.to_owned(), path: e.path, message: e.message }
}

/// A campaign recipients may be added to: not completed or canceled.
pub async fn open_campaign(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let c = campaigns::get(state, id).await?;
    if c.state.is_final() {
        return Err(ServiceError::Conflict(format!(
            "campaign {} is {}: recipients can be added until it completes (clone it to send again)",
            c.id, c.state
        )));
    }
    Ok(c)
}

/// Adds checked rows in batches, counting what the store refused as duplicates.
async fn store_rows(
    state: &AppState,
    id: &CampaignId,
    rows: Vec<NewRecipient>,
    report: &mut Added,
) -> Result<(), ServiceError> {
    let now = Timestamp::now();
    for batch in rows.chunks(BATCH) {
        let added = state.store.add_recipients(id, batch, now).await?;
        let n = added.iter().filter(|a| **a).count() as u64;
        report.added += n;
        report.duplicates += added.len() as u64 - n;
    }
    Ok(())
}

/// A row checked: the recipient to store, or the rule it broke (paths under `base`).
pub fn check_row(base: &str, input: RecipientInput) -> Result<NewRecipient, FieldError> {
    let to = normalise_number(&format!("{base}to"), &input.to)?;
    if let Some(p) = &input.params {
        check_params(&format!("{base}params"), p)?;
    }
    if let Some(m) = &input.metadata {
        wagate_domain::message::check_metadata(&format!("{base}metadata"), m)?;
    }
    Ok(NewRecipient { to, params: input.params, metadata: input.metadata })
}

/// `POST /v1/campaigns/{id}/recipients` with a JSON array: the rows read (with their index)
/// and those that were not recipients at all.
pub async fn add(
    state: &AppState,
    id: &str,
    inputs: Vec<(usize, RecipientInput)>,
    unreadable: Vec<RowError>,
) -> Result<Added, ServiceError> {
    if inputs.len() + unreadable.len() > JSON_MAX {
        return Err(FieldError::new(
            "",
            "max_items",
            format!("at most {JSON_MAX} recipients a request; upload larger lists as CSV (Content-Type: text/csv)"),
        )
        .into());
    }
    let c = open_campaign(state, id).await?;
    let mut report = Added::default();
    for e in unreadable {
        report.refuse(e);
    }
    let mut rows = Vec::with_capacity(inputs.len());
    for (i, input) in inputs {
        let to = input.to.clone();
        match check_row(&format!("[{i}]."), input) {
            Ok(r) => rows.push(r),
            Err(e) => report.refuse(row_error(Some(i as u64), &to, e)),
        }
    }
    store_rows(state, &c.id, rows, &mut report).await?;
    Ok(report)
}

/// Where a CSV file of recipients has its columns: a header row naming `to`, then the
/// variables (`1`, `2`… or names) and `metadata.<key>` columns.
pub struct CsvColumns {
    to: usize,
    /// Variables by position (`1`, `2`…): an array; else by name: an object.
    params: Vec<(usize, String)>,
    numbered: bool,
    metadata: Vec<(usize, String)>,
}

impl CsvColumns {
    pub fn parse(header: &[String]) -> Result<Self, FieldError> {
        let mut to = None;
        let (mut params, mut metadata) = (Vec::new(), Vec::new());
        for (i, name) in header.iter().enumerate() {
            let name = name.as_str();
            wagate_domain::input::nul_free_text("csv", name)?;
            let lower = name.to_ascii_lowercase();
            if matches!(lower.as_str(), "to" | "phone" | "phone_number" | "wa_id" | "number") && to.is_none() {
                to = Some(i);
            } else if let Some(key) = name.strip_prefix("metadata.") {
                metadata.push((i, key.to_owned()));
            } else if !name.is_empty() {
                params.push((i, name.to_owned()));
            }
        }
        let to = to.ok_or_else(|| {
            FieldError::new("csv", "missing_column", "the header row must name a `to` column (the customer's number)")
        })?;
        let numbered = !params.is_empty() && params.iter().all(|(_, n)| n.parse::<u32>().is_ok());
        if numbered {
            params.sort_by_key(|(_, n)| n.parse::<u32>().unwrap_or(u32::MAX));
            for (k, (_, n)) in params.iter().enumerate() {
                if n.parse::<usize>().ok() != Some(k + 1) {
                    return Err(FieldError::new(
                        "csv",
                        "variables",
                        format!("numbered variable columns must be 1, 2, 3… without gaps; column {} is missing", k + 1),
                    ));
                }
            }
        }
        Ok(Self { to, params, numbered, metadata })
    }

    /// The row's recipient, not yet checked (see [`check_row`]).
    pub fn row(&self, record: &csv::StringRecord) -> RecipientInput {
        let cell = |i: usize| record.get(i).unwrap_or("");
        let to = cell(self.to).to_owned();
        let params = (!self.params.is_empty()).then(|| {
            if self.numbered {
                Value::Array(self.params.iter().map(|(i, _)| Value::String(cell(*i).to_owned())).collect())
            } else {
                Value::Object(
                    self.params.iter().map(|(i, n)| (n.clone(), Value::String(cell(*i).to_owned()))).collect(),
                )
            }
        });
        let metadata = (!self.metadata.is_empty())
            .then(|| self.metadata.iter().map(|(i, k)| (k.clone(), Value::String(cell(*i).to_owned()))).collect());
        RecipientInput { to, params, metadata }
    }
}

/// `POST /v1/campaigns/{id}/recipients` with `{"tags", "q", "params"}`: every contact with a
/// phone number that has all the tags (and matches `q`).
pub async fn add_contacts(state: &AppState, id: &str, selection: ContactSelection) -> Result<Added, ServiceError> {
    let c = open_campaign(state, id).await?;
    if selection.tags.is_empty() && selection.q.is_none() {
        return Err(FieldError::new("tags", "required", "name at least one tag, or a q, to choose contacts by").into());
    }
    if let Some(p) = &selection.params {
        check_params("params", p)?;
    }
    let wanted: Vec<String> = selection.tags.iter().map(|t| t.trim().to_lowercase()).collect();
    let mut filter = ContactFilter {
        q: selection.q.clone(),
        tag: selection.tags.first().map(|t| t.trim().to_owned()),
        before: None,
    };
    let mut report = Added::default();
    loop {
        let page = state.store.list_contacts(&filter, 500).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some(last.id.clone());
        let rows: Vec<NewRecipient> = page
            .iter()
            .filter(|ct| wanted.iter().all(|t| ct.tags.iter().any(|have| have.to_lowercase() == *t)))
            .filter_map(|ct| ct.wa_id.as_ref())
            .map(|wa_id| NewRecipient { to: format!("+{wa_id}"), params: selection.params.clone(), metadata: None })
            .collect();
        store_rows(state, &c.id, rows, &mut report).await?;
    }
    Ok(report)
}

/// `DELETE /v1/campaigns/{id}/recipients/{to}`.
pub async fn remove(state: &AppState, id: &str, to: &str) -> Result<(), ServiceError> {
    let c = campaigns::get(state, id).await?;
    let to = normalise_number("to", to)?;
    match state.store.remove_recipient(&c.id, &to).await? {
        RecipientRemoved::Removed => Ok(()),
        RecipientRemoved::NotFound => Err(ServiceError::not_found("recipient", to)),
        RecipientRemoved::AlreadyQueued => Err(ServiceError::Conflict(format!(
            "{to} was queued already and can no longer be removed; cancel its message instead"
        ))),
    }
}

/// A page of a campaign's recipients, in the order they were added.
pub async fn list(
    state: &AppState,
    id: &str,
    status: Option<RecipientStatus>,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<CampaignRecipient>, bool), ServiceError> {
    let c = campaigns::get(state, id).await?;
    let filter = RecipientFilter { status, after };
    let mut page = state.store.list_recipients(&c.id, &filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// The template a recipient gets: the campaign's, with the recipient's values for the body, and
/// every `{{contact.<field>}}` in them replaced by the contact's field (`name` is the profile
/// name, `wa_id` the number, anything else an attribute).
pub fn template_for(
    template: &SimpleTemplate,
    r: &CampaignRecipient,
    contact: Option<&Contact>,
) -> Result<SimpleTemplate, FieldError> {
    let mut t = template.clone();
    if r.params.is_some() {
        t.params = r.params.clone();
    }
    if let Some(p) = t.params.as_mut() {
        fill(p, "params", r, contact)?;
    }
    if let Some(h) = t.header.as_mut() {
        fill(h, "template.header", r, contact)?;
    }
    if let Some(b) = t.buttons.as_mut() {
        for (k, v) in b.iter_mut() {
            fill(v, &format!("template.buttons.{k}"), r, contact)?;
        }
    }
    Ok(t)
}

const PLACEHOLDER: &str = "{{contact.";

/// Whether any value names a contact field: the contacts are read only then.
pub fn names_contact_fields(template: &SimpleTemplate, r: &CampaignRecipient) -> bool {
    let mentions = |v: &Option<Value>| v.as_ref().is_some_and(|v| v.to_string().contains(PLACEHOLDER));
    mentions(&r.params)
        || mentions(&template.params)
        || mentions(&template.header)
        || template.buttons.as_ref().is_some_and(|b| Value::Object(b.clone()).to_string().contains(PLACEHOLDER))
}

fn fill(v: &mut Value, path: &str, r: &CampaignRecipient, contact: Option<&Contact>) -> Result<(), FieldError> {
    match v {
        Value::String(s) if s.contains(PLACEHOLDER) => *s = substitute(s, path, r, contact)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                fill(item, &format!("{path}[{i}]"), r, contact)?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                fill(item, &format!("{path}.{k}"), r, contact)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn substitute(s: &str, path: &str, r: &CampaignRecipient, contact: Option<&Contact>) -> Result<String, FieldError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(PLACEHOLDER) {
        out.push_str(&rest[..start]);
        let after = &rest[start + PLACEHOLDER.len()..];
        let Some(end) = after.find("}}") else {
            return Err(FieldError::new(path, "placeholder", format!("'{s}' opens {{{{contact. without closing }}}}")));
        };
        let field = after[..end].trim();
        let value = match (field, contact) {
            ("wa_id" | "phone", _) => Some(r.to.trim_start_matches('+').to_owned()),
            ("name" | "profile_name", Some(c)) => c.profile_name.clone(),
            (f, Some(c)) => c.attributes.get(f).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }),
            (_, None) => None,
        };
        let value = value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            FieldError::new(
                path,
                "missing_contact_field",
                format!(
                    "names contact.{field}, which {} does not have",
                    match contact {
                        Some(_) => format!("the contact {}", r.to),
                        None => format!("{} (no contact is known by that number)", r.to),
                    }
                ),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `POST /v1/campaigns/{id}/preflight`: what would happen to the pending recipients.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preflight {
    /// Recipients not sent yet, each checked.
    pub checked: i64,
    /// Of those, the ones that would be sent.
    pub will_send: i64,
    /// Would be skipped, by reason: `opted_out` (a MARKETING template), `invalid`.
    pub skipped: BTreeMap<String, i64>,
    /// Numbers refused as given twice when the recipients were added (each normalised to E.164
    /// first, so `+1 555-0100` and `15550100` are one): none of them is sent twice.
    pub duplicates: i64,
    /// Would go outside the customer's 24-hour window: each opens a conversation and counts
    /// against the messaging limit.
    pub outside_window: i64,
    /// The business's messaging limit (unique customers outside the window a rolling 24 hours;
    /// null: unlimited), how much of it the last 24 hours used, and what is left.
    pub messaging_limit: Option<u64>,
    pub messaging_used_24h: i64,
    pub messaging_left: Option<i64>,
    /// The template's category (`MARKETING`, `UTILITY`, `AUTHENTICATION`).
    pub category: String,
    /// Messages a second the campaign is fed at.
    pub rate: u32,
    /// Seconds to hand them all to Meta at that rate (longer if the limit makes it wait).
    pub estimated_seconds: u64,
    /// The rows that would be skipped as invalid (the first thousand), each with its rule.
    pub errors: Vec<RowError>,
}

pub async fn preflight(state: &AppState, id: &str) -> Result<Preflight, ServiceError> {
    let c = campaigns::get(state, id).await?;
    let number = super::accounts::phone_number(state, &c.phone_number_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("phone number", c.phone_number_id.clone()))?;
    let template = template_of(&c)?;
    let checked = super::templates::checked(state, &number, &template.name, &template.language).await?;
    let marketing = checked.template.category == "MARKETING";
    let now = Timestamp::now();
    let window_start = now.minus(Duration::from_secs(24 * 3600));
    let mut report = Preflight {
        checked: 0,
        will_send: 0,
        skipped: BTreeMap::new(),
        duplicates: c.duplicates,
        outside_window: 0,
        messaging_limit: None,
        messaging_used_24h: 0,
        messaging_left: None,
        category: checked.template.category.clone(),
        rate: campaigns::effective_rate(c.rate, campaigns::number_rate(state, &number)),
        estimated_seconds: 0,
        errors: Vec::new(),
    };
    let mut after = None;
    loop {
        let filter = RecipientFilter { status: Some(RecipientStatus::Pending), after };
        let page = state.store.list_recipients(&c.id, &filter, PREFLIGHT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        let wa_ids: Vec<String> = page.iter().map(|r| r.to.trim_start_matches('+').to_owned()).collect();
        let contacts: HashMap<String, Contact> = state
            .store
            .contacts_by_wa_ids(&wa_ids)
            .await?
            .into_iter()
            .filter_map(|ct| ct.wa_id.clone().map(|w| (w, ct)))
            .collect();
        let customers: Vec<String> = page.iter().map(|r| r.to.clone()).collect();
        let inside: HashSet<String> =
            state.store.customers_in_window(&c.phone_number_id, &customers, window_start).await?.into_iter().collect();
        for r in &page {
            report.checked += 1;
            let contact = contacts.get(r.to.trim_start_matches('+'));
            if marketing && contact.is_some_and(Contact::marketing_opted_out) {
                *report.skipped.entry(wagate_domain::campaign::skip::OPTED_OUT.into()).or_default() += 1;
                continue;
            }
            if let Err(e) =
                template_for(&template, r, contact).and_then(|t| t.build(&checked.shape, "template").map(drop))
            {
                *report.skipped.entry(wagate_domain::campaign::skip::INVALID.into()).or_default() += 1;
                if report.errors.len() < ERRORS_SHOWN {
                    report.errors.push(RowError { position: Some(r.position), ..row_error(None, &r.to, e) });
                }
                continue;
            }
            report.will_send += 1;
            if !inside.contains(&r.to) {
                report.outside_window += 1;
            }
        }
    }
    if let Some(account) = super::accounts::account(state, &number.account_id).await? {
        let limit = super::accounts::tier_limit(account.messaging_tier, &state.config);
        let used = state.store.count_conversations_opened(&account.id, window_start).await?;
        report.messaging_limit = limit;
        report.messaging_used_24h = used;
        report.messaging_left = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX).saturating_sub(used).max(0));
    }
    report.estimated_seconds = (report.will_send.max(0) as u64).div_ceil(u64::from(report.rate.max(1)));
    Ok(report)
}

/// Recipients a CSV export writes a line for, read a page at a time.
pub const EXPORT_PAGE: u32 = 1_000;

/// The CSV header of an export, and a recipient as a line of it.
pub const EXPORT_HEADER: &str = "to,status,reason,message_id,wamid,error_code,error,attempts,updated_at\n";

pub fn export_line(r: &CampaignRecipient) -> String {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let reason = match r.status {
        RecipientStatus::Skipped => r.skip_reason.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let (code, message) = match &r.error {
        Some(e) => (e.code.map(|c| c.to_string()).or_else(|| e.reason.clone()).unwrap_or_default(), e.message.clone()),
        None => (String::new(), String::new()),
    };
    let fields = [
        r.to.clone(),
        r.status.as_str().to_owned(),
        reason,
        r.message_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        r.wamid.clone().unwrap_or_default(),
        code,
        message,
        r.attempts.to_string(),
        r.updated_at.to_string(),
    ];
    w.write_record(&fields).expect("writing to memory");
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 fields is UTF-8")
}
