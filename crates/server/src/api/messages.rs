//! `/v1/messages`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::id::MessageId;
use wagate_domain::message::{MessageError, SendRequest, check_idempotency_key, request_hash};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{Direction, MessageFilter, StatusEntry};

use super::list::List;
use crate::auth::AuthenticatedKey;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBodyWithBytes, ListParams, PageRequest, Path, Query, RawBody, parse_json};
use crate::services::messages::{self, Idempotency, MessageDetails, Sent};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_message, list_messages))
        .routes(routes!(get_message))
        .routes(routes!(mark_read))
        .routes(routes!(cancel_message))
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
    /// The wamid of the message this one replies to (or, for a reaction, reacts to).
    reply_to: Option<String>,
    /// That message's wagate id, when wagate has it.
    reply_to_message_id: Option<String>,
    /// Sent from the WhatsApp Business app on a number shared with it (a message echo).
    from_app: bool,
    status: MessageStatus,
    /// Meta's message id, once Meta accepted the message.
    wamid: Option<String>,
    /// Every status the message went through, in order.
    statuses: Vec<StatusView>,
    /// Why the message failed: Meta's code, title, message and details.
    error: Option<MessageError>,
    metadata: Option<Map<String, Value>>,
    /// A template message as the customer sees it (`header`, `body`, `footer`, `buttons`,
    /// `cards`), when wagate knew the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    rendered: Option<Value>,
    /// When it was asked to go, for a scheduled message.
    #[serde(skip_serializing_if = "Option::is_none")]
    send_at: Option<Timestamp>,
    /// After this it fails instead of going out late.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct StatusView {
    status: MessageStatus,
    timestamp: Timestamp,
    /// A `delivered` Meta skipped because the message was read at once.
    implied: bool,
    /// For a message to a group: the participant (`recipient_participant_id`) this is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    participant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<MessageError>,
    /// Meta's conversation object, when the status carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    conversation: Option<Value>,
    /// Meta's pricing object (`billable`, `pricing_model`, `category`…), when the status carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pricing: Option<Value>,
}

impl From<MessageDetails> for MessageView {
    fn from(d: MessageDetails) -> Self {
        let m = d.message;
        let (from, to) = match m.direction {
            Direction::Outbound => (m.phone_number_id, m.counterpart),
            Direction::Inbound => (m.counterpart, m.phone_number_id),
        };
        let mut content = match m.content {
            Value::Object(map) => map,
            other => Map::from_iter([(m.kind.clone(), other)]),
        };
        // Outbound context is `{"message_id"}`, Meta's inbound context `{"from", "id"}`.
        let reply_to = content
            .remove("context")
            .and_then(|c| c.get("message_id").or_else(|| c.get("id")).and_then(Value::as_str).map(str::to_owned))
            .or(m.reply_to_wamid);
        Self {
            id: m.id.into_string(),
            direction: m.direction.as_str(),
            from,
            to,
            kind: m.kind,
            content,
            reply_to,
            reply_to_message_id: m.reply_to.map(MessageId::into_string),
            from_app: m.from_app,
            status: m.status,
            wamid: m.wamid,
            statuses: d.history.into_iter().map(StatusView::from).collect(),
            error: m.error,
            metadata: m.metadata,
            rendered: m.rendered,
            send_at: m.send_at,
            expires_at: m.expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<StatusEntry> for StatusView {
    fn from(e: StatusEntry) -> Self {
        let mut detail = e.detail;
        let mut take = |key: &str| detail.as_mut().and_then(Value::as_object_mut).and_then(|d| d.remove(key));
        Self {
            status: e.status,
            timestamp: e.occurred_at,
            implied: e.implied,
            participant: e.participant,
            error: e.error,
            conversation: take("conversation"),
            pricing: take("pricing"),
        }
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
        (status = 202, description = "Queued (or scheduled); with `Idempotent-Replayed: true`, the first answer \
            to this idempotency key", body = MessageView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for a different request", body = ErrorBody),
        (status = 422, description = "A field breaks a rule; `path` names it", body = ErrorBody),
        (status = 429, description = "Too many messages waiting; retry after `Retry-After` seconds", body = ErrorBody),
    ),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same as `idempotency_key`")),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_message(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthenticatedKey>,
    headers: HeaderMap,
    JsonBodyWithBytes(req, body): JsonBodyWithBytes<SendRequest>,
) -> Result<Response, ApiError> {
    let header = match headers.get("idempotency-key") {
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::from(FieldError::new("Idempotency-Key", "idempotency_key", "must be visible ASCII"))
            })?;
            check_idempotency_key("Idempotency-Key", key)?;
            Some(key.to_owned())
        }
        None => None,
    };
    let key = match (header, &req.idempotency_key) {
        (Some(h), Some(b)) if &h != b => {
            return Err(FieldError::new(
                "idempotency_key",
                "conflicts_with_header",
                "differs from the Idempotency-Key header; send one or the other",
            )
            .into());
        }
        (h, b) => h.or_else(|| b.clone()),
    };
    let idempotency = key.map(|key| {
        // The body parsed as a request, so it parses as JSON.
        let value: Value = serde_json::from_slice(&body).expect("a parsed body is JSON");
        Idempotency { api_key_id: caller.id, key, request_hash: request_hash(&value) }
    });
    let render = |d: &MessageDetails| serde_json::to_value(MessageView::from(d.clone())).expect("a view serialises");
    match messages::send(&state, req, idempotency, &render).await? {
        Sent::New(details) => Ok((StatusCode::ACCEPTED, Json(MessageView::from(*details))).into_response()),
        Sent::Replayed { response, .. } => {
            Ok((StatusCode::ACCEPTED, [("idempotent-replayed", "true")], Json(response)).into_response())
        }
    }
}

/// Cancel a message not yet handed to Meta.
///
/// A message that is queued, scheduled or waiting to be retried is cancelled (`canceled`) and
/// never sent; one being sent or already done cannot be, and gets 409.
#[utoipa::path(
    post,
    path = "/v1/messages/{id}/cancel",
    tag = "messages",
    params(("id" = String, Path, description = "wagate's message id")),
    responses(
        (status = 200, description = "Cancelled", body = MessageView),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "Being sent or done", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn cancel_message(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(messages::cancel(state.store.as_ref(), &state.outbox, &id).await?.into()))
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
    Ok(Json(messages::get(state.store.as_ref(), &id).await?.into()))
}

/// `?direction=&status=&from=&to=&since=&limit=&cursor=` of `GET /v1/messages`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `outbound` or `inbound`.
    direction: Option<String>,
    /// A status such as `read` or `failed`.
    status: Option<String>,
    /// The sender: a phone-number id for outbound messages, a customer for inbound ones.
    from: Option<String>,
    /// The recipient: a customer for outbound messages, a phone-number id for inbound ones.
    to: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    since: Option<String>,
}

impl ListQuery {
    fn filter(self, page: &PageRequest) -> Result<MessageFilter, FieldError> {
        let direction = self
            .direction
            .map(|d| {
                Direction::parse(&d)
                    .ok_or_else(|| FieldError::new("direction", "invalid_value", "must be outbound or inbound"))
            })
            .transpose()?;
        let status = self
            .status
            .map(|s| {
                MessageStatus::parse(&s)
                    .ok_or_else(|| FieldError::new("status", "invalid_value", format!("'{s}' is not a status")))
            })
            .transpose()?;
        let since = self
            .since
            .map(|s| {
                Timestamp::parse_rfc3339(&s)
                    .ok_or_else(|| FieldError::new("since", "timestamp", "must be an RFC 3339 time"))
            })
            .transpose()?;
        let before = page
            .cursor
            .as_deref()
            .map(|c| {
                MessageId::parse(c)
                    .ok_or_else(|| FieldError::new("cursor", "invalid_value", "is not a cursor this API gave"))
            })
            .transpose()?;
        Ok(MessageFilter { direction, status, from: self.from, to: self.to, since, before })
    }
}

/// List messages, newest first.
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    params(ListQuery, ListParams),
    responses((status = 200, body = List<MessageView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_messages(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    page: PageRequest,
) -> Result<Json<List<MessageView>>, ApiError> {
    let filter = query.filter(&page)?;
    let (messages, more) = messages::list(state.store.as_ref(), &filter, page.limit).await?;
    let next_cursor = more.then(|| messages.last().map(|m| m.id.to_string())).flatten();
    // Lists show each message without its history; GET /v1/messages/{id} has it.
    let data = messages.into_iter().map(|message| MessageDetails { message, history: Vec::new() }.into()).collect();
    Ok(Json(List { data, next_cursor }))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// Also show "typing…" to the customer, until you reply or for 25 seconds.
    #[serde(default)]
    typing_indicator: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReadView {
    id: String,
    /// The wamid Meta was told is read (earlier messages of the conversation are marked too).
    wamid: String,
    read: bool,
    typing_indicator: bool,
}

/// Mark a customer's message read, optionally showing a typing indicator.
#[utoipa::path(
    post,
    path = "/v1/messages/{id}/read",
    tag = "messages",
    params(("id" = String, Path, description = "wagate's id of an inbound message")),
    request_body(content = Option<ReadRequest>, description = "Optional"),
    responses(
        (status = 200, body = ReadView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Not an inbound message, or Meta refused", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn mark_read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<ReadView>, ApiError> {
    let req: ReadRequest =
        if body.iter().all(u8::is_ascii_whitespace) { ReadRequest::default() } else { parse_json(&body)? };
    let message = messages::mark_read(state.store.as_ref(), &state.graph, &id, req.typing_indicator).await?;
    Ok(Json(ReadView {
        id: message.id.into_string(),
        wamid: message.wamid.unwrap_or_default(),
        read: true,
        typing_indicator: req.typing_indicator,
    }))
}
