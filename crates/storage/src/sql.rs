//! The SQL both backends share. The schemas are kept type-compatible (times as 64-bit integers,
//! JSON as text) so most statements are identical; a backend supplies what differs: its pools,
//! how a write transaction begins, a per-wamid lock, and the webhook deliveries' claim statement.
//!
//! A macro rather than generics over `sqlx::Database`: the trait bounds sqlx needs for generic
//! code are long and leak into every signature, while the expanded code is plain.

use std::collections::HashSet;

use serde_json::{Map, Value};
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::{DeliveryStatus, Report, fold};
use wagate_domain::time::Timestamp;

use crate::{OutboxHead, Result, StorageError};

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

// Inbound media (wagate issue 6).
macro_rules! media_cols {
    () => {
        "id, account_id, phone_number_id, message_id, meta_media_id, kind, mime_type, sha256, file_size, \
         filename, caption, state, attempts, available_at, last_error, created_at, updated_at, downloaded_at"
    };
}

pub(crate) use {account_cols, api_key_cols, media_cols, message_cols, message_select_cols, phone_cols};

// Statements the SQLite batch writer runs too (see `sqlite::direct`) number their parameters in
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

/// What `Store::claim_messages` claims, under a lease.
pub(crate) struct Claim {
    pub(crate) ids: Vec<String>,
    pub(crate) lease: String,
    pub(crate) lease_until: Timestamp,
    pub(crate) now: Timestamp,
}

/// The columns of [`SELECT_CLAIMED`], as a dispatch.
pub(crate) type ClaimedColumns = (String, String, String, String, String, String, i64, i64);

pub(crate) fn dispatch(
    (id, account_id, phone_number_id, recipient, kind, content, created_at, attempts): ClaimedColumns,
    claim: (&str, Timestamp),
) -> Result<crate::Dispatch> {
    Ok(crate::Dispatch {
        message_id: wagate_domain::id::MessageId::from_trusted(id),
        account_id: wagate_domain::id::AccountId::from_trusted(account_id),
        phone_number_id,
        recipient,
        kind,
        content: parse_json("content", &content)?,
        attempts,
        lease: claim.0.to_owned(),
        lease_until: claim.1,
        created_at: ts(created_at),
    })
}

/// The columns a claim of webhook deliveries returns: id, account_id, body, received_at, attempts.
pub(crate) type DeliveryColumns = (i64, Option<String>, Vec<u8>, i64, i64);

/// A claimed webhook delivery, held under `lease`.
pub(crate) fn delivery((id, account_id, body, received_at, attempts): DeliveryColumns, lease: &str) -> crate::Delivery {
    crate::Delivery {
        id,
        account_id: account_id.map(wagate_domain::id::AccountId::from_trusted),
        body,
        received_at: ts(received_at),
        attempts,
        lease: lease.to_owned(),
    }
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

// Statements the SQLite direct paths run too (see `sqlite::direct`).
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

type Reply<T> = tokio::sync::oneshot::Sender<Result<T>>;

/// A write that waits for a group commit: what answers a request, so it must be on disk first.
pub(crate) enum Job {
    Send(Box<PreparedSend>, Reply<crate::Enqueued>),
    Delivery(crate::NewDelivery, Reply<i64>),
    /// Meta accepted a message. This and the jobs after it are SQLite's only: PostgreSQL runs
    /// them in transactions of their own.
    Accepted(Box<Accepted>, Reply<bool>),
    /// The dispatcher claims messages to send.
    Claim(Box<Claim>, Reply<Vec<crate::Dispatch>>),
    /// The webhook processor claims deliveries, applies their statuses, and marks them done.
    ClaimDeliveries(Box<ClaimDeliveries>, Reply<Vec<crate::Delivery>>),
    Statuses(Box<Statuses>, Reply<Vec<crate::StatusOutcome>>),
    FinishDeliveries(Box<FinishDeliveries>, Reply<()>),
}

/// What `Store::claim_deliveries` claims: up to `limit` due deliveries, under `lease`.
pub(crate) struct ClaimDeliveries {
    pub(crate) lease: String,
    pub(crate) lease_until: Timestamp,
    pub(crate) now: Timestamp,
    pub(crate) limit: u32,
}

/// What `Store::apply_statuses` applies, its columns written out by the caller.
pub(crate) struct Statuses {
    pub(crate) updates: Vec<StatusColumns>,
    pub(crate) at: Timestamp,
}

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

/// What `Store::finish_deliveries` records: each delivery's id, lease and error, if any.
pub(crate) struct FinishDeliveries {
    pub(crate) finished: Vec<(i64, String, Option<String>)>,
    pub(crate) at: Timestamp,
}

/// What `Store::record_accepted` records.
pub(crate) struct Accepted {
    pub(crate) message_id: String,
    pub(crate) account_id: String,
    pub(crate) wamid: String,
    pub(crate) response: String,
    pub(crate) at: Timestamp,
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
    fn new(m: crate::NewOutbound) -> Self {
        Self {
            content: json_text(&m.content),
            metadata: m.metadata.as_ref().map(|v| serde_json::to_string(v).expect("a JSON map serialises")),
            response: m.idempotency.as_ref().map(|k| json_text(&k.response)),
            m,
        }
    }
}

/// What one job wrote, to answer it with once the batch is committed.
pub(crate) enum Written {
    Send(crate::Enqueued),
    Delivery(i64),
    Accepted(bool),
    Claim(Vec<crate::Dispatch>),
    ClaimDeliveries(Vec<crate::Delivery>),
    Statuses(Vec<crate::StatusOutcome>),
    FinishDeliveries,
}

impl Job {
    /// Answers with what was written, or the error that kept the job from being written.
    pub(crate) fn answer(self, result: Result<Written>) {
        match (self, result) {
            (Job::Send(_, reply), Ok(Written::Send(e))) => drop(reply.send(Ok(e))),
            (Job::Delivery(_, reply), Ok(Written::Delivery(id))) => drop(reply.send(Ok(id))),
            (Job::Accepted(_, reply), Ok(Written::Accepted(recorded))) => drop(reply.send(Ok(recorded))),
            (Job::Send(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::Delivery(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::Claim(_, reply), Ok(Written::Claim(claimed))) => drop(reply.send(Ok(claimed))),
            (Job::ClaimDeliveries(_, reply), Ok(Written::ClaimDeliveries(claimed))) => drop(reply.send(Ok(claimed))),
            (Job::Statuses(_, reply), Ok(Written::Statuses(outcomes))) => drop(reply.send(Ok(outcomes))),
            (Job::FinishDeliveries(_, reply), Ok(Written::FinishDeliveries)) => drop(reply.send(Ok(()))),
            (Job::Accepted(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::Claim(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::ClaimDeliveries(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::Statuses(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (Job::FinishDeliveries(_, reply), Err(e)) => drop(reply.send(Err(e))),
            (_, Ok(_)) => unreachable!("a job is answered with what it wrote"),
        }
    }
}

/// The queue in front of the batch writers.
pub(crate) struct Enqueuer {
    tx: tokio::sync::mpsc::Sender<Job>,
}

impl Enqueuer {
    pub(crate) fn new() -> (Self, tokio::sync::mpsc::Receiver<Job>) {
        // Bounded: a writer that falls behind slows the requests down instead of piling them up.
        let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        (Self { tx }, rx)
    }

    pub(crate) async fn send(&self, m: crate::NewOutbound) -> Result<crate::Enqueued> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Send(Box::new(PreparedSend::new(m)), reply), answer).await
    }

    pub(crate) async fn delivery(&self, d: crate::NewDelivery) -> Result<i64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Delivery(d, reply), answer).await
    }

    pub(crate) async fn accepted(&self, a: Accepted) -> Result<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Accepted(Box::new(a), reply), answer).await
    }

    pub(crate) async fn claim(&self, c: Claim) -> Result<Vec<crate::Dispatch>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Claim(Box::new(c), reply), answer).await
    }

    pub(crate) async fn claim_deliveries(&self, c: ClaimDeliveries) -> Result<Vec<crate::Delivery>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::ClaimDeliveries(Box::new(c), reply), answer).await
    }

    pub(crate) async fn statuses(&self, s: Statuses) -> Result<Vec<crate::StatusOutcome>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Statuses(Box::new(s), reply), answer).await
    }

    pub(crate) async fn finish_deliveries(&self, f: FinishDeliveries) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::FinishDeliveries(Box::new(f), reply), answer).await
    }

    async fn submit<T>(&self, job: Job, answer: tokio::sync::oneshot::Receiver<Result<T>>) -> Result<T> {
        let gone = || StorageError::Database(sqlx::Error::PoolClosed);
        self.tx.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The first job and whatever else is queued behind it, up to a batch.
pub(crate) fn fill_batch(first: Job, rx: &mut tokio::sync::mpsc::Receiver<Job>) -> Vec<Job> {
    let mut jobs = vec![first];
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    jobs
}

/// Answers a batch's jobs with its outcome. A failed batch of several comes back, to be written
/// one job at a time so that one bad job fails alone.
pub(crate) fn settle(jobs: Vec<Job>, outcome: Result<Vec<Written>>) -> Option<Vec<Job>> {
    match outcome {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                job.answer(Ok(result));
            }
            None
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                job.answer(Err(e));
            }
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = jobs.len(), "a batch failed to store; storing its jobs one by one");
            Some(jobs)
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

/// Implements [`crate::Store`] for `$store`, whose rows are `$row` and transactions `$tx`.
macro_rules! impl_store {
    ($store:ty, $row:ty, $tx:ty, $db:ty, $backend:expr) => {
        use sqlx::Row as _;
        use wagate_domain::api_key::Scopes;
        use wagate_domain::id::{AccountId, ApiKeyId, ContactId, MessageId};
        use wagate_domain::limits::{MessagingTier, ThroughputLevel};
        use wagate_domain::message::MessageError;
        use wagate_domain::secret::Secret;
        use wagate_domain::status::{MessageStatus, Report, fold};
        use wagate_domain::time::Timestamp;
        use $crate::model::*;
        use $crate::sql::{
            account_cols, api_key_cols, corrupt, error_text, json_text, media_cols, message_cols, message_select_cols,
            parse_error, parse_json, parse_object, phone_cols, seal_secrets, ts,
        };

        fn account_row(cipher: &wagate_domain::sealed::Cipher, r: &$row) -> $crate::Result<Account> {
            let mode: String = r.try_get("mode")?;
            let id: String = r.try_get("id")?;
            let secret = |column: &'static str| -> $crate::Result<Secret> {
                $crate::sql::open(cipher, &id, column, &r.try_get::<String, _>(column)?)
            };
            Ok(Account {
                name: r.try_get("name")?,
                mode: AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))?,
                graph_base_url: r.try_get("graph_base_url")?,
                api_version: r.try_get("api_version")?,
                waba_id: r.try_get("waba_id")?,
                access_token: secret("access_token")?,
                app_secret: secret("app_secret")?,
                verify_token: secret("verify_token")?,
                id: AccountId::from_trusted(id),
                paused: match (r.try_get::<Option<i64>, _>("paused_at")?, parse_error(r.try_get("paused_error")?)?) {
                    (Some(since), Some(error)) => Some(Pause { since: ts(since), error }),
                    _ => None,
                },
                // A tier Meta named that wagate does not know reads as none: the default's limit.
                messaging_tier: r.try_get::<Option<String>, _>("messaging_tier")?.as_deref().and_then(MessagingTier::parse),
                created_at: ts(r.try_get("created_at")?),
                updated_at: ts(r.try_get("updated_at")?),
            })
        }

        fn phone_row(r: &$row) -> $crate::Result<PhoneNumber> {
            let mode: String = r.try_get("mode")?;
            Ok(PhoneNumber {
                id: r.try_get("id")?,
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                waba_id: r.try_get("waba_id")?,
                display_phone_number: r.try_get("display_phone_number")?,
                verified_name: r.try_get("verified_name")?,
                quality_rating: r.try_get("quality_rating")?,
                is_default: r.try_get("is_default")?,
                mode: AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))?,
                webhooks_since: r.try_get::<Option<i64>, _>("webhooks_since")?.map(ts),
                throughput_level: r.try_get::<Option<String>, _>("throughput_level")?.map(|l| ThroughputLevel::parse(&l)),
                messages_per_second: r
                    .try_get::<Option<i64>, _>("messages_per_second")?
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                created_at: ts(r.try_get("created_at")?),
                updated_at: ts(r.try_get("updated_at")?),
            })
        }

        fn api_key_row(r: &$row) -> $crate::Result<ApiKey> {
            let scopes: String = r.try_get("scopes")?;
            Ok(ApiKey {
                id: ApiKeyId::from_trusted(r.try_get("id")?),
                name: r.try_get("name")?,
                prefix: r.try_get("prefix")?,
                key_hash: r.try_get("key_hash")?,
                scopes: Scopes::from_stored(&scopes).ok_or_else(|| corrupt("API key scopes", &scopes))?,
                created_at: ts(r.try_get("created_at")?),
                last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(ts),
                revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
            })
        }

        fn message_row(r: &$row) -> $crate::Result<Message> {
            let direction: String = r.try_get("direction")?;
            let status: String = r.try_get("status")?;
            Ok(Message {
                id: MessageId::from_trusted(r.try_get("id")?),
                direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                phone_number_id: r.try_get("phone_number_id")?,
                contact_id: r.try_get::<Option<String>, _>("contact_id")?.map(ContactId::from_trusted),
                counterpart: r.try_get("counterpart")?,
                kind: r.try_get("kind")?,
                content: parse_json("content", &r.try_get::<String, _>("content")?)?,
                status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                wamid: r.try_get("wamid")?,
                error: parse_error(r.try_get("error")?)?,
                metadata: parse_object("metadata", r.try_get("metadata")?)?,
                send_at: r.try_get::<Option<i64>, _>("send_at")?.map(ts),
                expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(ts),
                reply_to_wamid: r.try_get("reply_to_wamid")?,
                reply_to: r.try_get::<Option<String>, _>("reply_to")?.map(MessageId::from_trusted),
                from_app: r.try_get("from_app")?,
                created_at: ts(r.try_get("created_at")?),
                updated_at: ts(r.try_get("updated_at")?),
            })
        }

        fn delivery_row(r: &$row, lease: &str) -> $crate::Result<Delivery> {
            let columns = (
                r.try_get("id")?,
                r.try_get("account_id")?,
                r.try_get("body")?,
                r.try_get("received_at")?,
                r.try_get("attempts")?,
            );
            Ok($crate::sql::delivery(columns, lease))
        }

        fn idempotency_row(r: &$row) -> $crate::Result<IdempotencyRecord> {
            Ok(IdempotencyRecord {
                key: r.try_get("key")?,
                request_hash: r.try_get("request_hash")?,
                message_id: MessageId::from_trusted(r.try_get("message_id")?),
                response: parse_json("response", &r.try_get::<String, _>("response")?)?,
                created_at: ts(r.try_get("created_at")?),
            })
        }

        /// Marks the rows claimed under `lease` as being sent and reads what sending needs.
        /// The heads of one number's queues, or of every number's (see `HeadScan`).
        async fn scan_heads(
            reader: &sqlx::Pool<$db>,
            phone_number_id: Option<&str>,
            now: Timestamp,
            limit: u32,
        ) -> $crate::Result<Vec<OutboxHead>> {
            let mut scan = $crate::sql::HeadScan::new(now, limit);
            while !scan.done {
                let (due_at, seq, rows) = scan.next_page();
                let page = match phone_number_id {
                    Some(number) => sqlx::query($crate::sql::SELECT_NUMBER_QUEUE_PAGE).bind(number),
                    None => sqlx::query($crate::sql::SELECT_QUEUE_PAGE),
                };
                let rows = page
                    .bind(now.as_millis())
                    .bind(due_at)
                    .bind(seq)
                    .bind(rows)
                    .fetch_all(reader)
                    .await?;
                scan.page(rows.iter().map(queue_row).collect::<$crate::Result<Vec<_>>>()?.into_iter());
            }
            Ok(scan.heads())
        }

        fn queue_row(r: &$row) -> $crate::Result<$crate::sql::QueueRow> {
            Ok((
                r.try_get("message_id")?,
                r.try_get("phone_number_id")?,
                r.try_get("recipient")?,
                r.try_get("due_at")?,
                r.try_get("seq")?,
                r.try_get("available_at")?,
                r.try_get("expires_at")?,
            ))
        }

        async fn take_claimed(
            tx: &mut $tx,
            lease: &str,
            lease_until: Timestamp,
            now: Timestamp,
        ) -> $crate::Result<Vec<Dispatch>> {
            sqlx::query($crate::sql::MARK_CLAIMED_SENDING).bind(now.as_millis()).bind(lease).execute(&mut **tx).await?;
            let rows = sqlx::query($crate::sql::SELECT_CLAIMED).bind(lease).fetch_all(&mut **tx).await?;
            rows.iter()
                .map(|r| {
                    let columns = (
                        r.try_get("id")?,
                        r.try_get("account_id")?,
                        r.try_get("phone_number_id")?,
                        r.try_get("counterpart")?,
                        r.try_get("kind")?,
                        r.try_get("content")?,
                        r.try_get("created_at")?,
                        r.try_get("attempts")?,
                    );
                    $crate::sql::dispatch(columns, (lease, lease_until))
                })
                .collect()
        }

        /// Inserts or refreshes `numbers` for `account`; a number owned by another account is
        /// left alone and reported as a conflict.
        async fn upsert_phone_numbers(
            tx: &mut $tx,
            account: &Account,
            numbers: &[PhoneNumber],
        ) -> $crate::Result<()> {
            for n in numbers {
                let written = sqlx::query(
                    "INSERT INTO phone_numbers (id, account_id, display_phone_number, verified_name, \
                     quality_rating, is_default, created_at, updated_at, webhooks_since, throughput_level) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id) DO UPDATE SET display_phone_number = excluded.display_phone_number, \
                     verified_name = excluded.verified_name, quality_rating = excluded.quality_rating, \
                     throughput_level = COALESCE(excluded.throughput_level, phone_numbers.throughput_level), \
                     updated_at = excluded.updated_at WHERE phone_numbers.account_id = excluded.account_id",
                )
                .bind(&n.id)
                .bind(account.id.as_str())
                .bind(&n.display_phone_number)
                .bind(&n.verified_name)
                .bind(&n.quality_rating)
                .bind(n.is_default)
                .bind(n.created_at.as_millis())
                .bind(n.updated_at.as_millis())
                .bind(n.webhooks_since.map(Timestamp::as_millis))
                .bind(n.throughput_level.as_ref().map(ThroughputLevel::as_str))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if written == 0 {
                    return Err($crate::StorageError::Conflict(format!(
                        "phone number {} ({}) belongs to another account",
                        n.id, n.display_phone_number
                    )));
                }
            }
            Ok(())
        }

        /// A message's delivery reports, as the domain folds them.
        async fn delivery_reports(tx: &mut $tx, message_id: &str) -> $crate::Result<Vec<Report<(Option<String>, Option<String>)>>> {
            let rows = sqlx::query($crate::sql::SELECT_REPORTS).bind(message_id).fetch_all(&mut **tx).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.extend(report_row(r)?);
            }
            Ok(out)
        }

        /// A stored status row as a delivery report (see [`$crate::sql::report`]).
        fn report_row(r: &$row) -> $crate::Result<Option<Report<(Option<String>, Option<String>)>>> {
            Ok($crate::sql::report((
                r.try_get("status")?,
                r.try_get("wamid")?,
                r.try_get("participant")?,
                r.try_get("occurred_at")?,
                r.try_get("detail")?,
                r.try_get("error")?,
            )))
        }

        /// Recomputes a message's current status and error from its delivery reports.
        async fn refresh_status(tx: &mut $tx, message_id: &str, at: Timestamp) -> $crate::Result<()> {
            let (status, error) = $crate::sql::current_status(delivery_reports(tx, message_id).await?);
            sqlx::query($crate::sql::SET_STATUS)
                .bind(status)
                .bind(error)
                .bind(at.as_millis())
                .bind(message_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Stores one inbound message in `tx` (see `Store::record_inbounds`); false for a wamid
        /// already stored, which changes nothing: not even the contact, whose ids may have
        /// changed since.
        async fn record_inbound_in(tx: &mut $tx, m: &NewInbound) -> $crate::Result<bool> {
            let known = sqlx::query_scalar::<_, String>("SELECT id FROM messages WHERE wamid = $1")
                .bind(&m.wamid)
                .fetch_optional(&mut **tx)
                .await?;
            if known.is_some() {
                return Ok(false);
            }
            // The contact by wa_id and user_id, linked or merged (see `contacts.rs`).
            let ids = ContactIds { wa_id: m.wa_id.clone(), user_id: m.user_id.clone() };
            let contact_id =
                resolve_contact(tx, &ids, None, m.profile_name.as_deref(), m.received_at, false).await?;
            let inserted = sqlx::query(concat!(
                "INSERT INTO messages (",
                message_cols!(),
                ", reply_to_wamid) ",
                "VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, 'received', $8, $11, NULL, $9, $10, NULL, NULL, $12) ",
                "ON CONFLICT DO NOTHING"
            ))
            .bind(m.id.as_str())
            .bind(m.account_id.as_str())
            .bind(&m.phone_number_id)
            .bind(&contact_id)
            .bind(&m.from)
            .bind(&m.kind)
            .bind(json_text(&m.content))
            .bind(&m.wamid)
            .bind(m.sent_at.as_millis())
            .bind(m.received_at.as_millis())
            .bind(m.error.as_ref().map(error_text))
            .bind(&m.reply_to_wamid)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            // The window opens for each id a send may name the customer by.
            let mut customers = vec![m.from.clone()];
            customers.extend(m.wa_id.as_deref().map(wagate_domain::contact::counterpart));
            customers.extend(m.user_id.clone());
            customers.sort();
            customers.dedup();
            for customer in customers.iter().filter(|c| !c.is_empty()) {
                sqlx::query(
                    "INSERT INTO conversations (phone_number_id, customer, last_inbound_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (phone_number_id, customer) DO UPDATE SET last_inbound_at = \
                     CASE WHEN excluded.last_inbound_at > conversations.last_inbound_at \
                     THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END",
                )
                .bind(&m.phone_number_id)
                .bind(customer)
                .bind(m.sent_at.as_millis())
                .execute(&mut **tx)
                .await?;
            }
            if inserted == 1 {
                note_in_thread(tx, &m.phone_number_id, &contact_id, m.sent_at, m.received_at).await?;
            }
            Ok(inserted == 1)
        }

        impl $store {
            /// Gives a leased row back, due at `due_at`; `uncount` takes back the claim's attempt.
            async fn release(&self, d: &Dispatch, due_at: Timestamp, error: &MessageError, uncount: i64) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let held = sqlx::query(
                    "UPDATE outbox SET available_at = $3, lease = NULL, last_error = $4, attempts = attempts - $5 \
                     WHERE message_id = $1 AND lease = $2",
                )
                .bind(d.message_id.as_str())
                .bind(&d.lease)
                .bind(due_at.as_millis())
                .bind(error_text(error))
                .bind(uncount)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if held == 1 {
                    sqlx::query("UPDATE messages SET status = 'queued' WHERE id = $1 AND status = 'sending'")
                        .bind(d.message_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(held == 1)
            }
        }

        impl $store {
            /// Seals the secrets stored in clear (by a version before secrets were sealed) and
            /// re-seals those a previous key of the cipher sealed, in one transaction; fails on a
            /// value no key of the cipher opens.
            pub(crate) async fn seal_stored_secrets(&self) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<(String, String, String, String)> =
                    sqlx::query_as(Self::SELECT_SECRETS).fetch_all(&mut *tx).await?;
                let mut rewritten = 0;
                for (id, access_token, app_secret, verify_token) in rows {
                    let stored = [access_token, app_secret, verify_token];
                    let Some([access_token, app_secret, verify_token]) =
                        $crate::sql::reseal_row(self.cipher(), &id, stored)?
                    else {
                        continue;
                    };
                    sqlx::query(
                        "UPDATE accounts SET access_token = $2, app_secret = $3, verify_token = $4 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(access_token)
                    .bind(app_secret)
                    .bind(verify_token)
                    .execute(&mut *tx)
                    .await?;
                    rewritten += 1;
                }
                tx.commit().await?;
                if rewritten > 0 {
                    tracing::info!(accounts = rewritten, key = %self.cipher().key_id(), "sealed the accounts' stored secrets");
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn close(&self) {
                self.writer().close().await;
                self.reader().close().await;
            }

            async fn insert_account(&self, account: &Account, numbers: &[PhoneNumber]) -> $crate::Result<()> {
                let [access_token, app_secret, verify_token] = seal_secrets(self.cipher(), account);
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO accounts (",
                    account_cols!(),
                    ") ",
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(account.id.as_str())
                .bind(&account.name)
                .bind(account.mode.as_str())
                .bind(&account.graph_base_url)
                .bind(&account.api_version)
                .bind(&account.waba_id)
                .bind(access_token)
                .bind(app_secret)
                .bind(verify_token)
                .bind(account.created_at.as_millis())
                .bind(account.updated_at.as_millis())
                .bind(account.paused.as_ref().map(|p| p.since.as_millis()))
                .bind(account.paused.as_ref().map(|p| error_text(&p.error)))
                .bind(account.messaging_tier.map(MessagingTier::as_str))
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => $crate::StorageError::Conflict(
                        format!("an account like {} exists already: {}", account.id, d.message()),
                    ),
                    _ => e.into(),
                })?;
                upsert_phone_numbers(&mut tx, account, numbers).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_account(
                &self,
                account: &Account,
                last_updated_at: Timestamp,
                numbers: Option<&[PhoneNumber]>,
            ) -> $crate::Result<bool> {
                let [access_token, app_secret, verify_token] = seal_secrets(self.cipher(), account);
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(
                    "UPDATE accounts SET name = $2, graph_base_url = $3, api_version = $4, \
                     access_token = $5, app_secret = $6, verify_token = $7, updated_at = $8, \
                     messaging_tier = $10 WHERE id = $1 AND updated_at = $9",
                )
                .bind(account.id.as_str())
                .bind(&account.name)
                .bind(&account.graph_base_url)
                .bind(&account.api_version)
                .bind(access_token)
                .bind(app_secret)
                .bind(verify_token)
                .bind(account.updated_at.as_millis())
                .bind(last_updated_at.as_millis())
                .bind(account.messaging_tier.map(MessagingTier::as_str))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(numbers) = numbers {
                    let existing: Vec<String> =
                        sqlx::query_scalar("SELECT id FROM phone_numbers WHERE account_id = $1")
                            .bind(account.id.as_str())
                            .fetch_all(&mut *tx)
                            .await?;
                    for id in existing.iter().filter(|id| !numbers.iter().any(|n| &n.id == *id)) {
                        sqlx::query("DELETE FROM phone_numbers WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    upsert_phone_numbers(&mut tx, account, numbers).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn get_account(&self, id: &AccountId) -> $crate::Result<Option<Account>> {
                sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(|r| account_row(self.cipher(), r))
                    .transpose()
            }

            async fn list_accounts(&self) -> $crate::Result<Vec<Account>> {
                sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts ORDER BY id"))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| account_row(self.cipher(), r))
                    .collect()
            }

            async fn accounts_by_waba(&self, waba_id: &str) -> $crate::Result<Vec<Account>> {
                sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts WHERE waba_id = $1 ORDER BY id"))
                    .bind(waba_id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| account_row(self.cipher(), r))
                    .collect()
            }

            async fn list_phone_numbers(&self) -> $crate::Result<Vec<PhoneNumber>> {
                sqlx::query(concat!("SELECT ", phone_cols!(), " ORDER BY p.account_id, p.id"))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(phone_row)
                    .collect()
            }

            async fn get_phone_number(&self, id: &str) -> $crate::Result<Option<PhoneNumber>> {
                sqlx::query(concat!("SELECT ", phone_cols!(), " WHERE p.id = $1"))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(phone_row)
                    .transpose()
            }

            async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let mode: Option<String> = sqlx::query_scalar(
                    "SELECT a.mode FROM phone_numbers p JOIN accounts a ON a.id = p.account_id WHERE p.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mode) = mode else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                sqlx::query(
                    "UPDATE phone_numbers SET is_default = (id = $1), updated_at = $3 \
                     WHERE account_id IN (SELECT id FROM accounts WHERE mode = $2) \
                     AND (is_default OR id = $1)",
                )
                .bind(id)
                .bind(&mode)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_api_key(&self, key: &ApiKey) -> $crate::Result<()> {
                sqlx::query(concat!(
                    "INSERT INTO api_keys (",
                    api_key_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .bind(key.id.as_str())
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(key.scopes.to_stored())
                .bind(key.created_at.as_millis())
                .bind(key.last_used_at.map(Timestamp::as_millis))
                .bind(key.revoked_at.map(Timestamp::as_millis))
                .execute(&mut *self.write().await?)
                .await?;
                Ok(())
            }

            async fn find_api_key_by_hash(&self, key_hash: &str) -> $crate::Result<Option<ApiKey>> {
                if let Some(direct) = self.direct() {
                    return direct.api_key_by_hash(key_hash);
                }
                sqlx::query($crate::sql::SELECT_API_KEY_BY_HASH)
                    .bind(key_hash)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(api_key_row)
                    .transpose()
            }

            async fn list_api_keys(&self) -> $crate::Result<Vec<ApiKey>> {
                sqlx::query(concat!("SELECT ", api_key_cols!(), " FROM api_keys ORDER BY id"))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(api_key_row)
                    .collect()
            }

            async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> $crate::Result<bool> {
                let r = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id.as_str())
                    .bind(at.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(at.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn ensure_api_key(&self, key: &ApiKey) -> $crate::Result<ApiKey> {
                // One statement, so instances starting together cannot trip over each other; a
                // known key is left as it is, revoked or not.
                sqlx::query(concat!(
                    "INSERT INTO api_keys (", api_key_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) ",
                    "ON CONFLICT (key_hash) DO NOTHING"
                ))
                .bind(key.id.as_str())
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(key.scopes.to_stored())
                .bind(key.created_at.as_millis())
                .execute(&mut *self.write().await?)
                .await?;
                sqlx::query($crate::sql::SELECT_API_KEY_BY_HASH)
                    .bind(&key.key_hash)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(api_key_row)
                    .transpose()?
                    .ok_or_else(|| $crate::StorageError::Corrupt(format!("API key {} vanished as it was ensured", key.id)))
            }

            async fn enqueue_message(&self, m: NewOutbound) -> $crate::Result<Enqueued> {
                self.enqueuer().send(m).await
            }

            async fn find_idempotency_key(
                &self,
                api_key_id: &ApiKeyId,
                key: &str,
                now: Timestamp,
            ) -> $crate::Result<Option<IdempotencyRecord>> {
                if let Some(direct) = self.direct() {
                    return direct.live_idempotency_key(api_key_id, key, now);
                }
                sqlx::query($crate::sql::SELECT_LIVE_IDEMPOTENCY_KEY)
                .bind(api_key_id.as_str())
                .bind(key)
                .bind(now.as_millis())
                .fetch_optional(self.reader())
                .await?
                .as_ref()
                .map(idempotency_row)
                .transpose()
            }

            async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> $crate::Result<u64> {
                Ok(sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                    .bind(now.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?
                    .rows_affected())
            }

            async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> $crate::Result<u64> {
                Ok(sqlx::query(
                    "DELETE FROM message_statuses WHERE id IN (SELECT id FROM message_statuses \
                     WHERE message_id IS NULL AND recorded_at < $1 LIMIT $2)",
                )
                .bind(before.as_millis())
                .bind(i64::from(limit))
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected())
            }

            async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> $crate::Result<u64> {
                Ok(sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                     WHERE available_at IS NULL AND processed_at < $1 LIMIT $2)",
                )
                .bind(before.as_millis())
                .bind(i64::from(limit))
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected())
            }

            async fn get_message(&self, id: &MessageId) -> $crate::Result<Option<Message>> {
                sqlx::query(concat!("SELECT ", message_select_cols!(), " FROM messages WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(message_row)
                    .transpose()
            }

            async fn find_message_by_wamid(&self, wamid: &str) -> $crate::Result<Option<Message>> {
                sqlx::query(concat!("SELECT ", message_select_cols!(), " FROM messages WHERE wamid = $1"))
                    .bind(wamid)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(message_row)
                    .transpose()
            }

            async fn message_history(&self, id: &MessageId) -> $crate::Result<Vec<StatusEntry>> {
                let rows = sqlx::query($crate::sql::SELECT_HISTORY).bind(id.as_str()).fetch_all(self.reader()).await?;
                let mut out = Vec::with_capacity(rows.len());
                let mut reports = Vec::new();
                for r in &rows {
                    if let Some(report) = report_row(r)? {
                        reports.push(report);
                        continue;
                    }
                    let status: String = r.try_get("status")?;
                    out.push(StatusEntry {
                        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                        participant: None,
                        occurred_at: ts(r.try_get("occurred_at")?),
                        implied: false,
                        error: parse_error(r.try_get("error")?)?,
                        detail: r.try_get::<Option<String>, _>("detail")?.map(|d| parse_json("detail", &d)).transpose()?,
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
                // Meta's timestamps are whole seconds and ours are milliseconds, so time alone
                // can put `sent` before `accepted`: order by progress, then time.
                out.sort_by(|a, b| {
                    (a.status.history_order(), a.occurred_at, &a.participant)
                        .cmp(&(b.status.history_order(), b.occurred_at, &b.participant))
                });
                Ok(out)
            }

            async fn count_messages(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(self.reader()).await?)
            }

            async fn outbox_heads(
                &self,
                phone_number_id: &str,
                now: Timestamp,
                limit: u32,
            ) -> $crate::Result<Vec<OutboxHead>> {
                scan_heads(self.reader(), Some(phone_number_id), now, limit).await
            }

            async fn claim_messages(
                &self,
                ids: &[MessageId],
                now: Timestamp,
                lease_until: Timestamp,
            ) -> $crate::Result<Vec<Dispatch>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let lease = wagate_domain::id::new_id("lease");
                if self.direct().is_some() {
                    let ids = ids.iter().map(|id| id.as_str().to_owned()).collect();
                    return self.enqueuer().claim($crate::sql::Claim { ids, lease, lease_until, now }).await;
                }
                let mut tx = self.begin_write().await?;
                let sql = $crate::sql::claim_due_sql(ids.len());
                let mut claim = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&lease)
                    .bind(lease_until.as_millis())
                    .bind(now.as_millis());
                for id in ids {
                    claim = claim.bind(id.as_str());
                }
                let claimed = claim.execute(&mut *tx).await?.rows_affected();
                if claimed == 0 {
                    tx.rollback().await?;
                    return Ok(Vec::new());
                }
                let dispatches = take_claimed(&mut tx, &lease, lease_until, now).await?;
                tx.commit().await?;
                Ok(dispatches)
            }

            async fn claim_outbox(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> $crate::Result<Vec<Dispatch>> {
                let heads = scan_heads(self.reader(), None, now, limit).await?;
                let ids: Vec<MessageId> = heads.into_iter().map(|h| h.message_id).collect();
                self.claim_messages(&ids, now, lease_until).await
            }

            async fn expire_outbox(&self, now: Timestamp, limit: u32) -> $crate::Result<Vec<MessageId>> {
                let mut tx = self.begin_write().await?;
                // Rows held by a live lease are being sent: their sender decides.
                let expired: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM outbox \
                     WHERE expires_at <= $1 AND (lease IS NULL OR available_at <= $1) LIMIT $2) RETURNING message_id",
                )
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let error = error_text(&MessageError::gateway(
                    "expired",
                    "not sent before its expires_at; failed rather than sent late",
                ));
                for id in &expired {
                    sqlx::query("UPDATE messages SET status = 'failed', error = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(&error)
                        .bind(now.as_millis())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, error, recorded_at) \
                         SELECT account_id, id, 'failed', $2, $3, $2 FROM messages WHERE id = $1 ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(now.as_millis())
                    .bind(&error)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(expired.into_iter().map(MessageId::from_trusted).collect())
            }

            async fn acquire_number_lease(
                &self,
                phone_number_id: &str,
                holder: &str,
                now: Timestamp,
                until: Timestamp,
            ) -> $crate::Result<bool> {
                let held = sqlx::query(
                    "INSERT INTO number_leases (phone_number_id, holder, lease_until) VALUES ($1, $2, $3) \
                     ON CONFLICT (phone_number_id) DO UPDATE SET holder = excluded.holder, \
                     lease_until = excluded.lease_until \
                     WHERE number_leases.holder = excluded.holder OR number_leases.lease_until <= $4",
                )
                .bind(phone_number_id)
                .bind(holder)
                .bind(until.as_millis())
                .bind(now.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(held == 1)
            }

            async fn release_number_leases(&self, holder: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM number_leases WHERE holder = $1").bind(holder).execute(&mut *self.write().await?).await?;
                Ok(())
            }

            async fn pause_account(
                &self,
                id: &AccountId,
                as_of: Timestamp,
                error: &MessageError,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "UPDATE accounts SET paused_at = $2, paused_error = $3 \
                     WHERE id = $1 AND paused_at IS NULL AND updated_at = $4",
                )
                .bind(id.as_str())
                .bind(at.as_millis())
                .bind(error_text(error))
                .bind(as_of.as_millis())
                .execute(&mut *self.write().await?)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn resume_account(&self, id: &AccountId) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "UPDATE accounts SET paused_at = NULL, paused_error = NULL WHERE id = $1 AND paused_at IS NOT NULL",
                )
                .bind(id.as_str())
                .execute(&mut *self.write().await?)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_number_rate(
                &self,
                id: &str,
                messages_per_second: Option<u32>,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                let r = sqlx::query("UPDATE phone_numbers SET messages_per_second = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(messages_per_second.map(i64::from))
                    .bind(at.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> $crate::Result<bool> {
                let r = sqlx::query("UPDATE phone_numbers SET throughput_level = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(level.as_str())
                    .bind(at.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> $crate::Result<()> {
                // The contact as a message from `wa_id` would find it (see `contacts.rs`), then a
                // stop at `at` like any other.
                let mut tx = self.begin_write().await?;
                let ids = ContactIds { wa_id: Some(wa_id.to_owned()), user_id: None };
                let contact = resolve_contact(&mut tx, &ids, None, None, Timestamp::now(), false).await?;
                set_preference(&mut tx, &contact, true, at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(DISTINCT counterpart) FROM messages WHERE account_id = $1 AND opens_conversation \
                     AND created_at >= $2 AND status NOT IN ('failed', 'canceled')",
                )
                .bind(account_id.as_str())
                .bind(since.as_millis())
                .fetch_one(self.reader())
                .await?)
            }

            async fn outbox_depth_by_number(&self) -> $crate::Result<Vec<(String, i64)>> {
                sqlx::query("SELECT phone_number_id, COUNT(*) AS depth FROM outbox GROUP BY phone_number_id")
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("phone_number_id")?, r.try_get("depth")?)))
                    .collect()
            }

            async fn record_accepted(
                &self,
                d: &Dispatch,
                wamid: &str,
                response: &serde_json::Value,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                if self.direct().is_some() {
                    return self
                        .enqueuer()
                        .accepted($crate::sql::Accepted {
                            message_id: d.message_id.as_str().to_owned(),
                            account_id: d.account_id.as_str().to_owned(),
                            wamid: wamid.to_owned(),
                            response: json_text(response),
                            at,
                        })
                        .await;
                }
                let mut tx = self.begin_write().await?;
                Self::lock_wamid(&mut tx, wamid).await?;
                let updated = sqlx::query($crate::sql::ACCEPT_MESSAGE)
                    .bind(wamid)
                    .bind(at.as_millis())
                    .bind(d.message_id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query($crate::sql::DELETE_OUTBOX_ROW).bind(d.message_id.as_str()).execute(&mut *tx).await?;
                if updated == 0 {
                    tx.commit().await?;
                    return Ok(false);
                }
                sqlx::query($crate::sql::INSERT_ACCEPTED_STATUS)
                    .bind(d.account_id.as_str())
                    .bind(d.message_id.as_str())
                    .bind(wamid)
                    .bind(at.as_millis())
                    .bind(json_text(response))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::sql::ADOPT_STATUSES)
                    .bind(d.message_id.as_str())
                    .bind(d.account_id.as_str())
                    .bind(wamid)
                    .execute(&mut *tx)
                    .await?;
                refresh_status(&mut tx, d.message_id.as_str(), at).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn record_failed(
                &self,
                d: &Dispatch,
                error: &MessageError,
                detail: Option<&serde_json::Value>,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let held = sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND lease = $2")
                    .bind(d.message_id.as_str())
                    .bind(&d.lease)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if held == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let text = error_text(error);
                sqlx::query(
                    "UPDATE messages SET status = 'failed', error = $2, updated_at = $3 \
                     WHERE id = $1 AND wamid IS NULL",
                )
                .bind(d.message_id.as_str())
                .bind(&text)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, error, detail, recorded_at) \
                     VALUES ($1, $2, 'failed', $3, $4, $5, $3) ON CONFLICT DO NOTHING",
                )
                .bind(d.account_id.as_str())
                .bind(d.message_id.as_str())
                .bind(at.as_millis())
                .bind(&text)
                .bind(detail.map(json_text))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn reschedule(&self, d: &Dispatch, due_at: Timestamp, error: &MessageError) -> $crate::Result<bool> {
                self.release(d, due_at, error, 0).await
            }

            async fn give_back(&self, d: &Dispatch, due_at: Timestamp, error: &MessageError) -> $crate::Result<bool> {
                self.release(d, due_at, error, 1).await
            }

            async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                // A row whose lease lapsed is as unclaimed as one never claimed.
                let removed = sqlx::query(
                    "DELETE FROM outbox WHERE message_id = $1 AND (lease IS NULL OR available_at <= $2)",
                )
                .bind(id.as_str())
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let text = error_text(reason);
                sqlx::query("UPDATE messages SET status = 'canceled', error = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(&text)
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, error, recorded_at) \
                     SELECT account_id, id, 'canceled', $2, $3, $2 FROM messages WHERE id = $1 ON CONFLICT DO NOTHING",
                )
                .bind(id.as_str())
                .bind(at.as_millis())
                .bind(&text)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn list_messages(&self, f: &MessageFilter, limit: u32) -> $crate::Result<Vec<Message>> {
                sqlx::query(concat!(
                    "SELECT ", message_select_cols!(), " FROM messages WHERE ",
                    "($1 IS NULL OR direction = $1) AND ($2 IS NULL OR status = $2) ",
                    "AND ($3 IS NULL OR (direction = 'outbound' AND phone_number_id = $3) ",
                    "OR (direction = 'inbound' AND counterpart = $3)) ",
                    "AND ($4 IS NULL OR (direction = 'outbound' AND counterpart = $4) ",
                    "OR (direction = 'inbound' AND phone_number_id = $4)) ",
                    "AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR id < $6) ",
                    "ORDER BY id DESC LIMIT $7"
                ))
                .bind(f.direction.map(Direction::as_str))
                .bind(f.status.map(MessageStatus::as_str))
                .bind(f.from.as_deref())
                .bind(f.to.as_deref())
                .bind(f.since.map(Timestamp::as_millis))
                .bind(f.before.as_ref().map(MessageId::as_str))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(message_row)
                .collect()
            }

            async fn outbox_depth(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(self.reader()).await?)
            }

            async fn apply_statuses(&self, updates: &[StatusUpdate], at: Timestamp) -> $crate::Result<Vec<StatusOutcome>> {
                if updates.is_empty() {
                    return Ok(Vec::new());
                }
                let columns: Vec<_> = updates.iter().map($crate::sql::StatusColumns::new).collect();
                if self.direct().is_some() {
                    return self.enqueuer().statuses($crate::sql::Statuses { updates: columns, at }).await;
                }
                // wamid locks are taken in one order by every batch, so two never wait on each other.
                let mut order: Vec<usize> = (0..updates.len()).collect();
                order.sort_by(|&a, &b| updates[a].wamid.cmp(&updates[b].wamid));
                let mut outcomes = vec![StatusOutcome::Duplicate; updates.len()];
                let mut touched = std::collections::BTreeSet::new();
                let mut tx = self.begin_write().await?;
                let mut locked: Option<&str> = None;
                for i in order {
                    let u = &updates[i];
                    if locked != Some(u.wamid.as_str()) {
                        Self::lock_wamid(&mut tx, &u.wamid).await?;
                        locked = Some(u.wamid.as_str());
                    }
                    let c = &columns[i];
                    let message_id: Option<String> = sqlx::query_scalar($crate::sql::SELECT_OUTBOUND_BY_WAMID)
                        .bind(&c.wamid)
                        .bind(&c.account_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let changed = sqlx::query($crate::sql::UPSERT_STATUS)
                        .bind(&c.account_id)
                        .bind(&message_id)
                        .bind(&c.wamid)
                        .bind(c.status)
                        .bind(&c.participant)
                        .bind(c.occurred_at)
                        .bind(&c.error)
                        .bind(&c.detail)
                        .bind(at.as_millis())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        > 0;
                    outcomes[i] = $crate::sql::status_outcome(changed, message_id, &mut touched);
                }
                // Each message's status is folded once, from everything the batch added.
                for id in &touched {
                    refresh_status(&mut tx, id, at).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }

            async fn record_inbounds(&self, messages: &[NewInbound]) -> $crate::Result<Vec<bool>> {
                if messages.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin_write().await?;
                let mut stored = Vec::with_capacity(messages.len());
                for m in messages {
                    stored.push(record_inbound_in(&mut tx, m).await?);
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn last_inbound(&self, phone_number_id: &str, customer: &str) -> $crate::Result<Option<Timestamp>> {
                Ok(sqlx::query_scalar::<_, i64>($crate::sql::SELECT_LAST_INBOUND)
                .bind(phone_number_id)
                .bind(customer)
                .fetch_optional(self.reader())
                .await?
                .map(ts))
            }

            async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE phone_numbers SET webhooks_since = $2 WHERE id = $1 AND webhooks_since IS NULL")
                    .bind(phone_number_id)
                    .bind(at.as_millis())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn get_contact_by_wa_id(&self, wa_id: &str) -> $crate::Result<Option<Contact>> {
                self.contact_by_wa_id(wa_id).await
            }

            async fn insert_delivery(&self, d: NewDelivery) -> $crate::Result<i64> {
                self.enqueuer().delivery(d).await
            }

            async fn claim_deliveries(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> $crate::Result<Vec<Delivery>> {
                let lease = wagate_domain::id::new_id("lease");
                if self.direct().is_some() {
                    let claim = $crate::sql::ClaimDeliveries { lease, lease_until, now, limit };
                    return self.enqueuer().claim_deliveries(claim).await;
                }
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query(Self::CLAIM_DELIVERIES)
                    .bind(&lease)
                    .bind(lease_until.as_millis())
                    .bind(now.as_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut out = rows.iter().map(|r| delivery_row(r, &lease)).collect::<$crate::Result<Vec<_>>>()?;
                out.sort_by_key(|d| d.id);
                Ok(out)
            }

            async fn finish_deliveries(&self, finished: &[(&Delivery, Option<String>)], at: Timestamp) -> $crate::Result<()> {
                if finished.is_empty() {
                    return Ok(());
                }
                if self.direct().is_some() {
                    let finished = finished.iter().map(|(d, error)| (d.id, d.lease.clone(), error.clone())).collect();
                    return self.enqueuer().finish_deliveries($crate::sql::FinishDeliveries { finished, at }).await;
                }
                let mut tx = self.begin_write().await?;
                for (d, error) in finished {
                    sqlx::query($crate::sql::FINISH_DELIVERY)
                        .bind(at.as_millis())
                        .bind(error)
                        .bind(d.id)
                        .bind(&d.lease)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn retry_delivery(&self, d: &Delivery, due_at: Timestamp, error: &str) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE webhook_deliveries SET available_at = $3, lease = NULL, error = $4 \
                     WHERE id = $1 AND lease = $2",
                )
                .bind(d.id)
                .bind(&d.lease)
                .bind(due_at.as_millis())
                .bind(error)
                .execute(&mut *self.write().await?)
                .await?;
                Ok(())
            }

            async fn count_deliveries(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries").fetch_one(self.reader()).await?)
            }

            async fn pending_deliveries(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE available_at IS NOT NULL")
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn record_webhook_event(&self, e: &NewWebhookEvent) -> $crate::Result<bool> {
                let stored = sqlx::query(
                    "INSERT INTO webhook_events \
                     (account_id, delivery_id, dedup_key, field, kind, subject, payload, occurred_at, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(e.account_id.as_str())
                .bind(e.delivery_id)
                .bind(&e.dedup_key)
                .bind(&e.field)
                .bind(&e.kind)
                .bind(&e.subject)
                .bind(json_text(&e.payload))
                .bind(e.occurred_at.as_millis())
                .bind(e.recorded_at.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(stored == 1)
            }

            async fn list_webhook_events(
                &self,
                account_id: &AccountId,
                field: Option<&str>,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::Result<Vec<WebhookEvent>> {
                let rows = sqlx::query(
                    "SELECT id, account_id, field, kind, subject, payload, occurred_at, recorded_at \
                     FROM webhook_events WHERE account_id = $1 AND ($2 IS NULL OR field = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                )
                .bind(account_id.as_str())
                .bind(field)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(WebhookEvent {
                            id: r.try_get("id")?,
                            account_id: AccountId::from_trusted(r.try_get("account_id")?),
                            field: r.try_get("field")?,
                            kind: r.try_get("kind")?,
                            subject: r.try_get("subject")?,
                            payload: parse_json("payload", &r.try_get::<String, _>("payload")?)?,
                            occurred_at: ts(r.try_get("occurred_at")?),
                            recorded_at: ts(r.try_get("recorded_at")?),
                        })
                    })
                    .collect()
            }

            async fn record_echo(&self, m: &NewEcho) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                Self::lock_wamid(&mut tx, &m.wamid).await?;
                let stored = sqlx::query(concat!(
                    "INSERT INTO messages (",
                    message_cols!(),
                    ", from_app) ",
                    "VALUES ($1, 'outbound', $2, $3, NULL, $4, $5, $6, 'sent', $7, NULL, NULL, $8, $9, NULL, NULL, TRUE) ",
                    "ON CONFLICT DO NOTHING"
                ))
                .bind(m.id.as_str())
                .bind(m.account_id.as_str())
                .bind(&m.phone_number_id)
                .bind(&m.to)
                .bind(&m.kind)
                .bind(json_text(&m.content))
                .bind(&m.wamid)
                .bind(m.sent_at.as_millis())
                .bind(m.received_at.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                // Statuses of the echo that came before it wait under its wamid, as a send's do.
                let adopted = if stored {
                    sqlx::query(
                        "UPDATE message_statuses SET message_id = $1 \
                         WHERE account_id = $2 AND wamid = $3 AND message_id IS NULL",
                    )
                    .bind(m.id.as_str())
                    .bind(m.account_id.as_str())
                    .bind(&m.wamid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                } else {
                    0
                };
                if adopted > 0 {
                    refresh_status(&mut tx, m.id.as_str(), m.received_at).await?;
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> $crate::Result<bool> {
                // Not `updated_at`: that marks changes of credentials, which a pause waits for.
                let updated = sqlx::query(
                    "UPDATE accounts SET messaging_tier = $2 WHERE id = $1 AND messaging_tier IS DISTINCT FROM $2",
                )
                .bind(id.as_str())
                .bind(tier.as_str())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            // Inbound media (wagate issue 6).
            async fn insert_media(&self, m: &$crate::NewMedia) -> $crate::Result<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO media (id, account_id, phone_number_id, message_id, meta_media_id, kind, \
                     mime_type, sha256, filename, caption, state, attempts, available_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', 0, $11, $11, $11) \
                     ON CONFLICT (account_id, meta_media_id) DO NOTHING",
                )
                .bind(m.id.as_str())
                .bind(m.account_id.as_str())
                .bind(&m.phone_number_id)
                .bind(m.message_id.as_str())
                .bind(&m.meta_media_id)
                .bind(&m.kind)
                .bind(&m.mime_type)
                .bind(&m.sha256)
                .bind(&m.filename)
                .bind(&m.caption)
                .bind(m.created_at.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn claim_media(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::MediaJob>> {
                // PostgreSQL instances skip each other's rows instead of waiting on them (and
                // without the row locks two could claim the same row).
                let claim = match self.backend() {
                    $crate::Backend::Postgres => concat!(
                        "UPDATE media SET lease = $1, available_at = $2, attempts = attempts + 1, updated_at = $3 ",
                        "WHERE id IN (SELECT id FROM media WHERE available_at IS NOT NULL AND available_at <= $3 ",
                        "ORDER BY available_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING ",
                        media_cols!()
                    ),
                    $crate::Backend::Sqlite => concat!(
                        "UPDATE media SET lease = $1, available_at = $2, attempts = attempts + 1, updated_at = $3 ",
                        "WHERE id IN (SELECT id FROM media WHERE available_at IS NOT NULL AND available_at <= $3 ",
                        "ORDER BY available_at, id LIMIT $4) RETURNING ",
                        media_cols!()
                    ),
                };
                let lease = wagate_domain::id::new_id("lease");
                let rows = sqlx::query(claim)
                    .bind(&lease)
                    .bind(lease_until.as_millis())
                    .bind(now.as_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.write().await?)
                    .await?;
                let mut jobs = rows
                    .iter()
                    .map(|r| Ok($crate::MediaJob { media: media_row(r)?, lease: lease.clone() }))
                    .collect::<$crate::Result<Vec<_>>>()?;
                jobs.sort_by(|a, b| a.media.id.cmp(&b.media.id));
                Ok(jobs)
            }

            async fn media_stored(&self, job: &$crate::MediaJob, f: &$crate::StoredMedia) -> $crate::Result<bool> {
                let changed = sqlx::query(
                    "UPDATE media SET state = 'stored', available_at = NULL, lease = NULL, last_error = NULL, \
                     file_size = $3, sha256 = COALESCE(sha256, $4), downloaded_at = $5, updated_at = $5 \
                     WHERE id = $1 AND lease = $2 AND state = 'pending'",
                )
                .bind(job.media.id.as_str())
                .bind(&job.lease)
                .bind(f.file_size)
                .bind(&f.sha256)
                .bind(f.at.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn retry_media(
                &self,
                job: &$crate::MediaJob,
                due_at: Timestamp,
                error: &str,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                let changed = sqlx::query(
                    "UPDATE media SET available_at = $3, lease = NULL, last_error = $4, updated_at = $5 \
                     WHERE id = $1 AND lease = $2 AND state = 'pending'",
                )
                .bind(job.media.id.as_str())
                .bind(&job.lease)
                .bind(due_at.as_millis())
                .bind(error)
                .bind(at.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn media_failed(&self, job: &$crate::MediaJob, error: &str, at: Timestamp) -> $crate::Result<bool> {
                let changed = sqlx::query(
                    "UPDATE media SET state = 'failed', available_at = NULL, lease = NULL, last_error = $3, \
                     updated_at = $4 WHERE id = $1 AND lease = $2 AND state = 'pending'",
                )
                .bind(job.media.id.as_str())
                .bind(&job.lease)
                .bind(error)
                .bind(at.as_millis())
                .execute(&mut *self.write().await?)
                .await?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn get_media(&self, id: &wagate_domain::id::MediaId) -> $crate::Result<Option<$crate::Media>> {
                sqlx::query(concat!("SELECT ", media_cols!(), " FROM media WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(media_row)
                    .transpose()
            }

            async fn list_media(&self, f: &$crate::MediaFilter, limit: u32) -> $crate::Result<Vec<$crate::Media>> {
                sqlx::query(concat!(
                    "SELECT ", media_cols!(), " FROM media WHERE ($1 IS NULL OR message_id = $1) ",
                    "AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
                ))
                .bind(f.message_id.as_ref().map(MessageId::as_str))
                .bind(f.before.as_ref().map(wagate_domain::id::MediaId::as_str))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(media_row)
                .collect()
            }

            // Contacts and conversations: implemented in `contacts.rs`.
            async fn upsert_contact(&self, ids: &ContactIds, name: Option<&str>, at: Timestamp) -> $crate::Result<ContactId> {
                self.contact_upsert(ids, name, at).await
            }

            async fn change_contact_ids(
                &self,
                old: &ContactIds,
                new: &ContactIds,
                at: Timestamp,
            ) -> $crate::Result<Option<ContactId>> {
                self.contact_ids_change(old, new, at).await
            }

            async fn get_contact(&self, id: &ContactId) -> $crate::Result<Option<Contact>> {
                self.contact_get(id).await
            }

            async fn list_contacts(&self, filter: &ContactFilter, limit: u32) -> $crate::Result<Vec<Contact>> {
                self.contacts_list(filter, limit).await
            }

            async fn update_contact(&self, id: &ContactId, update: &ContactUpdate) -> $crate::Result<ContactUpdated> {
                self.contact_update(id, update).await
            }

            async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> $crate::Result<bool> {
                self.contact_preference(id, opted_out, at).await
            }

            async fn get_conversation(&self, id: &wagate_domain::id::ConversationId) -> $crate::Result<Option<Conversation>> {
                Ok(self.conversations_query(&ConversationFilter::default(), Some(id.as_str()), 1).await?.pop())
            }

            async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> $crate::Result<Vec<Conversation>> {
                self.conversations_query(filter, None, limit).await
            }

            async fn conversation_messages(
                &self,
                id: &wagate_domain::id::ConversationId,
                page: &ConversationPage,
                limit: u32,
            ) -> $crate::Result<Vec<Message>> {
                self.conversation_page(id, page, limit).await
            }

            async fn newest_inbound(&self, id: &wagate_domain::id::ConversationId) -> $crate::Result<Option<Message>> {
                self.conversation_newest_inbound(id).await
            }

            async fn mark_conversation_read(
                &self,
                id: &wagate_domain::id::ConversationId,
                through: &MessageId,
                at: Timestamp,
            ) -> $crate::Result<bool> {
                self.conversation_mark_read(id, through, at).await
            }
        }

        // Inbound media (wagate issue 6).
        fn media_row(r: &$row) -> $crate::Result<$crate::Media> {
            let state: String = r.try_get("state")?;
            Ok($crate::Media {
                id: wagate_domain::id::MediaId::from_trusted(r.try_get("id")?),
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                phone_number_id: r.try_get("phone_number_id")?,
                message_id: MessageId::from_trusted(r.try_get("message_id")?),
                meta_media_id: r.try_get("meta_media_id")?,
                kind: r.try_get("kind")?,
                mime_type: r.try_get("mime_type")?,
                sha256: r.try_get("sha256")?,
                file_size: r.try_get("file_size")?,
                filename: r.try_get("filename")?,
                caption: r.try_get("caption")?,
                state: $crate::MediaState::parse(&state).ok_or_else(|| corrupt("media state", &state))?,
                attempts: r.try_get("attempts")?,
                available_at: r.try_get::<Option<i64>, _>("available_at")?.map(ts),
                last_error: r.try_get("last_error")?,
                created_at: ts(r.try_get("created_at")?),
                updated_at: ts(r.try_get("updated_at")?),
                downloaded_at: r.try_get::<Option<i64>, _>("downloaded_at")?.map(ts),
            })
        }
    };
}

pub(crate) use impl_store;
