//! `/v1/webhook-endpoints`: where events are posted, the log of every attempt, replays and tests.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{LoggedAttempt, Replay, WebhookEndpoint};

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path};
use crate::services::events::{self, EndpointSettings, MAX_REPLAY_IDS};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_attempts))
        .routes(routes!(replay))
        .routes(routes!(test_endpoint))
}

/// A URL of the business's that events are posted to: wagate's events signed as Standard
/// Webhooks asks, or Meta's webhook bodies as Meta sent them.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    /// `wep_…`
    id: String,
    url: String,
    description: Option<String>,
    /// The event types and patterns (`message.*`, `*`) it subscribes to; empty for Meta's format.
    #[schema(example = json!(["message.*", "contact.created"]))]
    events: Vec<String>,
    /// Only events about these numbers; null: every number.
    phone_number_ids: Option<Vec<String>>,
    /// The names of the headers sent with every delivery (their values are not shown).
    headers: Vec<String>,
    /// `standard`: wagate's events as Standard Webhooks. `meta`: every webhook body Meta sent
    /// about its numbers, byte for byte, signed with `X-Hub-Signature-256`.
    #[schema(example = "standard")]
    format: &'static str,
    /// Meta's format: true when it signs with an app secret of its own, false when with the
    /// app secret of the account each body is about (the value is never shown).
    app_secret_set: bool,
    /// Meta's format: messages sent through wagate are posted too, as Meta-shaped
    /// `smb_message_echoes`.
    include_echoes: bool,
    enabled: bool,
    /// Why wagate disabled it (`410 Gone`, failing for too long); null otherwise.
    disabled_reason: Option<String>,
    /// Since when every attempt has failed; null after a success.
    failing_since: Option<Timestamp>,
    /// Until when the secret before the last rotation still signs, beside the new one.
    previous_secret_expires_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.events.iter().map(|p| p.as_str().to_owned()).collect(),
            phone_number_ids: e.phone_number_ids,
            headers: e.headers.into_keys().collect(),
            format: e.format.as_str(),
            app_secret_set: e.app_secret.is_some(),
            include_echoes: e.include_echoes,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_expires_at: e.previous_secret.map(|(_, until)| until),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret: answered when it is made and when the secret rotates,
/// never again.
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// `whsec_` and the base64 of 32 random bytes: the key of the `webhook-signature` HMAC.
    /// Left out for Meta's format, which is signed with an app secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: Option<String>,
}

/// `POST /v1/webhook-endpoints`; on `PATCH`, every field is optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// An http or https URL; a non-public address only inside `[network] allow_private`.
    #[schema(example = "https://example.com/wagate/events")]
    url: Option<String>,
    /// Event types or patterns: `message.read`, `message.*`, `*`. 1 to 50; required for the
    /// standard format, left out for Meta's.
    #[schema(example = json!(["message.*", "contact.created"]))]
    events: Option<Vec<String>>,
    /// Only events about these numbers; null or left out: every number.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<Vec<String>>)]
    phone_number_ids: Option<Option<Vec<String>>>,
    /// Up to 500 characters.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Sent with every delivery (an `Authorization` the receiver checks, say); up to 20. Stored
    /// sealed; listed by name only. On `PATCH`, replaces them all.
    #[schema(example = json!({"authorization": "Bearer s3cr3t"}))]
    headers: Option<BTreeMap<String, String>>,
    /// True (the default) to deliver; false pauses it, its deliveries waiting.
    enabled: Option<bool>,
    /// `standard` (the default): wagate's events, signed as Standard Webhooks asks. `meta`:
    /// Meta's webhook bodies as Meta sent them (after wagate verified them), for software written
    /// for Meta's webhooks. Cannot change after creation.
    #[schema(example = "standard")]
    format: Option<String>,
    /// Meta's format: the app secret to sign `X-Hub-Signature-256` with (as an account's: up to
    /// 2048 characters, no whitespace); left out or null: the app secret of the account each body
    /// is about.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    app_secret: Option<Option<String>>,
    /// Meta's format: also post messages sent through wagate, as Meta-shaped
    /// `smb_message_echoes` (default false).
    include_echoes: Option<bool>,
}

impl From<EndpointRequest> for EndpointSettings {
    fn from(r: EndpointRequest) -> Self {
        Self {
            url: r.url,
            events: r.events,
            phone_number_ids: r.phone_number_ids,
            description: r.description,
            headers: r.headers,
            enabled: r.enabled,
            format: r.format,
            app_secret: r.app_secret,
            include_echoes: r.include_echoes,
        }
    }
}

/// Add an endpoint. The standard format answers its `secret` (this once): verify each
/// delivery's `webhook-signature` with it, with any Standard Webhooks library. Meta's format is
/// verified as Meta's webhooks are, with the app secret.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "webhook-endpoints",
    request_body = EndpointRequest,
    responses((status = 201, body = EndpointWithSecret), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_endpoint(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EndpointRequest>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let policy = state.config.network.policy();
    let created = events::create(state.store.as_ref(), &policy, req.into()).await?;
    let secret = created.secret.map(|s| s.expose().to_owned());
    let view = EndpointWithSecret { endpoint: created.endpoint.into(), secret };
    Ok((StatusCode::CREATED, Json(view)))
}

/// List endpoints.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "webhook-endpoints",
    params(ListParams),
    responses((status = 200, body = List<EndpointView>)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_endpoints(
    State(state): State<AppState>,
    page: PageRequest,
) -> Result<Json<List<EndpointView>>, ApiError> {
    let endpoints = events::list(state.store.as_ref()).await?;
    let (endpoints, next_cursor) = page.slice(endpoints, |e| e.id.as_str());
    Ok(Json(List { data: endpoints.into_iter().map(Into::into).collect(), next_cursor }))
}

#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_endpoint(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(events::get(state.store.as_ref(), &id).await?.into()))
}

/// Change an endpoint: only the fields given. `"enabled": true` on an endpoint wagate disabled
/// delivers what waited meanwhile.
#[utoipa::path(
    patch,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    request_body = EndpointRequest,
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EndpointRequest>,
) -> Result<Json<EndpointView>, ApiError> {
    let policy = state.config.network.policy();
    let updated = events::update(state.store.as_ref(), &policy, &id, req.into()).await?;
    state.signals.event_deliveries_queued();
    Ok(Json(updated.into()))
}

/// Delete an endpoint, with its deliveries and their log.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_endpoint(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    events::delete(state.store.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new secret. For 24 hours deliveries carry two signatures (space-separated in
/// `webhook-signature`), one with each secret, so receivers can switch without missing any.
/// An endpoint of Meta's format has no such secret (409): PATCH its `app_secret`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/rotate-secret",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = EndpointWithSecret),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let (endpoint, secret) = events::rotate_secret(state.store.as_ref(), &id).await?;
    Ok(Json(EndpointWithSecret { endpoint: endpoint.into(), secret: Some(secret.expose().to_owned()) }))
}

/// One attempt at delivering an event.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    id: i64,
    /// The delivery (one per event and endpoint) the attempt was for.
    delivery_id: i64,
    event_id: String,
    attempted_at: Timestamp,
    /// The endpoint's HTTP status; null when it did not answer.
    status_code: Option<u16>,
    latency_ms: i64,
    /// The first KiB of the endpoint's answer.
    response: Option<String>,
    /// Why the attempt failed; null when it succeeded.
    error: Option<String>,
}

impl From<LoggedAttempt> for AttemptView {
    fn from(a: LoggedAttempt) -> Self {
        Self {
            id: a.id,
            delivery_id: a.delivery_id,
            event_id: a.event_id,
            attempted_at: a.attempt.at,
            status_code: a.attempt.status,
            latency_ms: a.attempt.latency_ms,
            response: a.attempt.response,
            error: a.attempt.error,
        }
    }
}

/// The log of an endpoint's delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/attempts",
    tag = "webhook-endpoints",
    params(("id" = String, Path), ListParams),
    responses((status = 200, body = List<AttemptView>), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    page: PageRequest,
) -> Result<Json<List<AttemptView>>, ApiError> {
    let limit = page.limit as u32 + 1;
    let mut attempts = events::attempts(state.store.as_ref(), &id, page.cursor.as_deref(), limit).await?;
    let next_cursor = (attempts.len() > page.limit).then(|| {
        attempts.truncate(page.limit);
        attempts.last().map(|a| a.id.to_string())
    });
    Ok(Json(List { data: attempts.into_iter().map(Into::into).collect(), next_cursor: next_cursor.flatten() }))
}

/// `POST /v1/webhook-endpoints/{id}/replay`: one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Every event since this RFC 3339 time that the endpoint subscribes to.
    since: Option<String>,
    /// These events (1 to 1000), whatever the endpoint subscribes to.
    event_ids: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    /// Deliveries queued.
    queued: u64,
}

/// Deliver events again: those since a time, or those named. Each goes with its own
/// `webhook-id`, as the first time.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/replay",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    request_body = ReplayRequest,
    responses((status = 202, body = Replayed), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let replay = match (req.since, req.event_ids) {
        (Some(since), None) => Replay::Since(
            Timestamp::parse_rfc3339(&since)
                .ok_or_else(|| FieldError::new("since", "timestamp", "must be an RFC 3339 time"))?,
        ),
        (None, Some(ids)) => Replay::Ids(ids),
        _ => {
            let why = format!("give either `since` (an RFC 3339 time) or `event_ids` (1 to {MAX_REPLAY_IDS} ids)");
            return Err(FieldError::new("since", "one_of", why).into());
        }
    };
    let queued = events::replay(state.store.as_ref(), &id, replay).await?;
    state.signals.event_deliveries_queued();
    Ok((StatusCode::ACCEPTED, Json(Replayed { queued })))
}

#[derive(Serialize, ToSchema)]
pub struct TestSent {
    /// The `ping` event queued for the endpoint: follow it in the attempts.
    event_id: String,
}

/// Send the endpoint a `ping` event (`{"type": "ping", …}`), to check it receives and verifies.
/// An endpoint of Meta's format is sent a Meta-shaped body without entries
/// (`{"object": "whatsapp_business_account", "entry": []}`), signed as the others.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/test",
    tag = "webhook-endpoints",
    params(("id" = String, Path)),
    responses((status = 202, body = TestSent), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn test_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    let event = events::ping(state.store.as_ref(), &id).await?;
    state.signals.event_deliveries_queued();
    Ok((StatusCode::ACCEPTED, Json(TestSent { event_id: event.id })))
}
