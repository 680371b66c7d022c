//! Keys for wagate's own API, stored by hash.

use async_trait::async_trait;
use wagate_domain::id::ApiKeyId;
use wagate_domain::time::Timestamp;

use super::{PgStore, all, execute, first};
use crate::shared::{self, api_key_values};
use crate::*;

#[async_trait]
impl ApiKeys for PgStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        execute(&self.pool, shared::INSERT_API_KEY, api_key_values(key)).await?;
        Ok(())
    }

    async fn ensure_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        let key = ApiKey { last_used_at: None, revoked_at: None, ..key.clone() };
        execute(&self.pool, shared::INSERT_API_KEY_ONCE, api_key_values(&key)).await?;
        self.find_api_key_by_hash(&key.key_hash)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("API key {} vanished as it was ensured", key.id)))
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        first(&self.pool, shared::SELECT_API_KEY_BY_HASH, (key_hash,), shared::api_key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        all(&self.pool, shared::SELECT_API_KEYS, (), shared::api_key).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool> {
        Ok(execute(&self.pool, shared::REVOKE_API_KEY, (at.as_millis(), id.as_str())).await? == 1)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        execute(&self.pool, shared::TOUCH_API_KEY, (at.as_millis(), id.as_str())).await?;
        Ok(())
    }
}
