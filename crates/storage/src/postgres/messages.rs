//! Messages of both directions and their statuses: a message's status is folded from its
//! delivery reports by the domain (`shared::current_status`), whatever order they came in.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use wagate_domain::id::MessageId;
use wagate_domain::time::Timestamp;

use super::events::{emit_all, history_before, message_changes};
use super::{PgStore, Tx, all, execute, first, lock_wamid};
use crate::shared::{self, Columns, json_text};
use crate::*;

/// Recomputes a message's current status and error from its delivery reports.
pub(super) async fn refresh_status(tx: &mut Tx, message_id: &str, at: Timestamp) -> Result<()> {
    let reports = all(&mut **tx, shared::SELECT_REPORTS, (message_id,), shared::report).await?;
    let (status, error) = shared::current_status(reports.into_iter().flatten().collect());
    execute(&mut **tx, shared::SET_STATUS, (status, error, at.as_millis(), message_id)).await?;
    Ok(())
}

#[async_trait]
impl Messages for PgStore {
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>> {
        first(&self.pool, shared::SELECT_MESSAGE, (id.as_str(),), shared::message).await
    }

    async fn find_message_by_wamid(&self, wamid: &str) -> Result<Option<Message>> {
        first(&self.pool, shared::SELECT_MESSAGE_BY_WAMID, (wamid,), shared::message).await
    }

    async fn message_history(&self, id: &MessageId) -> Result<Vec<StatusEntry>> {
        shared::history(all(&self.pool, shared::SELECT_HISTORY, (id.as_str(),), shared::status_row).await?)
    }

    async fn list_messages(&self, filter: &MessageFilter, limit: u32) -> Result<Vec<Message>> {
        all(&self.pool, shared::SELECT_MESSAGES, shared::message_filter_values(filter, limit), shared::message).await
    }

    async fn apply_statuses(&self, updates: &[StatusUpdate], at: Timestamp) -> Result<Vec<StatusOutcome>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<_> = updates.iter().map(shared::StatusColumns::new).collect();
        // wamid locks are taken in one order by every batch, so two never wait on each other.
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.sort_by(|&a, &b| updates[a].wamid.cmp(&updates[b].wamid));
        let mut outcomes = vec![StatusOutcome::Duplicate; updates.len()];
        let mut touched = BTreeSet::new();
        let mut before: HashMap<String, Vec<StatusEntry>> = HashMap::new();
        let mut tx = self.begin().await?;
        let mut locked: Option<&str> = None;
        for i in order {
            let c = &columns[i];
            if locked != Some(c.wamid.as_str()) {
                lock_wamid(&mut tx, &c.wamid).await?;
                locked = Some(c.wamid.as_str());
            }
            let by_wamid = (&c.wamid, &c.account_id);
            let message_id: Option<String> =
                first(&mut *tx, shared::SELECT_OUTBOUND_BY_WAMID, by_wamid, |r| r.get(0)).await?;
            if let Some(id) = &message_id
                && !before.contains_key(id)
            {
                before.insert(id.clone(), history_before(&mut tx, id).await?);
            }
            let values = shared::status_values(c, message_id.as_deref(), at.as_millis());
            let changed = execute(&mut *tx, shared::UPSERT_STATUS, values).await? > 0;
            outcomes[i] = shared::status_outcome(changed, message_id, &mut touched);
        }
        // Each message's status is folded once, from everything the batch added.
        let mut events = Vec::new();
        for id in &touched {
            refresh_status(&mut tx, id, at).await?;
            let before = before.get(id).map_or(&[][..], Vec::as_slice);
            events.extend(message_changes(&mut tx, self.views.as_ref(), id, before).await?);
        }
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.delete_older(shared::DELETE_ORPHAN_STATUSES, before, limit).await
    }

    async fn record_echo(&self, m: &NewEcho) -> Result<bool> {
        let mut tx = self.begin().await?;
        lock_wamid(&mut tx, &m.wamid).await?;
        let content = json_text(&m.content);
        let stored = execute(&mut *tx, shared::INSERT_ECHO, shared::echo_values(m, &content)).await? == 1;
        // Statuses of the echo that came before it wait under its wamid, as a send's do.
        let adopt = (m.id.as_str(), m.account_id.as_str(), &m.wamid);
        if stored && execute(&mut *tx, shared::ADOPT_STATUSES, adopt).await? > 0 {
            refresh_status(&mut tx, m.id.as_str(), m.received_at).await?;
            let events = message_changes(&mut tx, self.views.as_ref(), m.id.as_str(), &[]).await?;
            emit_all(&mut tx, &events, m.received_at).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }
}
