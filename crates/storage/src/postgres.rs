//! PostgreSQL: for production and for several wagate instances sharing one database. Outbox
//! and delivery rows are claimed with `FOR UPDATE SKIP LOCKED`, so instances never wait on each
//! other's rows; per-wamid advisory locks serialise a send's result with its status webhooks.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};

use crate::migrate;
use crate::{Backend, Result, StorageError};

/// Advisory lock key held while migrating, so instances starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7761_6761_7465; // "wagate"

pub struct PgStore {
    pool: PgPool,
    enqueuer: crate::sql::Enqueuer,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        migrate(&pool).await?;
        // A few batch writers, so one batch's commit overlaps the next one's statements.
        let enqueuer = store::spawn_enqueuers(pool.clone(), 3);
        Ok(Self { pool, enqueuer })
    }

    fn enqueuer(&self) -> &crate::sql::Enqueuer {
        &self.enqueuer
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        Self::begin_on(&self.pool).await
    }

    async fn begin_on(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    /// Without it, a status webhook and the send's result arriving together could each miss
    /// the other's uncommitted row, and the status would never be applied.
    async fn lock_wamid(tx: &mut Transaction<'static, Postgres>, wamid: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(wamid).execute(&mut **tx).await?;
        Ok(())
    }

    const CLAIM_DELIVERIES: &'static str = "UPDATE webhook_deliveries SET lease = $1, available_at = $2, \
        attempts = attempts + 1 WHERE id IN (SELECT id FROM webhook_deliveries \
        WHERE available_at IS NOT NULL AND available_at <= $3 ORDER BY available_at, id LIMIT $4 \
        FOR UPDATE SKIP LOCKED) RETURNING id, account_id, body, received_at, attempts";
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
                sqlx::raw_sql(m.script()).execute(&mut *tx).await.map_err(|e| m.failed(e))?;
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

mod store {
    use super::*;
    crate::sql::impl_store!(PgStore, PgRow, Transaction<'static, Postgres>, Postgres, PgPool, Backend::Postgres);
}
