//! What Meta's webhooks bring: deliveries as received (a leased queue), the inbound messages they
//! carry, and the events of other fields.

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use wagate_domain::contact::counterpart;
use wagate_domain::id::{AccountId, new_id};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::contacts::{note_in_thread, resolve_contact};
use super::rows::{self, all, first, value};
use crate::shared::{FINISH_DELIVERY, INSERT_DELIVERY, delivery, error_text, json_text, message_cols};
use crate::*;

const CLAIM_DELIVERIES: &str = "UPDATE webhook_deliveries SET lease = ?1, available_at = ?2, \
    attempts = attempts + 1 WHERE id IN (SELECT id FROM webhook_deliveries \
    WHERE available_at IS NOT NULL AND available_at <= ?3 ORDER BY available_at, id LIMIT ?4) \
    RETURNING id, account_id, body, received_at, attempts";
const INSERT_INBOUND: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", reply_to_wamid) ",
    "VALUES (?1, 'inbound', ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?11, NULL, ?9, ?10, NULL, NULL, ?12) ",
    "ON CONFLICT DO NOTHING"
);
/// Opens (or moves) the 24-hour window of a number with a customer.
const NOTE_LAST_INBOUND: &str = "INSERT INTO conversations (phone_number_id, customer, last_inbound_at) \
    VALUES (?1, ?2, ?3) ON CONFLICT (phone_number_id, customer) DO UPDATE SET last_inbound_at = \
    CASE WHEN excluded.last_inbound_at > conversations.last_inbound_at \
    THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END";

#[async_trait]
impl Inbound for SqliteStore {
    async fn insert_delivery(&self, d: NewDelivery) -> Result<i64> {
        self.writer
            .write(move |tx| {
                let account_id = d.account_id.as_ref().map(AccountId::as_str);
                let params = params![account_id, d.body, d.received_at.as_millis()];
                Ok(tx.prepare_cached(INSERT_DELIVERY)?.query_row(params, |r| r.get(0))?)
            })
            .await
    }

    async fn finish_deliveries(&self, finished: &[(&Leased<Delivery>, Option<String>)], at: Timestamp) -> Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let finished: Vec<(i64, String, Option<String>)> =
            finished.iter().map(|(d, error)| (d.id, d.lease.clone(), error.clone())).collect();
        self.writer
            .write(move |tx| {
                let mut finish = tx.prepare_cached(FINISH_DELIVERY)?;
                for (id, lease, error) in &finished {
                    finish.execute(params![at.as_millis(), error, id, lease])?;
                }
                Ok(())
            })
            .await
    }

    async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let sql = "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
            WHERE available_at IS NULL AND processed_at < ?1 LIMIT ?2)";
        Ok(self.execute(sql, (before.as_millis(), limit)).await? as u64)
    }

    async fn record_inbounds(&self, messages: &[NewInbound]) -> Result<Vec<bool>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // JSON written out here, on the request's task: the writer is one thread for everyone.
        let messages: Vec<(NewInbound, String, Option<String>)> =
            messages.iter().map(|m| (m.clone(), json_text(&m.content), m.error.as_ref().map(error_text))).collect();
        self.writer
            .write(move |tx| {
                messages.iter().map(|(m, content, error)| record_inbound(tx, m, content, error.as_deref())).collect()
            })
            .await
    }

    async fn record_webhook_event(&self, e: &NewWebhookEvent) -> Result<bool> {
        let sql = "INSERT INTO webhook_events \
            (account_id, delivery_id, dedup_key, field, kind, subject, payload, occurred_at, recorded_at) \
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING";
        let params = (
            e.account_id.as_str().to_owned(),
            e.delivery_id,
            e.dedup_key.clone(),
            e.field.clone(),
            e.kind.clone(),
            e.subject.clone(),
            json_text(&e.payload),
            e.occurred_at.as_millis(),
            e.recorded_at.as_millis(),
        );
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn list_webhook_events(
        &self,
        account_id: &AccountId,
        field: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>> {
        let sql = "SELECT id, account_id, field, kind, subject, payload, occurred_at, recorded_at \
            FROM webhook_events WHERE account_id = ?1 AND (?2 IS NULL OR field = ?2) \
            AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4";
        let params = (account_id.as_str().to_owned(), field.map(str::to_owned), before, limit);
        self.readers.scan(move |c| all(c, sql, params, rows::webhook_event)).await
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
                let mut claimed = all(tx, CLAIM_DELIVERIES, params, |r| {
                    let columns = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                    Ok(delivery(columns, (&lease, lease_until)))
                })?;
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            })
            .await
    }

    async fn retry(&self, item: &Leased<Delivery>, due_at: Timestamp, error: &str, _at: Timestamp) -> Result<bool> {
        let sql =
            "UPDATE webhook_deliveries SET available_at = ?3, lease = NULL, error = ?4 WHERE id = ?1 AND lease = ?2";
        let params = (item.id, item.lease.clone(), due_at.as_millis(), error.to_owned());
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn give_up(&self, item: &Leased<Delivery>, error: &str, at: Timestamp) -> Result<bool> {
        let params = (at.as_millis(), error.to_owned(), item.id, item.lease.clone());
        Ok(self.execute(FINISH_DELIVERY, params).await? == 1)
    }

    async fn pending(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM webhook_deliveries WHERE available_at IS NOT NULL";
        self.readers.scan(move |c| value(c, sql, [])).await
    }
}

/// Stores one inbound message (see `Inbound::record_inbounds`); false for a wamid already
/// stored, which changes nothing: not even the contact, whose ids may have changed since.
fn record_inbound(tx: &Transaction<'_>, m: &NewInbound, content: &str, error: Option<&str>) -> Result<bool> {
    let known: Option<String> = first(tx, "SELECT id FROM messages WHERE wamid = ?1", [&m.wamid], |r| Ok(r.get(0)?))?;
    if known.is_some() {
        return Ok(false);
    }
    // The contact by wa_id and user_id, linked or merged (see `contacts`).
    let ids = ContactIds { wa_id: m.wa_id.clone(), user_id: m.user_id.clone() };
    let contact_id = resolve_contact(tx, &ids, None, m.profile_name.as_deref(), m.received_at, false)?;
    let inserted = tx.prepare_cached(INSERT_INBOUND)?.execute(params![
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id,
        contact_id,
        m.from,
        m.kind,
        content,
        m.wamid,
        m.sent_at.as_millis(),
        m.received_at.as_millis(),
        error,
        m.reply_to_wamid,
    ])?;
    // The window opens for each id a send may name the customer by.
    let mut customers = vec![m.from.clone()];
    customers.extend(m.wa_id.as_deref().map(counterpart));
    customers.extend(m.user_id.clone());
    customers.sort();
    customers.dedup();
    let mut note = tx.prepare_cached(NOTE_LAST_INBOUND)?;
    for customer in customers.iter().filter(|c| !c.is_empty()) {
        note.execute(params![m.phone_number_id, customer, m.sent_at.as_millis()])?;
    }
    if inserted == 1 {
        note_in_thread(tx, &m.phone_number_id, &contact_id, m.sent_at, m.received_at)?;
    }
    Ok(inserted == 1)
}
