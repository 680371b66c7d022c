//! Keys for wagate's own API, stored by hash.

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use wagate_domain::id::ApiKeyId;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{self, all, first};
use crate::shared::{SELECT_API_KEY_BY_HASH, api_key_cols};
use crate::*;

macro_rules! insert_api_key {
    () => {
        concat!("INSERT INTO api_keys (", api_key_cols!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
    };
}
const INSERT_API_KEY: &str = insert_api_key!();
/// One statement, so instances starting together cannot trip over each other; a known key is
/// left as it is, revoked or not.
const INSERT_API_KEY_ONCE: &str = concat!(insert_api_key!(), " ON CONFLICT (key_hash) DO NOTHING");

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.writer.write(move |tx| insert(tx, INSERT_API_KEY, &key)).await?;
        Ok(())
    }

    async fn ensure_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        let key = ApiKey { last_used_at: None, revoked_at: None, ..key.clone() };
        self.writer
            .write(move |tx| {
                insert(tx, INSERT_API_KEY_ONCE, &key)?;
                first(tx, SELECT_API_KEY_BY_HASH, [&key.key_hash], rows::api_key)?
                    .ok_or_else(|| StorageError::Corrupt(format!("API key {} vanished as it was ensured", key.id)))
            })
            .await
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.readers.read(|c| first(c, SELECT_API_KEY_BY_HASH, [key_hash], rows::api_key))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let sql = concat!("SELECT ", api_key_cols!(), " FROM api_keys ORDER BY id");
        self.readers.scan(move |c| all(c, sql, [], rows::api_key)).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool> {
        let sql = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
        Ok(self.execute(sql, (id.as_str().to_owned(), at.as_millis())).await? == 1)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        let sql = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1";
        self.execute(sql, (id.as_str().to_owned(), at.as_millis())).await?;
        Ok(())
    }
}

fn insert(tx: &Transaction<'_>, sql: &str, k: &ApiKey) -> Result<usize> {
    Ok(tx.prepare_cached(sql)?.execute(params![
        k.id.as_str(),
        k.name,
        k.prefix,
        k.key_hash,
        k.scopes.to_stored(),
        k.created_at.as_millis(),
        k.last_used_at.map(Timestamp::as_millis),
        k.revoked_at.map(Timestamp::as_millis),
    ])?)
}
