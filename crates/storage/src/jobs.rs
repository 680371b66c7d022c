//! Background jobs: long operations (a CSV import of contacts or of a campaign's recipients, an
//! export) worked through a batch at a time by whichever instance holds the job's lease. Each
//! batch's effects, its rows' entries, the progress and the cursor into the input are written in
//! one transaction, so a job taken up again after a crash goes on from exactly where it was.

use serde_json::{Map, Value};
use wagate_domain::id::{CampaignId, JobId};
use wagate_domain::time::Timestamp;

use crate::NewRecipient;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// `POST /v1/contacts/import`: contacts created or updated from a CSV file.
    ContactsImport,
    /// A CSV file of a campaign's recipients.
    RecipientsImport,
    /// A campaign's recipients written to a CSV file.
    RecipientsExport,
}

impl JobKind {
    pub const ALL: [Self; 3] = [Self::ContactsImport, Self::RecipientsImport, Self::RecipientsExport];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContactsImport => "contacts.import",
            Self::RecipientsImport => "campaign.recipients.import",
            Self::RecipientsExport => "campaign.recipients.export",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    Running,
    Completed,
    /// Stopped by an error that is not a row's (its input unreadable, its campaign gone).
    Failed,
    Canceled,
}

impl JobState {
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// How far a job is, in rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// Rows in all, once known (an upload's lines are counted as it is stored).
    pub total: Option<i64>,
    pub processed: i64,
    pub succeeded: i64,
    /// Rows the store refused (a duplicate recipient, a contact's attributes too large).
    pub failed: i64,
    /// Rows that broke a rule before reaching the store (a bad number, a malformed line).
    pub invalid: i64,
}

/// Where a job is in its input: the byte offset of the next row to read, and that row's line
/// (an export: the bytes written to its result, and the last recipient position written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCursor {
    pub offset: i64,
    pub line: i64,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub state: JobState,
    /// What it works on: the campaign of a recipients import or export.
    pub subject: Option<String>,
    /// Its input, a file under the data directory (a path relative to it).
    pub input: Option<String>,
    /// What was read or asked at its start (an import's header row, an export's filter).
    pub params: Value,
    pub progress: JobProgress,
    pub cursor: JobCursor,
    /// Its output, a file under the data directory (a path relative to it).
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub state: Option<JobState>,
    /// Only jobs with ids below this one (the previous page's last).
    pub before: Option<JobId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryOutcome {
    Succeeded,
    Failed,
    Invalid,
}

impl EntryOutcome {
    pub const ALL: [Self; 3] = [Self::Succeeded, Self::Failed, Self::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What became of one row of a job's input.
#[derive(Clone, Debug, PartialEq)]
pub struct JobEntry {
    /// The row's line in the input (from 1, the header's line included).
    pub line: i64,
    pub outcome: EntryOutcome,
    /// What the row was about: a number.
    pub key: Option<String>,
    /// Why it failed or was invalid: a rule's stable name, and words.
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub outcome: Option<EntryOutcome>,
    /// Only entries after this line (the previous page's last).
    pub after: Option<i64>,
}

/// A contact row to create or update, found by its phone number.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedContact {
    pub line: i64,
    /// Digits.
    pub wa_id: String,
    /// Merged into the contact's attributes (a `null` removes the key).
    pub attributes: Map<String, Value>,
    /// Added to the contact's tags.
    pub tags: Vec<String>,
    /// A marketing stop (true) or resume (false) at the batch's time.
    pub marketing_opt_out: Option<bool>,
}

/// What a batch does besides its entries and progress.
#[derive(Clone, Debug, PartialEq)]
pub enum JobWork {
    /// Contacts created or updated; each row `succeeded`, or `failed` (its attributes would pass
    /// their limit) with why.
    Contacts(Vec<ImportedContact>),
    /// Recipients added to a campaign, each with its line; a number the campaign has already
    /// (or an earlier row had) is `failed` with code `duplicate`, and every row is `failed`
    /// with code `not_found` when the campaign is gone.
    Recipients { campaign_id: CampaignId, rows: Vec<(i64, NewRecipient)> },
    /// Nothing but what is counted: an export's rows, written to its file before.
    Counted { succeeded: i64 },
}

/// One batch of a job, written in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct JobBatch {
    pub work: JobWork,
    /// Rows refused before the store: recorded as `invalid` entries.
    pub invalid: Vec<JobEntry>,
    /// Where the next batch starts.
    pub cursor: JobCursor,
    /// The total, when this batch learned it.
    pub total: Option<i64>,
}
