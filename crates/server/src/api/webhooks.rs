//! `/webhooks/meta`: Meta's webhook receiver.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Query, RawBody};
use crate::metrics::Metrics;
use crate::services::webhooks::{self, Receipt};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify, receive))
        .layer(DefaultBodyLimit::max(state.config.inbound.max_body_bytes))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode", example = "subscribe")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: echoes `hub.challenge` when `hub.verify_token` is the verify
/// token of a connected account.
#[utoipa::path(
    get,
    path = "/webhooks/meta",
    tag = "webhooks",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, as text", body = String, content_type = "text/plain"),
        (status = 403, description = "Unknown verify token", body = ErrorBody),
    )
)]
async fn verify(State(state): State<AppState>, Query(q): Query<Handshake>) -> Result<Response, ApiError> {
    if webhooks::verify_subscription(&state, q.mode.as_deref(), q.verify_token.as_deref()).await? {
        Ok(q.challenge.unwrap_or_default().into_response())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "hub.mode must be subscribe and hub.verify_token a known verify token",
        ))
    }
}

/// Receive a webhook from Meta.
///
/// The `X-Hub-Signature-256` header must be the HMAC-SHA256 of the exact body under the app
/// secret of the account the payload names (`entry[].id`, the WABA); anything else, including a
/// payload naming no connected WABA, is refused with 403 and not stored.
/// A verified delivery is stored before the 200 and processed from storage.
#[utoipa::path(
    post,
    path = "/webhooks/meta",
    tag = "webhooks",
    request_body(content = String, description = "Meta's webhook payload, exactly as Meta signed it", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body under the app secret>")),
    responses(
        (status = 200, description = "Stored"),
        (status = 403, description = "Missing or wrong signature", body = ErrorBody),
    )
)]
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    // One answer for every refusal: which one applied would tell an unsigned caller whether a
    // WABA is connected. The log and the metrics say which.
    let refused = |outcome: &'static str, why: &str| {
        Metrics::outcome(&state.metrics.webhook_requests, outcome);
        tracing::warn!(outcome, "webhook refused: {why}");
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the delivery is not signed with the app secret of a connected WhatsApp Business Account",
        )
    };
    match webhooks::receive(&state, signature, body.into()).await? {
        Receipt::Stored(_) => {
            Metrics::outcome(&state.metrics.webhook_requests, "stored");
            Ok(StatusCode::OK)
        }
        Receipt::MissingSignature => Err(refused("missing_signature", "the X-Hub-Signature-256 header is missing")),
        Receipt::UnknownAccount => Err(refused("unknown_account", "the payload names no connected WABA")),
        Receipt::BadSignature => Err(refused("bad_signature", "the signature matches no account's app secret")),
    }
}
