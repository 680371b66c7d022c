//! Files the business uploads to send, and Meta's copy of each per number.

use async_trait::async_trait;
use wagate_domain::id::MediaId;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{execute, first};
use crate::shared::{self, upload_values};
use crate::*;

#[async_trait]
impl Uploads for SqliteStore {
    async fn insert_upload(&self, upload: &Upload) -> Result<()> {
        let upload = upload.clone();
        self.writer.write(move |tx| execute(tx, shared::INSERT_UPLOAD, upload_values(&upload))).await?;
        Ok(())
    }

    async fn get_upload(&self, id: &MediaId) -> Result<Option<Upload>> {
        self.readers.read(|c| first(c, shared::SELECT_UPLOAD, [id.as_str()], |r| shared::upload(r)))
    }

    async fn delete_upload(&self, id: &MediaId) -> Result<bool> {
        Ok(self.execute(shared::DELETE_UPLOAD, (id.as_str().to_owned(),)).await? == 1)
    }

    async fn meta_copy(&self, id: &MediaId, phone_number_id: &str) -> Result<Option<MetaCopy>> {
        self.readers
            .read(|c| first(c, shared::SELECT_META_COPY, [id.as_str(), phone_number_id], |r| shared::meta_copy(r)))
    }

    async fn record_meta_copy(&self, id: &MediaId, phone_number_id: &str, copy: &MetaCopy) -> Result<()> {
        let values = (
            id.as_str().to_owned(),
            phone_number_id.to_owned(),
            copy.meta_media_id.clone(),
            copy.uploaded_at.as_millis(),
        );
        self.execute(shared::UPSERT_META_COPY, values).await?;
        Ok(())
    }

    async fn forget_meta_copy(&self, id: &MediaId, phone_number_id: &str, uploaded_before: Timestamp) -> Result<()> {
        let values = (id.as_str().to_owned(), phone_number_id.to_owned(), uploaded_before.as_millis());
        self.execute(shared::DELETE_META_COPY, values).await?;
        Ok(())
    }
}
