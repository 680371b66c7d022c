//! Campaigns and their recipients. Lists of recipients are written a row at a time, each
//! statement prepared once, in one of the writer's transactions; lists of customers are read
//! in one statement, the list passed as a JSON array (`json_each`).

use async_trait::async_trait;
use rusqlite::{Transaction, params, params_from_iter};
use serde_json::Value;
use wagate_domain::campaign::RecipientStatus;
use wagate_domain::id::{CampaignId, MessageId};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::emit;
use super::rows::{all, execute, first, value};
use crate::shared::{self, CampaignColumns, RecipientColumns, error_text, recipient_columns};
use crate::*;

const CAMPAIGN_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = ?1)";
const INSERT_RECIPIENT: &str = "INSERT INTO campaign_recipients (campaign_id, recipient, position, params, \
    metadata, state, attempts, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6) \
    ON CONFLICT (campaign_id, recipient) DO NOTHING";
const QUEUE_RECIPIENT: &str = "UPDATE campaign_recipients SET state = 'queued', message_id = ?3, \
    attempts = attempts + 1, updated_at = ?4 WHERE campaign_id = ?1 AND recipient = ?2 AND state = 'pending'";
/// Out of `queued`: to `?3` (`skipped` or `pending`), taking back the attempt when `?6` is 1.
const UNQUEUE_RECIPIENT: &str = "UPDATE campaign_recipients SET state = ?3, skip_reason = ?4, error = ?5, \
    message_id = NULL, attempts = attempts - ?6, updated_at = ?7 \
    WHERE campaign_id = ?1 AND recipient = ?2 AND state = 'queued'";
const REQUEUE_FAILED: &str = "UPDATE campaign_recipients SET state = 'pending', message_id = NULL, updated_at = ?3 \
    WHERE campaign_id = ?1 AND recipient = ?2 AND state = 'queued' \
    AND EXISTS (SELECT 1 FROM messages m WHERE m.id = campaign_recipients.message_id AND m.status = 'failed')";
/// Of the customers in JSON array `?2`, those who wrote to number `?1` since `?3`.
const CUSTOMERS_IN_WINDOW: &str = "SELECT customer FROM conversations WHERE phone_number_id = ?1 \
    AND customer IN (SELECT value FROM json_each(?2)) AND last_inbound_at >= ?3";

/// Adds recipients to campaign `id` after its last, in order: for each, whether it was added
/// (false: the campaign has that number already, or an earlier one of the list had it). None
/// for an unknown campaign.
pub(super) fn add_recipients(
    tx: &Transaction<'_>,
    id: &str,
    rows: &[RecipientColumns],
    at: Timestamp,
) -> Result<Option<Vec<bool>>> {
    if !value::<bool>(tx, CAMPAIGN_EXISTS, [id])? {
        return Ok(None);
    }
    let mut position: i64 = value(tx, shared::SELECT_LAST_POSITION, [id])?;
    let mut insert = tx.prepare_cached(INSERT_RECIPIENT)?;
    let mut added = Vec::with_capacity(rows.len());
    for (to, json, metadata) in rows {
        let new = insert.execute(params![id, to, position + 1, json, metadata, at.as_millis()])? == 1;
        position += i64::from(new);
        added.push(new);
    }
    let duplicates = added.iter().filter(|a| !**a).count() as i64;
    if duplicates > 0 {
        execute(tx, shared::ADD_DUPLICATES, params![duplicates, id])?;
    }
    Ok(Some(added))
}

#[async_trait]
impl Campaigns for SqliteStore {
    async fn save_campaign(&self, campaign: &Campaign, read: Option<i64>, events: &[NewEvent]) -> Result<bool> {
        let (columns, events, at) = (CampaignColumns::new(campaign), events.to_vec(), campaign.updated_at.as_millis());
        self.writer
            .write(move |tx| {
                let (sql, values) = match read {
                    None => (shared::INSERT_CAMPAIGN, columns.insert_values()),
                    Some(read) => (shared::UPDATE_CAMPAIGN, columns.update_values(read)),
                };
                if execute(tx, sql, params_from_iter(values))? != 1 {
                    return Ok(false);
                }
                for event in &events {
                    emit(tx, event, at)?;
                }
                Ok(true)
            })
            .await
    }

    async fn get_campaign(&self, id: &CampaignId) -> Result<Option<Campaign>> {
        self.readers.read(|c| first(c, shared::SELECT_CAMPAIGN, [id.as_str()], |r| shared::campaign(r)))
    }

    async fn list_campaigns(&self, filter: &CampaignFilter, limit: u32) -> Result<Vec<Campaign>> {
        let values = shared::campaign_filter_values(filter, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_CAMPAIGNS, values, |r| shared::campaign(r))).await
    }

    async fn active_campaigns(&self) -> Result<Vec<Campaign>> {
        self.readers.scan(|c| all(c, shared::SELECT_ACTIVE_CAMPAIGNS, [], |r| shared::campaign(r))).await
    }

    async fn lease_campaign(&self, id: &CampaignId, holder: &str, now: Timestamp, until: Timestamp) -> Result<bool> {
        let values = (holder.to_owned(), until.as_millis(), id.as_str().to_owned(), now.as_millis());
        Ok(self.execute(shared::LEASE_CAMPAIGN, values).await? == 1)
    }

    async fn add_recipients(&self, id: &CampaignId, recipients: &[NewRecipient], at: Timestamp) -> Result<Vec<bool>> {
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        // Written out here: the writer is one thread for every request.
        let (id, rows, at) = (id.as_str().to_owned(), recipients.iter().map(recipient_columns).collect::<Vec<_>>(), at);
        self.writer
            .write(move |tx| Ok(add_recipients(tx, &id, &rows, at)?.unwrap_or_else(|| vec![false; rows.len()])))
            .await
    }

    async fn remove_recipient(&self, id: &CampaignId, to: &str) -> Result<RecipientRemoved> {
        let (id, to) = (id.as_str().to_owned(), to.to_owned());
        self.writer
            .write(move |tx| {
                if execute(tx, shared::DELETE_PENDING_RECIPIENT, [&id, &to])? == 1 {
                    return Ok(RecipientRemoved::Removed);
                }
                let state: Option<String> = first(tx, shared::SELECT_RECIPIENT_STATE, [&id, &to], |r| Ok(r.get(0)?))?;
                Ok(if state.is_some() { RecipientRemoved::AlreadyQueued } else { RecipientRemoved::NotFound })
            })
            .await
    }

    async fn pending_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, None, limit);
        let sql = shared::select_recipients(Some(RecipientStatus::Pending));
        self.readers.scan(move |c| all(c, sql, values, |r| shared::recipient(r))).await
    }

    async fn queue_recipients(&self, id: &CampaignId, queued: &[(String, MessageId)], at: Timestamp) -> Result<u64> {
        if queued.is_empty() {
            return Ok(0);
        }
        let (id, queued) = (id.as_str().to_owned(), queued.to_vec());
        self.writer
            .write(move |tx| {
                let mut update = tx.prepare_cached(QUEUE_RECIPIENT)?;
                let mut changed = 0;
                for (to, message_id) in &queued {
                    changed += update.execute(params![id, to, message_id.as_str(), at.as_millis()])? as u64;
                }
                Ok(changed)
            })
            .await
    }

    async fn unsent_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, None, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_UNSENT, values, |r| shared::recipient(r))).await
    }

    async fn unqueue_recipients(&self, id: &CampaignId, unqueued: &[(String, Unqueue)], at: Timestamp) -> Result<()> {
        if unqueued.is_empty() {
            return Ok(());
        }
        let id = id.as_str().to_owned();
        let rows: Vec<_> = unqueued
            .iter()
            .map(|(to, u)| match u {
                Unqueue::Skip { reason, error } => {
                    (to.clone(), "skipped", Some(reason.clone()), Some(error_text(error)), 0_i64)
                }
                Unqueue::GiveBack => (to.clone(), "pending", None, None, 1),
            })
            .collect();
        self.writer
            .write(move |tx| {
                let mut update = tx.prepare_cached(UNQUEUE_RECIPIENT)?;
                for (to, state, reason, error, give_back) in &rows {
                    update.execute(params![id, to, state, reason, error, give_back, at.as_millis()])?;
                }
                Ok(())
            })
            .await
    }

    async fn skip_pending(&self, id: &CampaignId, reason: &str, at: Timestamp) -> Result<u64> {
        let values = (reason.to_owned(), at.as_millis(), id.as_str().to_owned());
        Ok(self.execute(shared::SKIP_PENDING, values).await? as u64)
    }

    async fn requeue_failed(&self, id: &CampaignId, recipients: &[String], at: Timestamp) -> Result<u64> {
        if recipients.is_empty() {
            return Ok(0);
        }
        let (id, recipients) = (id.as_str().to_owned(), recipients.to_vec());
        self.writer
            .write(move |tx| {
                let mut update = tx.prepare_cached(REQUEUE_FAILED)?;
                let mut changed = 0;
                for to in &recipients {
                    changed += update.execute(params![id, to, at.as_millis()])? as u64;
                }
                Ok(changed)
            })
            .await
    }

    async fn count_recipients(&self, id: &CampaignId, replied_within_ms: i64) -> Result<RecipientCounts> {
        let id = id.as_str().to_owned();
        self.readers
            .scan(move |c| {
                let rows = all(c, shared::COUNT_RECIPIENTS, [&id], |r| shared::counted_row(r))?;
                let replied = value(c, shared::COUNT_REPLIED, params![id, replied_within_ms])?;
                shared::recipient_counts(rows, replied)
            })
            .await
    }

    async fn list_recipients(
        &self,
        id: &CampaignId,
        filter: &RecipientFilter,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, filter.after, limit);
        let sql = shared::select_recipients(filter.status);
        self.readers.scan(move |c| all(c, sql, values, |r| shared::recipient(r))).await
    }

    async fn customers_in_window(
        &self,
        phone_number_id: &str,
        customers: &[String],
        since: Timestamp,
    ) -> Result<Vec<String>> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let list = Value::from(customers.to_vec()).to_string();
        let number = phone_number_id.to_owned();
        self.readers
            .scan(move |c| all(c, CUSTOMERS_IN_WINDOW, params![number, list, since.as_millis()], |r| Ok(r.get(0)?)))
            .await
    }

    async fn due_in_outbox(&self, phone_number_id: &str, now: Timestamp) -> Result<i64> {
        let values = (phone_number_id.to_owned(), now.as_millis());
        self.readers.scan(move |c| value(c, shared::COUNT_DUE_IN_OUTBOX, values)).await
    }

    async fn emit_events(&self, events: &[NewEvent], at: Timestamp) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.writer
            .write(move |tx| {
                for event in &events {
                    emit(tx, event, at.as_millis())?;
                }
                Ok(())
            })
            .await
    }
}
