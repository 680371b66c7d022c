//! Sending: new messages into the outbox, the outbox as a leased queue, what the dispatcher
//! records, and who may dispatch a number.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};
use serde_json::Value;
use wagate_domain::id::{ApiKeyId, MessageId, new_id};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::messages::refresh_status;
use super::rows::{self, all, first, value};
use crate::shared::{
    ACCEPT_MESSAGE, ADOPT_STATUSES, DELETE_OUTBOX_ROW, HeadScan, INSERT_ACCEPTED_STATUS, MARK_CLAIMED_SENDING,
    PreparedSend, QueueRow, SELECT_CLAIMED, SELECT_IDEMPOTENCY_KEY, SELECT_LAST_INBOUND, SELECT_LIVE_IDEMPOTENCY_KEY,
    SELECT_NUMBER_QUEUE_PAGE, SELECT_QUEUE_PAGE, TAKE_IDEMPOTENCY_KEY, claim_due_sql, dispatch, error_text,
    initial_status, json_text, message_cols, ts,
};
use crate::*;

const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", opens_conversation) VALUES (?1, 'outbound', ?2, ?3, NULL, ?4, ?5, ?6, ?7, NULL, NULL, ?8, ?9, ?9, ?10, ?11, ?12)"
);
const INSERT_OUTBOX: &str = "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, \
    available_at, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)";
/// Gives a leased row back, due at `?3`; `?5` takes back the claim's attempt (1) or not (0).
const RELEASE: &str = "UPDATE outbox SET available_at = ?3, lease = NULL, last_error = ?4, \
    attempts = attempts - ?5 WHERE message_id = ?1 AND lease = ?2";

const DELETE_LEASED: &str = "DELETE FROM outbox WHERE message_id = ?1 AND lease = ?2";
const FAIL_UNACCEPTED: &str =
    "UPDATE messages SET status = 'failed', error = ?2, updated_at = ?3 WHERE id = ?1 AND wamid IS NULL";
const INSERT_FAILED_STATUS: &str = "INSERT INTO message_statuses \
    (account_id, message_id, status, occurred_at, error, detail, recorded_at) \
    VALUES (?1, ?2, 'failed', ?3, ?4, ?5, ?3) ON CONFLICT DO NOTHING";

#[async_trait]
impl Outbox for SqliteStore {
    async fn enqueue_message(&self, message: NewOutbound) -> Result<Enqueued> {
        let send = PreparedSend::new(message);
        self.writer.write(move |tx| write_send(tx, &send)).await
    }

    async fn find_idempotency_key(
        &self,
        api_key_id: &ApiKeyId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let params = (api_key_id.as_str(), key, now.as_millis());
        self.readers.read(|c| first(c, SELECT_LIVE_IDEMPOTENCY_KEY, params, rows::idempotency))
    }

    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64> {
        let sql = "DELETE FROM idempotency_keys WHERE expires_at <= ?1";
        Ok(self.execute(sql, (now.as_millis(),)).await? as u64)
    }

    async fn outbox_heads(&self, phone_number_id: &str, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
        let number = phone_number_id.to_owned();
        self.readers.scan(move |c| scan_heads(c, Some(&number), now, limit)).await
    }

    async fn claim_messages(
        &self,
        ids: &[MessageId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<Leased<Dispatch>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        let lease = new_id("lease");
        self.writer.write(move |tx| claim(tx, &ids, &lease, now, lease_until)).await
    }

    async fn expire_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<MessageId>> {
        let error = error_text(&MessageError::gateway(
            "expired",
            "not sent before its expires_at; failed rather than sent late",
        ));
        self.writer
            .write(move |tx| {
                // Rows held by a live lease are being sent: their sender decides.
                let expired: Vec<String> = all(
                    tx,
                    "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM outbox \
                     WHERE expires_at <= ?1 AND (lease IS NULL OR available_at <= ?1) LIMIT ?2) RETURNING message_id",
                    params![now.as_millis(), limit],
                    |r| Ok(r.get(0)?),
                )?;
                for id in &expired {
                    end_unsent(tx, id, "failed", &error, now)?;
                }
                Ok(expired.into_iter().map(MessageId::from_trusted).collect())
            })
            .await
    }

    async fn record_accepted(
        &self,
        dispatch: &Leased<Dispatch>,
        wamid: &str,
        response: &Value,
        at: Timestamp,
    ) -> Result<bool> {
        let (message_id, account_id) =
            (dispatch.message_id.as_str().to_owned(), dispatch.account_id.as_str().to_owned());
        let (wamid, response) = (wamid.to_owned(), json_text(response));
        self.writer.write(move |tx| write_accepted(tx, &message_id, &account_id, &wamid, &response, at)).await
    }

    async fn record_failed(
        &self,
        dispatch: &Leased<Dispatch>,
        error: &MessageError,
        detail: Option<&Value>,
        at: Timestamp,
    ) -> Result<bool> {
        let (message_id, account_id) =
            (dispatch.message_id.as_str().to_owned(), dispatch.account_id.as_str().to_owned());
        let (lease, error, detail) = (dispatch.lease.clone(), error_text(error), detail.map(json_text));
        self.writer
            .write(move |tx| write_failed(tx, &message_id, &account_id, &lease, &error, detail.as_deref(), at))
            .await
    }

    async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> Result<bool> {
        let (id, reason) = (id.as_str().to_owned(), error_text(reason));
        self.writer
            .write(move |tx| {
                // A row whose lease lapsed is as unclaimed as one never claimed.
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM outbox WHERE message_id = ?1 AND (lease IS NULL OR available_at <= ?2)",
                    )?
                    .execute(params![id, at.as_millis()])?;
                if removed == 0 {
                    return Ok(false);
                }
                end_unsent(tx, &id, "canceled", &reason, at)?;
                Ok(true)
            })
            .await
    }

    async fn give_back(&self, dispatch: &Leased<Dispatch>, due_at: Timestamp, error: &MessageError) -> Result<bool> {
        self.release(dispatch, due_at, error, 1).await
    }

    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT phone_number_id, COUNT(*) FROM outbox GROUP BY phone_number_id";
        self.readers.scan(move |c| all(c, sql, [], |r| Ok((r.get(0)?, r.get(1)?)))).await
    }

    async fn acquire_number_lease(
        &self,
        phone_number_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let sql = "INSERT INTO number_leases (phone_number_id, holder, lease_until) VALUES (?1, ?2, ?3) \
            ON CONFLICT (phone_number_id) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
            WHERE number_leases.holder = excluded.holder OR number_leases.lease_until <= ?4";
        let params = (phone_number_id.to_owned(), holder.to_owned(), until.as_millis(), now.as_millis());
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn release_number_leases(&self, holder: &str) -> Result<()> {
        self.execute("DELETE FROM number_leases WHERE holder = ?1", (holder.to_owned(),)).await?;
        Ok(())
    }
}

/// The outbox as a queue: a claim takes the heads of any number's queues (see `HeadScan`).
#[async_trait]
impl LeasedQueue<Dispatch, MessageError> for SqliteStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Dispatch>>> {
        let heads = self.readers.scan(move |c| scan_heads(c, None, now, limit)).await?;
        let ids: Vec<MessageId> = heads.into_iter().map(|h| h.message_id).collect();
        self.claim_messages(&ids, now, lease_until).await
    }

    /// Counts the attempt (as `give_back` does not).
    async fn retry(
        &self,
        item: &Leased<Dispatch>,
        due_at: Timestamp,
        error: &MessageError,
        _at: Timestamp,
    ) -> Result<bool> {
        self.release(item, due_at, error, 0).await
    }

    async fn give_up(&self, item: &Leased<Dispatch>, error: &MessageError, at: Timestamp) -> Result<bool> {
        self.record_failed(item, error, None, at).await
    }

    async fn pending(&self) -> Result<i64> {
        self.readers.scan(|c| value(c, "SELECT COUNT(*) FROM outbox", [])).await
    }
}

impl SqliteStore {
    /// Gives a leased row back, due at `due_at`; `uncount` takes back the claim's attempt.
    async fn release(
        &self,
        d: &Leased<Dispatch>,
        due_at: Timestamp,
        error: &MessageError,
        uncount: i64,
    ) -> Result<bool> {
        let (message_id, lease, error) = (d.message_id.as_str().to_owned(), d.lease.clone(), error_text(error));
        self.writer
            .write(move |tx| {
                let held = tx.prepare_cached(RELEASE)?.execute(params![
                    message_id,
                    lease,
                    due_at.as_millis(),
                    error,
                    uncount
                ])?;
                if held == 1 {
                    tx.prepare_cached("UPDATE messages SET status = 'queued' WHERE id = ?1 AND status = 'sending'")?
                        .execute([&message_id])?;
                }
                Ok(held == 1)
            })
            .await
    }
}

/// The send failed for good: the message fails (unless a wamid was recorded: Meta has it), with
/// its history row; false when the lease was lost.
fn write_failed(
    tx: &Transaction<'_>,
    message_id: &str,
    account_id: &str,
    lease: &str,
    error: &str,
    detail: Option<&str>,
    at: Timestamp,
) -> Result<bool> {
    let at = at.as_millis();
    if tx.prepare_cached(DELETE_LEASED)?.execute([message_id, lease])? == 0 {
        return Ok(false);
    }
    tx.prepare_cached(FAIL_UNACCEPTED)?.execute(params![message_id, error, at])?;
    tx.prepare_cached(INSERT_FAILED_STATUS)?.execute(params![account_id, message_id, at, error, detail])?;
    Ok(true)
}

/// Ends a message that never reached Meta (expired, canceled) with `status` and its history row.
fn end_unsent(tx: &Transaction<'_>, id: &str, status: &str, error: &str, at: Timestamp) -> Result<()> {
    let at = at.as_millis();
    tx.prepare_cached("UPDATE messages SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1")?
        .execute(params![id, status, error, at])?;
    tx.prepare_cached(
        "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, error, recorded_at) \
         SELECT account_id, id, ?2, ?3, ?4, ?3 FROM messages WHERE id = ?1 ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, status, at, error])?;
    Ok(())
}

/// The heads of one number's queues, or of every number's (see `HeadScan`).
fn scan_heads(c: &Connection, number: Option<&str>, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
    let mut scan = HeadScan::new(now, limit);
    while !scan.done {
        let (due_at, seq, rows) = scan.next_page();
        let page = match number {
            Some(number) => {
                all(c, SELECT_NUMBER_QUEUE_PAGE, params![number, now.as_millis(), due_at, seq, rows], queue_row)
            }
            None => all(c, SELECT_QUEUE_PAGE, params![now.as_millis(), due_at, seq, rows], queue_row),
        };
        scan.page(page?.into_iter());
    }
    Ok(scan.heads())
}

fn queue_row(r: &Row<'_>) -> Result<QueueRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

/// The window first (a message refused outside it stores nothing), then the message's
/// idempotency key (a key in use, and not expired, skips the message), then the message and its
/// outbox row (its first history entry is the message's: `SELECT_HISTORY`). The window is
/// judged here, in the transaction that stores the message: its pages are warm in the writer,
/// and a read beside it would miss the cache each time.
fn write_send(tx: &Transaction<'_>, p: &PreparedSend) -> Result<Enqueued> {
    let m = &p.m;
    let opens_conversation = match &m.window {
        Some(w) => {
            let last_inbound = tx
                .prepare_cached(SELECT_LAST_INBOUND)?
                .query_row([m.phone_number_id.as_str(), w.customer.as_str()], |r| r.get::<_, i64>(0))
                .optional()?
                .map(ts);
            match w.judge(last_inbound, m.created_at) {
                Ok(opens) => opens,
                Err(refused) => return Ok(refused),
            }
        }
        None => false,
    };
    if let Some(k) = &m.idempotency {
        let taken = tx.prepare_cached(TAKE_IDEMPOTENCY_KEY)?.execute(params![
            k.api_key_id.as_str(),
            k.key,
            k.request_hash,
            m.id.as_str(),
            p.response,
            m.created_at.as_millis(),
            k.expires_at.as_millis(),
        ])?;
        if taken == 0 {
            let used = first(tx, SELECT_IDEMPOTENCY_KEY, [k.api_key_id.as_str(), &k.key], rows::idempotency)?;
            let used = used.ok_or_else(|| StorageError::Corrupt(format!("idempotency key {} vanished", k.key)))?;
            return Ok(Enqueued::KeyUsed(used));
        }
    }
    let created = m.created_at.as_millis();
    tx.prepare_cached(INSERT_MESSAGE)?.execute(params![
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id,
        m.recipient,
        m.kind,
        p.content,
        initial_status(m),
        p.metadata,
        created,
        m.send_at.map(Timestamp::as_millis),
        m.expires_at.map(Timestamp::as_millis),
        opens_conversation,
    ])?;
    tx.prepare_cached(INSERT_OUTBOX)?.execute(params![
        m.id.as_str(),
        m.phone_number_id,
        m.recipient,
        m.due_at.as_millis(),
        m.expires_at.map(Timestamp::as_millis),
        created,
    ])?;
    Ok(Enqueued::Stored)
}

/// Meta took the message: its wamid recorded (the first result recorded wins), its outbox row
/// dropped, and the statuses that came for the wamid before it was known adopted.
fn write_accepted(
    tx: &Transaction<'_>,
    message_id: &str,
    account_id: &str,
    wamid: &str,
    response: &str,
    at: Timestamp,
) -> Result<bool> {
    let at = at.as_millis();
    let updated = tx.prepare_cached(ACCEPT_MESSAGE)?.execute(params![wamid, at, message_id])?;
    tx.prepare_cached(DELETE_OUTBOX_ROW)?.execute([message_id])?;
    if updated == 0 {
        return Ok(false);
    }
    tx.prepare_cached(INSERT_ACCEPTED_STATUS)?.execute(params![account_id, message_id, wamid, at, response])?;
    tx.prepare_cached(ADOPT_STATUSES)?.execute(params![message_id, account_id, wamid])?;
    refresh_status(tx, message_id, at)?;
    Ok(true)
}

/// Leases the rows of `ids` still due and free, marks their messages `sending`, and reads what
/// sending needs.
fn claim(
    tx: &Transaction<'_>,
    ids: &[String],
    lease: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<Leased<Dispatch>>> {
    let (now, until) = (now.as_millis(), lease_until.as_millis());
    let head = [&lease as &dyn rusqlite::ToSql, &until, &now];
    let params = head.into_iter().chain(ids.iter().map(|id| id as &dyn rusqlite::ToSql));
    let claimed = tx.prepare_cached(&claim_due_sql(ids.len()))?.execute(params_from_iter(params))?;
    if claimed == 0 {
        return Ok(Vec::new());
    }
    tx.prepare_cached(MARK_CLAIMED_SENDING)?.execute(params![now, lease])?;
    all(tx, SELECT_CLAIMED, [lease], |r| {
        let columns = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
        dispatch(columns, (lease, lease_until))
    })
}
