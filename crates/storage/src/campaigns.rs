//! What storage keeps of campaigns: the campaign (its template, pace and state) and its
//! recipients, each fed to the outbox as a message of its own. A recipient's progress after
//! that is its message's: read through the message, never copied, so counts cannot drift.

use serde_json::{Map, Value};
use wagate_domain::campaign::{CampaignState, RecipientStatus};
use wagate_domain::id::{AccountId, CampaignId, MessageId};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

/// A campaign as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub account_id: AccountId,
    pub phone_number_id: String,
    /// The template in the simple send form (`name`, `language`, and the values every
    /// recipient shares: `header`, `buttons`, default `params`).
    pub template: Value,
    /// When a scheduled campaign starts.
    pub send_at: Option<Timestamp>,
    /// Messages a second, at most; None: the number's own rate.
    pub rate: Option<u32>,
    /// Above this share of failed sends (0–1) the campaign pauses itself; None: never.
    pub max_failure_share: Option<f64>,
    pub metadata: Option<Map<String, Value>>,
    pub state: CampaignState,
    /// Why it is paused (`PauseReason`'s names), while it is.
    pub pause_reason: Option<String>,
    /// A person's words on the pause: which template, which number, which limit.
    pub pause_detail: Option<String>,
    /// When a campaign `awaiting_quota` may go on.
    pub resumes_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every write: a write names the revision it read (see `save_campaign`).
    pub revision: i64,
    /// Numbers refused as already in the campaign when they were added. Counted by the
    /// additions; `save_campaign` leaves it as it is.
    pub duplicates: i64,
}

#[derive(Clone, Debug, Default)]
pub struct CampaignFilter {
    pub state: Option<CampaignState>,
    pub phone_number_id: Option<String>,
    /// Only campaigns with ids below this one (the previous page's last id).
    pub before: Option<CampaignId>,
}

/// A recipient to add.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecipient {
    /// `+` and digits.
    pub to: String,
    /// The body's values (an array in order, or an object by name), over the campaign's own.
    pub params: Option<Value>,
    pub metadata: Option<Map<String, Value>>,
}

/// Where a recipient row is, as stored: `pending`, `queued` (it has a message: its message
/// tells the rest) or `skipped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientState {
    Pending,
    Queued,
    Skipped,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "queued" => Some(Self::Queued),
            "skipped" => Some(Self::Skipped),
            _ => None,
        }
    }
}

/// A recipient as stored, with its message's status and error when it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignRecipient {
    pub campaign_id: CampaignId,
    pub to: String,
    /// Order of addition: recipients are fed in it.
    pub position: i64,
    pub params: Option<Value>,
    pub metadata: Option<Map<String, Value>>,
    pub state: RecipientState,
    /// The status as the API shows it (see `RecipientStatus::of_message`).
    pub status: RecipientStatus,
    /// Why it was skipped (`wagate_domain::campaign::skip`).
    pub skip_reason: Option<String>,
    /// Why it was skipped or why its message failed.
    pub error: Option<MessageError>,
    /// Its message: set when it is queued, kept after.
    pub message_id: Option<MessageId>,
    /// Its message's wamid, once Meta accepted it.
    pub wamid: Option<String>,
    /// Sends made for it: more than one after `retry-failed`.
    pub attempts: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which recipients to list: those of one status, after a position (the previous page's last).
#[derive(Clone, Debug, Default)]
pub struct RecipientFilter {
    pub status: Option<RecipientStatus>,
    pub after: Option<i64>,
}

/// What removing a recipient did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientRemoved {
    Removed,
    NotFound,
    /// It has a message already: too late to remove.
    AlreadyQueued,
}

/// A recipient's way out of `queued` when its send was refused before it reached the queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Unqueue {
    /// Skipped for good, with the reason and the refusal.
    Skip { reason: String, error: MessageError },
    /// Back to `pending` (the queue was full): fed again later.
    GiveBack,
}

/// Recipients counted by status: one row per status and reason (a skip's reason, a failure's
/// Meta code or gateway reason), every recipient in exactly one row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecipientCounts {
    pub rows: Vec<CountRow>,
    /// Recipients whose customer wrote back within the window asked for after their message.
    pub replied: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CountRow {
    pub status: RecipientStatus,
    /// For `skipped`: the skip's reason; for `failed`: Meta's code, or the gateway's reason.
    pub reason: Option<String>,
    pub count: i64,
}

impl RecipientCounts {
    pub fn total(&self) -> i64 {
        self.rows.iter().map(|r| r.count).sum()
    }

    pub fn of(&self, status: RecipientStatus) -> i64 {
        self.rows.iter().filter(|r| r.status == status).map(|r| r.count).sum()
    }
}
