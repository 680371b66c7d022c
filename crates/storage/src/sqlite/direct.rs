//! The SQLite paths every send takes, run without sqlx. sqlx runs each statement on its
//! connection's own thread, and on two cores each hand-over between threads costs more than
//! the statement. Here point reads run on the caller's thread (microseconds each), and new
//! sends and webhook deliveries are stored by one thread of its own, a batch per commit, holding
//! the writer lock so no other write interleaves.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use wagate_domain::id::{AccountId, ApiKeyId, MessageId};
use wagate_domain::time::Timestamp;

use super::Writer;
use crate::sql::{self, Enqueuer, Job, Written, json_text, parse_json, ts};
use crate::{ApiKey, Enqueued, IdempotencyRecord, NewOutbound, Result, StorageError};

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

    pub(crate) fn last_inbound(&self, phone_number_id: &str, customer: &str) -> Result<Option<Timestamp>> {
        let at = self.read(|c| {
            c.prepare_cached(sql::SELECT_LAST_INBOUND)?
                .query_row([phone_number_id, customer], |r| r.get::<_, i64>(0))
                .optional()
        })?;
        Ok(at.map(ts))
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
    Ok(conn)
}

fn api_key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(r.get("id")?),
        name: r.get("name")?,
        prefix: r.get("prefix")?,
        key_hash: r.get("key_hash")?,
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
    let spawned = std::thread::Builder::new().name("sqlite-batches".into()).spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            let jobs = sql::fill_batch(first, &mut rx);
            // The writer lock, so this commit never meets another of this process's writes.
            let held = writer.conn.blocking_lock();
            if held.is_none() {
                for job in jobs {
                    job.answer(Err(StorageError::Database(sqlx::Error::PoolClosed)));
                }
                continue;
            }
            write_batch(&mut conn, jobs);
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
fn write_batch(conn: &mut Connection, jobs: Vec<Job>) {
    let started = Instant::now();
    let outcome = write_jobs(conn, &jobs);
    tracing::trace!(batch = jobs.len(), elapsed_us = started.elapsed().as_micros() as u64, "batch stored");
    if let Some(jobs) = sql::settle(jobs, outcome) {
        for job in jobs {
            write_batch(conn, vec![job]);
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
const INSERT_FIRST_STATUS: &str = "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, \
    recorded_at) VALUES ($1, $2, $3, $4, $4)";
const INSERT_OUTBOX: &str = "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, \
    expires_at, created_at) VALUES ($1, $2, $3, $4, $4, $5, $6)";

/// The message's idempotency key first (a key in use, and not expired, skips the message), then
/// the message, its first history entry and its outbox row.
fn write_send(tx: &rusqlite::Transaction<'_>, m: &NewOutbound) -> Result<Enqueued> {
    if let Some(k) = &m.idempotency {
        let taken = tx.prepare_cached(sql::TAKE_IDEMPOTENCY_KEY)?.execute(params![
            k.api_key_id.as_str(),
            k.key,
            k.request_hash,
            m.id.as_str(),
            json_text(&k.response),
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
        json_text(&m.content),
        status,
        m.metadata.as_ref().map(|v| serde_json::Value::Object(v.clone()).to_string()),
        created,
        m.send_at.map(Timestamp::as_millis),
        m.expires_at.map(Timestamp::as_millis),
        m.opens_conversation,
    ])?;
    tx.prepare_cached(INSERT_FIRST_STATUS)?.execute(params![m.account_id.as_str(), m.id.as_str(), status, created])?;
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
