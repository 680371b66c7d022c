//! PostgreSQL: for production and for several wagate instances sharing one database. Outbox
//! and delivery rows are claimed with `FOR UPDATE SKIP LOCKED`, so instances never wait on each
//! other's rows; per-wamid advisory locks serialise a send's result with its status webhooks.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};

use wagate_domain::sealed::Cipher;

use crate::migrate;
use crate::{Backend, Result, StorageError};

/// Advisory lock key held while migrating, so instances starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7761_6761_7465; // "wagate"

pub struct PgStore {
    pool: PgPool,
    enqueuer: crate::sql::Enqueuer,
    cipher: Cipher,
}

impl PgStore {
    /// Connects, migrates, and seals the stored secrets with `cipher` (see [`crate::SqliteStore::open`]).
    /// Every instance sharing the database needs the same key: one that finds secrets sealed by
    /// another fails here.
    pub async fn connect(url: &str, cipher: Cipher) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        migrate(&pool).await?;
        // A few batch writers, so one batch's commit overlaps the next one's statements.
        let enqueuer = store::spawn_enqueuers(pool.clone(), 3);
        let store = Self { pool, enqueuer, cipher };
        store.seal_stored_secrets().await?;
        Ok(store)
    }

    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    fn enqueuer(&self) -> &crate::sql::Enqueuer {
        &self.enqueuer
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// The SQLite direct paths; PostgreSQL has none.
    fn direct(&self) -> Option<&crate::sqlite::Direct> {
        None
    }

    async fn write(&self) -> Result<sqlx::pool::PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
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

    /// Locked: instances starting together seal each row once, the later one seeing what the
    /// earlier sealed (and failing if that was another key).
    const SELECT_SECRETS: &'static str =
        "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id FOR UPDATE";
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
    use crate::sql::PreparedSend;
    crate::sql::impl_store!(PgStore, PgRow, Transaction<'static, Postgres>, Postgres, Backend::Postgres);
    crate::contacts::impl_contacts!(PgStore, PgRow, Transaction<'static, Postgres>, Postgres);

    /// Writes new messages in one transaction: each idempotency key first (a key already in
    /// use, and not expired, skips its message), then every message and its outbox row, a
    /// statement each for the whole batch.
    async fn write_outbound(
        tx: &mut Transaction<'static, Postgres>,
        batch: &[&PreparedSend],
    ) -> crate::Result<Vec<Enqueued>> {
        let mut results = Vec::with_capacity(batch.len());
        let mut keep: Vec<(&PreparedSend, bool)> = Vec::with_capacity(batch.len());
        let last_inbound = last_inbound_of(tx, batch).await?;
        for p in batch {
            let m = &p.m;
            let opens_conversation = match &m.window {
                Some(w) => {
                    let key = (m.phone_number_id.clone(), w.customer.clone());
                    let last = last_inbound.get(&key).copied().map(crate::sql::ts);
                    match w.judge(last, m.created_at) {
                        Ok(opens) => opens,
                        Err(refused) => {
                            results.push(refused);
                            continue;
                        }
                    }
                }
                None => false,
            };
            if let Some(k) = &m.idempotency {
                let taken = sqlx::query(crate::sql::TAKE_IDEMPOTENCY_KEY)
                    .bind(k.api_key_id.as_str())
                    .bind(&k.key)
                    .bind(&k.request_hash)
                    .bind(m.id.as_str())
                    .bind(&p.response)
                    .bind(m.created_at.as_millis())
                    .bind(k.expires_at.as_millis())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    let row = sqlx::query(crate::sql::SELECT_IDEMPOTENCY_KEY)
                        .bind(k.api_key_id.as_str())
                        .bind(&k.key)
                        .fetch_one(&mut **tx)
                        .await?;
                    results.push(Enqueued::KeyUsed(idempotency_row(&row)?));
                    continue;
                }
            }
            results.push(Enqueued::Stored);
            keep.push((p, opens_conversation));
        }
        if keep.is_empty() {
            return Ok(results);
        }
        let mut messages = sqlx::QueryBuilder::<Postgres>::new(concat!(
            "INSERT INTO messages (",
            message_cols!(),
            ", opens_conversation) "
        ));
        messages.push_values(&keep, |mut b, (p, opens_conversation)| {
            let m = &p.m;
            b.push_bind(m.id.as_str())
                .push_bind("outbound")
                .push_bind(m.account_id.as_str())
                .push_bind(m.phone_number_id.as_str())
                .push_bind(None::<String>)
                .push_bind(m.recipient.as_str())
                .push_bind(m.kind.as_str())
                .push_bind(p.content.as_str())
                .push_bind(crate::sql::initial_status(m))
                .push_bind(None::<String>)
                .push_bind(None::<String>)
                .push_bind(p.metadata.as_deref())
                .push_bind(m.created_at.as_millis())
                .push_bind(m.created_at.as_millis())
                .push_bind(m.send_at.map(Timestamp::as_millis))
                .push_bind(m.expires_at.map(Timestamp::as_millis))
                .push_bind(*opens_conversation);
        });
        messages.build().execute(&mut **tx).await?;
        let mut outbox = sqlx::QueryBuilder::<Postgres>::new(
            "INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, expires_at, \
             created_at) ",
        );
        outbox.push_values(&keep, |mut b, (p, _)| {
            let m = &p.m;
            b.push_bind(m.id.as_str())
                .push_bind(m.phone_number_id.as_str())
                .push_bind(m.recipient.as_str())
                .push_bind(m.due_at.as_millis())
                .push_bind(m.due_at.as_millis())
                .push_bind(m.expires_at.map(Timestamp::as_millis))
                .push_bind(m.created_at.as_millis());
        });
        outbox.build().execute(&mut **tx).await?;
        Ok(results)
    }

    /// The latest customer message of each conversation the batch's window checks name, in one
    /// round trip.
    async fn last_inbound_of(
        tx: &mut Transaction<'static, Postgres>,
        batch: &[&PreparedSend],
    ) -> crate::Result<std::collections::HashMap<(String, String), i64>> {
        let (numbers, customers): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .filter_map(|p| p.m.window.as_ref().map(|w| (p.m.phone_number_id.as_str(), w.customer.as_str())))
            .unzip();
        if numbers.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT c.phone_number_id, c.customer, c.last_inbound_at FROM conversations c \
             JOIN UNNEST($1::text[], $2::text[]) AS w (phone_number_id, customer) \
             ON c.phone_number_id = w.phone_number_id AND c.customer = w.customer",
        )
        .bind(&numbers)
        .bind(&customers)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows.into_iter().map(|(number, customer, at)| ((number, customer), at)).collect())
    }

    /// Writes a batch in one transaction (the sends with a statement per table for them all);
    /// when that fails, each job alone, so one bad job fails alone.
    async fn write_batch(pool: &PgPool, jobs: Vec<crate::sql::Job>) {
        use crate::sql::{Job, Written};
        let started = std::time::Instant::now();
        let attempt = async {
            let mut tx = PgStore::begin_on(pool).await?;
            let sends: Vec<&PreparedSend> =
                jobs.iter().filter_map(|j| if let Job::Send(m, _) = j { Some(&**m) } else { None }).collect();
            let mut sent = write_outbound(&mut tx, &sends).await?.into_iter();
            let mut results = Vec::with_capacity(jobs.len());
            for job in &jobs {
                results.push(match job {
                    Job::Send(..) => Written::Send(sent.next().expect("one result per send")),
                    Job::Delivery(d, _) => Written::Delivery(
                        sqlx::query_scalar(crate::sql::INSERT_DELIVERY)
                            .bind(d.account_id.as_ref().map(AccountId::as_str))
                            .bind(&d.body)
                            .bind(d.received_at.as_millis())
                            .fetch_one(&mut *tx)
                            .await?,
                    ),
                    Job::Accepted(..)
                    | Job::Claim(..)
                    | Job::ClaimDeliveries(..)
                    | Job::Statuses(..)
                    | Job::FinishDeliveries(..) => {
                        unreachable!("PostgreSQL runs the workers' writes in transactions of their own")
                    }
                });
            }
            tx.commit().await?;
            Ok::<_, crate::StorageError>(results)
        };
        let outcome = attempt.await;
        tracing::trace!(batch = jobs.len(), elapsed_us = started.elapsed().as_micros() as u64, "batch stored");
        if let Some(jobs) = crate::sql::settle(jobs, outcome) {
            for job in jobs {
                Box::pin(write_batch(pool, vec![job])).await;
            }
        }
    }

    /// Takes new sends and deliveries off the queue and stores them in batches: everything that
    /// arrived while the previous batch was being committed goes into the next, one commit for all.
    pub(super) fn spawn_enqueuers(pool: PgPool, tasks: usize) -> crate::sql::Enqueuer {
        let (enqueuer, rx) = crate::sql::Enqueuer::new();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..tasks {
            let (pool, rx) = (pool.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        crate::sql::fill_batch(first, &mut rx)
                    };
                    write_batch(&pool, batch).await;
                }
            });
        }
        enqueuer
    }
}
