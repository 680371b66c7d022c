//! Background jobs: the statements both backends run, the readers of their rows, and what a
//! batch's work comes to before it is written (its rows' entries and counts; the contacts an
//! import makes or changes, with their events).

use std::collections::{HashMap, HashSet};

use wagate_domain::contact::{MAX_TAGS, counterpart, fold, merge_attributes};
use wagate_domain::event::EventType;
use wagate_domain::id::{CampaignId, ContactId, JobId};
use wagate_domain::time::Timestamp;

use super::{Columns, Param, Values, contact_event, corrupt, json_text, parse_json, time, ts};
use crate::*;

macro_rules! job_cols {
    () => {
        "id, kind, state, subject, input, params, total, processed, succeeded, failed, invalid, cursor_offset, \
         cursor_line, result, error, created_at, updated_at, started_at, finished_at"
    };
}

pub(crate) const SELECT_JOB: &str = concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1");

pub(crate) const SELECT_JOBS: &str = concat!(
    "SELECT ",
    job_cols!(),
    " FROM jobs WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR id < $3) ",
    "ORDER BY id DESC LIMIT $4"
);

pub(crate) const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    job_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ",
    "ON CONFLICT (id) DO NOTHING"
);

/// A job `$1` (holder) may take at `$3` (now): queued, or running under a lease that lapsed or
/// is `$1`'s own. Few jobs are queued or running: the `(state, id)` index finds them, and they
/// are sorted by id.
macro_rules! claimable {
    () => {
        "state IN ('queued', 'running') AND (state = 'queued' OR lease_until < $3 OR lease_holder = $1)"
    };
}

/// Leases the oldest job `claimable!` to `$1` until `$2`, making it running (started at `$3`,
/// the first time). The outer condition checks again what the inner one chose: PostgreSQL's
/// inner one locks it (`$lock`), skipping jobs another claim holds.
macro_rules! claim_job {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', lease_holder = $1, lease_until = $2, ",
            "started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = (SELECT id FROM jobs WHERE ",
            claimable!(),
            " ORDER BY id LIMIT 1",
            $lock,
            ") AND ",
            claimable!(),
            " RETURNING ",
            job_cols!()
        )
    };
}

pub(crate) const CLAIM_JOB: &str = claim_job!("");
pub(crate) const CLAIM_JOB_SKIP_LOCKED: &str = claim_job!(" FOR UPDATE SKIP LOCKED");

/// Renews `$3`'s lease on job `$2` until `$1`, while the job runs.
pub(crate) const RENEW_JOB: &str =
    "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND state = 'running' AND lease_holder = $3";
/// A batch's first write: job `$2` touched at `$1` while `$3` holds it running (nothing
/// otherwise), which on PostgreSQL also locks it until the batch commits.
pub(crate) const TOUCH_HELD_JOB: &str =
    "UPDATE jobs SET updated_at = $1 WHERE id = $2 AND state = 'running' AND lease_holder = $3";
/// A batch's counts added to job `$9`, its total (when learned) and its cursor.
pub(crate) const NOTE_PROGRESS: &str = "UPDATE jobs SET processed = processed + $1, succeeded = succeeded + $2, \
    failed = failed + $3, invalid = invalid + $4, total = COALESCE($5, total), cursor_offset = $6, \
    cursor_line = $7, updated_at = $8 WHERE id = $9";
/// Ends job `$5` as `$1` while `$6` holds it running: a completed one's total is what it processed.
pub(crate) const FINISH_JOB: &str = "UPDATE jobs SET state = $1, \
    total = CASE WHEN $1 = 'completed' THEN processed ELSE total END, result = $2, error = $3, finished_at = $4, \
    updated_at = $4, lease_holder = NULL, lease_until = NULL \
    WHERE id = $5 AND state = 'running' AND lease_holder = $6";
pub(crate) const CANCEL_JOB: &str = "UPDATE jobs SET state = 'canceled', finished_at = $1, updated_at = $1, \
    lease_holder = NULL, lease_until = NULL WHERE id = $2 AND state IN ('queued', 'running')";

/// Entries of job `$1` after line `$2`, at most `$3`, of every outcome or those `$where` says.
macro_rules! select_entries {
    ($where:literal) => {
        concat!(
            "SELECT line, outcome, key, code, message FROM job_entries WHERE job_id = $1 AND line > $2",
            $where,
            " ORDER BY line LIMIT $3"
        )
    };
}

const SELECT_ENTRIES: &str = select_entries!("");
const SELECT_SUCCEEDED: &str = select_entries!(" AND outcome = 'succeeded'");
// The rows that did not succeed have an index of their own (`job_entries_unsucceeded`), which
// serves a statement that names its condition as it is written.
const SELECT_FAILED: &str = select_entries!(" AND outcome <> 'succeeded' AND outcome = 'failed'");
const SELECT_INVALID: &str = select_entries!(" AND outcome <> 'succeeded' AND outcome = 'invalid'");

/// The statement listing a job's entries of `outcome` (all of them: None).
pub(crate) fn select_entries(outcome: Option<EntryOutcome>) -> &'static str {
    match outcome {
        None => SELECT_ENTRIES,
        Some(EntryOutcome::Succeeded) => SELECT_SUCCEEDED,
        Some(EntryOutcome::Failed) => SELECT_FAILED,
        Some(EntryOutcome::Invalid) => SELECT_INVALID,
    }
}

/// A `select_entries` statement's values. Owned: SQLite reads lists on a thread of their own.
pub(crate) fn entry_page_values(id: &JobId, f: &EntryFilter, limit: u32) -> (String, i64, i64) {
    (id.as_str().to_owned(), f.after.unwrap_or(i64::MIN), i64::from(limit))
}

/// [`SELECT_JOBS`]'s values. Owned: SQLite reads lists on a thread of their own.
pub(crate) fn job_filter_values(f: &JobFilter, limit: u32) -> impl Values<'static> + use<> {
    (
        f.kind.map(JobKind::as_str),
        f.state.map(JobState::as_str),
        f.before.as_ref().map(|b| b.as_str().to_owned()),
        i64::from(limit),
    )
}

/// A job as `job_cols!` selects it.
pub(crate) fn job(r: &impl Columns) -> Result<Job> {
    let kind: String = r.get("kind")?;
    let state: String = r.get("state")?;
    Ok(Job {
        id: JobId::from_trusted(r.get("id")?),
        kind: JobKind::parse(&kind).ok_or_else(|| corrupt("job kind", &kind))?,
        state: JobState::parse(&state).ok_or_else(|| corrupt("job state", &state))?,
        subject: r.get("subject")?,
        input: r.get("input")?,
        params: parse_json("params", &r.get::<String>("params")?)?,
        progress: JobProgress {
            total: r.get("total")?,
            processed: r.get("processed")?,
            succeeded: r.get("succeeded")?,
            failed: r.get("failed")?,
            invalid: r.get("invalid")?,
        },
        cursor: JobCursor { offset: r.get("cursor_offset")?, line: r.get("cursor_line")? },
        result: r.get("result")?,
        error: r.get("error")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        started_at: r.get::<Option<i64>>("started_at")?.map(ts),
        finished_at: r.get::<Option<i64>>("finished_at")?.map(ts),
    })
}

/// An entry as `select_entries!` selects it (by position).
pub(crate) fn entry(r: &impl Columns) -> Result<JobEntry> {
    let outcome: String = r.get(1)?;
    Ok(JobEntry {
        line: r.get(0)?,
        outcome: EntryOutcome::parse(&outcome).ok_or_else(|| corrupt("entry outcome", &outcome))?,
        key: r.get(2)?,
        code: r.get(3)?,
        message: r.get(4)?,
    })
}

/// A job with its JSON column written out, for [`INSERT_JOB`] (more values than a `Values`
/// tuple holds: see [`Param`]).
pub(crate) struct JobColumns {
    job: Job,
    params: String,
}

impl JobColumns {
    pub(crate) fn new(job: &Job) -> Self {
        Self { params: json_text(&job.params), job: job.clone() }
    }

    /// [`INSERT_JOB`]'s values, in `job_cols!` order.
    pub(crate) fn insert_values(&self) -> Vec<Param<'_>> {
        let j = &self.job;
        let at = |t: Option<Timestamp>| Param::Int(t.map(Timestamp::as_millis));
        let p = &j.progress;
        vec![
            Param::Text(Some(j.id.as_str())),
            Param::Text(Some(j.kind.as_str())),
            Param::Text(Some(j.state.as_str())),
            Param::Text(j.subject.as_deref()),
            Param::Text(j.input.as_deref()),
            Param::Text(Some(&self.params)),
            Param::Int(p.total),
            Param::Int(Some(p.processed)),
            Param::Int(Some(p.succeeded)),
            Param::Int(Some(p.failed)),
            Param::Int(Some(p.invalid)),
            Param::Int(Some(j.cursor.offset)),
            Param::Int(Some(j.cursor.line)),
            Param::Text(j.result.as_deref()),
            Param::Text(j.error.as_deref()),
            at(Some(j.created_at)),
            at(Some(j.updated_at)),
            at(j.started_at),
            at(j.finished_at),
        ]
    }
}

// A batch: its work's entries, then its invalid rows', and the counts they add.

fn succeeded(line: i64, key: &str) -> JobEntry {
    JobEntry { line, outcome: EntryOutcome::Succeeded, key: Some(key.to_owned()), code: None, message: None }
}

fn failed(line: i64, key: &str, code: &str, message: String) -> JobEntry {
    JobEntry {
        line,
        outcome: EntryOutcome::Failed,
        key: Some(key.to_owned()),
        code: Some(code.to_owned()),
        message: Some(message),
    }
}

/// Every entry a batch writes: its work's, then its invalid rows' (`invalid`, whatever outcome
/// they were given). A line met twice keeps its first entry (the statements skip the others).
pub(crate) fn batch_entries(work: Vec<JobEntry>, batch: &JobBatch) -> Vec<JobEntry> {
    let invalid = batch.invalid.iter().map(|e| JobEntry { outcome: EntryOutcome::Invalid, ..e.clone() });
    work.into_iter().chain(invalid).collect()
}

/// [`NOTE_PROGRESS`]'s values for job `id`: the rows of the batch (every row of its work, and
/// its invalid ones), by outcome; its total and cursor.
pub(crate) fn progress_values(
    id: &JobId,
    work: &[JobEntry],
    batch: &JobBatch,
    at: Timestamp,
) -> impl Values<'static> + use<> {
    let count = |o: EntryOutcome| work.iter().filter(|e| e.outcome == o).count() as i64;
    let counted = match batch.work {
        JobWork::Counted { succeeded } => succeeded,
        _ => 0,
    };
    let ok = count(EntryOutcome::Succeeded) + counted;
    let (refused, invalid) = (count(EntryOutcome::Failed), batch.invalid.len() as i64);
    (
        ok + refused + invalid,
        ok,
        refused,
        invalid,
        batch.total,
        batch.cursor.offset,
        batch.cursor.line,
        at.as_millis(),
        id.as_str().to_owned(),
    )
}

/// The entries of recipients a batch added to campaign `id`: each added, or a duplicate of one
/// the campaign has (or an earlier row had); every one failed when the campaign is gone (`added`
/// None).
pub(crate) fn recipient_entries(
    id: &CampaignId,
    rows: &[(i64, NewRecipient)],
    added: Option<&[bool]>,
) -> Vec<JobEntry> {
    let Some(added) = added else {
        let message = |to: &str| format!("{to} cannot be added: campaign {id} does not exist");
        return rows.iter().map(|(line, r)| failed(*line, &r.to, "not_found", message(&r.to))).collect();
    };
    rows.iter()
        .zip(added)
        .map(|((line, r), added)| match added {
            true => succeeded(*line, &r.to),
            false => failed(*line, &r.to, "duplicate", format!("{} is a recipient of the campaign already", r.to)),
        })
        .collect()
}

// Contacts imported: found by their numbers as a message from them would find them, then
// changed here, in memory, row by row, and written once each.

/// The contacts a batch's numbers lead to, from who has each number now and who had it (the
/// holder of its identity), as `Holders` tells them for a message.
#[derive(Default)]
pub(crate) struct FoundContacts {
    /// By number: contacts that have it, and have had it.
    pub(crate) known: HashMap<String, Contact>,
    /// Numbers a contact had before (and none has now), with that contact's id: a message from
    /// them is filed with it, and so is the row.
    pub(crate) former: Vec<(String, String)>,
    /// Numbers whose holders must be resolved as a message's are first (`resolve_contact`): two
    /// contacts, or an identity missing.
    pub(crate) unresolved: Vec<String>,
}

/// The batch's distinct numbers, sorted: what is looked up.
pub(crate) fn batch_numbers(rows: &[ImportedContact]) -> Vec<String> {
    let mut numbers: Vec<String> = rows.iter().map(|r| r.wa_id.clone()).collect();
    numbers.sort();
    numbers.dedup();
    numbers
}

/// The identities of these numbers (as `counterpart` writes them), looked up with them.
pub(crate) fn number_identities(numbers: &[String]) -> Vec<String> {
    numbers.iter().map(|n| counterpart(n)).collect()
}

/// Sorts out the contacts `numbers` found: `holders` those whose wa_id is one of them,
/// `identities` (identity, contact id) those whose identity is.
pub(crate) fn found_contacts(
    numbers: &[String],
    holders: Vec<Contact>,
    identities: Vec<(String, String)>,
) -> FoundContacts {
    let mut now: HashMap<String, Contact> = holders.into_iter().filter_map(|c| Some((c.wa_id.clone()?, c))).collect();
    let had: HashMap<String, String> = identities.into_iter().collect();
    let mut found = FoundContacts::default();
    for number in numbers {
        match (now.remove(number), had.get(&counterpart(number))) {
            (None, None) => {}
            (Some(c), Some(h)) if c.id.as_str() == h => {
                found.known.insert(number.clone(), c);
            }
            (None, Some(h)) => found.former.push((number.clone(), h.clone())),
            _ => found.unresolved.push(number.clone()),
        }
    }
    found
}

/// A contact as the batch's rows leave it.
pub(crate) struct ImportedState {
    pub(crate) contact: Contact,
    /// Made by the batch: not stored yet.
    pub(crate) new: bool,
    /// A row changed it (or made it): it is written.
    pub(crate) changed: bool,
    /// The tags the rows added, to be stored (all of a new contact's).
    pub(crate) added_tags: Vec<String>,
}

/// What a batch of imported contacts comes to.
pub(crate) struct ContactsImport {
    /// One a row, in the rows' order.
    pub(crate) entries: Vec<JobEntry>,
    /// The contacts to write: made or changed by a row.
    pub(crate) contacts: Vec<ImportedState>,
    /// `contact.created` for a contact made, `contact.updated` for each row that changed one,
    /// each with the contact as that row left it.
    pub(crate) events: Vec<NewEvent>,
}

/// The rows applied, in order, to the contacts their numbers found (`found`, by number, with
/// their tags), or to new ones: attributes merged (a row that would break their limits fails,
/// and nothing of it is kept), tags added (kept unique regardless of case, at most `MAX_TAGS`),
/// a marketing stop or resume at `at`.
pub(crate) fn import_contacts(
    rows: &[ImportedContact],
    found: &HashMap<String, Contact>,
    views: &dyn EventViews,
    at: Timestamp,
) -> ContactsImport {
    let mut states: Vec<ImportedState> = Vec::new();
    // A contact's state by its id, or a new one's by its number.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut import =
        ContactsImport { entries: Vec::with_capacity(rows.len()), contacts: Vec::new(), events: Vec::new() };
    for row in rows {
        let (key, state) = match found.get(&row.wa_id) {
            Some(c) => (c.id.as_str().to_owned(), ImportedState::known(c)),
            None => (format!("+{}", row.wa_id), ImportedState::new(&row.wa_id, at)),
        };
        let i = *index.entry(key).or_insert_with(|| {
            states.push(state);
            states.len() - 1
        });
        let state = &mut states[i];
        match state.apply(row, at) {
            Err((code, message)) => import.entries.push(failed(row.line, &row.wa_id, code, message)),
            Ok(kind) => {
                if let Some(kind) = kind {
                    import.events.push(contact_event(views, kind, &state.contact));
                }
                import.entries.push(succeeded(row.line, &row.wa_id));
            }
        }
    }
    import.contacts = states.into_iter().filter(|s| s.changed).collect();
    import
}

impl ImportedState {
    fn known(c: &Contact) -> Self {
        Self { contact: c.clone(), new: false, changed: false, added_tags: Vec::new() }
    }

    fn new(wa_id: &str, at: Timestamp) -> Self {
        let contact = Contact {
            id: ContactId::generate(),
            wa_id: Some(wa_id.to_owned()),
            user_id: None,
            profile_name: None,
            attributes: Default::default(),
            tags: Vec::new(),
            marketing_opt_out_at: None,
            marketing_opt_in_at: None,
            created_at: at,
            updated_at: at,
        };
        Self { contact, new: true, changed: false, added_tags: Vec::new() }
    }

    /// Applies a row: the event it makes (none when it changed nothing), or the rule it broke
    /// and why (the contact as it was).
    fn apply(&mut self, row: &ImportedContact, at: Timestamp) -> Result<Option<EventType>, (&'static str, String)> {
        let c = &self.contact;
        let attributes = merge_attributes(&c.attributes, &row.attributes).map_err(|e| (e.rule, e.message))?;
        let mut folded: HashSet<String> = c.tags.iter().map(|t| fold(t)).collect();
        let added: Vec<String> = row.tags.iter().filter(|t| folded.insert(fold(t))).cloned().collect();
        if c.tags.len() + added.len() > MAX_TAGS {
            let message = format!(
                "tags: a contact may have at most {MAX_TAGS} tags; this would make {}",
                c.tags.len() + added.len()
            );
            return Err(("max_items", message));
        }
        let (opt_out, opt_in) = match row.marketing_opt_out {
            Some(true) => (c.marketing_opt_out_at.max(Some(at)), c.marketing_opt_in_at),
            Some(false) => (c.marketing_opt_out_at, c.marketing_opt_in_at.max(Some(at))),
            None => (c.marketing_opt_out_at, c.marketing_opt_in_at),
        };
        let changed = attributes != c.attributes
            || !added.is_empty()
            || (opt_out, opt_in) != (c.marketing_opt_out_at, c.marketing_opt_in_at);
        let kind = if self.new && !self.changed {
            EventType::ContactCreated
        } else if changed {
            EventType::ContactUpdated
        } else {
            return Ok(None);
        };
        let c = &mut self.contact;
        c.attributes = attributes;
        c.tags.extend(added.iter().cloned());
        c.tags.sort();
        (c.marketing_opt_out_at, c.marketing_opt_in_at) = (opt_out, opt_in);
        c.updated_at = at;
        self.added_tags.extend(added);
        self.changed = true;
        Ok(Some(kind))
    }

    /// The attributes as stored.
    pub(crate) fn attributes_text(&self) -> String {
        json_text(&serde_json::Value::Object(self.contact.attributes.clone()))
    }
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    let mut all = vec![
        SELECT_JOB,
        SELECT_JOBS,
        INSERT_JOB,
        CLAIM_JOB,
        CLAIM_JOB_SKIP_LOCKED,
        RENEW_JOB,
        TOUCH_HELD_JOB,
        NOTE_PROGRESS,
        FINISH_JOB,
        CANCEL_JOB,
        select_entries(None),
    ];
    all.extend(EntryOutcome::ALL.map(|o| select_entries(Some(o))));
    all
}
