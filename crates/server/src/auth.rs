//! API keys at the door of the native API, the Meta-compatible surface and the sandbox's
//! test-tool paths in `serve`: which key a request carries, whether its scopes allow the route
//! ([`required_scope`], the one place that decides), and whether it is within its request rate.

use std::time::Duration;

use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use wagate_domain::api_key::{Scope, Scopes};
use wagate_domain::id::ApiKeyId;
use wagate_storage::StorageError;

use crate::error::ApiError;
use crate::services::api_keys;
use crate::state::AppState;

/// The key a request was made with, for handlers that need it.
#[derive(Clone, Debug)]
pub struct AuthenticatedKey {
    pub id: ApiKeyId,
    pub scopes: Scopes,
}

/// `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())).map(str::trim).filter(|k| !k.is_empty())
}

/// Where a ChakraHQ plugin's Graph paths are mounted.
pub const CHAKRA_GRAPH: &str = "/chakra/v1/ext/plugin/whatsapp/{plugin_id}/api";

/// The scope a route needs, by method and matched path (as the router names it, `{id}` and
/// all); None for a route no rule here names. Such a route is refused to every key but an
/// admin's, and a test walks every route served to make sure there is none.
pub fn required_scope(method: &Method, route: &str) -> Option<Scope> {
    // The sandbox's test-tool paths make "Meta" say anything: an admin's tool.
    if route.starts_with("/sandbox/control/") || route.starts_with("/sandbox/simulate/") {
        return Some(Scope::Admin);
    }
    // A ChakraHQ plugin's pass-through paths are the Graph paths.
    if let Some(graph) = route.strip_prefix(CHAKRA_GRAPH) {
        return required_scope(method, &format!("/graph{graph}"));
    }
    let scope = match (method.as_str(), route) {
        // Where wagate sends from, with what credentials and limits, and who may use it.
        (_, "/v1/api-keys" | "/v1/api-keys/{id}")
        // Who may sign in to the team inbox, and what they see.
        | (_, "/v1/users" | "/v1/users/{id}" | "/v1/teams" | "/v1/teams/{id}")
        // Where events go, with what secrets and headers.
        | (_, "/v1/webhook-endpoints" | "/v1/webhook-endpoints/{id}")
        | (_, "/v1/webhook-endpoints/{id}/rotate-secret" | "/v1/webhook-endpoints/{id}/attempts")
        | (_, "/v1/webhook-endpoints/{id}/replay" | "/v1/webhook-endpoints/{id}/test")
        | ("POST", "/v1/accounts" | "/v1/accounts/{id}/resume")
        // Templates are made, changed and removed at Meta.
        | ("POST", "/v1/templates" | "/v1/templates/sync")
        | ("PATCH" | "DELETE", "/v1/templates/{id}" | "/v1/templates/{name}/{language}")
        | ("PATCH", "/v1/accounts/{id}" | "/v1/phone-numbers/{id}") => Scope::Admin,
        (
            "POST",
            "/v1/messages"
            | "/v1/messages/{id}/cancel"
            | "/v1/messages/{id}/read"
            | "/v1/conversations/{id}/read"
            | "/graph/{version}/{node}/messages",
        )
        | ("PATCH", "/v1/contacts/{id}") => Scope::Send,
        (
            "POST",
            "/whatomate/api/contacts/{id}/messages" | "/whatomate/api/messages/template" | "/whatomate/api/messages/media",
        )
        | ("PUT", "/whatomate/api/messages/{id}/read") => Scope::Send,
        ("GET", "/whatomate/api/contacts" | "/whatomate/api/contacts/{id}/messages") => Scope::Read,
        // The Graph surface: a node is a number, an account, a file, a template or a group. A
        // template's edit also needs admin, checked where the node is known.
        ("POST", "/graph/{version}/{node}" | "/graph/{version}/{node}/media") | ("DELETE", "/graph/{version}/{node}") => {
            Scope::Send
        }
        ("POST", "/graph/{version}/{node}/groups" | "/graph/{version}/{node}/invite_link")
        | ("POST" | "DELETE", "/graph/{version}/{node}/join_requests")
        | ("DELETE", "/graph/{version}/{node}/participants") => Scope::Send,
        ("POST" | "DELETE", "/graph/{version}/{node}/message_templates")
        | ("POST", "/graph/{version}/{node}/whatsapp_business_encryption") => Scope::Admin,
        (
            "GET",
            "/graph/{version}/{node}"
            | "/graph/{version}/{node}/phone_numbers"
            | "/graph/{version}/{node}/message_templates"
            | "/graph/{version}/{node}/whatsapp_business_encryption"
            | "/graph/{version}/{node}/groups"
            | "/graph/{version}/{node}/invite_link"
            | "/graph/{version}/{node}/join_requests",
        ) => Scope::Read,
        // Uploads are what messages are made of.
        ("POST", "/v1/media" | "/v1/media/{id}/link") | ("DELETE", "/v1/media/{id}") => Scope::Send,
        // Groups are who a number's messages go to, like contacts.
        ("POST", "/v1/groups" | "/v1/groups/{id}/invite-link" | "/v1/groups/{id}/participants/remove")
        | ("POST", "/v1/groups/{id}/join-requests/approve" | "/v1/groups/{id}/join-requests/reject")
        | ("PATCH" | "DELETE", "/v1/groups/{id}") => Scope::Send,
        ("PUT", "/v1/phone-numbers/{id}/flows-key") => Scope::Admin,
        // Campaigns are sends, many at once.
        ("POST", "/v1/campaigns" | "/v1/campaigns/{id}/recipients" | "/v1/campaigns/{id}/preflight")
        | ("POST", "/v1/campaigns/{id}/start" | "/v1/campaigns/{id}/pause" | "/v1/campaigns/{id}/resume")
        | ("POST", "/v1/campaigns/{id}/cancel" | "/v1/campaigns/{id}/retry-failed" | "/v1/campaigns/{id}/clone")
        | ("POST", "/v1/campaigns/{id}/recipients/export")
        | ("DELETE", "/v1/campaigns/{id}/recipients/{to}") => Scope::Send,
        // Imports write contacts, as PATCH /v1/contacts/{id} does.
        ("POST", "/v1/contacts/import" | "/v1/jobs/{id}/cancel") => Scope::Send,
        ("GET", "/v1/jobs" | "/v1/jobs/{id}" | "/v1/jobs/{id}/entries" | "/v1/jobs/{id}/result") => Scope::Read,
        (
            "GET",
            "/v1/campaigns" | "/v1/campaigns/{id}" | "/v1/campaigns/{id}/recipients" | "/v1/campaigns/{id}/recipients.csv",
        ) => Scope::Read,
        // A ChakraHQ plugin's configuration is where its events go.
        ("POST", "/chakra/v1/ext/plugin/whatsapp/{plugin_id}/update-config") => Scope::Admin,
        ("GET", "/chakra/v1/ext/plugin/whatsapp/{plugin_id}/config") => Scope::Read,
        (
            "GET",
            "/v1/messages"
            | "/v1/messages/{id}"
            | "/v1/contacts"
            | "/v1/contacts/{id}"
            | "/v1/conversations"
            | "/v1/conversations/{id}"
            | "/v1/conversations/{id}/messages"
            | "/v1/media"
            | "/v1/media/{id}"
            | "/v1/media/{id}/content"
            | "/v1/templates"
            | "/v1/groups"
            | "/v1/groups/{id}"
            | "/v1/groups/{id}/invite-link"
            | "/v1/groups/{id}/join-requests"
            | "/v1/phone-numbers/{id}/flows-key"
            | "/v1/templates/{id}"
            | "/v1/templates/{name}/{language}"
            | "/v1/phone-numbers"
            | "/v1/accounts"
            | "/v1/accounts/{id}"
            | "/v1/accounts/{id}/events"
            | "/v1/events"
            | "/v1/events/stream"
            // Only behind a key with `[metrics] require_key`.
            | "/metrics",
        ) => Scope::Read,
        // Chirp's dialect.
        ("POST", "/chirp/v1/whatsapp/messages" | "/chirp/v1/media") => Scope::Send,
        ("GET", "/chirp/v1/whatsapp/messages/{id}") => Scope::Read,
        _ => return None,
    };
    Some(scope)
}

/// Says in `doc`, on each operation behind [`require_api_key`], what [`required_scope`] decides:
/// the scope in its description, and the answers of a key refused.
pub fn document_scopes(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, ResponseBuilder};
    let error = |why: &str| {
        let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
        ResponseBuilder::new().description(why).content("application/json", body).build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut().filter(|o| o.security.is_some()) else { continue };
            let needs = required_scope(&method, path).unwrap_or(Scope::Admin);
            let sentence = match needs {
                Scope::Admin => "Needs a key with scope `admin`.".to_owned(),
                other => format!("Needs a key with scope `{other}` or `admin`."),
            };
            let description = operation.description.get_or_insert_default();
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&sentence);
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| error("no key, or one unknown or revoked").into());
            responses
                .entry("403".into())
                .or_insert_with(|| error("`insufficient_scope`: the key lacks the scope this needs").into());
            responses.entry("429".into()).or_insert_with(|| {
                error(
                    "`rate_limited`: the key spent its request rate (`[api] rate_limit_per_second`); see `Retry-After`",
                )
                .into()
            });
        }
    }
}

/// Why a request was not let in. Each surface words it in its own error shape.
#[derive(Debug)]
pub enum Refusal {
    /// No key, or none known and active.
    Unauthenticated(&'static str),
    /// The key lacks the scope the route needs.
    InsufficientScope {
        has: Scopes,
        needs: Scope,
    },
    /// The key spent its request rate; whole seconds until it may ask again.
    RateLimited {
        retry_after_secs: u64,
    },
    Failed(StorageError),
}

impl Refusal {
    /// What to tell the caller; for a scope, `this key has scopes [send]; POST /v1/accounts
    /// needs admin`.
    pub fn describe(&self, method: &Method, path: &str) -> String {
        match self {
            Refusal::Unauthenticated(why) => (*why).to_owned(),
            Refusal::InsufficientScope { has, needs } => {
                format!("this key has scopes {has}; {method} {path} needs {needs}")
            }
            Refusal::RateLimited { retry_after_secs } => {
                format!("this key made more requests than its rate allows; retry after {retry_after_secs} s")
            }
            Refusal::Failed(_) => "internal error; see the server log".to_owned(),
        }
    }
}

/// Lets a request to `route` (its matched path) in, or says why not: the key `headers` carry
/// must be active, within its rate, and have the scope the route needs.
pub async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    route: &str,
) -> Result<AuthenticatedKey, Refusal> {
    let Some(presented) = presented_key(headers) else {
        return Err(Refusal::Unauthenticated("missing API key: send Authorization: Bearer <key> or X-API-Key: <key>"));
    };
    let key = match api_keys::authenticate(state.store.as_ref(), &state.caches.api_keys, presented).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(Refusal::Unauthenticated("unknown or revoked API key")),
        Err(e) => return Err(Refusal::Failed(e)),
    };
    if let Some(rates) = &state.key_rates {
        rates.take(&key.id).map_err(|wait| Refusal::RateLimited { retry_after_secs: whole_seconds(wait) })?;
    }
    let needs = required_scope(method, route).unwrap_or(Scope::Admin);
    if !key.scopes.allows(needs) {
        return Err(Refusal::InsufficientScope { has: key.scopes, needs });
    }
    Ok(AuthenticatedKey { id: key.id, scopes: key.scopes })
}

/// The native API's and the sandbox's door: [`admit`], with refusals as native errors.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    match admit(&state, req.headers(), req.method(), route).await {
        Ok(key) => {
            req.extensions_mut().insert(key);
            Ok(next.run(req).await)
        }
        Err(refusal) => {
            // As the caller wrote it: a nested router (the sandbox's) sees its path without its prefix.
            let path = req.extensions().get::<OriginalUri>().map_or(req.uri().path(), |uri| uri.path());
            let message = refusal.describe(req.method(), path);
            Err(match refusal {
                Refusal::Unauthenticated(_) => ApiError::unauthorized(message),
                Refusal::InsufficientScope { .. } => {
                    ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
                }
                Refusal::RateLimited { retry_after_secs } => {
                    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                    e.retry_after = Some(retry_after_secs);
                    e
                }
                Refusal::Failed(e) => ApiError::internal("authenticating an API key failed", e),
            })
        }
    }
}

/// `Retry-After` counts whole seconds, and 0 would invite an immediate retry.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_never_zero_and_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2_100)), 3);
    }

    #[test]
    fn admin_paths_need_admin_and_unknown_routes_are_undecided() {
        assert_eq!(required_scope(&Method::DELETE, "/v1/api-keys/{id}"), Some(Scope::Admin));
        assert_eq!(required_scope(&Method::PUT, "/sandbox/control/webhook"), Some(Scope::Admin));
        assert_eq!(required_scope(&Method::GET, "/v1/accounts"), Some(Scope::Read));
        assert_eq!(required_scope(&Method::POST, "/v1/accounts"), Some(Scope::Admin));
        assert_eq!(required_scope(&Method::DELETE, "/v1/messages/{id}"), None);
        assert_eq!(required_scope(&Method::GET, "/v1/not-a-route"), None);
    }
}
