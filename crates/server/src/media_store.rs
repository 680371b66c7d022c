//! Where media bytes live, customers' files and the business's uploads alike, each under
//! wagate's id: a directory by default (`<data_dir>/media`), or an S3-compatible bucket by
//! configuration, so that every instance on one database serves the same files.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::config::{Config, MediaStoreKind};

#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
}

#[derive(Debug, thiserror::Error)]
#[error("the media store failed: {0}")]
pub struct MediaStoreError(#[from] object_store::Error);

/// A stored file: its length, and its bytes as they are read.
pub struct StoredFile {
    pub size: u64,
    pub bytes: BoxStream<'static, Result<Bytes, MediaStoreError>>,
}

/// A file being written in parts; it exists once finished.
pub struct FileWriter(WriteMultipart);

/// Parts being sent to the store at once, per file.
const PARTS_IN_FLIGHT: usize = 4;

impl FileWriter {
    /// Adds a chunk, once the parts before it leave room.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), MediaStoreError> {
        self.0.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.0.write(chunk);
        Ok(())
    }

    pub async fn finish(self) -> Result<(), MediaStoreError> {
        self.0.finish().await?;
        Ok(())
    }

    /// Gives up: nothing is left behind.
    pub async fn abort(self) {
        let _ = self.0.abort().await;
    }
}

impl MediaStore {
    /// The store `[media]` configures.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let media = &config.media;
        let inner: Arc<dyn ObjectStore> = match media.store {
            MediaStoreKind::Local => {
                let dir = config.data_dir.join("media");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot make the media directory {}: {e}", dir.display()))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            MediaStoreKind::S3 => {
                let bucket = media
                    .s3_bucket
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("media.store = \"s3\" needs media.s3_bucket"))?;
                let mut s3 = AmazonS3Builder::new().with_bucket_name(bucket).with_region(&media.s3_region);
                if let Some(endpoint) = &media.s3_endpoint {
                    s3 = s3.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                if let (Some(id), Some(secret)) = (&media.s3_access_key_id, &media.s3_secret_access_key) {
                    s3 = s3.with_access_key_id(id).with_secret_access_key(secret.expose());
                }
                Arc::new(s3.build()?)
            }
        };
        Ok(Self { inner })
    }

    fn path(key: &str) -> StorePath {
        StorePath::from(key)
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), MediaStoreError> {
        self.inner.put(&Self::path(key), bytes.into()).await?;
        Ok(())
    }

    /// A file to write in parts (a download streamed in), under `key` once finished.
    pub async fn writer(&self, key: &str) -> Result<FileWriter, MediaStoreError> {
        let upload = self.inner.put_multipart(&Self::path(key)).await?;
        Ok(FileWriter(WriteMultipart::new(upload)))
    }

    /// The file under `key`, None when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<StoredFile>, MediaStoreError> {
        match self.inner.get(&Self::path(key)).await {
            Ok(found) => {
                let size = found.meta.size;
                let bytes = found.into_stream().map(|r| r.map_err(MediaStoreError::from)).boxed();
                Ok(Some(StoredFile { size, bytes }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The whole file under `key`, None when there is none.
    pub async fn read(&self, key: &str) -> Result<Option<Bytes>, MediaStoreError> {
        match self.inner.get(&Self::path(key)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of the file under `key`, None when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, MediaStoreError> {
        match self.inner.head(&Self::path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes `start..end` of the file under `key` (fewer at its end): what a job reads a batch at
    /// a time, from where it left off.
    pub async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, MediaStoreError> {
        Ok(self.inner.get_range(&Self::path(key), start..end).await?)
    }

    /// Removes the file under `key`; nothing to remove is no error.
    pub async fn delete(&self, key: &str) -> Result<(), MediaStoreError> {
        match self.inner.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
