//! Messages of both directions and their statuses.

use std::collections::BTreeSet;

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use wagate_domain::id::MessageId;
use wagate_domain::status::{MessageStatus, Report, fold};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{self, all, first};
use crate::shared::{
    ADOPT_STATUSES, SELECT_HISTORY, SELECT_OUTBOUND_BY_WAMID, SELECT_REPORTS, SET_STATUS, StatusColumns, UPSERT_STATUS,
    corrupt, current_status, json_text, message_cols, message_select_cols, parse_error, parse_json, report,
    status_outcome, ts,
};
use crate::*;

const SELECT_MESSAGE: &str = concat!("SELECT ", message_select_cols!(), " FROM messages WHERE id = ?1");
const SELECT_MESSAGE_BY_WAMID: &str = concat!("SELECT ", message_select_cols!(), " FROM messages WHERE wamid = ?1");
const SELECT_MESSAGES: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE (?1 IS NULL OR direction = ?1) AND (?2 IS NULL OR status = ?2) ",
    "AND (?3 IS NULL OR (direction = 'outbound' AND phone_number_id = ?3) ",
    "OR (direction = 'inbound' AND counterpart = ?3)) ",
    "AND (?4 IS NULL OR (direction = 'outbound' AND counterpart = ?4) ",
    "OR (direction = 'inbound' AND phone_number_id = ?4)) ",
    "AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR id < ?6) ",
    "ORDER BY id DESC LIMIT ?7"
);
const INSERT_ECHO: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", from_app) VALUES (?1, 'outbound', ?2, ?3, NULL, ?4, ?5, ?6, 'sent', ?7, NULL, NULL, ?8, ?9, NULL, NULL, TRUE) ",
    "ON CONFLICT DO NOTHING"
);

#[async_trait]
impl Messages for SqliteStore {
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>> {
        self.readers.read(|c| first(c, SELECT_MESSAGE, [id.as_str()], rows::message))
    }

    async fn find_message_by_wamid(&self, wamid: &str) -> Result<Option<Message>> {
        self.readers.read(|c| first(c, SELECT_MESSAGE_BY_WAMID, [wamid], rows::message))
    }

    async fn message_history(&self, id: &MessageId) -> Result<Vec<StatusEntry>> {
        // The columns of `SELECT_HISTORY`: status, wamid, participant, occurred_at, error, detail.
        let stored = self.readers.read(|c| {
            all(c, SELECT_HISTORY, [id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?, r.get(4)?))
            })
        })?;
        let mut out = Vec::with_capacity(stored.len());
        let mut reports = Vec::new();
        for columns in stored {
            let (status, _, _, occurred_at, detail, error) = columns.clone();
            if let Some(report) = report(columns) {
                reports.push(report);
                continue;
            }
            out.push(StatusEntry {
                status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                participant: None,
                occurred_at: ts(occurred_at),
                implied: false,
                error: parse_error(error)?,
                detail: detail.map(|d| parse_json("detail", &d)).transpose()?,
            });
        }
        for e in fold(reports).history {
            let (detail, error) = e.data.unwrap_or_default();
            out.push(StatusEntry {
                status: e.status.as_status(),
                participant: e.participant,
                occurred_at: e.occurred_at,
                implied: e.implied,
                error: parse_error(error)?,
                detail: detail.map(|d| parse_json("detail", &d)).transpose()?,
            });
        }
        // Meta's timestamps are whole seconds and ours are milliseconds, so time alone can put
        // `sent` before `accepted`: order by progress, then time.
        out.sort_by(|a, b| {
            (a.status.history_order(), a.occurred_at, &a.participant).cmp(&(
                b.status.history_order(),
                b.occurred_at,
                &b.participant,
            ))
        });
        Ok(out)
    }

    async fn list_messages(&self, filter: &MessageFilter, limit: u32) -> Result<Vec<Message>> {
        let params = (
            filter.direction.map(Direction::as_str),
            filter.status.map(MessageStatus::as_str),
            filter.from.clone(),
            filter.to.clone(),
            filter.since.map(Timestamp::as_millis),
            filter.before.as_ref().map(|b| b.as_str().to_owned()),
            limit,
        );
        self.readers.scan(move |c| all(c, SELECT_MESSAGES, params, rows::message)).await
    }

    async fn apply_statuses(&self, updates: &[StatusUpdate], at: Timestamp) -> Result<Vec<StatusOutcome>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let updates: Vec<StatusColumns> = updates.iter().map(StatusColumns::new).collect();
        self.writer.write(move |tx| apply_statuses(tx, &updates, at.as_millis())).await
    }

    async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let sql = "DELETE FROM message_statuses WHERE id IN (SELECT id FROM message_statuses \
            WHERE message_id IS NULL AND recorded_at < ?1 LIMIT ?2)";
        Ok(self.execute(sql, (before.as_millis(), limit)).await? as u64)
    }

    async fn record_echo(&self, echo: &NewEcho) -> Result<bool> {
        let (m, content) = (echo.clone(), json_text(&echo.content));
        self.writer
            .write(move |tx| {
                let stored = tx.prepare_cached(INSERT_ECHO)?.execute(params![
                    m.id.as_str(),
                    m.account_id.as_str(),
                    m.phone_number_id,
                    m.to,
                    m.kind,
                    content,
                    m.wamid,
                    m.sent_at.as_millis(),
                    m.received_at.as_millis(),
                ])? == 1;
                // Statuses of the echo that came before it wait under its wamid, as a send's do.
                if stored
                    && tx.prepare_cached(ADOPT_STATUSES)?.execute(params![
                        m.id.as_str(),
                        m.account_id.as_str(),
                        m.wamid
                    ])? > 0
                {
                    refresh_status(tx, m.id.as_str(), m.received_at.as_millis())?;
                }
                Ok(stored)
            })
            .await
    }
}

/// Stores each status (of repeated reports the earliest is kept: see `UPSERT_STATUS`) with its
/// message, found by wamid, or waiting for it; then folds each message's status once, from
/// everything the batch added.
fn apply_statuses(tx: &Transaction<'_>, updates: &[StatusColumns], at: i64) -> Result<Vec<StatusOutcome>> {
    let mut outcomes = Vec::with_capacity(updates.len());
    let mut touched = BTreeSet::new();
    for c in updates {
        let message_id: Option<String> =
            first(tx, SELECT_OUTBOUND_BY_WAMID, [&c.wamid, &c.account_id], |r| Ok(r.get(0)?))?;
        let changed = tx.prepare_cached(UPSERT_STATUS)?.execute(params![
            c.account_id,
            message_id,
            c.wamid,
            c.status,
            c.participant,
            c.occurred_at,
            c.error,
            c.detail,
            at,
        ])? > 0;
        outcomes.push(status_outcome(changed, message_id, &mut touched));
    }
    for id in &touched {
        refresh_status(tx, id, at)?;
    }
    Ok(outcomes)
}

/// Recomputes a message's current status and error from its delivery reports.
pub(super) fn refresh_status(tx: &Transaction<'_>, message_id: &str, at: i64) -> Result<()> {
    let reports: Vec<Option<Report<_>>> = all(tx, SELECT_REPORTS, [message_id], |r| {
        Ok(report((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
    })?;
    let (status, error) = current_status(reports.into_iter().flatten().collect());
    tx.prepare_cached(SET_STATUS)?.execute(params![status, error, at, message_id])?;
    Ok(())
}
