//! Operations: `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::{AppState, Worker};
use crate::workers::janitor;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// `/metrics`, apart: `[metrics] require_key` puts it behind an API key.
pub fn metrics_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    #[schema(example = "ready")]
    status: &'static str,
    database: bool,
    dispatcher: bool,
    inbound_processor: bool,
    media_downloader: bool,
    janitor: bool,
    event_deliverer: bool,
}

/// Up: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready: the database answers and the workers are running.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.store.ping().await.is_ok();
    // A worker that has not beaten for several poll intervals is stuck or dead.
    let max_age = |poll_ms: u64| (poll_ms as i64) * 4 + 5_000;
    // An instance configured not to send has no dispatcher to wait for.
    let dispatcher = !state.config.dispatcher.enabled
        || state.health.alive(Worker::Dispatcher, max_age(state.config.dispatcher.poll_interval_ms));
    let inbound_processor = state.health.alive(Worker::Inbound, max_age(state.config.inbound.poll_interval_ms));
    let media_downloader = state.health.alive(Worker::Media, max_age(state.config.media.poll_interval_ms));
    let janitor = state.health.alive(Worker::Janitor, max_age(janitor::ROUND.as_millis() as u64));
    let event_deliverer = state.health.alive(Worker::Events, max_age(state.config.events.poll_interval_ms.max(250)));
    let ready = database && dispatcher && inbound_processor && media_downloader && janitor && event_deliverer;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            database,
            dispatcher,
            inbound_processor,
            media_downloader,
            janitor,
            event_deliverer,
        }),
    )
}

/// Prometheus metrics, in the OpenMetrics text format. Needs an API key when the server is
/// configured so (`[metrics] require_key`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 401, body = crate::error::ErrorBody))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let store = &state.store;
    match tokio::try_join!(store.outbox().pending(), store.deliveries().pending()) {
        Ok((outbox, backlog)) => {
            state.metrics.outbox_depth.set(outbox);
            state.metrics.webhook_backlog.set(backlog);
        }
        Err(e) => tracing::warn!(error = %e, "reading queue depths failed"),
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}
