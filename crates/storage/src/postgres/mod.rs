//! PostgreSQL: for production and for several wagate instances sharing one database. Queue rows
//! are claimed with `FOR UPDATE SKIP LOCKED`, so instances never wait on each other's rows;
//! per-wamid advisory locks serialise a send's result with its status webhooks; new sends and
//! webhook deliveries are stored by batch writers (`batch.rs`), one commit for many requests.
//!
//! One file per aggregate; a statement two aggregates run in one transaction (an inbound
//! message's contact, a status folded into its message) is a function of the aggregate it is about.

mod accounts;
mod api_keys;
mod batch;
mod campaigns;
mod contacts;
mod events;
mod groups;
mod inbound;
mod jobs;
mod media;
mod messages;
mod outbox;
mod people;
mod templates;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Postgres, Transaction};
use wagate_domain::sealed::Cipher;
use wagate_domain::time::Timestamp;

use self::batch::BatchWriter;
use crate::shared::{Column, Columns, PreparedSend, Values};
use crate::*;

type Tx = Transaction<'static, Postgres>;

/// Advisory lock key held while migrating, so instances starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7761_6761_7465; // "wagate"

/// Batch writers per kind of write: a few, so one batch's commit overlaps the next one's
/// statements (see `batch.rs`).
const WRITERS: usize = 3;

pub struct PgStore {
    pool: PgPool,
    sends: BatchWriter<PreparedSend>,
    deliveries: BatchWriter<NewDelivery>,
    cipher: Cipher,
    views: Arc<dyn EventViews>,
}

impl PgStore {
    /// Connects, migrates, and seals the stored secrets with `cipher` (see [`crate::SqliteStore::open`]).
    /// Every instance sharing the database needs the same key: one that finds secrets sealed by
    /// another fails here. Its events show resources as `views` does.
    pub async fn connect(url: &str, cipher: Cipher, views: Arc<dyn EventViews>) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        migrate(&pool).await?;
        let store = Self {
            sends: BatchWriter::spawn(pool.clone(), WRITERS),
            deliveries: BatchWriter::spawn(pool.clone(), WRITERS),
            pool,
            cipher,
            views,
        };
        store.seal_stored_secrets().await?;
        Ok(store)
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Runs a clean-up `sql` that deletes up to `$2` rows from before `$1`; how many it deleted.
    /// A few at a time, so that no clean-up holds many row locks for long.
    async fn delete_older(&self, sql: &'static str, before: Timestamp, limit: u32) -> Result<u64> {
        execute(&self.pool, sql, (before.as_millis(), i64::from(limit))).await
    }
}

// The statement helpers every aggregate uses: `sql` run on `db` (the pool, or a transaction)
// with `values` bound to its parameters.

/// How many rows `sql` changed.
async fn execute<'v>(db: impl PgExecutor<'_>, sql: &'static str, values: impl Values<'v>) -> Result<u64> {
    Ok(values.bind(sqlx::query(sql)).execute(db).await?.rows_affected())
}

/// Every row `sql` returns, each read by `row`.
async fn all<'v, T>(
    db: impl PgExecutor<'_>,
    sql: &'static str,
    values: impl Values<'v>,
    row: impl FnMut(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    values.bind(sqlx::query(sql)).fetch_all(db).await?.iter().map(row).collect()
}

/// The first row `sql` returns, read by `row`.
async fn first<'v, T>(
    db: impl PgExecutor<'_>,
    sql: &'static str,
    values: impl Values<'v>,
    row: impl FnOnce(&PgRow) -> Result<T>,
) -> Result<Option<T>> {
    values.bind(sqlx::query(sql)).fetch_optional(db).await?.as_ref().map(row).transpose()
}

/// The first column of the one row `sql` returns (a count, a scalar).
async fn value<'v, T: Column>(db: impl PgExecutor<'_>, sql: &'static str, values: impl Values<'v>) -> Result<T> {
    values.bind(sqlx::query(sql)).fetch_one(db).await?.get(0)
}

/// Lets `tx` commit without waiting for its flush. Only for a claim, which only takes a lease:
/// lost in a crash, the lease never was, and what it took is claimed again, as after any crash
/// while it was in flight. Everything committed after it is flushed with it.
async fn lease_only(tx: &mut Tx) -> Result<()> {
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut **tx).await?;
    Ok(())
}

/// Takes the transaction-long lock on `wamid`. Without it, a status webhook and the send's
/// result arriving together could each miss the other's uncommitted row, and the status would
/// never be applied.
async fn lock_wamid(tx: &mut Tx, wamid: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(wamid).execute(&mut **tx).await?;
    Ok(())
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    let result = async {
        sqlx::query(migrate::CREATE_TABLE).execute(&mut *conn).await?;
        for m in migrate::POSTGRES {
            let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM wagate_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await?;
            if applied.is_none() {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(m.script())).execute(&mut *tx).await.map_err(|e| m.failed(e))?;
                tx.commit().await?;
                tracing::info!(version = m.version, name = m.name, "applied PostgreSQL migration");
            }
        }
        Ok::<_, StorageError>(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    result
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(feature = "testing")]
#[async_trait]
impl crate::Testing for PgStore {
    async fn count_messages(&self) -> Result<i64> {
        value(&self.pool, crate::shared::COUNT_MESSAGES, ()).await
    }

    async fn count_deliveries(&self) -> Result<i64> {
        value(&self.pool, crate::shared::COUNT_DELIVERIES, ()).await
    }

    async fn last_inbound(&self, phone_number_id: &str, customer: &str) -> Result<Option<Timestamp>> {
        let at =
            first(&self.pool, crate::shared::SELECT_LAST_INBOUND, (phone_number_id, customer), |r| r.get(0)).await?;
        Ok(at.map(crate::shared::ts))
    }
}
