//! Media files customers sent, and their downloads as a leased queue.

use async_trait::async_trait;
use wagate_domain::id::{MediaId, new_id};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::emit;
use super::rows::{all, execute, first, value};
use crate::shared::{self, claim_media};
use crate::*;

const CLAIM_MEDIA: &str = claim_media!("");

#[async_trait]
impl MediaFiles for SqliteStore {
    async fn insert_media(&self, m: &NewMedia) -> Result<bool> {
        let m = m.clone();
        Ok(self.writer.write(move |tx| execute(tx, shared::INSERT_MEDIA, shared::media_values(&m))).await? == 1)
    }

    async fn media_stored(&self, job: &Leased<Media>, f: &StoredMedia) -> Result<bool> {
        let params = (f.file_size, f.sha256.clone(), f.at.as_millis(), job.id.as_str().to_owned(), job.lease.clone());
        self.media_ended(job, shared::MEDIA_STORED, params, f.at).await
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>> {
        self.readers.read(|c| first(c, shared::SELECT_MEDIA, [id.as_str()], |r| shared::media(r)))
    }

    async fn list_media(&self, filter: &MediaFilter, limit: u32) -> Result<Vec<Media>> {
        let params = (
            filter.message_id.as_ref().map(|m| m.as_str().to_owned()),
            filter.before.as_ref().map(|b| b.as_str().to_owned()),
            limit,
        );
        self.readers.scan(move |c| all(c, shared::SELECT_MEDIA_LIST, params, |r| shared::media(r))).await
    }
}

impl SqliteStore {
    /// Ends a download with `sql` (stored, or given up), and its event.
    async fn media_ended<P>(&self, job: &Leased<Media>, sql: &'static str, params: P, at: Timestamp) -> Result<bool>
    where
        P: rusqlite::Params + Clone + Send + 'static,
    {
        let (id, views) = (job.id.as_str().to_owned(), self.views.clone());
        self.writer
            .write(move |tx| {
                if execute(tx, sql, params.clone())? != 1 {
                    return Ok(false);
                }
                if let Some(media) = first(tx, shared::SELECT_MEDIA, [&id], |r| shared::media(r))? {
                    emit(tx, &shared::media_event(views.as_ref(), &media), at.as_millis())?;
                }
                Ok(true)
            })
            .await
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
                let mut claimed = all(tx, CLAIM_MEDIA, params, |r| shared::leased_media(r, &lease, lease_until))?;
                claimed.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(claimed)
            })
            .await
    }

    async fn retry(&self, item: &Leased<Media>, due_at: Timestamp, error: &str, at: Timestamp) -> Result<bool> {
        let params =
            (due_at.as_millis(), error.to_owned(), at.as_millis(), item.id.as_str().to_owned(), item.lease.clone());
        Ok(self.execute(shared::RETRY_MEDIA, params).await? == 1)
    }

    async fn give_up(&self, item: &Leased<Media>, error: &str, at: Timestamp) -> Result<bool> {
        let params = (error.to_owned(), at.as_millis(), item.id.as_str().to_owned(), item.lease.clone());
        self.media_ended(item, shared::GIVE_UP_MEDIA, params, at).await
    }

    /// Downloads not done yet: due, waiting for a retry, or leased. Those are the rows with an
    /// `available_at` (a download stored or given up on has none), which an index holds.
    async fn pending(&self) -> Result<i64> {
        self.readers.scan(|c| value(c, shared::COUNT_PENDING_MEDIA, [])).await
    }
}
