//! Media files customers sent, and the queue of their downloads: a row is pending (due at
//! `available_at`, or leased until then) until it is stored or has failed for good.

use async_trait::async_trait;
use wagate_domain::id::{MediaId, MessageId, new_id};
use wagate_domain::time::Timestamp;

use super::{PgStore, rows};
use crate::shared::media_cols;
use crate::*;

#[async_trait]
impl MediaFiles for PgStore {
    async fn insert_media(&self, m: &NewMedia) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO media (id, account_id, phone_number_id, message_id, meta_media_id, kind, \
             mime_type, sha256, filename, caption, state, attempts, available_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', 0, $11, $11, $11) \
             ON CONFLICT (account_id, meta_media_id) DO NOTHING",
        )
        .bind(m.id.as_str())
        .bind(m.account_id.as_str())
        .bind(&m.phone_number_id)
        .bind(m.message_id.as_str())
        .bind(&m.meta_media_id)
        .bind(&m.kind)
        .bind(&m.mime_type)
        .bind(&m.sha256)
        .bind(&m.filename)
        .bind(&m.caption)
        .bind(m.created_at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn media_stored(&self, job: &Leased<Media>, f: &StoredMedia) -> Result<bool> {
        let stored = sqlx::query(
            "UPDATE media SET state = 'stored', available_at = NULL, lease = NULL, last_error = NULL, \
             file_size = $3, sha256 = COALESCE(sha256, $4), downloaded_at = $5, updated_at = $5 \
             WHERE id = $1 AND lease = $2 AND state = 'pending'",
        )
        .bind(job.id.as_str())
        .bind(&job.lease)
        .bind(f.file_size)
        .bind(&f.sha256)
        .bind(f.at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(stored.rows_affected() == 1)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>> {
        sqlx::query(concat!("SELECT ", media_cols!(), " FROM media WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::media)
            .transpose()
    }

    async fn list_media(&self, f: &MediaFilter, limit: u32) -> Result<Vec<Media>> {
        sqlx::query(concat!(
            "SELECT ",
            media_cols!(),
            " FROM media WHERE ($1 IS NULL OR message_id = $1) ",
            "AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(f.message_id.as_ref().map(MessageId::as_str))
        .bind(f.before.as_ref().map(MediaId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::media)
        .collect()
    }
}

#[async_trait]
impl LeasedQueue<Media> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Media>>> {
        // Instances skip each other's rows instead of waiting on them (and without the row locks
        // two could claim the same row).
        let lease = new_id("lease");
        let claimed = sqlx::query(concat!(
            "UPDATE media SET lease = $1, available_at = $2, attempts = attempts + 1, updated_at = $3 ",
            "WHERE id IN (SELECT id FROM media WHERE available_at IS NOT NULL AND available_at <= $3 ",
            "ORDER BY available_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING ",
            media_cols!()
        ))
        .bind(&lease)
        .bind(lease_until.as_millis())
        .bind(now.as_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = claimed
            .iter()
            .map(|r| {
                let item = rows::media(r)?;
                Ok(Leased { attempts: item.attempts, item, lease: lease.clone(), lease_until })
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    async fn retry(&self, job: &Leased<Media>, due_at: Timestamp, error: &str, at: Timestamp) -> Result<bool> {
        let retried = sqlx::query(
            "UPDATE media SET available_at = $3, lease = NULL, last_error = $4, updated_at = $5 \
             WHERE id = $1 AND lease = $2 AND state = 'pending'",
        )
        .bind(job.id.as_str())
        .bind(&job.lease)
        .bind(due_at.as_millis())
        .bind(error)
        .bind(at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(retried.rows_affected() == 1)
    }

    async fn give_up(&self, job: &Leased<Media>, error: &str, at: Timestamp) -> Result<bool> {
        let failed = sqlx::query(
            "UPDATE media SET state = 'failed', available_at = NULL, lease = NULL, last_error = $3, \
             updated_at = $4 WHERE id = $1 AND lease = $2 AND state = 'pending'",
        )
        .bind(job.id.as_str())
        .bind(&job.lease)
        .bind(error)
        .bind(at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(failed.rows_affected() == 1)
    }

    async fn pending(&self) -> Result<i64> {
        // A pending row has an `available_at` (its due time or its lease's end): the index's rows.
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE available_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await?)
    }
}
