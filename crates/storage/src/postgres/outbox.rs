//! Sending: new messages stored with their outbox rows by the batch writers, the outbox as a
//! leased queue (claimed a recipient's head at a time, see `shared::HeadScan`), a send's result,
//! and which instance dispatches a number.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use wagate_domain::id::{ApiKeyId, MessageId, new_id};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

use super::batch::Batched;
use super::events::{emit_all, message_changes, message_history};
use super::{PgStore, Tx, all, execute, first, lock_wamid, messages, value};
use crate::shared::{self, Columns, PreparedSend, error_text, json_text, message_cols};
use crate::*;

/// A batch's new messages and their outbox rows, in one statement: one array a column. `seq`,
/// the acceptance order that orders a recipient's messages, is given in the arrays' order.
const INSERT_SENDS: &str = concat!(
    "WITH new AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], ",
    "$7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::boolean[], ",
    "$14::text[]) AS n (id, account_id, phone_number_id, recipient, kind, content, status, metadata, created_at, ",
    "due_at, send_at, expires_at, opens_conversation, rendered)), ",
    "m AS (INSERT INTO messages (",
    message_cols!(),
    ", opens_conversation, rendered) SELECT id, 'outbound', account_id, phone_number_id, NULL, recipient, kind, ",
    "content, status, NULL, NULL, metadata, created_at, created_at, send_at, expires_at, opens_conversation, ",
    "rendered FROM new) ",
    "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, expires_at, created_at) ",
    "SELECT id, phone_number_id, recipient, due_at, due_at, expires_at, created_at FROM new"
);

impl Batched for PreparedSend {
    type Written = Enqueued;

    async fn write_all(conn: &mut PgConnection, batch: &[Self]) -> Result<Vec<Enqueued>> {
        // A key is taken with its message or not at all. Without keys, what is written is one
        // statement (the window's read before it sees what a transaction would: each statement
        // reads what is committed when it starts).
        if batch.iter().all(|p| p.m.idempotency.is_none()) {
            return write_sends(conn, batch).await;
        }
        let mut tx = conn.begin().await?;
        let written = write_sends(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(written)
    }
}

/// Judges each send's window and takes its idempotency key (a key in use, and not expired,
/// skips its message), then writes every message kept and its outbox row in one statement.
async fn write_sends(conn: &mut PgConnection, batch: &[PreparedSend]) -> Result<Vec<Enqueued>> {
    let mut results = Vec::with_capacity(batch.len());
    let mut keep: Vec<(&PreparedSend, bool)> = Vec::with_capacity(batch.len());
    let last_inbound = last_inbound_of(conn, batch).await?;
    for p in batch {
        let m = &p.m;
        let opens_conversation = match &m.window {
            Some(w) => {
                let last = last_inbound.get(&(m.phone_number_id.clone(), w.customer.clone()));
                match w.judge(last.copied().map(shared::ts), m.created_at) {
                    Ok(opens) => opens,
                    Err(refused) => {
                        results.push(refused);
                        continue;
                    }
                }
            }
            None => false,
        };
        if let Some(k) = &m.idempotency
            && execute(&mut *conn, shared::TAKE_IDEMPOTENCY_KEY, shared::idempotency_values(p, k)).await? == 0
        {
            let key = (k.api_key_id.as_str(), &k.key);
            let used = first(&mut *conn, shared::SELECT_IDEMPOTENCY_KEY, key, shared::idempotency).await?;
            let used = used.ok_or_else(|| StorageError::Corrupt(format!("idempotency key {} vanished", k.key)))?;
            results.push(Enqueued::KeyUsed(used));
            continue;
        }
        results.push(Enqueued::Stored);
        keep.push((p, opens_conversation));
    }
    if keep.is_empty() {
        return Ok(results);
    }
    let column = |f: fn(&NewOutbound) -> &str| keep.iter().map(|(p, _)| f(&p.m)).collect::<Vec<_>>();
    let time = |f: fn(&NewOutbound) -> Option<Timestamp>| {
        keep.iter().map(|(p, _)| f(&p.m).map(Timestamp::as_millis)).collect::<Vec<_>>()
    };
    sqlx::query(INSERT_SENDS)
        .bind(column(|m| m.id.as_str()))
        .bind(column(|m| m.account_id.as_str()))
        .bind(column(|m| m.phone_number_id.as_str()))
        .bind(column(|m| m.recipient.as_str()))
        .bind(column(|m| m.kind.as_str()))
        .bind(keep.iter().map(|(p, _)| p.content.as_str()).collect::<Vec<_>>())
        .bind(column(shared::initial_status))
        .bind(keep.iter().map(|(p, _)| p.metadata.as_deref()).collect::<Vec<_>>())
        .bind(time(|m| Some(m.created_at)))
        .bind(time(|m| Some(m.due_at)))
        .bind(time(|m| m.send_at))
        .bind(time(|m| m.expires_at))
        .bind(keep.iter().map(|(_, opens)| *opens).collect::<Vec<_>>())
        .bind(keep.iter().map(|(p, _)| p.rendered.as_deref()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(results)
}

/// The latest customer message of each conversation the batch's window checks name, in one
/// round trip.
async fn last_inbound_of(conn: &mut PgConnection, batch: &[PreparedSend]) -> Result<HashMap<(String, String), i64>> {
    let (numbers, customers): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .filter_map(|p| p.m.window.as_ref().map(|w| (p.m.phone_number_id.as_str(), w.customer.as_str())))
        .unzip();
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT c.phone_number_id, c.customer, c.last_inbound_at FROM conversations c \
         JOIN UNNEST($1::text[], $2::text[]) AS w (phone_number_id, customer) \
         ON c.phone_number_id = w.phone_number_id AND c.customer = w.customer",
    )
    .bind(&numbers)
    .bind(&customers)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(number, customer, at)| ((number, customer), at)).collect())
}

impl PgStore {
    /// The heads of one number's queues, or of every number's (see `HeadScan`).
    async fn scan_heads(&self, number: Option<&str>, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
        let mut scan = shared::HeadScan::new(now, limit);
        while !scan.done {
            let (due_at, seq, rows) = scan.next_page();
            let page = match number {
                Some(number) => {
                    let values = (number, now.as_millis(), due_at, seq, rows);
                    all(&self.pool, shared::SELECT_NUMBER_QUEUE_PAGE, values, shared::queue_row).await
                }
                None => {
                    let values = (now.as_millis(), due_at, seq, rows);
                    all(&self.pool, shared::SELECT_QUEUE_PAGE, values, shared::queue_row).await
                }
            };
            scan.page(page?.into_iter());
        }
        Ok(scan.heads())
    }

    /// Gives a leased row back, due at `due_at`; `uncount` takes back the claim's attempt.
    async fn release(
        &self,
        d: &Leased<Dispatch>,
        due_at: Timestamp,
        error: &MessageError,
        uncount: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let values = (due_at.as_millis(), error_text(error), uncount, d.message_id.as_str(), &d.lease);
        let held = execute(&mut *tx, shared::RELEASE, values).await? == 1;
        if held {
            execute(&mut *tx, shared::REQUEUE_SENDING, (d.message_id.as_str(),)).await?;
        }
        tx.commit().await?;
        Ok(held)
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn enqueue_message(&self, message: NewOutbound) -> Result<Enqueued> {
        self.sends.write(PreparedSend::new(message)).await
    }

    async fn find_idempotency_key(
        &self,
        api_key_id: &ApiKeyId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let values = (api_key_id.as_str(), key, now.as_millis());
        first(&self.pool, shared::SELECT_LIVE_IDEMPOTENCY_KEY, values, shared::idempotency).await
    }

    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64> {
        execute(&self.pool, shared::DELETE_EXPIRED_IDEMPOTENCY_KEYS, (now.as_millis(),)).await
    }

    async fn outbox_heads(&self, phone_number_id: &str, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
        self.scan_heads(Some(phone_number_id), now, limit).await
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
        let lease = new_id("lease");
        let mut tx = self.begin().await?;
        let mut claim = sqlx::query(sqlx::AssertSqlSafe(shared::claim_due_sql(ids.len())))
            .bind(&lease)
            .bind(lease_until.as_millis())
            .bind(now.as_millis());
        for id in ids {
            claim = claim.bind(id.as_str());
        }
        if claim.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        execute(&mut *tx, shared::MARK_CLAIMED_SENDING, (now.as_millis(), &lease)).await?;
        let claimed =
            all(&mut *tx, shared::SELECT_CLAIMED, (&lease,), |r| shared::dispatch(r, &lease, lease_until)).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn expire_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<MessageId>> {
        let mut tx = self.begin().await?;
        let values = (now.as_millis(), i64::from(limit));
        let expired: Vec<String> = all(&mut *tx, shared::EXPIRE_OUTBOX, values, |r| r.get(0)).await?;
        let error = error_text(&MessageError::gateway(
            shared::EXPIRED,
            "not sent before its expires_at; failed rather than sent late",
        ));
        let mut events = Vec::new();
        for id in &expired {
            events.extend(end_unsent(&mut tx, self.views.as_ref(), id, "failed", &error, now).await?);
        }
        emit_all(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(expired.into_iter().map(MessageId::from_trusted).collect())
    }

    async fn record_accepted(
        &self,
        d: &Leased<Dispatch>,
        wamid: &str,
        response: &Value,
        at: Timestamp,
    ) -> Result<bool> {
        let (message_id, account_id, at) = (d.message_id.as_str(), d.account_id.as_str(), at.as_millis());
        let mut tx = self.begin().await?;
        lock_wamid(&mut tx, wamid).await?;
        let before = message_history(&mut tx, message_id).await?;
        let updated = execute(&mut *tx, shared::ACCEPT_MESSAGE, (wamid, at, message_id)).await?;
        execute(&mut *tx, shared::DELETE_OUTBOX_ROW, (message_id,)).await?;
        if updated == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let accepted = (account_id, message_id, wamid, at, json_text(response));
        execute(&mut *tx, shared::INSERT_ACCEPTED_STATUS, accepted).await?;
        execute(&mut *tx, shared::ADOPT_STATUSES, (message_id, account_id, wamid)).await?;
        messages::refresh_status(&mut tx, message_id, shared::ts(at)).await?;
        let events = message_changes(&mut tx, self.views.as_ref(), message_id, &before).await?;
        emit_all(&mut tx, &events, shared::ts(at)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_failed(
        &self,
        d: &Leased<Dispatch>,
        error: &MessageError,
        detail: Option<&Value>,
        at: Timestamp,
    ) -> Result<bool> {
        let (message_id, account_id, at) = (d.message_id.as_str(), d.account_id.as_str(), at.as_millis());
        let mut tx = self.begin().await?;
        if execute(&mut *tx, shared::DELETE_LEASED, (message_id, &d.lease)).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let error = error_text(error);
        let before = message_history(&mut tx, message_id).await?;
        execute(&mut *tx, shared::FAIL_UNACCEPTED, (&error, at, message_id)).await?;
        let failed = (account_id, message_id, at, &error, detail.map(json_text));
        execute(&mut *tx, shared::INSERT_FAILED_STATUS, failed).await?;
        let events = message_changes(&mut tx, self.views.as_ref(), message_id, &before).await?;
        emit_all(&mut tx, &events, shared::ts(at)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        if execute(&mut *tx, shared::DELETE_UNCLAIMED, (id.as_str(), at.as_millis())).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let events = end_unsent(&mut tx, self.views.as_ref(), id.as_str(), "canceled", &error_text(reason), at).await?;
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn give_back(&self, dispatch: &Leased<Dispatch>, due_at: Timestamp, error: &MessageError) -> Result<bool> {
        self.release(dispatch, due_at, error, 1).await
    }

    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>> {
        all(&self.pool, shared::SELECT_OUTBOX_DEPTH, (), |r| Ok((r.get(0)?, r.get(1)?))).await
    }

    async fn acquire_number_lease(
        &self,
        phone_number_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let values = (phone_number_id, holder, until.as_millis(), now.as_millis());
        Ok(execute(&self.pool, shared::ACQUIRE_NUMBER_LEASE, values).await? == 1)
    }

    async fn release_number_lease(&self, phone_number_id: &str, holder: &str) -> Result<()> {
        execute(&self.pool, shared::RELEASE_NUMBER_LEASE, (phone_number_id, holder)).await?;
        Ok(())
    }

    async fn announce_dispatcher(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<u64> {
        execute(&self.pool, shared::ANNOUNCE_DISPATCHER, (holder, until.as_millis())).await?;
        execute(&self.pool, shared::FORGET_LAPSED_DISPATCHERS, (now.as_millis(),)).await?;
        let live: i64 = value(&self.pool, shared::COUNT_DISPATCHERS, ()).await?;
        Ok(live.max(1) as u64)
    }

    async fn retire_dispatcher(&self, holder: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        execute(&mut *tx, shared::RELEASE_NUMBER_LEASES, (holder,)).await?;
        execute(&mut *tx, shared::RETIRE_DISPATCHER, (holder,)).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Ends a message that left the outbox unsent (`failed` on expiry, `canceled`), with its
/// history entry; the events to store for it.
async fn end_unsent(
    tx: &mut Tx,
    views: &dyn EventViews,
    id: &str,
    status: &str,
    error: &str,
    at: Timestamp,
) -> Result<Vec<NewEvent>> {
    let before = message_history(tx, id).await?;
    execute(&mut **tx, shared::SET_STATUS, (status, error, at.as_millis(), id)).await?;
    execute(&mut **tx, shared::INSERT_UNSENT_STATUS, (status, at.as_millis(), error, id)).await?;
    message_changes(tx, views, id, &before).await
}

/// The outbox as a queue: heads of any number's recipients, retried with the attempt counted.
#[async_trait]
impl LeasedQueue<Dispatch, MessageError> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Dispatch>>> {
        let heads = self.scan_heads(None, now, limit).await?;
        let ids: Vec<MessageId> = heads.into_iter().map(|h| h.message_id).collect();
        self.claim_messages(&ids, now, lease_until).await
    }

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
        value(&self.pool, shared::COUNT_OUTBOX, ()).await
    }
}
