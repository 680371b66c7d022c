//! Media files customers sent, and the queue of their downloads: a row is pending (due at
//! `available_at`, or leased until then) until it is stored or has failed for good.

use async_trait::async_trait;
use wagate_domain::id::{MediaId, MessageId, new_id};
use wagate_domain::time::Timestamp;

use super::events::emit_all;
use super::{PgStore, Tx, all, execute, first, value};
use crate::shared::{self, claim_media};
use crate::*;

/// Instances skip each other's rows instead of waiting on them (and without the row locks two
/// could claim the same row).
const CLAIM_MEDIA: &str = claim_media!(" FOR UPDATE SKIP LOCKED");

#[async_trait]
impl MediaFiles for PgStore {
    async fn insert_media(&self, m: &NewMedia) -> Result<bool> {
        Ok(execute(&self.pool, shared::INSERT_MEDIA, shared::media_values(m)).await? == 1)
    }

    async fn media_stored(&self, job: &Leased<Media>, f: &StoredMedia) -> Result<bool> {
        let mut tx = self.begin().await?;
        let values = (f.file_size, &f.sha256, f.at.as_millis(), job.id.as_str(), &job.lease);
        let ended = execute(&mut *tx, shared::MEDIA_STORED, values).await? == 1;
        self.media_ended(tx, job, ended, f.at).await
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>> {
        first(&self.pool, shared::SELECT_MEDIA, (id.as_str(),), shared::media).await
    }

    async fn list_media(&self, f: &MediaFilter, limit: u32) -> Result<Vec<Media>> {
        let values =
            (f.message_id.as_ref().map(MessageId::as_str), f.before.as_ref().map(MediaId::as_str), i64::from(limit));
        all(&self.pool, shared::SELECT_MEDIA_LIST, values, shared::media).await
    }
}

#[async_trait]
impl LeasedQueue<Media> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<Media>>> {
        let lease = new_id("lease");
        let values = (&lease, lease_until.as_millis(), now.as_millis(), i64::from(limit));
        let mut jobs = all(&self.pool, CLAIM_MEDIA, values, |r| shared::leased_media(r, &lease, lease_until)).await?;
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    async fn retry(&self, job: &Leased<Media>, due_at: Timestamp, error: &str, at: Timestamp) -> Result<bool> {
        let values = (due_at.as_millis(), error, at.as_millis(), job.id.as_str(), &job.lease);
        Ok(execute(&self.pool, shared::RETRY_MEDIA, values).await? == 1)
    }

    async fn give_up(&self, job: &Leased<Media>, error: &str, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let values = (error, at.as_millis(), job.id.as_str(), &job.lease);
        let ended = execute(&mut *tx, shared::GIVE_UP_MEDIA, values).await? == 1;
        self.media_ended(tx, job, ended, at).await
    }

    async fn pending(&self) -> Result<i64> {
        value(&self.pool, shared::COUNT_PENDING_MEDIA, ()).await
    }
}

impl PgStore {
    /// Commits a download's end (`ended`: the statement changed its row), with its event.
    async fn media_ended(&self, mut tx: Tx, job: &Leased<Media>, ended: bool, at: Timestamp) -> Result<bool> {
        if ended && let Some(media) = first(&mut *tx, shared::SELECT_MEDIA, (job.id.as_str(),), shared::media).await? {
            emit_all(&mut tx, &[shared::media_event(self.views.as_ref(), &media)], at).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }
}
