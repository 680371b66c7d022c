//! `/v1/api-keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::api_key::Scope;
use wagate_domain::time::Timestamp;
use wagate_storage::ApiKey;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path};
use crate::services::api_keys;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_key, list_keys)).routes(routes!(revoke_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, 1 to 100 characters.
    name: String,
    /// What the key may do: `admin` (accounts, phone-number settings, API keys, the sandbox's
    /// test-tool paths; implies the others), `send` (send, cancel, mark read, write contacts),
    /// `read` (read messages, contacts, conversations, media, numbers, accounts). At least one;
    /// `["admin"]` when left out.
    #[schema(value_type = Option<Vec<Scope>>, example = json!(["send", "read"]))]
    scopes: Option<Vec<String>>,
}

/// An API key as listed: never the key itself.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    id: String,
    name: String,
    /// The key's first characters, to recognise it.
    prefix: String,
    /// What the key may do; `admin` implies the others.
    #[schema(value_type = Vec<Scope>, example = json!(["send", "read"]))]
    scopes: Vec<&'static str>,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.into_string(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.iter().map(Scope::as_str).collect(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKeyView {
    #[serde(flatten)]
    record: ApiKeyView,
    /// The key. Shown this once; only its hash is stored.
    key: String,
}

/// Create an API key. Needs `admin`, as every path under `/v1/api-keys`.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    request_body = CreateKey,
    responses((status = 201, body = CreatedKeyView), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_key(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKeyView>), ApiError> {
    let created = api_keys::create(state.store.as_ref(), &req.name, req.scopes.as_deref()).await?;
    let view = CreatedKeyView { key: created.key.expose().to_owned(), record: created.record.into() };
    Ok((StatusCode::CREATED, Json(view)))
}

/// List API keys, revoked ones included.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    params(ListParams),
    responses((status = 200, body = List<ApiKeyView>)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_keys(State(state): State<AppState>, page: PageRequest) -> Result<Json<List<ApiKeyView>>, ApiError> {
    let keys = api_keys::list(state.store.as_ref()).await?;
    let (keys, next_cursor) = page.slice(keys, |k| k.id.as_str());
    Ok(Json(List { data: keys.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Revoke an API key. It stops working at once on this instance, within 2 seconds on others.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn revoke_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    api_keys::revoke(state.store.as_ref(), Some(&state.caches.api_keys), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
