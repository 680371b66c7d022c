//! SQLite: the embedded default. WAL mode; one writer connection (SQLite takes one writer at a
//! time anyway, and queueing in-process avoids busy retries) and a small pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::migrate;
use crate::{Backend, Result, StorageError};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    enqueuer: crate::sql::Enqueuer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", dir.display()).into(),
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a 202 means the message is on disk, even across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(8).connect_with(options.read_only(true)).await?;
        // One batch writer: SQLite has one writer at a time, and a batch is one commit.
        let enqueuer = store::spawn_enqueuers(writer.clone(), 1);
        Ok(Self { writer, reader, enqueuer })
    }

    fn enqueuer(&self) -> &crate::sql::Enqueuer {
        &self.enqueuer
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// IMMEDIATE takes the write lock up front, so a transaction that reads before it writes
    /// cannot fail half-way because another process (the CLI) wrote in between.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Self::begin_on(&self.writer).await
    }

    async fn begin_on(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The single writer already serialises every write transaction.
    async fn lock_wamid(_tx: &mut Transaction<'static, Sqlite>, _wamid: &str) -> Result<()> {
        Ok(())
    }

    const CLAIM_DELIVERIES: &'static str = "UPDATE webhook_deliveries SET lease = $1, available_at = $2, \
        attempts = attempts + 1 WHERE id IN (SELECT id FROM webhook_deliveries \
        WHERE available_at IS NOT NULL AND available_at <= $3 ORDER BY available_at, id LIMIT $4) \
        RETURNING id, account_id, body, received_at, attempts";
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    sqlx::query(migrate::CREATE_TABLE).execute(pool).await?;
    for m in migrate::SQLITE {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM wagate_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
        if applied.is_none() {
            sqlx::raw_sql(m.script()).execute(&mut *tx).await.map_err(|e| m.failed(e))?;
            tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
        }
        tx.commit().await?;
    }
    Ok(())
}

mod store {
    use super::*;
    crate::sql::impl_store!(SqliteStore, SqliteRow, Transaction<'static, Sqlite>, Sqlite, SqlitePool, Backend::Sqlite);
}
