//! What Meta's webhooks bring: deliveries stored as received by the batch writers, then claimed
//! as a leased queue; the inbound messages they carry; the events of other fields.

use async_trait::async_trait;
use sqlx::PgExecutor;
use sqlx::postgres::PgConnection;
use wagate_domain::contact::counterpart;
use wagate_domain::id::{AccountId, new_id};
use wagate_domain::time::Timestamp;

use super::batch::Batched;
use super::{PgStore, Tx, contacts, rows};
use crate::shared::{self, DeliveryColumns, error_text, json_text, message_cols};
use crate::*;

/// Claims due deliveries; instances skip each other's rows instead of waiting on them.
const CLAIM_DELIVERIES: &str = "UPDATE webhook_deliveries SET lease = $1, available_at = $2, \
    attempts = attempts + 1 WHERE id IN (SELECT id FROM webhook_deliveries \
    WHERE available_at IS NOT NULL AND available_at <= $3 ORDER BY available_at, id LIMIT $4 \
    FOR UPDATE SKIP LOCKED) RETURNING id, account_id, body, received_at, attempts";

impl Batched for NewDelivery {
    type Written = i64;

    /// One statement for the batch. Ids are drawn in the order rows are inserted, the arrays'
    /// order, so the n-th smallest is the n-th delivery's (RETURNING promises no order).
    async fn write_all(conn: &mut PgConnection, batch: &[Self]) -> Result<Vec<i64>> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (account_id, body, received_at, available_at) \
             SELECT account_id, body, received_at, received_at \
             FROM UNNEST($1::text[], $2::bytea[], $3::bigint[]) AS d (account_id, body, received_at) RETURNING id",
        )
        .bind(batch.iter().map(|d| d.account_id.as_ref().map(AccountId::as_str)).collect::<Vec<_>>())
        .bind(batch.iter().map(|d| d.body.as_slice()).collect::<Vec<_>>())
        .bind(batch.iter().map(|d| d.received_at.as_millis()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }
}

/// Stores one inbound message in `tx` (see `Inbound::record_inbounds`); false for a wamid
/// already stored, which changes nothing: not even the contact, whose ids may have changed since.
async fn record_inbound(tx: &mut Tx, m: &NewInbound) -> Result<bool> {
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM messages WHERE wamid = $1").bind(&m.wamid).fetch_optional(&mut **tx).await?;
    if known.is_some() {
        return Ok(false);
    }
    let ids = ContactIds { wa_id: m.wa_id.clone(), user_id: m.user_id.clone() };
    let contact_id = contacts::resolve_contact(tx, &ids, None, m.profile_name.as_deref(), m.received_at, false).await?;
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
    customers.extend(m.wa_id.as_deref().map(counterpart));
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
        contacts::note_in_thread(tx, &m.phone_number_id, &contact_id, m.sent_at, m.received_at).await?;
    }
    Ok(inserted == 1)
}

#[async_trait]
impl Inbound for PgStore {
    async fn insert_delivery(&self, delivery: NewDelivery) -> Result<i64> {
        self.deliveries.write(delivery).await
    }

    async fn finish_deliveries(&self, finished: &[(&Leased<Delivery>, Option<String>)], at: Timestamp) -> Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (d, error) in finished {
            finish(&mut *tx, d, error.as_deref(), at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64> {
        // Processed, or set aside (`give_up`): `available_at` is NULL either way.
        self.delete_older(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE available_at IS NULL AND processed_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn record_inbounds(&self, messages: &[NewInbound]) -> Result<Vec<bool>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut stored = Vec::with_capacity(messages.len());
        for m in messages {
            stored.push(record_inbound(&mut tx, m).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn record_webhook_event(&self, e: &NewWebhookEvent) -> Result<bool> {
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
        .execute(&self.pool)
        .await?;
        Ok(stored.rows_affected() == 1)
    }

    async fn list_webhook_events(
        &self,
        account_id: &AccountId,
        field: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>> {
        sqlx::query(
            "SELECT id, account_id, field, kind, subject, payload, occurred_at, recorded_at \
             FROM webhook_events WHERE account_id = $1 AND ($2 IS NULL OR field = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(account_id.as_str())
        .bind(field)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::webhook_event)
        .collect()
    }
}

/// Marks a delivery processed, or set aside with `error`; false when its lease was lost.
async fn finish(db: impl PgExecutor<'_>, d: &Leased<Delivery>, error: Option<&str>, at: Timestamp) -> Result<bool> {
    let finished = sqlx::query(shared::FINISH_DELIVERY)
        .bind(at.as_millis())
        .bind(error)
        .bind(d.id)
        .bind(&d.lease)
        .execute(db)
        .await?;
    Ok(finished.rows_affected() == 1)
}

/// Webhook deliveries as a queue. A delivery given up on is finished with its error: set aside,
/// kept for the record until deliveries are cleaned up.
#[async_trait]
impl LeasedQueue<Delivery> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Delivery>>> {
        let lease = new_id("lease");
        let claimed: Vec<DeliveryColumns> = sqlx::query_as(CLAIM_DELIVERIES)
            .bind(&lease)
            .bind(lease_until.as_millis())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<_> = claimed.into_iter().map(|c| shared::delivery(c, (&lease, lease_until))).collect();
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn retry(&self, item: &Leased<Delivery>, due_at: Timestamp, error: &str, _at: Timestamp) -> Result<bool> {
        let retried = sqlx::query(
            "UPDATE webhook_deliveries SET available_at = $3, lease = NULL, error = $4 WHERE id = $1 AND lease = $2",
        )
        .bind(item.id)
        .bind(&item.lease)
        .bind(due_at.as_millis())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(retried.rows_affected() == 1)
    }

    async fn give_up(&self, item: &Leased<Delivery>, error: &str, at: Timestamp) -> Result<bool> {
        finish(&self.pool, item, Some(error), at).await
    }

    async fn pending(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE available_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await?)
    }
}
