//! The HTTP surfaces: one router per resource, assembled here with the OpenAPI document that
//! describes them.

mod accounts;
mod api_keys;
mod campaigns;
mod chakra;
mod chirp;
mod events;
mod graph;
mod groups;
mod jobs;
mod list;
mod media;
mod messages;
mod ops;
mod phone_numbers;
mod templates;
mod upload_form;
mod users;
mod webhook_endpoints;
mod webhooks;
mod whatomate;
// Contacts and conversations.
mod contacts;
mod conversations;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use self::events::ApiViews;
use crate::auth::{self, require_api_key};
use crate::error::ApiError;
use crate::services::ServiceError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wagate",
        description = "A self-hosted WhatsApp Business gateway in front of Meta's WhatsApp Cloud API.\n\n\
            Errors are `{\"error\": {\"code\", \"message\", \"path\"}}`; lists are `{\"data\", \"next_cursor\"}` \
            with `limit` ≤ 100; timestamps are RFC 3339 UTC.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "messages", description = "Send messages and follow their statuses"),
        (name = "accounts", description = "Meta accounts and their credentials"),
        (name = "phone-numbers", description = "Business phone numbers"),
        (name = "api-keys", description = "Keys for this API"),
        (name = "media", description = "Media files customers sent, downloaded from Meta"),
        (name = "groups", description = "Groups of a business number, managed at Meta"),
        (name = "templates", description = "Message templates, managed at Meta and checked before a send"),
        (name = "webhooks", description = "Meta's webhook receiver"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "contacts", description = "Customers, by phone number and business-scoped user id"),
        (name = "conversations", description = "A business number's exchanges with one customer"),
        (name = "events", description = "The log of what happened, listed or followed live"),
        (name = "webhook-endpoints", description = "Where events are posted, signed as Standard Webhooks asks"),
        (name = "campaigns", description = "One template to many recipients: paced, paused, resumed, accounted for"),
        (name = "jobs", description = "Imports and exports worked through in the background, row by row"),
        (name = "users", description = "The people of the team inbox: users, their roles and teams"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(f) => f.into(),
            ServiceError::NotFound { what, id } => ApiError::not_found(what, &id),
            ServiceError::Conflict(m) => ApiError::conflict(m),
            ServiceError::MetaRejected { error } => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "meta_rejected",
                    format!("Meta refused the request (code {}): {}", error.code, error.message),
                );
                e.meta = serde_json::to_value(&error).ok();
                e
            }
            ServiceError::OutsideWindow { customer, last_inbound } => {
                let last = last_inbound.map_or_else(|| "never".to_owned(), |t| format!("at {t}"));
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "outside_window",
                    format!(
                        "{customer} last wrote to this number {last}: outside the 24-hour window only a template \
                         may be sent (Meta would fail this message with 131047)"
                    ),
                )
                .at("to")
            }
            ServiceError::IdempotencyKeyReused { key, message_id } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                format!(
                    "idempotency key '{key}' was used for a different request (message {message_id}); \
                     use a new key for a new message"
                ),
            )
            .at("idempotency_key"),
            ServiceError::Backpressure { backlog } => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "backpressure",
                    format!("{backlog} messages are waiting to be sent; retry after a few seconds"),
                );
                e.retry_after = Some(5);
                e
            }
            ServiceError::GraphUnavailable(m) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "graph_unavailable",
                format!("the Graph API is unavailable: {m}"),
            ),
            ServiceError::Storage(e) => e.into(),
        }
    }
}

/// Every route wagate serves except the sandbox, and the OpenAPI document of them.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (v1, mut v1_doc) = OpenApiRouter::<AppState>::new()
        .merge(messages::router())
        .merge(accounts::router())
        .merge(phone_numbers::router())
        .merge(api_keys::router())
        .merge(media::router())
        .merge(templates::router())
        .merge(groups::router())
        .merge(contacts::router())
        .merge(conversations::router())
        .merge(events::router())
        .merge(webhook_endpoints::router())
        .merge(campaigns::router())
        .merge(jobs::router())
        .merge(users::router())
        .split_for_parts();
    let v1 = v1.layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    auth::document_scopes(&mut v1_doc);
    let (open, open_doc) = OpenApiRouter::<AppState>::new()
        .merge(ops::router())
        .merge(webhooks::router(&state))
        .merge(media::public_router())
        .split_for_parts();
    let (mut metrics, metrics_doc) = ops::metrics_router().split_for_parts();
    if state.config.metrics.require_key {
        metrics = metrics.layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    }
    let mut doc = ApiDoc::openapi();
    doc.merge(v1_doc);
    doc.merge(open_doc);
    doc.merge(metrics_doc);
    let doc_json = doc.clone();
    let router = Router::new()
        .merge(v1)
        .merge(open)
        .merge(metrics)
        .merge(graph::router())
        .merge(whatomate::router())
        .merge(chakra::router(&state))
        .merge(chirp::router())
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(doc_json) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    (router, doc)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such path: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not served on {}", uri.path()),
    )
}
