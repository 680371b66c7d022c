//! Messages of both directions and their statuses: a message's status is folded from its
//! delivery reports by the domain (`shared::current_status`), whatever order they came in.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::Row as _;
use wagate_domain::id::MessageId;
use wagate_domain::status::{MessageStatus, fold};
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, lock_wamid, rows};
use crate::shared::{self, corrupt, json_text, message_cols, message_select_cols, parse_error, parse_json};
use crate::*;

/// Recomputes a message's current status and error from its delivery reports.
pub(super) async fn refresh_status(tx: &mut Tx, message_id: &str, at: Timestamp) -> Result<()> {
    let mut reports = Vec::new();
    for r in sqlx::query(shared::SELECT_REPORTS).bind(message_id).fetch_all(&mut **tx).await? {
        reports.extend(rows::report(&r)?);
    }
    let (status, error) = shared::current_status(reports);
    sqlx::query(shared::SET_STATUS)
        .bind(status)
        .bind(error)
        .bind(at.as_millis())
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Messages for PgStore {
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>> {
        sqlx::query(concat!("SELECT ", message_select_cols!(), " FROM messages WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::message)
            .transpose()
    }

    async fn find_message_by_wamid(&self, wamid: &str) -> Result<Option<Message>> {
        sqlx::query(concat!("SELECT ", message_select_cols!(), " FROM messages WHERE wamid = $1"))
            .bind(wamid)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::message)
            .transpose()
    }

    async fn message_history(&self, id: &MessageId) -> Result<Vec<StatusEntry>> {
        let rows = sqlx::query(shared::SELECT_HISTORY).bind(id.as_str()).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut reports = Vec::new();
        for r in &rows {
            if let Some(report) = rows::report(r)? {
                reports.push(report);
                continue;
            }
            let status: String = r.try_get("status")?;
            out.push(StatusEntry {
                status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                participant: None,
                occurred_at: shared::ts(r.try_get("occurred_at")?),
                implied: false,
                error: parse_error(r.try_get("error")?)?,
                detail: r.try_get::<Option<String>, _>("detail")?.map(|d| parse_json("detail", &d)).transpose()?,
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
        // By progress, then time: time alone can put `sent` before `accepted` (see `history_order`).
        let key = |e: &StatusEntry| (e.status.history_order(), e.occurred_at);
        out.sort_by(|a, b| (key(a), &a.participant).cmp(&(key(b), &b.participant)));
        Ok(out)
    }

    async fn list_messages(&self, f: &MessageFilter, limit: u32) -> Result<Vec<Message>> {
        sqlx::query(concat!(
            "SELECT ",
            message_select_cols!(),
            " FROM messages WHERE ",
            "($1 IS NULL OR direction = $1) AND ($2 IS NULL OR status = $2) ",
            "AND ($3 IS NULL OR (direction = 'outbound' AND phone_number_id = $3) ",
            "OR (direction = 'inbound' AND counterpart = $3)) ",
            "AND ($4 IS NULL OR (direction = 'outbound' AND counterpart = $4) ",
            "OR (direction = 'inbound' AND phone_number_id = $4)) ",
            "AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR id < $6) ",
            "ORDER BY id DESC LIMIT $7"
        ))
        .bind(f.direction.map(Direction::as_str))
        .bind(f.status.map(MessageStatus::as_str))
        .bind(f.from.as_deref())
        .bind(f.to.as_deref())
        .bind(f.since.map(Timestamp::as_millis))
        .bind(f.before.as_ref().map(MessageId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::message)
        .collect()
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
        let mut tx = self.begin().await?;
        let mut locked: Option<&str> = None;
        for i in order {
            let c = &columns[i];
            if locked != Some(c.wamid.as_str()) {
                lock_wamid(&mut tx, &c.wamid).await?;
                locked = Some(c.wamid.as_str());
            }
            let message_id: Option<String> = sqlx::query_scalar(shared::SELECT_OUTBOUND_BY_WAMID)
                .bind(&c.wamid)
                .bind(&c.account_id)
                .fetch_optional(&mut *tx)
                .await?;
            let changed = sqlx::query(shared::UPSERT_STATUS)
                .bind(&c.account_id)
                .bind(&message_id)
                .bind(&c.wamid)
                .bind(c.status)
                .bind(&c.participant)
                .bind(c.occurred_at)
                .bind(&c.error)
                .bind(&c.detail)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            outcomes[i] = shared::status_outcome(changed, message_id, &mut touched);
        }
        // Each message's status is folded once, from everything the batch added.
        for id in &touched {
            refresh_status(&mut tx, id, at).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.delete_older(
            "DELETE FROM message_statuses WHERE id IN (SELECT id FROM message_statuses \
             WHERE message_id IS NULL AND recorded_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn record_echo(&self, m: &NewEcho) -> Result<bool> {
        let mut tx = self.begin().await?;
        lock_wamid(&mut tx, &m.wamid).await?;
        let stored = sqlx::query(concat!(
            "INSERT INTO messages (",
            message_cols!(),
            ", from_app) ",
            "VALUES ($1, 'outbound', $2, $3, NULL, $4, $5, $6, 'sent', $7, NULL, NULL, $8, $9, NULL, NULL, TRUE) ",
            "ON CONFLICT DO NOTHING"
        ))
        .bind(m.id.as_str())
        .bind(m.account_id.as_str())
        .bind(&m.phone_number_id)
        .bind(&m.to)
        .bind(&m.kind)
        .bind(json_text(&m.content))
        .bind(&m.wamid)
        .bind(m.sent_at.as_millis())
        .bind(m.received_at.as_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Statuses of the echo that came before it wait under its wamid, as a send's do.
        let adopted = if stored {
            sqlx::query(shared::ADOPT_STATUSES)
                .bind(m.id.as_str())
                .bind(m.account_id.as_str())
                .bind(&m.wamid)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            0
        };
        if adopted > 0 {
            refresh_status(&mut tx, m.id.as_str(), m.received_at).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }
}
