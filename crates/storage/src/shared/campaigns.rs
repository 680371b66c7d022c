//! Campaigns and their recipients: the statements both backends run, the readers of their rows,
//! and how a recipient's status and the counts are told from its row and its message's.

use std::collections::BTreeMap;

use wagate_domain::campaign::{CampaignState, RecipientStatus, skip};
use wagate_domain::id::{AccountId, CampaignId, MessageId};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;

use super::{Columns, Param, Values, corrupt, json_text, parse_error, parse_json, parse_object, time, ts};
use crate::*;

macro_rules! campaign_cols {
    () => {
        "id, name, account_id, phone_number_id, template, send_at, rate, max_failure_share, metadata, state, \
         pause_reason, pause_detail, resumes_at, started_at, finished_at, created_at, updated_at, revision"
    };
}

pub(crate) const SELECT_CAMPAIGN: &str =
    concat!("SELECT ", campaign_cols!(), ", duplicates FROM campaigns WHERE id = $1");

pub(crate) const SELECT_CAMPAIGNS: &str = concat!(
    "SELECT ",
    campaign_cols!(),
    ", duplicates FROM campaigns WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR phone_number_id = $2) ",
    "AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
);

pub(crate) const SELECT_ACTIVE_CAMPAIGNS: &str = concat!(
    "SELECT ",
    campaign_cols!(),
    ", duplicates FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') ORDER BY id"
);

pub(crate) const INSERT_CAMPAIGN: &str = concat!(
    "INSERT INTO campaigns (",
    campaign_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ",
    "ON CONFLICT (id) DO NOTHING"
);

/// Writes campaign `$18` read at revision `$19`: nothing when another write came since. The
/// lease's columns are the lease's own.
pub(crate) const UPDATE_CAMPAIGN: &str = "UPDATE campaigns SET name = $1, account_id = $2, phone_number_id = $3, \
    template = $4, send_at = $5, rate = $6, max_failure_share = $7, metadata = $8, state = $9, pause_reason = $10, \
    pause_detail = $11, resumes_at = $12, started_at = $13, finished_at = $14, created_at = $15, updated_at = $16, \
    revision = $17 WHERE id = $18 AND revision = $19";

/// Counts `$1` numbers refused as already in campaign `$2`.
pub(crate) const ADD_DUPLICATES: &str = "UPDATE campaigns SET duplicates = duplicates + $1 WHERE id = $2";

/// Takes or renews the lease on feeding campaign `$3`: `$1` holds it until `$2`, unless another
/// holder's lease runs past `$4` (now).
pub(crate) const LEASE_CAMPAIGN: &str = "UPDATE campaigns SET lease_holder = $1, lease_until = $2 \
    WHERE id = $3 AND (lease_holder IS NULL OR lease_holder = $1 OR lease_until < $4)";

pub(crate) fn campaign(r: &impl Columns) -> Result<Campaign> {
    let state: String = r.get("state")?;
    let rate = match r.get::<Option<i64>>("rate")? {
        Some(n) => Some(u32::try_from(n).map_err(|_| corrupt("campaign rate", &n.to_string()))?),
        None => None,
    };
    Ok(Campaign {
        id: CampaignId::from_trusted(r.get("id")?),
        name: r.get("name")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        phone_number_id: r.get("phone_number_id")?,
        template: parse_json("template", &r.get::<String>("template")?)?,
        send_at: r.get::<Option<i64>>("send_at")?.map(ts),
        rate,
        max_failure_share: r.get("max_failure_share")?,
        metadata: parse_object("metadata", r.get("metadata")?)?,
        state: CampaignState::parse(&state).ok_or_else(|| corrupt("campaign state", &state))?,
        pause_reason: r.get("pause_reason")?,
        pause_detail: r.get("pause_detail")?,
        resumes_at: r.get::<Option<i64>>("resumes_at")?.map(ts),
        started_at: r.get::<Option<i64>>("started_at")?.map(ts),
        finished_at: r.get::<Option<i64>>("finished_at")?.map(ts),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        revision: r.get("revision")?,
        duplicates: r.get("duplicates")?,
    })
}

/// A campaign with its JSON columns written out, for [`INSERT_CAMPAIGN`] and [`UPDATE_CAMPAIGN`]
/// (more values than a `Values` tuple holds: see [`Param`]).
pub(crate) struct CampaignColumns {
    campaign: Campaign,
    template: String,
    metadata: Option<String>,
}

impl CampaignColumns {
    pub(crate) fn new(c: &Campaign) -> Self {
        Self {
            template: json_text(&c.template),
            metadata: c.metadata.as_ref().map(|m| serde_json::to_string(m).expect("a JSON map serialises")),
            campaign: c.clone(),
        }
    }

    /// The columns in `campaign_cols!` order.
    fn columns(&self) -> [Param<'_>; 18] {
        let c = &self.campaign;
        let at = |t: Option<Timestamp>| Param::Int(t.map(Timestamp::as_millis));
        [
            Param::Text(Some(c.id.as_str())),
            Param::Text(Some(&c.name)),
            Param::Text(Some(c.account_id.as_str())),
            Param::Text(Some(&c.phone_number_id)),
            Param::Text(Some(&self.template)),
            at(c.send_at),
            Param::Int(c.rate.map(i64::from)),
            Param::Real(c.max_failure_share),
            Param::Text(self.metadata.as_deref()),
            Param::Text(Some(c.state.as_str())),
            Param::Text(c.pause_reason.as_deref()),
            Param::Text(c.pause_detail.as_deref()),
            at(c.resumes_at),
            at(c.started_at),
            at(c.finished_at),
            at(Some(c.created_at)),
            at(Some(c.updated_at)),
            Param::Int(Some(c.revision)),
        ]
    }

    /// [`INSERT_CAMPAIGN`]'s values.
    pub(crate) fn insert_values(&self) -> Vec<Param<'_>> {
        self.columns().to_vec()
    }

    /// [`UPDATE_CAMPAIGN`]'s values: every column but the id, then the id and the revision read.
    pub(crate) fn update_values(&self, read: i64) -> Vec<Param<'_>> {
        let [id, rest @ ..] = self.columns();
        let mut values = rest.to_vec();
        values.extend([id, Param::Int(Some(read))]);
        values
    }
}

/// [`SELECT_CAMPAIGNS`]'s values. Owned: SQLite reads lists on a thread of their own.
pub(crate) fn campaign_filter_values(f: &CampaignFilter, limit: u32) -> impl Values<'static> + use<> {
    (
        f.state.map(CampaignState::as_str),
        f.phone_number_id.clone(),
        f.before.as_ref().map(|b| b.as_str().to_owned()),
        i64::from(limit),
    )
}

// Recipients. A recipient's status is its row's until it is queued, then its message's (none
// stored yet: `queued`); `recipient_where!` says the same in SQL, for lists by status.

/// A recipient row with its message's status, error and wamid (`recipient`).
macro_rules! select_recipients {
    ($where:literal) => {
        concat!(
            "SELECT r.campaign_id, r.recipient, r.position, r.params, r.metadata, r.state, r.skip_reason, r.error, ",
            "r.message_id, r.attempts, r.created_at, r.updated_at, m.status AS message_status, ",
            "m.error AS message_error, m.wamid FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id ",
            "WHERE r.campaign_id = $1 AND r.position > $2 AND ",
            $where,
            " ORDER BY r.position LIMIT $3"
        )
    };
}

/// Recipients of campaign `$1` after position `$2`, at most `$3`: every one, or those of a status.
pub(crate) const SELECT_RECIPIENTS: &str = select_recipients!("TRUE");
const SELECT_PENDING: &str = select_recipients!("r.state = 'pending'");
const SELECT_QUEUED: &str =
    select_recipients!("r.state = 'queued' AND (m.status IS NULL OR m.status IN ('scheduled', 'queued', 'sending'))");
const SELECT_ACCEPTED: &str = select_recipients!("r.state = 'queued' AND m.status = 'accepted'");
const SELECT_SENT: &str = select_recipients!("r.state = 'queued' AND m.status = 'sent'");
const SELECT_DELIVERED: &str = select_recipients!("r.state = 'queued' AND m.status = 'delivered'");
const SELECT_READ: &str = select_recipients!("r.state = 'queued' AND m.status IN ('read', 'played')");
const SELECT_FAILED: &str = select_recipients!("r.state = 'queued' AND m.status = 'failed'");
const SELECT_SKIPPED: &str =
    select_recipients!("(r.state = 'skipped' OR (r.state = 'queued' AND m.status IN ('canceled', 'received')))");
/// Queued recipients whose message was never stored.
pub(crate) const SELECT_UNSENT: &str = select_recipients!("r.state = 'queued' AND m.id IS NULL");

/// The statement listing recipients of `status` (all of them: None).
pub(crate) fn select_recipients(status: Option<RecipientStatus>) -> &'static str {
    match status {
        None => SELECT_RECIPIENTS,
        Some(RecipientStatus::Pending) => SELECT_PENDING,
        Some(RecipientStatus::Queued) => SELECT_QUEUED,
        Some(RecipientStatus::Accepted) => SELECT_ACCEPTED,
        Some(RecipientStatus::Sent) => SELECT_SENT,
        Some(RecipientStatus::Delivered) => SELECT_DELIVERED,
        Some(RecipientStatus::Read) => SELECT_READ,
        Some(RecipientStatus::Failed) => SELECT_FAILED,
        Some(RecipientStatus::Skipped) => SELECT_SKIPPED,
    }
}

/// The values of a `select_recipients` statement: the campaign, after `after` (from the
/// first: None), at most `limit`. Owned: SQLite reads lists on a thread of their own.
pub(crate) fn recipient_page_values(id: &CampaignId, after: Option<i64>, limit: u32) -> (String, i64, i64) {
    (id.as_str().to_owned(), after.unwrap_or(i64::MIN), i64::from(limit))
}

/// A recipient's status from its row's state and its message's status.
fn status_of(state: RecipientState, message_status: Option<&str>) -> Result<RecipientStatus> {
    Ok(match (state, message_status) {
        (RecipientState::Pending, _) => RecipientStatus::Pending,
        (RecipientState::Skipped, _) => RecipientStatus::Skipped,
        (RecipientState::Queued, None) => RecipientStatus::Queued,
        (RecipientState::Queued, Some(s)) => {
            RecipientStatus::of_message(MessageStatus::parse(s).ok_or_else(|| corrupt("status", s))?)
        }
    })
}

fn recipient_state(state: &str) -> Result<RecipientState> {
    RecipientState::parse(state).ok_or_else(|| corrupt("recipient state", state))
}

/// A recipient as `select_recipients!` selects it.
pub(crate) fn recipient(r: &impl Columns) -> Result<CampaignRecipient> {
    let state = recipient_state(&r.get::<String>("state")?)?;
    let status = status_of(state, r.get::<Option<String>>("message_status")?.as_deref())?;
    let (skip_reason, error) = match state {
        RecipientState::Skipped => (r.get("skip_reason")?, parse_error(r.get("error")?)?),
        // Its message was canceled before it went.
        _ if status == RecipientStatus::Skipped => {
            (Some(skip::CANCELED.to_owned()), parse_error(r.get("message_error")?)?)
        }
        _ => (None, parse_error(r.get("message_error")?)?),
    };
    Ok(CampaignRecipient {
        campaign_id: CampaignId::from_trusted(r.get("campaign_id")?),
        to: r.get("recipient")?,
        position: r.get("position")?,
        params: r.get::<Option<String>>("params")?.map(|p| parse_json("params", &p)).transpose()?,
        metadata: parse_object("metadata", r.get("metadata")?)?,
        state,
        status,
        skip_reason,
        error,
        message_id: r.get::<Option<String>>("message_id")?.map(MessageId::from_trusted),
        wamid: r.get("wamid")?,
        attempts: r.get("attempts")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A new recipient with its JSON columns written out: recipient, params, metadata.
pub(crate) type RecipientColumns = (String, Option<String>, Option<String>);

pub(crate) fn recipient_columns(r: &NewRecipient) -> RecipientColumns {
    (
        r.to.clone(),
        r.params.as_ref().map(json_text),
        r.metadata.as_ref().map(|m| serde_json::to_string(m).expect("a JSON map serialises")),
    )
}

/// The campaign's last position (0 before the first recipient).
pub(crate) const SELECT_LAST_POSITION: &str =
    "SELECT COALESCE(MAX(position), 0) FROM campaign_recipients WHERE campaign_id = $1";

/// Removes recipient `$2` of campaign `$1` if it is still pending.
pub(crate) const DELETE_PENDING_RECIPIENT: &str =
    "DELETE FROM campaign_recipients WHERE campaign_id = $1 AND recipient = $2 AND state = 'pending'";
pub(crate) const SELECT_RECIPIENT_STATE: &str =
    "SELECT state FROM campaign_recipients WHERE campaign_id = $1 AND recipient = $2";

/// Skips every pending recipient of campaign `$3` with reason `$1` at `$2`.
pub(crate) const SKIP_PENDING: &str = "UPDATE campaign_recipients SET state = 'skipped', skip_reason = $1, \
    updated_at = $2 WHERE campaign_id = $3 AND state = 'pending'";

/// Campaign `$1`'s recipients grouped by what tells their status and reason (see `CountRow`):
/// state, message status, skip reason, and a failed message's error.
pub(crate) const COUNT_RECIPIENTS: &str = "SELECT r.state, m.status, r.skip_reason, \
    CASE WHEN m.status = 'failed' THEN m.error END, COUNT(*) \
    FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id \
    WHERE r.campaign_id = $1 GROUP BY 1, 2, 3, 4";

/// Campaign `$1`'s recipients whose customer wrote to the number after their message, within
/// `$2` milliseconds of it. The conversation's last customer message (Meta's time, to the second)
/// rules out, by its key, those who have not written since (a minute's margin for the clocks);
/// a customer message is Meta's time too, to the second, hence a second's margin after the send;
/// only the others' messages are looked through, so a planner without statistics (a new table,
/// autovacuum off) cannot make this a scan per recipient.
pub(crate) const COUNT_REPLIED: &str = "SELECT COUNT(*) FROM campaign_recipients r \
    JOIN messages m ON m.id = r.message_id \
    JOIN conversations c ON c.phone_number_id = m.phone_number_id AND c.customer = r.recipient \
    WHERE r.campaign_id = $1 AND r.state = 'queued' AND c.last_inbound_at >= m.created_at - 60000 AND EXISTS \
    (SELECT 1 FROM messages i WHERE i.phone_number_id = m.phone_number_id AND i.counterpart = m.counterpart \
    AND i.direction = 'inbound' AND i.created_at > m.created_at - 1000 AND i.created_at - m.created_at <= $2)";

/// A row of [`COUNT_RECIPIENTS`]: state, message status, skip reason, failure, count.
pub(crate) type CountedRow = (String, Option<String>, Option<String>, Option<String>, i64);

pub(crate) fn counted_row(r: &impl Columns) -> Result<CountedRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// [`COUNT_RECIPIENTS`]'s rows folded into one row per status and reason, by status.
pub(crate) fn recipient_counts(rows: Vec<CountedRow>, replied: i64) -> Result<RecipientCounts> {
    let mut counts: BTreeMap<(RecipientStatus, Option<String>), i64> = BTreeMap::new();
    for (state, message_status, skip_reason, failure, count) in rows {
        let state = recipient_state(&state)?;
        let status = status_of(state, message_status.as_deref())?;
        let reason = match status {
            RecipientStatus::Skipped if state == RecipientState::Skipped => skip_reason,
            RecipientStatus::Skipped => Some(skip::CANCELED.to_owned()),
            RecipientStatus::Failed => parse_error(failure)?.and_then(|e| e.code.map(|c| c.to_string()).or(e.reason)),
            _ => None,
        };
        *counts.entry((status, reason)).or_default() += count;
    }
    let rows = counts.into_iter().map(|((status, reason), count)| CountRow { status, reason, count }).collect();
    Ok(RecipientCounts { rows, replied })
}

/// Messages of number `$1` due by `$2` and still in the outbox (being sent included).
pub(crate) const COUNT_DUE_IN_OUTBOX: &str = "SELECT COUNT(*) FROM outbox WHERE phone_number_id = $1 AND due_at <= $2";

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    let mut all = vec![
        SELECT_CAMPAIGN,
        SELECT_CAMPAIGNS,
        SELECT_ACTIVE_CAMPAIGNS,
        INSERT_CAMPAIGN,
        UPDATE_CAMPAIGN,
        ADD_DUPLICATES,
        LEASE_CAMPAIGN,
        SELECT_UNSENT,
        SELECT_LAST_POSITION,
        DELETE_PENDING_RECIPIENT,
        SELECT_RECIPIENT_STATE,
        SKIP_PENDING,
        COUNT_RECIPIENTS,
        COUNT_REPLIED,
        COUNT_DUE_IN_OUTBOX,
    ];
    all.push(select_recipients(None));
    all.extend(RecipientStatus::ALL.map(|s| select_recipients(Some(s))));
    all
}
