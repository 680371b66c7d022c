//! Messages of both directions and their statuses.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use wagate_domain::id::MessageId;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::{emit_message_changes, message_history};
use super::rows::{all, execute, first};
use crate::shared::{self, StatusColumns, json_text};
use crate::*;

#[async_trait]
impl Messages for SqliteStore {
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>> {
        self.readers.read(|c| first(c, shared::SELECT_MESSAGE, [id.as_str()], |r| shared::message(r)))
    }

    async fn find_message_by_wamid(&self, wamid: &str) -> Result<Option<Message>> {
        self.readers.read(|c| first(c, shared::SELECT_MESSAGE_BY_WAMID, [wamid], |r| shared::message(r)))
    }

    async fn message_history(&self, id: &MessageId) -> Result<Vec<StatusEntry>> {
        shared::history(
            self.readers.read(|c| all(c, shared::SELECT_HISTORY, [id.as_str()], |r| shared::status_row(r)))?,
        )
    }

    async fn list_messages(&self, filter: &MessageFilter, limit: u32) -> Result<Vec<Message>> {
        let values = shared::message_filter_values(filter, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_MESSAGES, values, |r| shared::message(r))).await
    }

    async fn apply_statuses(&self, updates: &[StatusUpdate], at: Timestamp) -> Result<Vec<StatusOutcome>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let updates: Vec<StatusColumns> = updates.iter().map(StatusColumns::new).collect();
        let views = self.views.clone();
        self.writer.write(move |tx| apply_statuses(tx, views.as_ref(), &updates, at.as_millis())).await
    }

    async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> Result<u64> {
        Ok(self.execute(shared::DELETE_ORPHAN_STATUSES, (before.as_millis(), limit)).await? as u64)
    }

    async fn record_echo(&self, echo: &NewEcho) -> Result<bool> {
        let (m, content, views) = (echo.clone(), json_text(&echo.content), self.views.clone());
        self.writer
            .write(move |tx| {
                let stored = execute(tx, shared::INSERT_ECHO, shared::echo_values(&m, &content))? == 1;
                // Statuses of the echo that came before it wait under its wamid, as a send's do.
                let adopt = params![m.id.as_str(), m.account_id.as_str(), m.wamid];
                if stored && execute(tx, shared::ADOPT_STATUSES, adopt)? > 0 {
                    let at = m.received_at.as_millis();
                    refresh_status(tx, m.id.as_str(), at)?;
                    emit_message_changes(tx, views.as_ref(), m.id.as_str(), &[], at)?;
                }
                Ok(stored)
            })
            .await
    }
}

/// Stores each status (of repeated reports the earliest is kept: see `UPSERT_STATUS`) with its
/// message, found by wamid, or waiting for it; then folds each message's status once, from
/// everything the batch added, and stores the events of what that changed.
fn apply_statuses(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    updates: &[StatusColumns],
    at: i64,
) -> Result<Vec<StatusOutcome>> {
    let mut outcomes = Vec::with_capacity(updates.len());
    let mut touched = BTreeSet::new();
    let mut before: HashMap<String, Vec<StatusEntry>> = HashMap::new();
    for c in updates {
        let by_wamid = [&c.wamid, &c.account_id];
        let message_id: Option<String> = first(tx, shared::SELECT_OUTBOUND_BY_WAMID, by_wamid, |r| Ok(r.get(0)?))?;
        if let Some(id) = &message_id
            && !before.contains_key(id)
        {
            before.insert(id.clone(), message_history(tx, id)?);
        }
        let changed = execute(tx, shared::UPSERT_STATUS, shared::status_values(c, message_id.as_deref(), at))? > 0;
        outcomes.push(shared::status_outcome(changed, message_id, &mut touched));
    }
    for id in &touched {
        refresh_status(tx, id, at)?;
        emit_message_changes(tx, views, id, before.get(id).map_or(&[][..], Vec::as_slice), at)?;
    }
    Ok(outcomes)
}

/// Recomputes a message's current status and error from its delivery reports.
pub(super) fn refresh_status(tx: &Transaction<'_>, message_id: &str, at: i64) -> Result<()> {
    let reports = all(tx, shared::SELECT_REPORTS, [message_id], |r| shared::report(r))?;
    let (status, error) = shared::current_status(reports.into_iter().flatten().collect());
    execute(tx, shared::SET_STATUS, params![status, error, at, message_id])?;
    Ok(())
}
