//! What both backends share: the schemas are kept type-compatible (times as 64-bit integers,
//! JSON as text), so the statements that are the same text on both (`sql`, and `contacts` for
//! contacts and conversations) and the readers of their rows (`rows`) are written once, with the
//! pure code around them (the outbox's head scan, status folding, a message's history, secret
//! sealing, JSON columns).

mod campaigns;
mod contacts;
mod events;
mod groups;
mod jobs;
mod people;
mod rows;
mod sql;
mod templates;
mod uploads;

use std::collections::HashSet;

use serde_json::{Map, Value};
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::{DeliveryStatus, MessageStatus, Report, fold};
use wagate_domain::time::Timestamp;

pub(crate) use self::campaigns::*;
pub(crate) use self::contacts::*;
pub(crate) use self::events::*;
pub(crate) use self::groups::*;
pub(crate) use self::jobs::*;
pub(crate) use self::people::*;
pub(crate) use self::rows::*;
pub(crate) use self::sql::*;
pub(crate) use self::templates::*;
pub(crate) use self::uploads::*;
use crate::{OutboxHead, Result, StatusEntry, StorageError};

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

/// A delivery report with its detail and error as stored.
pub(crate) type StoredReport = Report<(Option<String>, Option<String>)>;

/// A stored status row as a delivery report; None for the lifecycle's own rows (`queued`,
/// `accepted`, a send that failed before Meta took it…): Meta's reports are keyed by wamid.
pub(crate) fn as_report((status, wamid, participant, occurred_at, detail, error): StatusRow) -> Option<StoredReport> {
    let status = DeliveryStatus::parse(&status)?;
    wamid.as_ref()?;
    Some(Report {
        status,
        participant: (!participant.is_empty()).then_some(participant),
        occurred_at: ts(occurred_at),
        data: (detail, error),
    })
}

/// A message's history from its status rows (`SELECT_HISTORY`): the lifecycle's own entries as
/// stored, Meta's reports folded (repeats dropped, implied steps added).
pub(crate) fn history(rows: Vec<StatusRow>) -> Result<Vec<StatusEntry>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut reports = Vec::new();
    for row in rows {
        let (status, _, _, occurred_at, detail, error) = row.clone();
        if let Some(report) = as_report(row) {
            reports.push(report);
            continue;
        }
        out.push(StatusEntry {
            status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
            participant: None,
            occurred_at: ts(occurred_at),
            implied: false,
            error: parse_error(error)?,
            detail: detail.map(|d| parse_json("detail", &d)).transpose()?,
        });
    }
    for e in fold(reports).history {
        let (detail, error) = e.data.unwrap_or_default();
        out.push(StatusEntry {
            status: e.status.as_status(),
            participant: e.participant,
            occurred_at: e.occurred_at,
            implied: e.implied,
            error: parse_error(error)?,
            detail: detail.map(|d| parse_json("detail", &d)).transpose()?,
        });
    }
    // Meta's timestamps are whole seconds and ours are milliseconds, so time alone can put
    // `sent` before `accepted` (see `history_order`): order by progress, then time.
    let key = |e: &StatusEntry| (e.status.history_order(), e.occurred_at);
    out.sort_by(|a, b| (key(a), &a.participant).cmp(&(key(b), &b.participant)));
    Ok(out)
}

/// A message's current status and error, folded from its delivery reports.
pub(crate) fn current_status(reports: Vec<StoredReport>) -> (&'static str, Option<String>) {
    let folded = fold(reports);
    let error = folded.failure().and_then(|(_, error)| error.clone());
    (folded.current.as_str(), error)
}

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
    pub(crate) rendered: Option<String>,
    /// The idempotency key's stored answer.
    pub(crate) response: Option<String>,
}

impl PreparedSend {
    pub(crate) fn new(m: crate::NewOutbound) -> Self {
        Self {
            content: json_text(&m.content),
            metadata: m.metadata.as_ref().map(|v| serde_json::to_string(v).expect("a JSON map serialises")),
            response: m.idempotency.as_ref().map(|k| json_text(&k.response)),
            rendered: m.rendered.as_ref().map(json_text),
            m,
        }
    }
}

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

/// Where an endpoint's secret is stored, which its sealed value is bound to.
pub(crate) fn endpoint_context(endpoint_id: &str, column: &str) -> String {
    format!("webhook_endpoints/{endpoint_id}/{column}")
}

/// An endpoint's sealed column opened.
pub(crate) fn open_endpoint(cipher: &Cipher, endpoint_id: &str, column: &'static str, stored: &str) -> Result<Secret> {
    cipher.open(stored, &endpoint_context(endpoint_id, column)).map_err(|source| StorageError::Unsealable {
        account: format!("webhook endpoint {endpoint_id}"),
        column,
        source,
    })
}

/// An endpoint's sealed columns (secret, previous secret, headers) as they should be stored:
/// `None` when the current key sealed them all (see [`reseal_row`]).
pub(crate) fn reseal_endpoint(
    cipher: &Cipher,
    endpoint_id: &str,
    stored: [Option<String>; 4],
) -> Result<Option<[Option<String>; 4]>> {
    let mut changed = false;
    let mut out = stored.clone();
    for ((&column, value), slot) in ENDPOINT_SEALED_COLUMNS.iter().zip(&stored).zip(&mut out) {
        let Some(value) = value else { continue };
        let resealed = cipher.reseal(value, &endpoint_context(endpoint_id, column)).map_err(|source| {
            StorageError::Unsealable { account: format!("webhook endpoint {endpoint_id}"), column, source }
        })?;
        if let Some(v) = resealed {
            *slot = Some(v);
            changed = true;
        }
    }
    Ok(changed.then_some(out))
}

/// An endpoint's sealed columns, in the order [`reseal_endpoint`] takes them.
pub(crate) const ENDPOINT_SEALED_COLUMNS: [&str; 4] = ["secret", "previous_secret", "headers", "app_secret"];

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

/// Every statement both backends run, for the test of their parameters' order.
#[cfg(test)]
pub(crate) fn statements() -> Vec<String> {
    let mut all = sql::statements();
    all.extend(campaigns::statements().into_iter().map(str::to_owned));
    all.extend(contacts::statements().into_iter().map(str::to_owned));
    all.extend(events::statements().into_iter().map(str::to_owned));
    all.extend(templates::statements().into_iter().map(str::to_owned));
    all.extend(groups::statements().into_iter().map(str::to_owned));
    all.extend(jobs::statements().into_iter().map(str::to_owned));
    all.extend(people::statements().into_iter().map(str::to_owned));
    all.extend(uploads::statements().into_iter().map(str::to_owned));
    all
}
