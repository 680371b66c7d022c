//! Keys for wagate's own API, stored by hash.

use async_trait::async_trait;
use wagate_domain::id::ApiKeyId;
use wagate_domain::time::Timestamp;

use super::{PgStore, rows};
use crate::shared::{SELECT_API_KEY_BY_HASH, api_key_cols};
use crate::*;

#[async_trait]
impl ApiKeys for PgStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        sqlx::query(concat!("INSERT INTO api_keys (", api_key_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(key.id.as_str())
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.key_hash)
            .bind(key.scopes.to_stored())
            .bind(key.created_at.as_millis())
            .bind(key.last_used_at.map(Timestamp::as_millis))
            .bind(key.revoked_at.map(Timestamp::as_millis))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ensure_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        // One statement, so instances starting together cannot trip over each other; a known
        // key is left as it is, revoked or not.
        sqlx::query(concat!(
            "INSERT INTO api_keys (",
            api_key_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) ON CONFLICT (key_hash) DO NOTHING"
        ))
        .bind(key.id.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.key_hash)
        .bind(key.scopes.to_stored())
        .bind(key.created_at.as_millis())
        .execute(&self.pool)
        .await?;
        self.find_api_key_by_hash(&key.key_hash)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("API key {} vanished as it was ensured", key.id)))
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        sqlx::query(SELECT_API_KEY_BY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        sqlx::query(concat!("SELECT ", api_key_cols!(), " FROM api_keys ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::api_key)
            .collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool> {
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.as_str())
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(revoked.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
