//! Files the business uploads to send, and Meta's copy of each per number.

use async_trait::async_trait;
use wagate_domain::id::MediaId;
use wagate_domain::time::Timestamp;

use super::{PgStore, execute, first};
use crate::shared::{self, upload_values};
use crate::*;

#[async_trait]
impl Uploads for PgStore {
    async fn insert_upload(&self, upload: &Upload) -> Result<()> {
        execute(&self.pool, shared::INSERT_UPLOAD, upload_values(upload)).await?;
        Ok(())
    }

    async fn get_upload(&self, id: &MediaId) -> Result<Option<Upload>> {
        first(&self.pool, shared::SELECT_UPLOAD, (id.as_str(),), shared::upload).await
    }

    async fn delete_upload(&self, id: &MediaId) -> Result<bool> {
        Ok(execute(&self.pool, shared::DELETE_UPLOAD, (id.as_str(),)).await? == 1)
    }

    async fn meta_copy(&self, id: &MediaId, phone_number_id: &str) -> Result<Option<MetaCopy>> {
        first(&self.pool, shared::SELECT_META_COPY, (id.as_str(), phone_number_id), shared::meta_copy).await
    }

    async fn record_meta_copy(&self, id: &MediaId, phone_number_id: &str, copy: &MetaCopy) -> Result<()> {
        let values = (id.as_str(), phone_number_id, copy.meta_media_id.as_str(), copy.uploaded_at.as_millis());
        execute(&self.pool, shared::UPSERT_META_COPY, values).await?;
        Ok(())
    }

    async fn forget_meta_copy(&self, id: &MediaId, phone_number_id: &str, uploaded_before: Timestamp) -> Result<()> {
        let values = (id.as_str(), phone_number_id, uploaded_before.as_millis());
        execute(&self.pool, shared::DELETE_META_COPY, values).await?;
        Ok(())
    }
}
