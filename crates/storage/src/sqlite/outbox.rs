//! Sending: new messages into the outbox, the outbox as a leased queue, what the dispatcher
//! records, and who may dispatch a number.

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params, params_from_iter};
use serde_json::Value;
use wagate_domain::id::{ApiKeyId, MessageId, new_id};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::{emit_message_changes, message_history};
use super::messages::refresh_status;
use super::rows::{all, execute, first, value};
use crate::shared::{self, HeadScan, PreparedSend, error_text, initial_status, json_text, message_cols, ts};
use crate::*;

const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", opens_conversation, rendered) VALUES (?1, 'outbound', ?2, ?3, NULL, ?4, ?5, ?6, ?7, NULL, NULL, ?8, ?9, ?9, ?10, ?11, ?12, ?13)"
);
const INSERT_OUTBOX: &str = "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, \
    available_at, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)";

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
        self.readers.read(|c| first(c, shared::SELECT_LIVE_IDEMPOTENCY_KEY, params, |r| shared::idempotency(r)))
    }

    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64> {
        Ok(self.execute(shared::DELETE_EXPIRED_IDEMPOTENCY_KEYS, (now.as_millis(),)).await? as u64)
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
            shared::EXPIRED,
            "not sent before its expires_at; failed rather than sent late",
        ));
        let views = self.views.clone();
        self.writer
            .write(move |tx| {
                let expired: Vec<String> =
                    all(tx, shared::EXPIRE_OUTBOX, params![now.as_millis(), limit], |r| Ok(r.get(0)?))?;
                for id in &expired {
                    end_unsent(tx, views.as_ref(), id, "failed", &error, now)?;
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
        let (wamid, response, at) = (wamid.to_owned(), json_text(response), at.as_millis());
        let views = self.views.clone();
        self.writer
            .write(move |tx| {
                let before = message_history(tx, &message_id)?;
                // The first result recorded wins (see `ACCEPT_MESSAGE`).
                let updated = execute(tx, shared::ACCEPT_MESSAGE, params![wamid, at, message_id])?;
                execute(tx, shared::DELETE_OUTBOX_ROW, [&message_id])?;
                if updated == 0 {
                    return Ok(false);
                }
                execute(tx, shared::INSERT_ACCEPTED_STATUS, params![account_id, message_id, wamid, at, response])?;
                execute(tx, shared::ADOPT_STATUSES, [&message_id, &account_id, &wamid])?;
                refresh_status(tx, &message_id, at)?;
                emit_message_changes(tx, views.as_ref(), &message_id, &before, at)?;
                Ok(true)
            })
            .await
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
        let (lease, error, detail, at) =
            (dispatch.lease.clone(), error_text(error), detail.map(json_text), at.as_millis());
        let views = self.views.clone();
        self.writer
            .write(move |tx| {
                if execute(tx, shared::DELETE_LEASED, [&message_id, &lease])? == 0 {
                    return Ok(false);
                }
                let before = message_history(tx, &message_id)?;
                execute(tx, shared::FAIL_UNACCEPTED, params![error, at, message_id])?;
                execute(tx, shared::INSERT_FAILED_STATUS, params![account_id, message_id, at, error, detail])?;
                emit_message_changes(tx, views.as_ref(), &message_id, &before, at)?;
                Ok(true)
            })
            .await
    }

    async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> Result<bool> {
        let (id, reason, views) = (id.as_str().to_owned(), error_text(reason), self.views.clone());
        self.writer
            .write(move |tx| {
                if execute(tx, shared::DELETE_UNCLAIMED, params![id, at.as_millis()])? == 0 {
                    return Ok(false);
                }
                end_unsent(tx, views.as_ref(), &id, "canceled", &reason, at)?;
                Ok(true)
            })
            .await
    }

    async fn give_back(&self, dispatch: &Leased<Dispatch>, due_at: Timestamp, error: &MessageError) -> Result<bool> {
        self.release(dispatch, due_at, error, 1).await
    }

    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>> {
        self.readers.scan(move |c| all(c, shared::SELECT_OUTBOX_DEPTH, [], |r| Ok((r.get(0)?, r.get(1)?)))).await
    }

    async fn acquire_number_lease(
        &self,
        phone_number_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let params = (phone_number_id.to_owned(), holder.to_owned(), until.as_millis(), now.as_millis());
        Ok(self.execute(shared::ACQUIRE_NUMBER_LEASE, params).await? == 1)
    }

    async fn release_number_lease(&self, phone_number_id: &str, holder: &str) -> Result<()> {
        self.execute(shared::RELEASE_NUMBER_LEASE, (phone_number_id.to_owned(), holder.to_owned())).await?;
        Ok(())
    }

    async fn announce_dispatcher(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<u64> {
        let holder = holder.to_owned();
        self.writer
            .write(move |tx| {
                execute(tx, shared::ANNOUNCE_DISPATCHER, params![holder, until.as_millis()])?;
                execute(tx, shared::FORGET_LAPSED_DISPATCHERS, [now.as_millis()])?;
                let live: i64 = value(tx, shared::COUNT_DISPATCHERS, [])?;
                Ok(live.max(1) as u64)
            })
            .await
    }

    async fn retire_dispatcher(&self, holder: &str) -> Result<()> {
        let holder = holder.to_owned();
        self.writer
            .write(move |tx| {
                execute(tx, shared::RELEASE_NUMBER_LEASES, [&holder])?;
                execute(tx, shared::RETIRE_DISPATCHER, [&holder]).map(|_| ())
            })
            .await
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
        _: Timestamp,
    ) -> Result<bool> {
        self.release(item, due_at, error, 0).await
    }

    async fn give_up(&self, item: &Leased<Dispatch>, error: &MessageError, at: Timestamp) -> Result<bool> {
        self.record_failed(item, error, None, at).await
    }

    async fn pending(&self) -> Result<i64> {
        self.readers.scan(|c| value(c, shared::COUNT_OUTBOX, [])).await
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
                let held =
                    execute(tx, shared::RELEASE, params![due_at.as_millis(), error, uncount, message_id, lease])?;
                if held == 1 {
                    execute(tx, shared::REQUEUE_SENDING, [&message_id])?;
                }
                Ok(held == 1)
            })
            .await
    }
}

/// Ends a message that never reached Meta (expired, canceled) with `status` and its history row.
fn end_unsent(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    id: &str,
    status: &str,
    error: &str,
    at: Timestamp,
) -> Result<()> {
    let at = at.as_millis();
    let before = message_history(tx, id)?;
    execute(tx, shared::SET_STATUS, params![status, error, at, id])?;
    execute(tx, shared::INSERT_UNSENT_STATUS, params![status, at, error, id])?;
    emit_message_changes(tx, views, id, &before, at)
}

/// The heads of one number's queues, or of every number's (see `HeadScan`).
fn scan_heads(c: &Connection, number: Option<&str>, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
    let mut scan = HeadScan::new(now, limit);
    while !scan.done {
        let (due_at, seq, rows) = scan.next_page();
        let page = match number {
            Some(number) => {
                let params = params![number, now.as_millis(), due_at, seq, rows];
                all(c, shared::SELECT_NUMBER_QUEUE_PAGE, params, |r| shared::queue_row(r))
            }
            None => {
                all(c, shared::SELECT_QUEUE_PAGE, params![now.as_millis(), due_at, seq, rows], |r| shared::queue_row(r))
            }
        };
        scan.page(page?.into_iter());
    }
    Ok(scan.heads())
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
            let conversation = [m.phone_number_id.as_str(), w.customer.as_str()];
            let last_inbound = first(tx, shared::SELECT_LAST_INBOUND, conversation, |r| Ok(ts(r.get(0)?)))?;
            match w.judge(last_inbound, m.created_at) {
                Ok(opens) => opens,
                Err(refused) => return Ok(refused),
            }
        }
        None => false,
    };
    if let Some(k) = &m.idempotency
        && execute(tx, shared::TAKE_IDEMPOTENCY_KEY, shared::idempotency_values(p, k))? == 0
    {
        let key = [k.api_key_id.as_str(), &k.key];
        let used = first(tx, shared::SELECT_IDEMPOTENCY_KEY, key, |r| shared::idempotency(r))?;
        let used = used.ok_or_else(|| StorageError::Corrupt(format!("idempotency key {} vanished", k.key)))?;
        return Ok(Enqueued::KeyUsed(used));
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
        p.rendered,
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
    if execute(tx, &shared::claim_due_sql(ids.len()), params_from_iter(params))? == 0 {
        return Ok(Vec::new());
    }
    execute(tx, shared::MARK_CLAIMED_SENDING, params![now, lease])?;
    all(tx, shared::SELECT_CLAIMED, [lease], |r| shared::dispatch(r, lease, lease_until))
}
