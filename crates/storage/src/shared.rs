//! What both backends share: the schemas are kept type-compatible (times as 64-bit integers,
//! JSON as text), so statements that are the same text on both live here, with the pure code
//! around them (the outbox's head scan, status folding, secret sealing, JSON columns).
//!
//! Statements the SQLite backend runs number their parameters in the order they first appear:
//! rusqlite binds them by position, sqlx by number.

#![allow(dead_code, unused_macros, unused_imports)]

use std::collections::HashSet;

use serde_json::{Map, Value};
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::{DeliveryStatus, Report, fold};
use wagate_domain::time::Timestamp;

use crate::{Leased, OutboxHead, Result, StorageError};

macro_rules! account_cols {
    () => {
        "id, name, mode, graph_base_url, api_version, waba_id, access_token, app_secret, \
         verify_token, created_at, updated_at, paused_at, paused_error, messaging_tier"
    };
}

macro_rules! phone_cols {
    () => {
        "p.id, p.account_id, a.waba_id, p.display_phone_number, p.verified_name, \
         p.quality_rating, p.is_default, a.mode, p.webhooks_since, p.throughput_level, \
         p.messages_per_second, p.created_at, p.updated_at \
         FROM phone_numbers p JOIN accounts a ON a.id = p.account_id"
    };
}

macro_rules! message_cols {
    () => {
        "id, direction, account_id, phone_number_id, contact_id, counterpart, kind, content, \
         status, wamid, error, metadata, created_at, updated_at, send_at, expires_at"
    };
}

/// What reads of messages select: the stored columns and the id of the message replied to.
macro_rules! message_select_cols {
    () => {
        concat!(
            message_cols!(),
            ", reply_to_wamid, from_app, ",
            "(SELECT r.id FROM messages r WHERE r.wamid = messages.reply_to_wamid ",
            "AND r.account_id = messages.account_id) AS reply_to"
        )
    };
}

macro_rules! api_key_cols {
    () => {
        "id, name, prefix, key_hash, scopes, created_at, last_used_at, revoked_at"
    };
}

macro_rules! media_cols {
    () => {
        "id, account_id, phone_number_id, message_id, meta_media_id, kind, mime_type, sha256, file_size, \
         filename, caption, state, attempts, available_at, last_error, created_at, updated_at, downloaded_at"
    };
}

pub(crate) use {account_cols, api_key_cols, media_cols, message_cols, message_select_cols, phone_cols};

// Statements the SQLite backend runs too number their parameters in
// the order they first appear: rusqlite binds them by position, sqlx by number.

// Recording that Meta accepted a message (`Store::record_accepted`): the first result recorded
// wins; a holder whose lease lapsed still records the wamid if nobody did, because Meta has the
// message either way. Statuses that came before the wamid was known are adopted.
pub(crate) const ACCEPT_MESSAGE: &str = "UPDATE messages SET wamid = $1, status = 'accepted', error = NULL, \
    updated_at = $2 WHERE id = $3 AND wamid IS NULL AND status IN ('queued', 'sending')";
pub(crate) const DELETE_OUTBOX_ROW: &str = "DELETE FROM outbox WHERE message_id = $1";
pub(crate) const INSERT_ACCEPTED_STATUS: &str = "INSERT INTO message_statuses (account_id, message_id, wamid, \
    status, occurred_at, detail, recorded_at) VALUES ($1, $2, $3, 'accepted', $4, $5, $4) ON CONFLICT DO NOTHING";
pub(crate) const ADOPT_STATUSES: &str =
    "UPDATE message_statuses SET message_id = $1 WHERE account_id = $2 AND wamid = $3 AND message_id IS NULL";
pub(crate) const SELECT_REPORTS: &str =
    "SELECT status, wamid, participant, occurred_at, detail, error FROM message_statuses WHERE message_id = $1";
/// A message's history rows. A send's first entry (`queued`, or `scheduled` with a `send_at`) is
/// not stored but made from the message: it would be a row and two index entries more for every
/// send, for what the message already says (sends stored before that kept their row).
pub(crate) const SELECT_HISTORY: &str = "SELECT status, wamid, participant, occurred_at, error, detail \
    FROM message_statuses WHERE message_id = $1 \
    UNION ALL SELECT CASE WHEN m.send_at IS NULL THEN 'queued' ELSE 'scheduled' END, NULL, '', m.created_at, \
    NULL, NULL FROM messages m WHERE m.id = $1 AND m.direction = 'outbound' AND NOT m.from_app \
    AND NOT EXISTS (SELECT 1 FROM message_statuses s WHERE s.message_id = $1 AND s.status IN ('queued', 'scheduled'))";
pub(crate) const SET_STATUS: &str = "UPDATE messages SET status = $1, error = $2, updated_at = $3 WHERE id = $4";

// Claiming queued messages (`Store::claim_messages`): those still due and free; `$1` the lease,
// `$2` its end, `$3` now, the ids after. The ids are heads (`HeadScan`) read before: a row that
// headed its recipient's queue then still does, because only a send accepted concurrently with
// this claim and due earlier could come before it, and a recipient's next message becomes a
// head only when the row before it leaves the outbox.
pub(crate) const CLAIM_DUE: &str = "UPDATE outbox SET lease = $1, available_at = $2, attempts = attempts + 1 \
    WHERE available_at <= $3 AND due_at <= $3 AND message_id IN (";
/// The columns of a queue page (`QueueRow`).
macro_rules! queue_page {
    () => {
        "SELECT message_id, phone_number_id, recipient, due_at, seq, available_at, expires_at FROM outbox WHERE "
    };
}
/// A page of one number's due outbox rows, in (due_at, seq) order, after the row (`$3`, `$4`):
/// `$1` the number, `$2` now, `$5` the page's size.
pub(crate) const SELECT_NUMBER_QUEUE_PAGE: &str = concat!(
    queue_page!(),
    "phone_number_id = $1 AND due_at <= $2 AND due_at >= $3 AND (due_at > $3 OR seq > $4) ORDER BY due_at, seq LIMIT $5"
);
/// [`SELECT_NUMBER_QUEUE_PAGE`] for every number: `$1` now, after (`$2`, `$3`), `$4` rows.
pub(crate) const SELECT_QUEUE_PAGE: &str =
    concat!(queue_page!(), "due_at <= $1 AND due_at >= $2 AND (due_at > $2 OR seq > $3) ORDER BY due_at, seq LIMIT $4");

/// Finds the due outbox rows that head their recipient's queue, reading the queue in (due_at,
/// seq) order a page at a time: a row is a head when no row before it has its number and
/// recipient (in flight, backing off or waiting), so each recipient's messages leave one at a
/// time, in order. Done in the reader rather than by an index on the recipient, which every send
/// would write a leaf of.
pub(crate) struct HeadScan {
    now: i64,
    limit: usize,
    after: (i64, i64),
    page: i64,
    seen: HashSet<(String, String)>,
    heads: Vec<OutboxHead>,
    pub(crate) done: bool,
}

/// A row of a queue page: message id, number, recipient, due_at, seq, available_at, expires_at.
pub(crate) type QueueRow = (String, String, String, i64, i64, i64, Option<i64>);

impl HeadScan {
    /// The largest page read: the first is sized for the heads wanted (most are found in it:
    /// the dispatcher asks for a few at a time, each time its rate allows a send), each next
    /// one twice as large.
    const MAX_PAGE: i64 = 4096;

    pub(crate) fn new(now: Timestamp, limit: u32) -> Self {
        Self {
            now: now.as_millis(),
            limit: limit as usize,
            after: (i64::MIN, i64::MIN),
            page: (i64::from(limit) * 2).clamp(32, Self::MAX_PAGE),
            seen: HashSet::new(),
            heads: Vec::new(),
            done: limit == 0,
        }
    }

    /// Where the next page starts, after this (due_at, seq), and how many rows it holds.
    pub(crate) fn next_page(&self) -> (i64, i64, i64) {
        (self.after.0, self.after.1, self.page)
    }

    /// Takes the page of rows `next_page` described; a short page is the queue's end.
    pub(crate) fn page(&mut self, rows: impl ExactSizeIterator<Item = QueueRow>) {
        let full = rows.len() as i64 == self.page;
        self.page = (self.page * 2).min(Self::MAX_PAGE);
        for (message_id, number, recipient, due_at, seq, available_at, expires_at) in rows {
            self.after = (due_at, seq);
            let queue = (number, recipient);
            if self.seen.contains(&queue) {
                continue;
            }
            if available_at <= self.now {
                let message_id = MessageId::from_trusted(message_id);
                self.heads.push(OutboxHead { message_id, recipient: queue.1.clone(), expires_at: expires_at.map(ts) });
                if self.heads.len() == self.limit {
                    self.done = true;
                    return;
                }
            }
            self.seen.insert(queue);
        }
        self.done = !full;
    }

    pub(crate) fn heads(self) -> Vec<OutboxHead> {
        self.heads
    }
}

pub(crate) const MARK_CLAIMED_SENDING: &str = "UPDATE messages SET status = 'sending', updated_at = $1 \
    WHERE id IN (SELECT message_id FROM outbox WHERE lease = $2) AND status IN ('queued', 'scheduled')";
pub(crate) const SELECT_CLAIMED: &str = "SELECT m.id, m.account_id, m.phone_number_id, m.counterpart, m.kind, \
    m.content, m.created_at, o.attempts FROM outbox o JOIN messages m ON m.id = o.message_id \
    WHERE o.lease = $1 ORDER BY o.due_at, o.seq";

// Applying delivery statuses (`Store::apply_statuses`). Of repeated reports the earliest is kept
// (ties: the lesser detail, compared bytewise on both backends), as the domain's fold does, so
// the history does not depend on arrival order.
pub(crate) const SELECT_OUTBOUND_BY_WAMID: &str =
    "SELECT id FROM messages WHERE wamid = $1 AND account_id = $2 AND direction = 'outbound'";
pub(crate) const UPSERT_STATUS: &str = "INSERT INTO message_statuses \
    (account_id, message_id, wamid, status, participant, occurred_at, error, detail, recorded_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    ON CONFLICT (account_id, wamid, status, participant) DO UPDATE SET \
    occurred_at = excluded.occurred_at, error = excluded.error, detail = excluded.detail, \
    recorded_at = excluded.recorded_at \
    WHERE (excluded.occurred_at, COALESCE(excluded.detail, '')) \
    < (message_statuses.occurred_at, COALESCE(message_statuses.detail, ''))";

// Webhook deliveries processed (`Store::finish_deliveries`): only while the lease is still held.
pub(crate) const FINISH_DELIVERY: &str = "UPDATE webhook_deliveries SET available_at = NULL, lease = NULL, \
    processed_at = $1, error = $2 WHERE id = $3 AND lease = $4";

/// [`CLAIM_DUE`] for `ids` message ids: `$4` onwards.
pub(crate) fn claim_due_sql(ids: usize) -> String {
    let mut sql = String::from(CLAIM_DUE);
    for i in 0..ids {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 4));
    }
    sql.push(')');
    sql
}

/// The columns of [`SELECT_CLAIMED`], as a dispatch.
pub(crate) type ClaimedColumns = (String, String, String, String, String, String, i64, i64);

pub(crate) fn dispatch(
    (id, account_id, phone_number_id, recipient, kind, content, created_at, attempts): ClaimedColumns,
    (lease, lease_until): (&str, Timestamp),
) -> Result<Leased<crate::Dispatch>> {
    let item = crate::Dispatch {
        message_id: wagate_domain::id::MessageId::from_trusted(id),
        account_id: wagate_domain::id::AccountId::from_trusted(account_id),
        phone_number_id,
        recipient,
        kind,
        content: parse_json("content", &content)?,
        created_at: ts(created_at),
    };
    Ok(Leased { item, lease: lease.to_owned(), lease_until, attempts })
}

/// The columns a claim of webhook deliveries returns: id, account_id, body, received_at, attempts.
pub(crate) type DeliveryColumns = (i64, Option<String>, Vec<u8>, i64, i64);

/// A claimed webhook delivery, held under `lease` until `lease_until`.
pub(crate) fn delivery(
    (id, account_id, body, received_at, attempts): DeliveryColumns,
    (lease, lease_until): (&str, Timestamp),
) -> Leased<crate::Delivery> {
    let item = crate::Delivery {
        id,
        account_id: account_id.map(wagate_domain::id::AccountId::from_trusted),
        body,
        received_at: ts(received_at),
    };
    Leased { item, lease: lease.to_owned(), lease_until, attempts }
}

/// The columns of [`SELECT_REPORTS`]: status, wamid, participant, occurred_at, detail, error.
pub(crate) type ReportColumns = (String, Option<String>, String, i64, Option<String>, Option<String>);

/// A stored status row as a delivery report; None for the lifecycle's own rows (`queued`,
/// `accepted`, a send that failed before Meta took it…): Meta's reports are keyed by wamid.
pub(crate) fn report(
    (status, wamid, participant, occurred_at, detail, error): ReportColumns,
) -> Option<Report<(Option<String>, Option<String>)>> {
    let status = DeliveryStatus::parse(&status)?;
    wamid.as_ref()?;
    Some(Report {
        status,
        participant: (!participant.is_empty()).then_some(participant),
        occurred_at: ts(occurred_at),
        data: (detail, error),
    })
}

/// A message's current status and error, folded from its delivery reports.
pub(crate) fn current_status(reports: Vec<Report<(Option<String>, Option<String>)>>) -> (&'static str, Option<String>) {
    let folded = fold(reports);
    let error = folded.failure().and_then(|(_, error)| error.clone());
    (folded.current.as_str(), error)
}

// Statements both backends run for the API keys, the window and idempotency keys.
pub(crate) const SELECT_API_KEY_BY_HASH: &str =
    concat!("SELECT ", api_key_cols!(), " FROM api_keys WHERE key_hash = $1");
pub(crate) const SELECT_LAST_INBOUND: &str =
    "SELECT last_inbound_at FROM conversations WHERE phone_number_id = $1 AND customer = $2";
pub(crate) const SELECT_LIVE_IDEMPOTENCY_KEY: &str = "SELECT key, request_hash, message_id, response, created_at \
    FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND expires_at > $3";
/// Takes an idempotency key for a message, unless an unexpired use holds it (no row changed).
pub(crate) const TAKE_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys \
    (api_key_id, key, request_hash, message_id, response, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (api_key_id, key) DO UPDATE SET \
    request_hash = excluded.request_hash, message_id = excluded.message_id, \
    response = excluded.response, created_at = excluded.created_at, \
    expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= excluded.created_at";
pub(crate) const SELECT_IDEMPOTENCY_KEY: &str = "SELECT key, request_hash, message_id, response, created_at FROM idempotency_keys WHERE api_key_id = $1 AND key = $2";

/// A new outbound message's first status: `scheduled` when asked to go later (`send_at`), as
/// `SELECT_HISTORY` makes its first history entry.
pub(crate) fn initial_status(m: &crate::NewOutbound) -> &'static str {
    if m.send_at.is_some() { "scheduled" } else { "queued" }
}

/// Writes stored per transaction, at most.
pub(crate) const MAX_BATCH: usize = 512;

/// A status update as [`UPSERT_STATUS`] stores it (without the message id, found by wamid).
pub(crate) struct StatusColumns {
    pub(crate) account_id: String,
    pub(crate) wamid: String,
    pub(crate) status: &'static str,
    pub(crate) participant: String,
    pub(crate) occurred_at: i64,
    pub(crate) error: Option<String>,
    pub(crate) detail: String,
}

impl StatusColumns {
    pub(crate) fn new(u: &crate::StatusUpdate) -> Self {
        Self {
            account_id: u.account_id.as_str().to_owned(),
            wamid: u.wamid.clone(),
            status: u.status.as_status().as_str(),
            participant: u.participant.clone().unwrap_or_default(),
            occurred_at: u.occurred_at.as_millis(),
            error: u.error.as_ref().map(error_text),
            detail: json_text(&u.detail),
        }
    }
}

/// What storing a status did: nothing new, applied to its message (whose status is then
/// refreshed: noted in `touched`), or kept for a wamid not recorded yet.
pub(crate) fn status_outcome(
    changed: bool,
    message_id: Option<String>,
    touched: &mut std::collections::BTreeSet<String>,
) -> crate::StatusOutcome {
    match message_id {
        _ if !changed => crate::StatusOutcome::Duplicate,
        Some(id) => {
            touched.insert(id);
            crate::StatusOutcome::Applied
        }
        None => crate::StatusOutcome::Pending,
    }
}

/// A new message with its JSON columns already written out, by the request's task: the batch
/// writer is one thread for every request, so it does no work a request can do itself.
pub(crate) struct PreparedSend {
    pub(crate) m: crate::NewOutbound,
    pub(crate) content: String,
    pub(crate) metadata: Option<String>,
    /// The idempotency key's stored answer.
    pub(crate) response: Option<String>,
}

impl PreparedSend {
    pub(crate) fn new(m: crate::NewOutbound) -> Self {
        Self {
            content: json_text(&m.content),
            metadata: m.metadata.as_ref().map(|v| serde_json::to_string(v).expect("a JSON map serialises")),
            response: m.idempotency.as_ref().map(|k| json_text(&k.response)),
            m,
        }
    }
}

pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (account_id, body, received_at, available_at) \
    VALUES ($1, $2, $3, $3) RETURNING id";

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn json_text(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn parse_object(column: &str, text: Option<String>) -> Result<Option<Map<String, Value>>> {
    match text {
        None => Ok(None),
        Some(t) => match parse_json(column, &t)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Err(StorageError::Corrupt(format!("{column}: not an object"))),
        },
    }
}

pub(crate) fn error_text(e: &MessageError) -> String {
    serde_json::to_string(e).expect("MessageError serialises")
}

pub(crate) fn parse_error(text: Option<String>) -> Result<Option<MessageError>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StorageError::Corrupt(format!("error: {e}")))).transpose()
}

/// The account columns that hold secrets: sealed when written, opened when read, so no caller
/// of the store ever sees a sealed value and none can forget to seal one.
pub(crate) const SEALED_COLUMNS: [&str; 3] = ["access_token", "app_secret", "verify_token"];

/// Where a secret is stored, which its sealed value is bound to.
fn sealing_context(account_id: &str, column: &str) -> String {
    format!("accounts/{account_id}/{column}")
}

/// An account's secrets sealed, in [`SEALED_COLUMNS`] order.
pub(crate) fn seal_secrets(cipher: &Cipher, account: &crate::Account) -> [String; 3] {
    let secrets = [&account.access_token, &account.app_secret, &account.verify_token];
    std::array::from_fn(|i| cipher.seal(secrets[i], &sealing_context(account.id.as_str(), SEALED_COLUMNS[i])))
}

pub(crate) fn open(cipher: &Cipher, account_id: &str, column: &'static str, stored: &str) -> Result<Secret> {
    cipher.open(stored, &sealing_context(account_id, column)).map_err(|source| StorageError::Unsealable {
        account: account_id.to_owned(),
        column,
        source,
    })
}

/// An account's secret columns (in [`SEALED_COLUMNS`] order) as they should be stored: `None`
/// when the current key sealed them all. Values in clear (written before secrets were sealed) are
/// sealed, values a previous key sealed re-sealed; a value that opens with no key is an error.
pub(crate) fn reseal_row(cipher: &Cipher, account_id: &str, stored: [String; 3]) -> Result<Option<[String; 3]>> {
    let mut changed = false;
    let mut out = stored.clone();
    for ((&column, value), slot) in SEALED_COLUMNS.iter().zip(&stored).zip(&mut out) {
        let resealed = cipher
            .reseal(value, &sealing_context(account_id, column))
            .map_err(|source| StorageError::Unsealable { account: account_id.to_owned(), column, source })?;
        if let Some(v) = resealed {
            *slot = v;
            changed = true;
        }
    }
    Ok(changed.then_some(out))
}

pub(crate) fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::Corrupt(format!("unknown {what} '{value}'"))
}
