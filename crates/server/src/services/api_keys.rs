//! API keys: created and shown once, verified by hash in constant time, listed by prefix.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wagate_domain::api_key;
use wagate_domain::id::ApiKeyId;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::check_length;
use wagate_storage::{ApiKey, StorageError, Store};

use super::ServiceError;
use crate::state::AppState;

/// `last_used_at` is written at most this often per key, so authenticating stays a read.
const TOUCH_EVERY_MS: i64 = 60_000;

/// How long an authenticated key is trusted without reading it again: a key revoked through
/// another instance (or the CLI) stops working here within this.
const CACHED_FOR: Duration = Duration::from_secs(5);
/// Beyond this many keys the cache starts over, so made-up keys cannot grow it.
const CACHE_MAX: usize = 10_000;

/// Active keys by hash, with when each was read.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, (ApiKey, Instant)>>);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<ApiKey> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(hash).filter(|(_, at)| at.elapsed() < CACHED_FOR).map(|(k, _)| k.clone())
    }

    fn put(&self, key: &ApiKey) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key.key_hash.clone(), (key.clone(), Instant::now()));
    }

    fn forget(&self, id: &ApiKeyId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (k, _)| &k.id != id);
    }
}

pub struct CreatedKey {
    pub record: ApiKey,
    /// The key in clear: shown once, never stored.
    pub key: Secret,
}

pub async fn create(store: &dyn Store, name: &str) -> Result<CreatedKey, ServiceError> {
    let name = name.trim();
    check_length("name", name, 1, 100)?;
    let generated = api_key::generate();
    let record = ApiKey {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        prefix: generated.prefix,
        key_hash: generated.hash,
        created_at: Timestamp::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    Ok(CreatedKey { record, key: generated.key })
}

/// The active key `presented` is, if any.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Option<ApiKey>, StorageError> {
    let hash = api_key::hash(presented);
    if let Some(key) = state.api_keys.get(&hash) {
        return Ok(Some(key));
    }
    let Some(key) = state.store.find_api_key_by_hash(&hash).await? else {
        return Ok(None);
    };
    if !api_key::hashes_match(&key.key_hash, &hash) || key.revoked_at.is_some() {
        return Ok(None);
    }
    let now = Timestamp::now();
    if key.last_used_at.is_none_or(|t| now.as_millis() - t.as_millis() >= TOUCH_EVERY_MS) {
        state.store.touch_api_key(&key.id, now).await?;
    }
    state.api_keys.put(&key);
    Ok(Some(key))
}

/// Makes sure `key` exists and is active (`WAGATE_BOOTSTRAP_API_KEY`): inserted, or un-revoked.
/// One statement, so instances starting together cannot trip over each other.
pub async fn ensure_bootstrap(store: &dyn Store, key: &Secret) -> Result<(), ServiceError> {
    store
        .ensure_api_key(&ApiKey {
            id: ApiKeyId::generate(),
            name: "bootstrap".into(),
            prefix: api_key::visible_prefix(key.expose()),
            key_hash: api_key::hash(key.expose()),
            created_at: Timestamp::now(),
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
    Ok(())
}

pub async fn list(store: &dyn Store) -> Result<Vec<ApiKey>, ServiceError> {
    Ok(store.list_api_keys().await?)
}

/// Revokes by id; not found when no such active key exists.
/// Revokes key `id`: at once on this instance (`cache`), within [`CACHED_FOR`] on others.
pub async fn revoke(store: &dyn Store, cache: Option<&KeyCache>, id: &str) -> Result<(), ServiceError> {
    let parsed = ApiKeyId::parse(id).ok_or_else(|| ServiceError::not_found("API key", id))?;
    if store.revoke_api_key(&parsed, Timestamp::now()).await? {
        if let Some(cache) = cache {
            cache.forget(&parsed);
        }
        Ok(())
    } else {
        Err(ServiceError::not_found("active API key", id))
    }
}
