//! `/v1/events`: the log of everything the business's software is told about, listed or
//! followed live (Server-Sent Events), and how events show the resources they are about.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{
    Account, Contact, Event, EventFilter, EventOrder, EventViews, Media, Message, MessageTemplate, StatusEntry, Store,
    WebhookEndpoint, WebhookEvent,
};

use super::accounts::{AccountEventView, EventView as AccountWebhookEventView};
use super::contacts::ContactView;
use super::list::List;
use super::media::MediaView;
use super::messages::MessageView;
use super::templates::TemplateView;
use super::webhook_endpoints::EndpointView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ListParams, PageRequest, Query};
use crate::services::events;
use crate::services::messages::MessageDetails;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(stream_events))
}

/// Events show resources as the native API does.
pub struct ApiViews;

impl EventViews for ApiViews {
    fn message(&self, message: &Message, history: &[StatusEntry]) -> Value {
        let details = MessageDetails { message: message.clone(), history: history.to_vec() };
        serde_json::to_value(MessageView::from(details)).expect("views serialise")
    }

    fn contact(&self, contact: &Contact) -> Value {
        serde_json::to_value(ContactView::from(contact.clone())).expect("views serialise")
    }

    fn media(&self, media: &Media) -> Value {
        serde_json::to_value(MediaView::from(media.clone())).expect("views serialise")
    }

    fn endpoint(&self, endpoint: &WebhookEndpoint) -> Value {
        serde_json::to_value(EndpointView::from(endpoint.clone())).expect("views serialise")
    }

    fn account(&self, account: &Account) -> Value {
        serde_json::to_value(AccountEventView::from(account)).expect("views serialise")
    }

    fn webhook_event(&self, event: &WebhookEvent) -> Value {
        serde_json::to_value(AccountWebhookEventView::from(event.clone())).expect("views serialise")
    }

    fn template(&self, template: &MessageTemplate) -> Value {
        serde_json::to_value(TemplateView::from(template.clone())).expect("views serialise")
    }
}

/// A change the business's software is told about.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// `evt_…`: also the `webhook-id` of every delivery of it.
    id: String,
    /// `message.received`, `message.read`, `contact.created`, … (see docs/events.md).
    #[serde(rename = "type")]
    #[schema(example = "message.read")]
    kind: String,
    /// The number the event is about, when it is about one.
    phone_number_id: Option<String>,
    created_at: Timestamp,
    /// The resource as the native API shows it, when the event was made.
    #[schema(value_type = Object)]
    data: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self { id: e.id, kind: e.kind, phone_number_id: e.phone_number_id, created_at: e.created_at, data: e.data }
    }
}

/// `?type=&phone_number_id=&after=` of `GET /v1/events` and its stream.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    /// Types or patterns, comma-separated: `message.read,contact.*`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    phone_number_id: Option<String>,
    /// An event id: the events after it, oldest first (without it, the list is newest first).
    after: Option<String>,
}

impl EventQuery {
    /// The filter, and the event the order starts after when one is named.
    async fn filter(self, store: &dyn Store, cursor: Option<&str>) -> Result<EventFilter, ApiError> {
        let types = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(kinds) => {
                let list: Vec<&str> = kinds.split(',').map(str::trim).collect();
                events::check_patterns(&list).map_err(|e| FieldError::new("type", e.rule, e.message))?
            }
            None => Vec::new(),
        };
        let order = match (self.after.as_deref(), cursor) {
            (_, Some(cursor)) if self.after.is_some() => {
                EventOrder::After(events::event(store, "cursor", cursor).await?.seq)
            }
            (Some(after), _) => EventOrder::After(events::event(store, "after", after).await?.seq),
            (None, Some(cursor)) => {
                EventOrder::Newest { before: Some(events::event(store, "cursor", cursor).await?.seq) }
            }
            (None, None) => EventOrder::Newest { before: None },
        };
        Ok(EventFilter { types, phone_number_id: self.phone_number_id, order })
    }
}

/// List events: newest first, or with `after`, oldest first from that event on (how a consumer
/// catches up). Kept for `[events] keep_days` (30).
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(EventQuery, ListParams),
    responses((status = 200, body = List<EventView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_events(
    State(state): State<AppState>,
    Query(query): Query<EventQuery>,
    page: PageRequest,
) -> Result<Json<List<EventView>>, ApiError> {
    let filter = query.filter(state.store.as_ref(), page.cursor.as_deref()).await?;
    let limit = page.limit as u32;
    let mut found = events::list_events(state.store.as_ref(), &filter, limit + 1).await?;
    let next_cursor = (found.len() > page.limit).then(|| {
        found.truncate(page.limit);
        found.last().map(|e| e.id.clone())
    });
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor: next_cursor.flatten() }))
}

/// Follow events live, as Server-Sent Events: `id` the event id, `event` its type, `data` the
/// event as `GET /v1/events` shows it. Resumes after `Last-Event-ID` (or `after`) with every
/// event since, then follows new ones; without either, starts with the next new event.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    params(
        EventQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id received: resume after it"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn stream_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(mut query): Query<EventQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        query.after = Some(last.to_owned());
    }
    let filter = query.filter(state.store.as_ref(), None).await?;
    let poll = Duration::from_millis(state.config.events.poll_interval_ms.max(50) * 5);
    let events = events::follow(state.store.clone(), filter, state.signals.watch_events(), poll).await?;
    let stream = events.map(|event| {
        let sse = SseEvent::default().id(event.id.clone()).event(event.kind.clone()).json_data(EventView::from(event));
        Ok(sse.expect("events serialise"))
    });
    // A first comment puts the response's head on the wire at once, not with the first event.
    let opened = futures_util::stream::once(async { Ok(SseEvent::default().comment("events follow")) });
    let stream = opened.chain(stream).take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
