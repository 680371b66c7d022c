//! What Meta's webhooks bring: deliveries as received (a leased queue), the inbound messages they
//! carry, and the events of other fields.

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use wagate_domain::event::EventType;
use wagate_domain::id::{AccountId, new_id};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::contacts::{note_in_thread, resolve_contact};
use super::events::emit;
use super::rows::{all, execute, first, value};
use crate::shared::{self, Seen, claim_deliveries, error_text, json_text};
use crate::*;

const CLAIM_DELIVERIES: &str = claim_deliveries!("");

#[async_trait]
impl Inbound for SqliteStore {
    async fn insert_delivery(&self, d: NewDelivery) -> Result<i64> {
        self.writer
            .write(move |tx| {
                let account_id = d.account_id.as_ref().map(AccountId::as_str);
                value(tx, shared::INSERT_DELIVERY, params![account_id, d.body, d.received_at.as_millis()])
            })
            .await
    }

    async fn finish_deliveries(&self, finished: &[(&Leased<Delivery>, Option<String>)], at: Timestamp) -> Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let finished: Vec<(Leased<Delivery>, Option<String>)> =
            finished.iter().map(|(d, error)| ((*d).clone(), error.clone())).collect();
        self.writer
            .write(move |tx| {
                let forward = value::<i64>(tx, shared::COUNT_META_ENDPOINTS, [])? > 0;
                let mut finish = tx.prepare_cached(shared::FINISH_DELIVERY)?;
                for (d, error) in &finished {
                    let done = finish.execute(params![at.as_millis(), error, d.id, d.lease])? == 1;
                    if done && forward {
                        emit(tx, &MetaWebhook::event(&d.item), at.as_millis())?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64> {
        Ok(self.execute(shared::DELETE_PROCESSED_DELIVERIES, (before.as_millis(), limit)).await? as u64)
    }

    async fn record_inbounds(&self, messages: &[NewInbound]) -> Result<Vec<bool>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // JSON written out here, on the request's task: the writer is one thread for everyone.
        let messages: Vec<(NewInbound, String, Option<String>)> =
            messages.iter().map(|m| (m.clone(), json_text(&m.content), m.error.as_ref().map(error_text))).collect();
        let views = self.views.clone();
        self.writer
            .write(move |tx| {
                messages
                    .iter()
                    .map(|(m, content, error)| record_inbound(tx, views.as_ref(), m, content, error.as_deref()))
                    .collect()
            })
            .await
    }

    async fn record_webhook_event(&self, e: &NewWebhookEvent) -> Result<bool> {
        let (e, payload, views) = (e.clone(), json_text(&e.payload), self.views.clone());
        self.writer
            .write(move |tx| {
                let values = shared::webhook_event_values(&e, &payload);
                let Some(id) = first(tx, shared::INSERT_WEBHOOK_EVENT, values, |r| Ok(r.get::<_, i64>(0)?))? else {
                    return Ok(false);
                };
                emit(tx, &shared::account_event(views.as_ref(), id, &e), e.recorded_at.as_millis())?;
                Ok(true)
            })
            .await
    }

    async fn list_webhook_events(&self, filter: &WebhookEventFilter, limit: u32) -> Result<Vec<WebhookEvent>> {
        let values = shared::webhook_event_filter_values(filter, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_WEBHOOK_EVENTS, values, |r| shared::webhook_event(r))).await
    }
}

/// Webhook deliveries waiting to be processed. An item given up on is set aside with its error
/// (processed, and no longer due), as `finish_deliveries` does.
#[async_trait]
impl LeasedQueue<Delivery> for SqliteStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Delivery>>> {
        let lease = new_id("lease");
        self.writer
            .write(move |tx| {
                let params = params![lease, lease_until.as_millis(), now.as_millis(), limit];
                let mut claimed = all(tx, CLAIM_DELIVERIES, params, |r| shared::delivery(r, &lease, lease_until))?;
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            })
            .await
    }

    async fn retry(&self, item: &Leased<Delivery>, due_at: Timestamp, error: &str, _at: Timestamp) -> Result<bool> {
        let params = (due_at.as_millis(), error.to_owned(), item.id, item.lease.clone());
        Ok(self.execute(shared::RETRY_DELIVERY, params).await? == 1)
    }

    async fn give_up(&self, item: &Leased<Delivery>, error: &str, at: Timestamp) -> Result<bool> {
        let params = (at.as_millis(), error.to_owned(), item.id, item.lease.clone());
        Ok(self.execute(shared::FINISH_DELIVERY, params).await? == 1)
    }

    async fn pending(&self) -> Result<i64> {
        self.readers.scan(move |c| value(c, shared::COUNT_PENDING_DELIVERIES, [])).await
    }
}

/// Stores one inbound message (see `Inbound::record_inbounds`) with its `message.received`
/// event; false for a wamid already stored, which changes nothing: not even the contact, whose
/// ids may have changed since.
fn record_inbound(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    m: &NewInbound,
    content: &str,
    error: Option<&str>,
) -> Result<bool> {
    let known: Option<String> = first(tx, shared::SELECT_MESSAGE_ID_BY_WAMID, [&m.wamid], |r| Ok(r.get(0)?))?;
    if known.is_some() {
        return Ok(false);
    }
    // The contact by wa_id and user_id, linked or merged (see `contacts`).
    let ids = ContactIds { wa_id: m.wa_id.clone(), user_id: m.user_id.clone() };
    let contact_id =
        resolve_contact(tx, views, &ids, Seen::Message { profile_name: m.profile_name.as_deref() }, m.received_at)?;
    let inserted = execute(tx, shared::INSERT_INBOUND, shared::inbound_values(m, &contact_id, content, error))? == 1;
    let mut note = tx.prepare_cached(shared::NOTE_LAST_INBOUND)?;
    for customer in shared::window_customers(m) {
        note.execute(params![m.phone_number_id, customer, m.sent_at.as_millis()])?;
    }
    if inserted {
        note_in_thread(tx, m, &contact_id)?;
        // Just written: no status yet, so no history to read.
        if let Some(message) = first(tx, shared::SELECT_MESSAGE, [m.id.as_str()], |r| shared::message(r))? {
            let data = views.message(&message, &[]);
            let event =
                NewEvent { kind: EventType::MessageReceived, phone_number_id: Some(m.phone_number_id.clone()), data };
            emit(tx, &event, Timestamp::now().as_millis())?;
        }
    }
    Ok(inserted)
}
