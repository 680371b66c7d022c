//! `/chirp/…`: Chirp's send-message API, so Chirp's users switch by changing the base URL. A
//! thin adapter: Chirp's body becomes the native send request, and the core validates, stores,
//! limits and sends it as it does every other. A wagate API key is the bearer token.

mod error;
mod ids;
mod send;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use wagate_domain::input;
use wagate_domain::media_file;
use wagate_domain::message::{MessageError, check_idempotency_key, from_value, request_hash};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{AccountMode, Direction, Message, PhoneNumber, Upload};

use self::error::ChirpError;
use self::ids::{Ids, chirp_media_id, chirp_message_id, native_message_id};
use self::send::{ChirpSend, Native};
use super::upload_form::{self, FormRefused};
use crate::auth::{self, AuthenticatedKey};
use crate::error::ApiError;
use crate::extract::{Path, body_failure};
use crate::services::messages::{self, Idempotency, MessageDetails, Sent};
use crate::services::uploads::{self, NewFile};
use crate::services::{ServiceError, accounts};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    // A document may have 100 MB, and a multipart body a little more around it.
    let upload = post(upload_media).layer(DefaultBodyLimit::max(media_file::MAX_BYTES as usize + 64 * 1024));
    Router::new()
        .route("/chirp/v1/whatsapp/messages", post(send_message))
        .route("/chirp/v1/whatsapp/messages/{id}", get(get_message))
        .route("/chirp/v1/media", upload)
}

/// Chirp's message object: the answer to a send, and a message looked up.
#[derive(Serialize)]
struct MessageView {
    id: String,
    from: String,
    to: String,
    #[serde(rename = "type")]
    kind: String,
    status: &'static str,
    timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView>,
}

/// Why a message failed: Meta's code and words, or wagate's reason when Meta never answered.
#[derive(Serialize)]
struct ErrorView {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<String>,
}

impl From<MessageError> for ErrorView {
    fn from(e: MessageError) -> Self {
        Self { code: e.code, reason: e.reason, title: e.title, message: e.message, details: e.details }
    }
}

impl MessageView {
    /// `number` is the message's business number, when it is still connected.
    fn new(m: &Message, number: Option<&PhoneNumber>) -> Self {
        let business = number.map_or_else(|| m.phone_number_id.clone(), |n| e164(&n.display_phone_number));
        let (from, to) = match m.direction {
            Direction::Outbound => (business, m.counterpart.clone()),
            Direction::Inbound => (e164(&m.counterpart), business),
        };
        Self {
            id: chirp_message_id(&m.id, number.map_or(AccountMode::Live, |n| n.mode)),
            from,
            to,
            kind: m.kind.clone(),
            status: chirp_status(m.status),
            timestamp: m.created_at,
            error: m
                .error
                .clone()
                .filter(|_| matches!(m.status, MessageStatus::Failed | MessageStatus::Canceled))
                .map(ErrorView::from),
        }
    }
}

/// A number as E.164 when it is one (display numbers carry spaces and dashes, WhatsApp ids no
/// `+`); a user id as it is.
fn e164(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let is_number = number.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if is_number && !digits.is_empty() { format!("+{digits}") } else { number.to_owned() }
}

/// wagate's statuses in Chirp's words: waiting anywhere before Meta is `queued`; taken by Meta
/// (`accepted`) counts as `sent`, Chirp having nothing between; a cancelled message failed (its
/// error says it was cancelled).
fn chirp_status(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Scheduled | MessageStatus::Queued | MessageStatus::Sending => "queued",
        MessageStatus::Accepted | MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read | MessageStatus::Played => "read",
        MessageStatus::Failed | MessageStatus::Canceled => "failed",
        MessageStatus::Received => "received",
    }
}

async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    method: Method,
    route: &MatchedPath,
    uri: &Uri,
) -> Result<AuthenticatedKey, ChirpError> {
    auth::admit(state, headers, &method, route.as_str()).await.map_err(|r| ChirpError::refused(r, &method, uri.path()))
}

/// `POST /chirp/v1/whatsapp/messages`.
async fn send_message(
    State(state): State<AppState>,
    uri: Uri,
    route: MatchedPath,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ChirpError> {
    let caller = admit(&state, &headers, Method::POST, &route, &uri).await?;
    let body = body.map_err(|e| {
        let (status, why) = body_failure(&e);
        ChirpError::new(status, "invalid_body", format!("cannot read the request body: {why}"))
    })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ChirpError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ChirpError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body must be a JSON object"));
    }
    input::nul_free(&value)?;
    let idempotency = idempotency(&headers, &caller, &value)?;
    let chirp: ChirpSend = from_value("", &value)?;
    let sender =
        messages::resolve_sender(&state, Some(&chirp.from)).await.map_err(|e| ChirpError::core(e, &Ids::default()))?;
    let Native { request, ids } = chirp.into_native(&state, &sender).await?;
    let view = |d: &MessageDetails| json!(MessageView::new(&d.message, Some(&sender)));
    match messages::send(&state, request, idempotency, &view).await.map_err(|e| ChirpError::core(e, &ids))? {
        Sent::New(details) => Ok(Json(view(&details)).into_response()),
        Sent::Replayed { response, .. } => Ok(([("idempotent-replayed", "true")], Json(response)).into_response()),
    }
}

/// The `Idempotency-Key` header: a retry with the same key and body is answered the first
/// answer and sends nothing more.
fn idempotency(
    headers: &HeaderMap,
    caller: &AuthenticatedKey,
    body: &Value,
) -> Result<Option<Idempotency>, ChirpError> {
    let Some(header) = headers.get("idempotency-key") else { return Ok(None) };
    let invalid = || FieldError::new("Idempotency-Key", "idempotency_key", "must be 1 to 255 visible ASCII characters");
    let key = header.to_str().map_err(|_| invalid())?;
    check_idempotency_key("Idempotency-Key", key)?;
    // Marked as Chirp's, so a native request with the same key and the same JSON is another request.
    let request_hash = request_hash(&json!({ "chirp": body }));
    Ok(Some(Idempotency { api_key_id: caller.id.clone(), key: key.to_owned(), request_hash }))
}

/// `GET /chirp/v1/whatsapp/messages/{id}`.
async fn get_message(
    State(state): State<AppState>,
    uri: Uri,
    route: MatchedPath,
    headers: HeaderMap,
    id: Result<Path<String>, ApiError>,
) -> Result<Json<MessageView>, ChirpError> {
    admit(&state, &headers, Method::GET, &route, &uri).await?;
    let Path(id) = id.map_err(|e| ChirpError::native(e, &Ids::default()))?;
    let native = native_message_id(&id).ok_or_else(|| ChirpError::message_not_found(&id))?;
    let message = match messages::get(state.store.as_ref(), native.as_str()).await {
        Ok(found) => found.message,
        Err(ServiceError::NotFound { .. }) => return Err(ChirpError::message_not_found(&id)),
        Err(e) => return Err(ChirpError::core(e, &Ids::default())),
    };
    let number = accounts::phone_number(&state, &message.phone_number_id)
        .await
        .map_err(|e| ChirpError::core(e.into(), &Ids::default()))?;
    Ok(Json(MessageView::new(&message, number.as_ref())))
}

/// An uploaded file as Chirp's `mediaId` names it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaView {
    id: String,
    /// The message type that sends it: `image`, `video`, `audio`, `document` or `sticker`.
    #[serde(rename = "type")]
    kind: String,
    mime_type: String,
    size: i64,
    filename: Option<String>,
    created_at: Timestamp,
}

impl From<Upload> for MediaView {
    fn from(u: Upload) -> Self {
        Self {
            id: chirp_media_id(&u.id),
            kind: u.kind,
            mime_type: u.mime_type,
            size: u.file_size,
            filename: u.filename,
            created_at: u.created_at,
        }
    }
}

/// `POST /chirp/v1/media`: multipart with a `file` part (and an optional `filename` part).
async fn upload_media(
    State(state): State<AppState>,
    uri: Uri,
    route: MatchedPath,
    request: Request,
) -> Result<Json<MediaView>, ChirpError> {
    admit(&state, request.headers(), Method::POST, &route, &uri).await?;
    let file = read_file(&state, request).await?;
    let upload = uploads::create(&state, file).await.map_err(|e| ChirpError::core(e, &Ids::default()))?;
    Ok(Json(upload.into()))
}

async fn read_file(state: &AppState, request: Request) -> Result<NewFile, ChirpError> {
    let (file, mut texts) =
        upload_form::read(state, request, &["filename"]).await.map_err(|refused| match refused {
            FormRefused::TooLarge => ChirpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is larger than any file WhatsApp takes (100 MB)",
            ),
            FormRefused::Invalid(why) => ChirpError::new(StatusCode::BAD_REQUEST, "invalid_multipart", why),
            FormRefused::Field(e) => e.into(),
        })?;
    let filename = texts.remove("filename").or(file.file_name);
    Ok(NewFile { bytes: file.bytes, content_type: file.content_type, filename, source_url: None })
}
