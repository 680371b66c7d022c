//! API-key authentication for the native API and the sandbox's control paths in `serve`.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use wagate_domain::id::ApiKeyId;

use crate::error::ApiError;
use crate::services::api_keys;
use crate::state::AppState;

/// The key a request was made with, for handlers that need it.
#[derive(Clone, Debug)]
pub struct AuthenticatedKey {
    pub id: ApiKeyId,
}

/// `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())).map(str::trim).filter(|k| !k.is_empty())
}

pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = presented_key(req.headers()) else {
        return Err(ApiError::unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key: <key>"));
    };
    match api_keys::authenticate(state.store.as_ref(), &state.api_keys, key).await {
        Ok(Some(k)) => {
            req.extensions_mut().insert(AuthenticatedKey { id: k.id });
            Ok(next.run(req).await)
        }
        Ok(None) => Err(ApiError::unauthorized("unknown or revoked API key")),
        Err(e) => Err(ApiError::internal("authenticating an API key failed", e)),
    }
}
