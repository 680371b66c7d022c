//! Messages of both directions and their statuses: a message's status is folded from its
//! delivery reports by the domain (`shared::current_status`), whatever order they came in.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use wagate_domain::id::MessageId;
use wagate_domain::time::Timestamp;

use super::events::{emit_all, message_changes};
use super::{PgStore, Tx, all, execute, first, lock_wamid};
use crate::shared::{self, Columns, StatusColumns, StatusRow, json_text};
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
        let mut tx = self.begin().await?;
        lock_wamids(&mut tx, updates.iter().map(|u| u.wamid.as_str())).await?;
        let sends = outbound_ids(&mut tx, &columns).await?;
        let known: Vec<&str> = sends.values().map(String::as_str).collect::<BTreeSet<_>>().into_iter().collect();
        let before = histories(&mut tx, &known).await?;
        let mut outcomes = vec![StatusOutcome::Duplicate; updates.len()];
        let mut touched = BTreeSet::new();
        // A report repeated in the batch is applied after the one before it, as if they had
        // come in two batches: one statement may change a row only once.
        for round in rounds(&columns) {
            let rows: Vec<(&StatusColumns, Option<&str>)> = round
                .iter()
                .map(|&i| {
                    let c = &columns[i];
                    (c, sends.get(&(c.wamid.clone(), c.account_id.clone())).map(String::as_str))
                })
                .collect();
            let changed = upsert_statuses(&mut tx, &rows, at).await?;
            for (&i, (c, message_id)) in round.iter().zip(&rows) {
                let key = (c.account_id.clone(), c.wamid.clone(), c.status.to_owned(), c.participant.clone());
                let message_id = message_id.map(str::to_owned);
                outcomes[i] = shared::status_outcome(changed.contains(&key), message_id, &mut touched);
            }
        }
        // Each message's status is folded once, from everything the batch added.
        let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
        let after = histories(&mut tx, &touched).await?;
        let (mut statuses, mut errors) = (Vec::with_capacity(touched.len()), Vec::with_capacity(touched.len()));
        for id in &touched {
            let rows = after.get(*id).cloned().unwrap_or_default();
            let (status, error) = shared::current_status(rows.into_iter().filter_map(shared::as_report).collect());
            statuses.push(status);
            errors.push(error);
        }
        sqlx::query(
            "UPDATE messages m SET status = u.status, error = u.error, updated_at = $4 \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u (id, status, error) WHERE m.id = u.id",
        )
        .bind(&touched)
        .bind(&statuses)
        .bind(&errors)
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await?;
        let mut events = Vec::new();
        for message in messages(&mut tx, &touched).await? {
            let id = message.id.as_str().to_owned();
            let before = shared::history(before.get(&id).cloned().unwrap_or_default())?;
            let after = shared::history(after.get(&id).cloned().unwrap_or_default())?;
            events.extend(shared::message_events(self.views.as_ref(), &message, &before, &after));
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

// Statuses are applied a batch at a time, in a few statements whatever the batch's size: one
// statement per report made the processor's pace a round trip's.

/// Takes the locks of `wamids` (see `lock_wamid`), each once, in one order for every batch so
/// that two never wait on each other.
async fn lock_wamids(tx: &mut Tx, wamids: impl Iterator<Item = &str>) -> Result<()> {
    let mut wamids: Vec<&str> = wamids.collect();
    wamids.sort_unstable();
    wamids.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(w, 0)) FROM UNNEST($1::text[]) WITH ORDINALITY AS l (w, n) \
         ORDER BY n",
    )
    .bind(&wamids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The sends the reports are about, by (wamid, account).
async fn outbound_ids(tx: &mut Tx, columns: &[StatusColumns]) -> Result<HashMap<(String, String), String>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.wamid, m.account_id, m.id FROM messages m \
         JOIN UNNEST($1::text[], $2::text[]) AS k (wamid, account_id) ON m.wamid = k.wamid AND m.account_id = k.account_id \
         WHERE m.direction = 'outbound'",
    )
    .bind(columns.iter().map(|c| c.wamid.as_str()).collect::<Vec<_>>())
    .bind(columns.iter().map(|c| c.account_id.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(wamid, account, id)| ((wamid, account), id)).collect())
}

/// The rows of these messages' histories, as `SELECT_HISTORY` reads one's.
async fn histories(tx: &mut Tx, ids: &[&str]) -> Result<HashMap<String, Vec<StatusRow>>> {
    let mut out: HashMap<String, Vec<StatusRow>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    // Each message's rows through the index (`OFFSET 0` keeps the planner from flattening the
    // lateral into a hash join over the whole table, which it chose while the table grew faster
    // than its statistics: 22 ms against 0.4 ms for 32 messages).
    const SELECT_HISTORIES: &str = shared::select_history!(
        "k.id, ",
        "FROM UNNEST($1::text[]) AS k (id) CROSS JOIN LATERAL \
         (SELECT * FROM message_statuses WHERE message_id = k.id OFFSET 0) s",
        "m.id, ",
        "IN (SELECT UNNEST($1::text[]))"
    );
    let rows = sqlx::query(SELECT_HISTORIES).bind(ids).fetch_all(&mut **tx).await?;
    for r in &rows {
        let row: StatusRow = (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
        out.entry(r.get(0)?).or_default().push(row);
    }
    Ok(out)
}

async fn messages(tx: &mut Tx, ids: &[&str]) -> Result<Vec<Message>> {
    const SELECT_MESSAGES_BY_ID: &str = concat!(
        "SELECT ",
        shared::message_select_cols!(),
        " FROM messages WHERE id IN (SELECT UNNEST($1::text[])) ORDER BY id"
    );
    let rows = sqlx::query(SELECT_MESSAGES_BY_ID).bind(ids).fetch_all(&mut **tx).await?;
    rows.iter().map(shared::message).collect()
}

/// A report's key: account, wamid, status, participant.
type ReportKey = (String, String, String, String);

/// Stores reports, each key at most once; the keys of those that changed a row (a report new,
/// or earlier than the one stored).
async fn upsert_statuses(
    tx: &mut Tx,
    rows: &[(&StatusColumns, Option<&str>)],
    at: Timestamp,
) -> Result<HashSet<ReportKey>> {
    const UPSERT_STATUSES: &str = concat!(
        "INSERT INTO message_statuses ",
        "(account_id, message_id, wamid, status, participant, occurred_at, error, detail, recorded_at) ",
        "SELECT account_id, message_id, wamid, status, participant, occurred_at, error, detail, $9 ",
        "FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[]) ",
        "AS s (account_id, message_id, wamid, status, participant, occurred_at, error, detail) ",
        shared::status_conflict!(),
        " RETURNING account_id, wamid, status, participant"
    );
    let changed: Vec<ReportKey> = sqlx::query_as(UPSERT_STATUSES)
        .bind(rows.iter().map(|(c, _)| c.account_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, id)| *id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.wamid.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.participant.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.occurred_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.error.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(c, _)| c.detail.as_str()).collect::<Vec<_>>())
        .bind(at.as_millis())
        .fetch_all(&mut **tx)
        .await?;
    Ok(changed.into_iter().collect())
}

/// The batch's reports in rounds: a key's first report in the first, its second in the second…
fn rounds(columns: &[StatusColumns]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let n = seen.entry((&c.account_id, &c.wamid, c.status, &c.participant)).or_default();
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}
