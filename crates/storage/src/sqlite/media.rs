//! Media files customers sent, and their downloads as a leased queue.

use async_trait::async_trait;
use wagate_domain::id::{MediaId, new_id};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{self, all, first, value};
use crate::shared::media_cols;
use crate::*;

const INSERT_MEDIA: &str = "INSERT INTO media (id, account_id, phone_number_id, message_id, meta_media_id, kind, \
    mime_type, sha256, filename, caption, state, attempts, available_at, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', 0, ?11, ?11, ?11) \
    ON CONFLICT (account_id, meta_media_id) DO NOTHING";
const CLAIM_MEDIA: &str = concat!(
    "UPDATE media SET lease = ?1, available_at = ?2, attempts = attempts + 1, updated_at = ?3 ",
    "WHERE id IN (SELECT id FROM media WHERE available_at IS NOT NULL AND available_at <= ?3 ",
    "ORDER BY available_at, id LIMIT ?4) RETURNING ",
    media_cols!()
);
const SELECT_MEDIA: &str = concat!("SELECT ", media_cols!(), " FROM media WHERE id = ?1");
const SELECT_MEDIA_LIST: &str = concat!(
    "SELECT ",
    media_cols!(),
    " FROM media WHERE (?1 IS NULL OR message_id = ?1) AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
);

#[async_trait]
impl MediaFiles for SqliteStore {
    async fn insert_media(&self, m: &NewMedia) -> Result<bool> {
        let params = (
            m.id.as_str().to_owned(),
            m.account_id.as_str().to_owned(),
            m.phone_number_id.clone(),
            m.message_id.as_str().to_owned(),
            m.meta_media_id.clone(),
            m.kind.clone(),
            m.mime_type.clone(),
            m.sha256.clone(),
            m.filename.clone(),
            m.caption.clone(),
            m.created_at.as_millis(),
        );
        Ok(self.execute(INSERT_MEDIA, params).await? == 1)
    }

    async fn media_stored(&self, job: &Leased<Media>, stored: &StoredMedia) -> Result<bool> {
        let sql = "UPDATE media SET state = 'stored', available_at = NULL, lease = NULL, last_error = NULL, \
            file_size = ?3, sha256 = COALESCE(sha256, ?4), downloaded_at = ?5, updated_at = ?5 \
            WHERE id = ?1 AND lease = ?2 AND state = 'pending'";
        let params = (
            job.id.as_str().to_owned(),
            job.lease.clone(),
            stored.file_size,
            stored.sha256.clone(),
            stored.at.as_millis(),
        );
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>> {
        self.readers.read(|c| first(c, SELECT_MEDIA, [id.as_str()], rows::media))
    }

    async fn list_media(&self, filter: &MediaFilter, limit: u32) -> Result<Vec<Media>> {
        let params = (
            filter.message_id.as_ref().map(|m| m.as_str().to_owned()),
            filter.before.as_ref().map(|b| b.as_str().to_owned()),
            limit,
        );
        self.readers.scan(move |c| all(c, SELECT_MEDIA_LIST, params, rows::media)).await
    }
}

/// Downloads of media customers sent.
#[async_trait]
impl LeasedQueue<Media> for SqliteStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Media>>> {
        let lease = new_id("lease");
        self.writer
            .write(move |tx| {
                let params = rusqlite::params![lease, lease_until.as_millis(), now.as_millis(), limit];
                let mut claimed = all(tx, CLAIM_MEDIA, params, |r| {
                    let item = rows::media(r)?;
                    Ok(Leased { lease: lease.clone(), lease_until, attempts: item.attempts, item })
                })?;
                claimed.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(claimed)
            })
            .await
    }

    async fn retry(&self, item: &Leased<Media>, due_at: Timestamp, error: &str, at: Timestamp) -> Result<bool> {
        let sql = "UPDATE media SET available_at = ?3, lease = NULL, last_error = ?4, updated_at = ?5 \
            WHERE id = ?1 AND lease = ?2 AND state = 'pending'";
        let params =
            (item.id.as_str().to_owned(), item.lease.clone(), due_at.as_millis(), error.to_owned(), at.as_millis());
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn give_up(&self, item: &Leased<Media>, error: &str, at: Timestamp) -> Result<bool> {
        let sql = "UPDATE media SET state = 'failed', available_at = NULL, lease = NULL, last_error = ?3, \
            updated_at = ?4 WHERE id = ?1 AND lease = ?2 AND state = 'pending'";
        let params = (item.id.as_str().to_owned(), item.lease.clone(), error.to_owned(), at.as_millis());
        Ok(self.execute(sql, params).await? == 1)
    }

    /// Downloads not done yet: due, waiting for a retry, or leased. Those are the rows with an
    /// `available_at` (a download stored or given up on has none), which an index holds.
    async fn pending(&self) -> Result<i64> {
        self.readers.scan(|c| value(c, "SELECT COUNT(*) FROM media WHERE available_at IS NOT NULL", [])).await
    }
}
