//! The SQLite paths every send takes, run without sqlx. sqlx runs each statement on its
//! connection's own thread, and on two cores each hand-over between threads costs more than
//! the statement. Here point reads run on the caller's thread (microseconds each), and new
//! sends and webhook deliveries are stored by one thread of its own, a batch per commit, holding
//! the writer lock so no other write interleaves.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, MessageId};
use wagate_domain::time::Timestamp;

use super::Writer;
use crate::sql::{self, Enqueuer, Job, PreparedSend, Written, parse_json, ts};
use crate::{ApiKey, Delivery, Enqueued, IdempotencyRecord, Result, StatusOutcome, StorageError};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections, opened as needed and kept for the next read.
pub(crate) struct Direct {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

impl Direct {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), readers: Mutex::new(Vec::new()) }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = f(&conn);
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        Ok(result?)
    }

    pub(crate) fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.read(|c| c.prepare_cached(sql::SELECT_API_KEY_BY_HASH)?.query_row([key_hash], api_key_row).optional())
    }

    pub(crate) fn live_idempotency_key(
        &self,
        api_key_id: &ApiKeyId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = self.read(|c| {
            c.prepare_cached(sql::SELECT_LIVE_IDEMPOTENCY_KEY)?
                .query_row(params![api_key_id.as_str(), key, now.as_millis()], idempotency_columns)
                .optional()
        })?;
        row.map(idempotency_record).transpose()
    }
}

fn open(path: &Path, access: OpenFlags) -> rusqlite::Result<Connection> {
    let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // As the sqlx connections: a commit is on disk when it returns; rows keep their references.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", super::WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(conn)
}

fn api_key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes_at = r.as_ref().column_index("scopes")?;
    let scopes: String = r.get(scopes_at)?;
    let scopes = Scopes::from_stored(&scopes).ok_or_else(|| {
        let why = format!("unknown API key scopes '{scopes}'");
        rusqlite::Error::FromSqlConversionFailure(scopes_at, rusqlite::types::Type::Text, why.into())
    })?;
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(r.get("id")?),
        name: r.get("name")?,
        prefix: r.get("prefix")?,
        key_hash: r.get("key_hash")?,
        scopes,
        created_at: ts(r.get("created_at")?),
        last_used_at: r.get::<_, Option<i64>>("last_used_at")?.map(ts),
        revoked_at: r.get::<_, Option<i64>>("revoked_at")?.map(ts),
    })
}

type IdempotencyColumns = (String, String, String, String, i64);

fn idempotency_columns(r: &Row<'_>) -> rusqlite::Result<IdempotencyColumns> {
    Ok((r.get("key")?, r.get("request_hash")?, r.get("message_id")?, r.get("response")?, r.get("created_at")?))
}

fn idempotency_record(
    (key, request_hash, message_id, response, created_at): IdempotencyColumns,
) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key,
        request_hash,
        message_id: MessageId::from_trusted(message_id),
        response: parse_json("response", &response)?,
        created_at: ts(created_at),
    })
}

/// Starts the thread that stores new sends and webhook deliveries: everything queued while the
/// previous batch was being committed goes into the next, one commit for all.
pub(crate) fn spawn_batch_writer(path: &Path, writer: Writer) -> Result<Enqueuer> {
    let (enqueuer, mut rx) = Enqueuer::new();
    let mut conn = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    // Every statement the batch writer runs stays prepared (claims: one per number of ids).
    conn.set_prepared_statement_cache_capacity(64);
    let spawned = std::thread::Builder::new().name("sqlite-batches".into()).spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            // The writer lock, so this commit never meets another of this process's writes;
            // what arrived while it was held joins the batch.
            let waited = Instant::now();
            let held = writer.conn.blocking_lock();
            let waited = waited.elapsed();
            let jobs = sql::fill_batch(first, &mut rx);
            if held.is_none() {
                for job in jobs {
                    job.answer(Err(StorageError::Database(sqlx::Error::PoolClosed)));
                }
                continue;
            }
            write_batch(&mut conn, jobs, waited);
            drop(held);
        }
    });
    spawned.map_err(|e| {
        StorageError::Database(sqlx::Error::Configuration(format!("cannot start the batch writer: {e}").into()))
    })?;
    Ok(enqueuer)
}

/// Writes a batch in one transaction; when that fails, each job alone, so one bad job fails
/// alone.
/// `waited`: how long the writer lock took, which the trace shows beside the batch's own time.
fn write_batch(conn: &mut Connection, jobs: Vec<Job>, waited: Duration) {
    let started = Instant::now();
    let outcome = write_jobs(conn, &jobs);
    tracing::trace!(
        batch = jobs.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        waited_us = waited.as_micros() as u64,
        "batch stored"
    );
    if let Some(jobs) = sql::settle(jobs, outcome) {
        for job in jobs {
            write_batch(conn, vec![job], Duration::ZERO);
        }
    }
}

fn write_jobs(conn: &mut Connection, jobs: &[Job]) -> Result<Vec<Written>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(match job {
            Job::Send(m, _) => Written::Send(write_send(&tx, m)?),
            Job::Delivery(d, _) => Written::Delivery(tx.prepare_cached(sql::INSERT_DELIVERY)?.query_row(
                params![d.account_id.as_ref().map(AccountId::as_str), d.body, d.received_at.as_millis()],
                |r| r.get(0),
            )?),
            Job::Accepted(a, _) => Written::Accepted(write_accepted(&tx, a)?),
            Job::Claim(c, _) => Written::Claim(claim(&tx, c)?),
            Job::ClaimDeliveries(c, _) => Written::ClaimDeliveries(claim_deliveries(&tx, c)?),
            Job::Statuses(s, _) => Written::Statuses(apply_statuses(&tx, s)?),
            Job::FinishDeliveries(f, _) => {
                let mut finish = tx.prepare_cached(sql::FINISH_DELIVERY)?;
                for (id, lease, error) in &f.finished {
                    finish.execute(params![f.at.as_millis(), error, id, lease])?;
                }
                Written::FinishDeliveries
            }
        });
    }
    tx.commit()?;
    Ok(results)
}

const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages (",
    sql::message_cols!(),
    ", opens_conversation) VALUES ($1, 'outbound', $2, $3, NULL, $4, $5, $6, $7, NULL, NULL, $8, $9, $9, $10, $11, $12)"
);
const INSERT_OUTBOX: &str = "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, \
    expires_at, created_at) VALUES ($1, $2, $3, $4, $4, $5, $6)";

/// The window first (a message refused outside it stores nothing), then the message's
/// idempotency key (a key in use, and not expired, skips the message), then the message and its
/// outbox row (its first history entry is the message's: `SELECT_HISTORY`).
fn write_send(tx: &rusqlite::Transaction<'_>, p: &PreparedSend) -> Result<Enqueued> {
    let m = &p.m;
    let opens_conversation = match &m.window {
        Some(w) => {
            let last_inbound = tx
                .prepare_cached(sql::SELECT_LAST_INBOUND)?
                .query_row([m.phone_number_id.as_str(), w.customer.as_str()], |r| r.get::<_, i64>(0))
                .optional()?
                .map(ts);
            match w.judge(last_inbound, m.created_at) {
                Ok(opens) => opens,
                Err(refused) => return Ok(refused),
            }
        }
        None => false,
    };
    if let Some(k) = &m.idempotency {
        let taken = tx.prepare_cached(sql::TAKE_IDEMPOTENCY_KEY)?.execute(params![
            k.api_key_id.as_str(),
            k.key,
            k.request_hash,
            m.id.as_str(),
            p.response,
            m.created_at.as_millis(),
            k.expires_at.as_millis(),
        ])?;
        if taken == 0 {
            let row = tx
                .prepare_cached(sql::SELECT_IDEMPOTENCY_KEY)?
                .query_row([k.api_key_id.as_str(), &k.key], idempotency_columns)?;
            return Ok(Enqueued::KeyUsed(idempotency_record(row)?));
        }
    }
    let status = sql::initial_status(m);
    let created = m.created_at.as_millis();
    tx.prepare_cached(INSERT_MESSAGE)?.execute(params![
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id,
        m.recipient,
        m.kind,
        p.content,
        status,
        p.metadata,
        created,
        m.send_at.map(Timestamp::as_millis),
        m.expires_at.map(Timestamp::as_millis),
        opens_conversation,
    ])?;
    tx.prepare_cached(INSERT_OUTBOX)?.execute(params![
        m.id.as_str(),
        m.phone_number_id,
        m.recipient,
        m.due_at.as_millis(),
        m.expires_at.map(Timestamp::as_millis),
        created,
    ])?;
    Ok(Enqueued::Stored)
}

/// `Store::record_accepted`, in the batch's transaction: the dispatcher records each message Meta
/// took, and one transaction (and one flush) per message held SQLite's writer from the sends.
fn write_accepted(tx: &rusqlite::Transaction<'_>, a: &sql::Accepted) -> Result<bool> {
    let at = a.at.as_millis();
    let updated = tx.prepare_cached(sql::ACCEPT_MESSAGE)?.execute(params![a.wamid, at, a.message_id])?;
    tx.prepare_cached(sql::DELETE_OUTBOX_ROW)?.execute([&a.message_id])?;
    if updated == 0 {
        return Ok(false);
    }
    tx.prepare_cached(sql::INSERT_ACCEPTED_STATUS)?.execute(params![
        a.account_id,
        a.message_id,
        a.wamid,
        at,
        a.response
    ])?;
    tx.prepare_cached(sql::ADOPT_STATUSES)?.execute(params![a.message_id, a.account_id, a.wamid])?;
    refresh_status(tx, &a.message_id, at)?;
    Ok(true)
}

/// Recomputes a message's current status and error from its delivery reports.
fn refresh_status(tx: &rusqlite::Transaction<'_>, message_id: &str, at: i64) -> Result<()> {
    let mut reports = Vec::new();
    let mut select = tx.prepare_cached(sql::SELECT_REPORTS)?;
    let mut rows = select.query([message_id])?;
    while let Some(r) = rows.next()? {
        reports.extend(sql::report((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)));
    }
    let (status, error) = sql::current_status(reports);
    tx.prepare_cached(sql::SET_STATUS)?.execute(params![status, error, at, message_id])?;
    Ok(())
}

/// `Store::apply_statuses`, in the batch's transaction: the webhook processor's statuses held
/// SQLite's writer from new sends for a thread hand-off per statement.
fn apply_statuses(tx: &rusqlite::Transaction<'_>, s: &sql::Statuses) -> Result<Vec<StatusOutcome>> {
    let at = s.at.as_millis();
    let mut outcomes = Vec::with_capacity(s.updates.len());
    // Each message's status is folded once, from everything the batch added.
    let mut touched = std::collections::BTreeSet::new();
    for c in &s.updates {
        let message_id: Option<String> = tx
            .prepare_cached(sql::SELECT_OUTBOUND_BY_WAMID)?
            .query_row([&c.wamid, &c.account_id], |r| r.get(0))
            .optional()?;
        let changed = tx.prepare_cached(sql::UPSERT_STATUS)?.execute(params![
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
        outcomes.push(sql::status_outcome(changed, message_id, &mut touched));
    }
    for id in &touched {
        refresh_status(tx, id, at)?;
    }
    Ok(outcomes)
}

/// `Store::claim_deliveries`, in the batch's transaction.
fn claim_deliveries(tx: &rusqlite::Transaction<'_>, c: &sql::ClaimDeliveries) -> Result<Vec<Delivery>> {
    let mut claim = tx.prepare_cached(super::SqliteStore::CLAIM_DELIVERIES)?;
    let params = params![c.lease, c.lease_until.as_millis(), c.now.as_millis(), c.limit];
    let mut rows = claim.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let columns = (r.get("id")?, r.get("account_id")?, r.get("body")?, r.get("received_at")?, r.get("attempts")?);
        out.push(sql::delivery(columns, &c.lease));
    }
    out.sort_by_key(|d| d.id);
    Ok(out)
}

/// `Store::claim_messages`, in the batch's transaction (as `write_accepted`, for the same reason).
fn claim(tx: &rusqlite::Transaction<'_>, c: &sql::Claim) -> Result<Vec<crate::Dispatch>> {
    let (now, until) = (c.now.as_millis(), c.lease_until.as_millis());
    let head = [&c.lease as &dyn rusqlite::ToSql, &until, &now];
    let ids = c.ids.iter().map(|id| id as &dyn rusqlite::ToSql);
    let claimed = tx
        .prepare_cached(&sql::claim_due_sql(c.ids.len()))?
        .execute(rusqlite::params_from_iter(head.into_iter().chain(ids)))?;
    if claimed == 0 {
        return Ok(Vec::new());
    }
    tx.prepare_cached(sql::MARK_CLAIMED_SENDING)?.execute(params![now, c.lease])?;
    let mut select = tx.prepare_cached(sql::SELECT_CLAIMED)?;
    let mut rows = select.query([&c.lease])?;
    let mut out = Vec::with_capacity(claimed);
    while let Some(r) = rows.next()? {
        let columns = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
        out.push(sql::dispatch(columns, (&c.lease, c.lease_until))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rusqlite binds `$N` parameters by position, numbered as they first appear: a statement
    /// whose `$2` came before its `$1` would bind each value to the other's place.
    #[test]
    fn statements_number_their_parameters_in_order_of_appearance() {
        let statements = [
            sql::SELECT_API_KEY_BY_HASH,
            sql::SELECT_LAST_INBOUND,
            sql::SELECT_LIVE_IDEMPOTENCY_KEY,
            sql::TAKE_IDEMPOTENCY_KEY,
            sql::SELECT_IDEMPOTENCY_KEY,
            sql::INSERT_DELIVERY,
            INSERT_MESSAGE,
            INSERT_OUTBOX,
            sql::ACCEPT_MESSAGE,
            sql::DELETE_OUTBOX_ROW,
            sql::INSERT_ACCEPTED_STATUS,
            sql::ADOPT_STATUSES,
            sql::SELECT_REPORTS,
            sql::SET_STATUS,
            &sql::claim_due_sql(3),
            sql::MARK_CLAIMED_SENDING,
            sql::SELECT_CLAIMED,
            sql::SELECT_OUTBOUND_BY_WAMID,
            sql::UPSERT_STATUS,
            sql::FINISH_DELIVERY,
            super::super::SqliteStore::CLAIM_DELIVERIES,
        ];
        for statement in statements {
            let seen = numbers_in_order_of_appearance(statement);
            let expected: Vec<u32> = (1..=seen.len() as u32).collect();
            assert_eq!(seen, expected, "parameters out of order in {statement}");
        }
        // The check can tell.
        assert_eq!(numbers_in_order_of_appearance("UPDATE t SET a = $2 WHERE b = $1 OR c = $2"), [2, 1]);
    }

    fn numbers_in_order_of_appearance(statement: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        for part in statement.split('$').skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: u32 = digits.parse().unwrap_or_else(|_| panic!("a `$` without a number in {statement}"));
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen
    }
}
