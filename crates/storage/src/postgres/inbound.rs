//! What Meta's webhooks bring: deliveries stored as received by the batch writers, then claimed
//! as a leased queue; the inbound messages they carry; the events of other fields.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use wagate_domain::event::EventType;
use wagate_domain::id::{AccountId, new_id};
use wagate_domain::time::Timestamp;

use super::batch::Batched;
use super::events::emit_all;
use super::{PgStore, Tx, all, contacts, execute, first, lease_only, value};
use crate::shared::{self, Columns, Seen, claim_deliveries, error_text, json_text};
use crate::*;

/// Instances skip each other's rows instead of waiting on them.
const CLAIM_DELIVERIES: &str = claim_deliveries!(" FOR UPDATE SKIP LOCKED");

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
async fn record_inbound(
    tx: &mut Tx,
    views: &dyn EventViews,
    m: &NewInbound,
    events: &mut Vec<NewEvent>,
) -> Result<bool> {
    let known: Option<String> = first(&mut **tx, shared::SELECT_MESSAGE_ID_BY_WAMID, (&m.wamid,), |r| r.get(0)).await?;
    if known.is_some() {
        return Ok(false);
    }
    let ids = ContactIds { wa_id: m.wa_id.clone(), user_id: m.user_id.clone() };
    let seen = Seen::Message { profile_name: m.profile_name.as_deref() };
    let contact_id = contacts::resolve_contact(tx, views, &ids, seen, m.received_at, events).await?;
    let (content, error) = (json_text(&m.content), m.error.as_ref().map(error_text));
    let values = shared::inbound_values(m, &contact_id, &content, error.as_deref());
    let inserted = execute(&mut **tx, shared::INSERT_INBOUND, values).await? == 1;
    for customer in shared::window_customers(m) {
        execute(&mut **tx, shared::NOTE_LAST_INBOUND, (&m.phone_number_id, customer, m.sent_at.as_millis())).await?;
    }
    if inserted {
        contacts::note_in_thread(tx, m, &contact_id).await?;
    }
    Ok(inserted)
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
        // One statement for the batch: those whose lease is still held are done.
        let mut tx = self.begin().await?;
        let done: Vec<i64> = sqlx::query_scalar(
            "UPDATE webhook_deliveries d SET available_at = NULL, lease = NULL, processed_at = $1, error = u.error \
             FROM UNNEST($2::bigint[], $3::text[], $4::text[]) AS u (id, lease, error) \
             WHERE d.id = u.id AND d.lease = u.lease RETURNING d.id",
        )
        .bind(at.as_millis())
        .bind(finished.iter().map(|(d, _)| d.id).collect::<Vec<_>>())
        .bind(finished.iter().map(|(d, _)| d.lease.as_str()).collect::<Vec<_>>())
        .bind(finished.iter().map(|(_, error)| error.as_deref()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        if !done.is_empty() && value::<i64>(&mut *tx, shared::COUNT_META_ENDPOINTS, ()).await? > 0 {
            let events: Vec<NewEvent> = finished
                .iter()
                .filter(|(d, _)| done.contains(&d.id))
                .map(|(d, _)| MetaWebhook::event(&d.item))
                .collect();
            emit_all(&mut tx, &events, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.delete_older(shared::DELETE_PROCESSED_DELIVERIES, before, limit).await
    }

    async fn record_inbounds(&self, messages: &[NewInbound]) -> Result<Vec<bool>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let (mut stored, mut events) = (Vec::with_capacity(messages.len()), Vec::new());
        for m in messages {
            let inserted = record_inbound(&mut tx, self.views.as_ref(), m, &mut events).await?;
            // Just written: no status yet, so no history to read.
            let written = if inserted {
                first(&mut *tx, shared::SELECT_MESSAGE, (m.id.as_str(),), shared::message).await?
            } else {
                None
            };
            if let Some(message) = written {
                let data = self.views.message(&message, &[]);
                let number = Some(m.phone_number_id.clone());
                events.push(NewEvent { kind: EventType::MessageReceived, phone_number_id: number, data });
            }
            stored.push(inserted);
        }
        emit_all(&mut tx, &events, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn record_webhook_event(&self, e: &NewWebhookEvent) -> Result<bool> {
        let payload = json_text(&e.payload);
        let mut tx = self.begin().await?;
        let values = shared::webhook_event_values(e, &payload);
        let Some(id) = first(&mut *tx, shared::INSERT_WEBHOOK_EVENT, values, |r| r.get::<i64>(0)).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        emit_all(&mut tx, &[shared::account_event(self.views.as_ref(), id, e)], e.recorded_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_webhook_events(&self, filter: &WebhookEventFilter, limit: u32) -> Result<Vec<WebhookEvent>> {
        let values = shared::webhook_event_filter_values(filter, limit);
        all(&self.pool, shared::SELECT_WEBHOOK_EVENTS, values, shared::webhook_event).await
    }
}

/// Webhook deliveries as a queue. A delivery given up on is finished with its error: set aside,
/// kept for the record until deliveries are cleaned up.
#[async_trait]
impl LeasedQueue<Delivery> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Delivery>>> {
        let lease = new_id("lease");
        let values = (&lease, lease_until.as_millis(), now.as_millis(), i64::from(limit));
        let mut tx = self.begin().await?;
        lease_only(&mut tx).await?;
        let mut claimed = all(&mut *tx, CLAIM_DELIVERIES, values, |r| shared::delivery(r, &lease, lease_until)).await?;
        tx.commit().await?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    async fn retry(&self, item: &Leased<Delivery>, due_at: Timestamp, error: &str, _at: Timestamp) -> Result<bool> {
        let values = (due_at.as_millis(), error, item.id, &item.lease);
        Ok(execute(&self.pool, shared::RETRY_DELIVERY, values).await? == 1)
    }

    async fn give_up(&self, item: &Leased<Delivery>, error: &str, at: Timestamp) -> Result<bool> {
        let values = (at.as_millis(), error, item.id, &item.lease);
        Ok(execute(&self.pool, shared::FINISH_DELIVERY, values).await? == 1)
    }

    async fn pending(&self) -> Result<i64> {
        value(&self.pool, shared::COUNT_PENDING_DELIVERIES, ()).await
    }
}
