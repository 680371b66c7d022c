//! Campaigns and their recipients. Lists of recipients are written in one statement each, one
//! array a column (`UNNEST`); adding recipients holds the campaign's row, so that additions
//! made at once take positions one after the other.

use std::collections::HashSet;

use async_trait::async_trait;
use wagate_domain::campaign::RecipientStatus;
use wagate_domain::id::{CampaignId, MessageId};
use wagate_domain::time::Timestamp;

use super::events::emit_all;
use super::{PgStore, Tx, all, execute, first, value};
use crate::shared::{self, CampaignColumns, Columns, RecipientColumns, bind_params, error_text, recipient_columns};
use crate::*;

const LOCK_CAMPAIGN: &str = "SELECT id FROM campaigns WHERE id = $1 FOR UPDATE";
/// Of the numbers in `$2`, those campaign `$1` has. A join, not `recipient = ANY($2)`: without
/// statistics (a new table, autovacuum off) the planner checks that against every recipient of
/// the campaign, an element at a time.
const SELECT_KNOWN_RECIPIENTS: &str = "SELECT r.recipient FROM UNNEST($2::text[]) AS n (recipient) \
    JOIN campaign_recipients r ON r.campaign_id = $1 AND r.recipient = n.recipient";
const INSERT_RECIPIENTS: &str = "INSERT INTO campaign_recipients (campaign_id, recipient, position, params, \
    metadata, state, attempts, created_at, updated_at) SELECT $1, recipient, position, params, metadata, 'pending', \
    0, $2, $2 FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[]) AS n (recipient, position, params, metadata)";
const QUEUE_RECIPIENTS: &str = "UPDATE campaign_recipients r SET state = 'queued', message_id = q.message_id, \
    attempts = r.attempts + 1, updated_at = $1 FROM UNNEST($2::text[], $3::text[]) AS q (recipient, message_id) \
    WHERE r.campaign_id = $4 AND r.recipient = q.recipient AND r.state = 'pending'";
/// Out of `queued`: to each row's state (`skipped` or `pending`), taking back the attempt when
/// its `give_back` is 1.
const UNQUEUE_RECIPIENTS: &str = "UPDATE campaign_recipients r SET state = u.state, skip_reason = u.skip_reason, \
    error = u.error, message_id = NULL, attempts = r.attempts - u.give_back, updated_at = $1 \
    FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
    AS u (recipient, state, skip_reason, error, give_back) \
    WHERE r.campaign_id = $7 AND r.recipient = u.recipient AND r.state = 'queued'";
const REQUEUE_FAILED: &str = "UPDATE campaign_recipients r SET state = 'pending', message_id = NULL, updated_at = $1 \
    FROM messages m WHERE r.campaign_id = $2 AND r.recipient = ANY($3) AND r.state = 'queued' \
    AND m.id = r.message_id AND m.status = 'failed'";
const CUSTOMERS_IN_WINDOW: &str = "SELECT customer FROM conversations WHERE phone_number_id = $1 \
    AND customer = ANY($2) AND last_inbound_at >= $3";

/// Adds recipients to campaign `id` after its last, in order: for each, whether it was added
/// (false: the campaign has that number already, or an earlier one of the list had it). None
/// for an unknown campaign. Holds the campaign's row, so that additions made at once take
/// positions one after the other.
pub(super) async fn add_recipients(
    tx: &mut Tx,
    id: &str,
    rows: &[RecipientColumns],
    at: Timestamp,
) -> Result<Option<Vec<bool>>> {
    if first(&mut **tx, LOCK_CAMPAIGN, (id,), |r| r.get::<String>(0)).await?.is_none() {
        return Ok(None);
    }
    let last: i64 = value(&mut **tx, shared::SELECT_LAST_POSITION, (id,)).await?;
    let numbers: Vec<&str> = rows.iter().map(|(to, _, _)| to.as_str()).collect();
    let known: Vec<String> =
        sqlx::query_scalar(SELECT_KNOWN_RECIPIENTS).bind(id).bind(&numbers).fetch_all(&mut **tx).await?;
    let mut seen: HashSet<&str> = known.iter().map(String::as_str).collect();
    let added: Vec<bool> = numbers.iter().map(|to| seen.insert(*to)).collect();
    let new: Vec<_> = rows.iter().zip(&added).filter(|(_, new)| **new).map(|(row, _)| row).collect();
    if !new.is_empty() {
        sqlx::query(INSERT_RECIPIENTS)
            .bind(id)
            .bind(at.as_millis())
            .bind(new.iter().map(|(to, _, _)| to.as_str()).collect::<Vec<_>>())
            .bind((1..=new.len() as i64).map(|n| last + n).collect::<Vec<_>>())
            .bind(new.iter().map(|(_, params, _)| params.as_deref()).collect::<Vec<_>>())
            .bind(new.iter().map(|(_, _, metadata)| metadata.as_deref()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    let duplicates = (rows.len() - new.len()) as i64;
    if duplicates > 0 {
        execute(&mut **tx, shared::ADD_DUPLICATES, (duplicates, id)).await?;
    }
    Ok(Some(added))
}

#[async_trait]
impl Campaigns for PgStore {
    async fn save_campaign(&self, campaign: &Campaign, read: Option<i64>, events: &[NewEvent]) -> Result<bool> {
        let columns = CampaignColumns::new(campaign);
        let (sql, values) = match read {
            None => (shared::INSERT_CAMPAIGN, columns.insert_values()),
            Some(read) => (shared::UPDATE_CAMPAIGN, columns.update_values(read)),
        };
        let mut tx = self.begin().await?;
        if bind_params(sqlx::query(sql), &values).execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        emit_all(&mut tx, events, campaign.updated_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_campaign(&self, id: &CampaignId) -> Result<Option<Campaign>> {
        first(&self.pool, shared::SELECT_CAMPAIGN, (id.as_str(),), shared::campaign).await
    }

    async fn list_campaigns(&self, filter: &CampaignFilter, limit: u32) -> Result<Vec<Campaign>> {
        all(&self.pool, shared::SELECT_CAMPAIGNS, shared::campaign_filter_values(filter, limit), shared::campaign).await
    }

    async fn active_campaigns(&self) -> Result<Vec<Campaign>> {
        all(&self.pool, shared::SELECT_ACTIVE_CAMPAIGNS, (), shared::campaign).await
    }

    async fn lease_campaign(&self, id: &CampaignId, holder: &str, now: Timestamp, until: Timestamp) -> Result<bool> {
        let values = (holder, until.as_millis(), id.as_str(), now.as_millis());
        Ok(execute(&self.pool, shared::LEASE_CAMPAIGN, values).await? == 1)
    }

    async fn add_recipients(&self, id: &CampaignId, recipients: &[NewRecipient], at: Timestamp) -> Result<Vec<bool>> {
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<_> = recipients.iter().map(recipient_columns).collect();
        let mut tx = self.begin().await?;
        let Some(added) = add_recipients(&mut tx, id.as_str(), &rows, at).await? else {
            tx.rollback().await?;
            return Ok(vec![false; rows.len()]);
        };
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_recipient(&self, id: &CampaignId, to: &str) -> Result<RecipientRemoved> {
        let mut tx = self.begin().await?;
        let removed = if execute(&mut *tx, shared::DELETE_PENDING_RECIPIENT, (id.as_str(), to)).await? == 1 {
            RecipientRemoved::Removed
        } else if first(&mut *tx, shared::SELECT_RECIPIENT_STATE, (id.as_str(), to), |r| r.get::<String>(0))
            .await?
            .is_some()
        {
            RecipientRemoved::AlreadyQueued
        } else {
            RecipientRemoved::NotFound
        };
        tx.commit().await?;
        Ok(removed)
    }

    async fn pending_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, None, limit);
        let sql = shared::select_recipients(Some(RecipientStatus::Pending));
        all(&self.pool, sql, values, shared::recipient).await
    }

    async fn queue_recipients(&self, id: &CampaignId, queued: &[(String, MessageId)], at: Timestamp) -> Result<u64> {
        if queued.is_empty() {
            return Ok(0);
        }
        let changed = sqlx::query(QUEUE_RECIPIENTS)
            .bind(at.as_millis())
            .bind(queued.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>())
            .bind(queued.iter().map(|(_, message_id)| message_id.as_str()).collect::<Vec<_>>())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(changed.rows_affected())
    }

    async fn unsent_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, None, limit);
        all(&self.pool, shared::SELECT_UNSENT, values, shared::recipient).await
    }

    async fn unqueue_recipients(&self, id: &CampaignId, unqueued: &[(String, Unqueue)], at: Timestamp) -> Result<()> {
        if unqueued.is_empty() {
            return Ok(());
        }
        let (mut to, mut state, mut reason, mut error, mut give_back) = (vec![], vec![], vec![], vec![], vec![]);
        for (recipient, u) in unqueued {
            to.push(recipient.as_str());
            match u {
                Unqueue::Skip { reason: r, error: e } => {
                    state.push("skipped");
                    reason.push(Some(r.as_str()));
                    error.push(Some(error_text(e)));
                    give_back.push(0_i64);
                }
                Unqueue::GiveBack => {
                    state.push("pending");
                    reason.push(None);
                    error.push(None);
                    give_back.push(1);
                }
            }
        }
        sqlx::query(UNQUEUE_RECIPIENTS)
            .bind(at.as_millis())
            .bind(to)
            .bind(state)
            .bind(reason)
            .bind(error)
            .bind(give_back)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn skip_pending(&self, id: &CampaignId, reason: &str, at: Timestamp) -> Result<u64> {
        execute(&self.pool, shared::SKIP_PENDING, (reason, at.as_millis(), id.as_str())).await
    }

    async fn requeue_failed(&self, id: &CampaignId, recipients: &[String], at: Timestamp) -> Result<u64> {
        if recipients.is_empty() {
            return Ok(0);
        }
        let changed = sqlx::query(REQUEUE_FAILED)
            .bind(at.as_millis())
            .bind(id.as_str())
            .bind(recipients)
            .execute(&self.pool)
            .await?;
        Ok(changed.rows_affected())
    }

    async fn count_recipients(&self, id: &CampaignId, replied_within_ms: i64) -> Result<RecipientCounts> {
        let rows = all(&self.pool, shared::COUNT_RECIPIENTS, (id.as_str(),), shared::counted_row).await?;
        let replied = value(&self.pool, shared::COUNT_REPLIED, (id.as_str(), replied_within_ms)).await?;
        shared::recipient_counts(rows, replied)
    }

    async fn list_recipients(
        &self,
        id: &CampaignId,
        filter: &RecipientFilter,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>> {
        let values = shared::recipient_page_values(id, filter.after, limit);
        all(&self.pool, shared::select_recipients(filter.status), values, shared::recipient).await
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
        let found = sqlx::query_scalar(CUSTOMERS_IN_WINDOW)
            .bind(phone_number_id)
            .bind(customers)
            .bind(since.as_millis())
            .fetch_all(&self.pool)
            .await?;
        Ok(found)
    }

    async fn due_in_outbox(&self, phone_number_id: &str, now: Timestamp) -> Result<i64> {
        value(&self.pool, shared::COUNT_DUE_IN_OUTBOX, (phone_number_id, now.as_millis())).await
    }

    async fn emit_events(&self, events: &[NewEvent], at: Timestamp) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        emit_all(&mut tx, events, at).await?;
        tx.commit().await?;
        Ok(())
    }
}
