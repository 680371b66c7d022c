//! API keys: created and shown once, verified by hash in constant time, listed by prefix.

use std::time::Instant;

use wagate_domain::api_key::{self, Scope, Scopes};
use wagate_domain::id::ApiKeyId;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::check_length;
use wagate_storage::{ApiKey, StorageError, Store};

use super::ServiceError;
use crate::caches::KeyCache;

/// `last_used_at` is written at most this often per key, so authenticating stays a read.
const TOUCH_EVERY_MS: i64 = 60_000;

pub struct CreatedKey {
    pub record: ApiKey,
    /// The key in clear: shown once, never stored.
    pub key: Secret,
}

/// A new key named `name` with `scopes` (names of scopes; every right, `admin`, when absent).
pub async fn create(store: &dyn Store, name: &str, scopes: Option<&[String]>) -> Result<CreatedKey, ServiceError> {
    let name = name.trim();
    check_length("name", name, 1, 100)?;
    let scopes = match scopes {
        Some(names) => Scopes::parse_list("scopes", names)?,
        None => Scopes::ADMIN,
    };
    let generated = api_key::generate();
    let record = ApiKey {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        prefix: generated.prefix,
        key_hash: generated.hash,
        scopes,
        created_at: Timestamp::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    Ok(CreatedKey { record, key: generated.key })
}

/// The active key `presented` is, if any.
pub async fn authenticate(
    store: &dyn Store,
    cache: &KeyCache,
    presented: &str,
) -> Result<Option<ApiKey>, StorageError> {
    let hash = api_key::hash(presented);
    let (key, read_at, cached) = match cache.get(&hash) {
        Some((key, read_at)) => (key, read_at, true),
        None => match store.find_api_key_by_hash(&hash).await? {
            Some(key) => (key, Instant::now(), false),
            None => return Ok(None),
        },
    };
    if !api_key::hashes_match(&key.key_hash, &hash) || key.revoked_at.is_some() {
        return Ok(None);
    }
    let now = Timestamp::now();
    if key.last_used_at.is_none_or(|t| now.as_millis() - t.as_millis() >= TOUCH_EVERY_MS) {
        store.touch_api_key(&key.id, now).await?;
        cache.put(&ApiKey { last_used_at: Some(now), ..key.clone() }, read_at);
    } else if !cached {
        cache.put(&key, read_at);
    }
    Ok(Some(key))
}

/// Makes sure `key` (`WAGATE_BOOTSTRAP_API_KEY`) exists: inserted with every right the first
/// time, left as it is after. Revoking it is for good, so a start that finds it revoked says so
/// and leaves it revoked.
pub async fn ensure_bootstrap(store: &dyn Store, key: &Secret) -> Result<(), ServiceError> {
    let stored = store
        .ensure_api_key(&ApiKey {
            id: ApiKeyId::generate(),
            name: "bootstrap".into(),
            prefix: api_key::visible_prefix(key.expose()),
            key_hash: api_key::hash(key.expose()),
            scopes: Scopes::ADMIN,
            created_at: Timestamp::now(),
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
    if let Some(at) = stored.revoked_at {
        tracing::warn!(
            id = %stored.id,
            revoked_at = %at,
            "WAGATE_BOOTSTRAP_API_KEY names a revoked key; it stays revoked; create a new one with `wagate keys create`"
        );
    } else if !stored.scopes.allows(Scope::Admin) {
        tracing::warn!(
            id = %stored.id,
            scopes = %stored.scopes,
            "WAGATE_BOOTSTRAP_API_KEY names a key made with fewer rights than admin; it keeps them"
        );
    }
    Ok(())
}

pub async fn list(store: &dyn Store) -> Result<Vec<ApiKey>, ServiceError> {
    Ok(store.list_api_keys().await?)
}

/// Revokes by id; not found when no such active key exists. `cache`: the serving instance's,
/// which forgets the key at once.
pub async fn revoke(store: &dyn Store, cache: Option<&KeyCache>, id: &str) -> Result<(), ServiceError> {
    let parsed = ApiKeyId::parse(id).ok_or_else(|| ServiceError::not_found("API key", id))?;
    if store.revoke_api_key(&parsed, Timestamp::now()).await? {
        if let Some(cache) = cache {
            cache.forget_all();
        }
        Ok(())
    } else {
        Err(ServiceError::not_found("active API key", id))
    }
}
