//! `/v1/messages`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::message::{MessageError, SendRequest};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{Direction, StatusEntry};

use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::services::messages::{self, MessageDetails};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_message)).routes(routes!(get_message))
}

/// A message and where it is in its life.
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    /// wagate's id: opaque, sortable, `msg_…`.
    id: String,
    #[schema(example = "outbound")]
    direction: &'static str,
    /// Outbound: the sending phone-number id. Inbound: the customer's WhatsApp id.
    from: String,
    /// Outbound: the recipient. Inbound: the receiving phone-number id.
    to: String,
    /// Meta's message type; the object of the same name carries the content.
    #[serde(rename = "type")]
    kind: String,
    /// The type's content object (`"text": {"body": "…"}`), as Meta takes and sends it.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    content: Map<String, Value>,
    status: MessageStatus,
    /// Meta's message id, once Meta accepted the message.
    wamid: Option<String>,
    /// Every status the message went through, in order.
    statuses: Vec<StatusView>,
    /// Why the message failed: Meta's code, title, message and details.
    error: Option<MessageError>,
    metadata: Option<Map<String, Value>>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct StatusView {
    status: MessageStatus,
    timestamp: Timestamp,
    /// A `delivered` Meta skipped because the message was read at once.
    implied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<MessageError>,
}

impl From<MessageDetails> for MessageView {
    fn from(d: MessageDetails) -> Self {
        let m = d.message;
        let (from, to) = match m.direction {
            Direction::Outbound => (m.phone_number_id, m.counterpart),
            Direction::Inbound => (m.counterpart, m.phone_number_id),
        };
        let content = match m.content {
            Value::Object(map) => map,
            other => Map::from_iter([(m.kind.clone(), other)]),
        };
        Self {
            id: m.id.into_string(),
            direction: m.direction.as_str(),
            from,
            to,
            kind: m.kind,
            content,
            status: m.status,
            wamid: m.wamid,
            statuses: d.history.into_iter().map(StatusView::from).collect(),
            error: m.error,
            metadata: m.metadata,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<StatusEntry> for StatusView {
    fn from(e: StatusEntry) -> Self {
        Self { status: e.status, timestamp: e.occurred_at, implied: e.implied, error: e.error }
    }
}

/// Send a message.
///
/// Validated against Meta's limits, then stored with its outbox row in one transaction and
/// answered `202`: the message is on disk and will be sent. Follow it with `GET /v1/messages/{id}`.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    request_body = SendRequest,
    responses(
        (status = 202, description = "Queued", body = MessageView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 422, description = "A field breaks a rule; `path` names it", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_message(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<SendRequest>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let details = messages::send(&state, req).await?;
    Ok((StatusCode::ACCEPTED, Json(details.into())))
}

/// Get a message with its status history.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "wagate's message id")),
    responses(
        (status = 200, body = MessageView),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_message(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(messages::get(&state, &id).await?.into()))
}
