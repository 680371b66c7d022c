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
use super::{PgStore, Tx, lock_wamid, messages, rows};
use crate::shared::{self, ClaimedColumns, PreparedSend, error_text, json_text, message_cols};
use crate::*;

/// A batch's new messages and their outbox rows, in one statement: one array a column. `seq`,
/// the acceptance order that orders a recipient's messages, is given in the arrays' order.
const INSERT_SENDS: &str = concat!(
    "WITH new AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], ",
    "$7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::boolean[]) ",
    "AS n (id, account_id, phone_number_id, recipient, kind, content, status, metadata, created_at, due_at, ",
    "send_at, expires_at, opens_conversation)), ",
    "m AS (INSERT INTO messages (",
    message_cols!(),
    ", opens_conversation) SELECT id, 'outbound', account_id, phone_number_id, NULL, recipient, kind, content, ",
    "status, NULL, NULL, metadata, created_at, created_at, send_at, expires_at, opens_conversation FROM new) ",
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
        if let Some(k) = &m.idempotency {
            let taken = sqlx::query(shared::TAKE_IDEMPOTENCY_KEY)
                .bind(k.api_key_id.as_str())
                .bind(&k.key)
                .bind(&k.request_hash)
                .bind(m.id.as_str())
                .bind(&p.response)
                .bind(m.created_at.as_millis())
                .bind(k.expires_at.as_millis())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if taken == 0 {
                let row = sqlx::query(shared::SELECT_IDEMPOTENCY_KEY)
                    .bind(k.api_key_id.as_str())
                    .bind(&k.key)
                    .fetch_one(&mut *conn)
                    .await?;
                results.push(Enqueued::KeyUsed(rows::idempotency(&row)?));
                continue;
            }
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

/// The heads of one number's queues, or of every number's (see `HeadScan`).
async fn scan_heads(
    store: &PgStore,
    phone_number_id: Option<&str>,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<OutboxHead>> {
    let mut scan = shared::HeadScan::new(now, limit);
    while !scan.done {
        let (due_at, seq, rows) = scan.next_page();
        let page = match phone_number_id {
            Some(number) => sqlx::query(shared::SELECT_NUMBER_QUEUE_PAGE).bind(number),
            None => sqlx::query(shared::SELECT_QUEUE_PAGE),
        };
        let rows = page.bind(now.as_millis()).bind(due_at).bind(seq).bind(rows).fetch_all(&store.pool).await?;
        scan.page(rows.iter().map(rows::queue_row).collect::<Result<Vec<_>>>()?.into_iter());
    }
    Ok(scan.heads())
}

/// Marks the rows claimed under `lease` as being sent and reads what sending needs.
async fn take_claimed(
    tx: &mut Tx,
    lease: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<Vec<Leased<Dispatch>>> {
    sqlx::query(shared::MARK_CLAIMED_SENDING).bind(now.as_millis()).bind(lease).execute(&mut **tx).await?;
    let claimed: Vec<ClaimedColumns> = sqlx::query_as(shared::SELECT_CLAIMED).bind(lease).fetch_all(&mut **tx).await?;
    claimed.into_iter().map(|columns| shared::dispatch(columns, (lease, lease_until))).collect()
}

impl PgStore {
    /// Gives a leased row back, due at `due_at`; `uncount` takes back the claim's attempt.
    async fn release(
        &self,
        d: &Leased<Dispatch>,
        due_at: Timestamp,
        error: &MessageError,
        uncount: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
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
        sqlx::query(shared::SELECT_LIVE_IDEMPOTENCY_KEY)
            .bind(api_key_id.as_str())
            .bind(key)
            .bind(now.as_millis())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::idempotency)
            .transpose()
    }

    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn outbox_heads(&self, phone_number_id: &str, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>> {
        scan_heads(self, Some(phone_number_id), now, limit).await
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
        let dispatches = take_claimed(&mut tx, &lease, lease_until, now).await?;
        tx.commit().await?;
        Ok(dispatches)
    }

    async fn expire_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<MessageId>> {
        let mut tx = self.begin().await?;
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
            end_unsent(&mut tx, id, "failed", &error, now).await?;
        }
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
        let mut tx = self.begin().await?;
        lock_wamid(&mut tx, wamid).await?;
        let updated = sqlx::query(shared::ACCEPT_MESSAGE)
            .bind(wamid)
            .bind(at.as_millis())
            .bind(d.message_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(shared::DELETE_OUTBOX_ROW).bind(d.message_id.as_str()).execute(&mut *tx).await?;
        if updated == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query(shared::INSERT_ACCEPTED_STATUS)
            .bind(d.account_id.as_str())
            .bind(d.message_id.as_str())
            .bind(wamid)
            .bind(at.as_millis())
            .bind(json_text(response))
            .execute(&mut *tx)
            .await?;
        sqlx::query(shared::ADOPT_STATUSES)
            .bind(d.message_id.as_str())
            .bind(d.account_id.as_str())
            .bind(wamid)
            .execute(&mut *tx)
            .await?;
        messages::refresh_status(&mut tx, d.message_id.as_str(), at).await?;
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
        let mut tx = self.begin().await?;
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
            "UPDATE messages SET status = 'failed', error = $2, updated_at = $3 WHERE id = $1 AND wamid IS NULL",
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

    async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        // A row whose lease lapsed is as unclaimed as one never claimed.
        let removed = sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND (lease IS NULL OR available_at <= $2)")
            .bind(id.as_str())
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        end_unsent(&mut tx, id.as_str(), "canceled", &error_text(reason), at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn give_back(&self, dispatch: &Leased<Dispatch>, due_at: Timestamp, error: &MessageError) -> Result<bool> {
        self.release(dispatch, due_at, error, 1).await
    }

    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT phone_number_id, COUNT(*) AS depth FROM outbox GROUP BY phone_number_id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn acquire_number_lease(
        &self,
        phone_number_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
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
        .execute(&self.pool)
        .await?;
        Ok(held.rows_affected() == 1)
    }

    async fn release_number_leases(&self, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM number_leases WHERE holder = $1").bind(holder).execute(&self.pool).await?;
        Ok(())
    }
}

/// Ends a message that left the outbox unsent (`failed` on expiry, `canceled`), with its history entry.
async fn end_unsent(tx: &mut Tx, id: &str, status: &str, error: &str, at: Timestamp) -> Result<()> {
    sqlx::query("UPDATE messages SET status = $2, error = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(at.as_millis())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, error, recorded_at) \
         SELECT account_id, id, $2, $3, $4, $3 FROM messages WHERE id = $1 ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(status)
    .bind(at.as_millis())
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The outbox as a queue: heads of any number's recipients, retried with the attempt counted.
#[async_trait]
impl LeasedQueue<Dispatch, MessageError> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Dispatch>>> {
        let heads = scan_heads(self, None, now, limit).await?;
        let ids: Vec<MessageId> = heads.into_iter().map(|h| h.message_id).collect();
        self.claim_messages(&ids, now, lease_until).await
    }

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
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(&self.pool).await?)
    }
}
