//! Keys for wagate's own API, stored by hash.

use async_trait::async_trait;
use wagate_domain::id::ApiKeyId;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{all, execute, first};
use crate::shared::{self, api_key_values};
use crate::*;

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.writer.write(move |tx| execute(tx, shared::INSERT_API_KEY, api_key_values(&key))).await?;
        Ok(())
    }

    async fn ensure_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        let key = ApiKey { last_used_at: None, revoked_at: None, ..key.clone() };
        self.writer
            .write(move |tx| {
                execute(tx, shared::INSERT_API_KEY_ONCE, api_key_values(&key))?;
                first(tx, shared::SELECT_API_KEY_BY_HASH, [&key.key_hash], |r| shared::api_key(r))?
                    .ok_or_else(|| StorageError::Corrupt(format!("API key {} vanished as it was ensured", key.id)))
            })
            .await
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.readers.read(|c| first(c, shared::SELECT_API_KEY_BY_HASH, [key_hash], |r| shared::api_key(r)))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.readers.scan(move |c| all(c, shared::SELECT_API_KEYS, [], |r| shared::api_key(r))).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool> {
        Ok(self.execute(shared::REVOKE_API_KEY, (at.as_millis(), id.as_str().to_owned())).await? == 1)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        self.execute(shared::TOUCH_API_KEY, (at.as_millis(), id.as_str().to_owned())).await?;
        Ok(())
    }
}
