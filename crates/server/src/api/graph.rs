//! `/graph/{version}/…`: the Meta-compatible surface. The same paths and bodies as the Graph
//! API, so a Cloud API client works by changing only its base URL; a wagate API key is the
//! bearer token. Sends go through the same outbox and limits as the native API, and the answer
//! is Meta's, in Meta's shapes and codes.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use wagate_domain::input;
use wagate_domain::message::{GraphRequest, check_idempotency_key, request_hash};
use wagate_domain::validation::FieldError;

use crate::auth::{self, Refusal};
use crate::extract::{body_failure, path_problem};
use crate::outbox::DispatchOutcome;
use crate::services::ServiceError;
use crate::services::messages::{self, Idempotency, SendOptions, Sent};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/graph/{version}/{phone_number_id}/messages", post(messages_endpoint))
}

/// An error in Meta's shape: `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`.
pub struct GraphApiError {
    status: StatusCode,
    body: Value,
    /// Seconds, for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl GraphApiError {
    fn new(status: StatusCode, code: i64, message: &str, details: Option<String>) -> Self {
        let mut error = json!({
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": wagate_domain::id::new_id("trace"),
        });
        if let Some(details) = details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
        }
        Self { status, body: json!({ "error": error }), retry_after: None }
    }

    fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token - Cannot parse access token", None)
    }

    /// A key refused at the door, in the codes Meta uses for its tokens: 190 for a bad token,
    /// 10 for a token without the permission, 4 for too many calls (with `Retry-After`).
    fn refused(refusal: Refusal, path: &str) -> Self {
        let details = refusal.describe(&Method::POST, path);
        match refusal {
            Refusal::Unauthenticated(_) => Self::invalid_token(),
            Refusal::InsufficientScope { .. } => Self::new(
                StatusCode::FORBIDDEN,
                10,
                "(#10) Application does not have permission for this action",
                Some(details),
            ),
            Refusal::RateLimited { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    4,
                    "(#4) Application request limit reached",
                    Some(details),
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            Refusal::Failed(e) => Self::from_service(e.into()),
        }
    }

    fn unknown_number(id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            &format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation."
            ),
            None,
        );
        e.body["error"]["type"] = json!("GraphMethodException");
        e.body["error"]["error_subcode"] = json!(33);
        e
    }

    fn unknown() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 131000, "(#131000) Something went wrong", None)
    }

    /// A rule broken in the request, as Meta words it: 131008 for a missing parameter, 131051
    /// for an unknown message type, 100 otherwise, with the parameter in Meta's notation.
    fn from_field(e: &FieldError) -> Self {
        let param = meta_param(&e.path);
        let rule = e.message.strip_prefix(&format!("{}: ", e.path)).unwrap_or(&e.message);
        if let Some((status, code, title)) = template_code(e.rule) {
            return Self::new(status, code, &format!("(#{code}) {title}"), Some(format!("Param {param} {rule}.")));
        }
        match (e.path.as_str(), e.rule) {
            (_, "required") => Self::new(
                StatusCode::BAD_REQUEST,
                131008,
                "(#131008) Required parameter is missing",
                Some(format!("The parameter {param} is required.")),
            ),
            ("type", "unsupported_type") => Self::new(
                StatusCode::BAD_REQUEST,
                131051,
                "(#131051) Unsupported message type",
                Some(format!("Param {param} {rule}.")),
            ),
            _ => {
                Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter", Some(meta_wording(e, &param, rule)))
            }
        }
    }

    fn from_service(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(f) => Self::from_field(&f),
            ServiceError::MetaRejected { error } => Self {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "error": serde_json::to_value(&error).unwrap_or_default() }),
                retry_after: None,
            },
            ServiceError::NotFound { id, .. } => Self::unknown_number(&id),
            ServiceError::IdempotencyKeyReused { key, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) Invalid parameter",
                Some(format!("Idempotency-Key {key} was used for a different request.")),
            ),
            // Meta's own answer when too much is sent: clients back off and retry it.
            ServiceError::Backpressure { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                130429,
                "(#130429) Rate limit hit",
                Some("Too many messages are waiting to be sent; retry later.".into()),
            ),
            // Meta accepts such a send and fails it later by webhook; wagate knows at once.
            ServiceError::OutsideWindow { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                131047,
                "(#131047) Re-engagement message",
                Some(
                    "Message failed to send because more than 24 hours have passed since the customer last \
                     replied to this number."
                        .into(),
                ),
            ),
            other => {
                tracing::error!(error = %other, "graph surface request failed");
                Self::unknown()
            }
        }
    }
}

impl IntoResponse for GraphApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// The code and title Meta answers a template send with that breaks `rule` (a rule of
/// wagate's template check, or the marketing opt-out).
fn template_code(rule: &str) -> Option<(StatusCode, i64, &'static str)> {
    Some(match rule {
        "template_param_count" => {
            (StatusCode::BAD_REQUEST, 132000, "Number of parameters does not match the expected number of params")
        }
        "template_not_found" | "template_not_approved" => {
            (StatusCode::NOT_FOUND, 132001, "Template name does not exist in the translation")
        }
        "template_text_too_long" => (StatusCode::BAD_REQUEST, 132005, "Translated text too long"),
        "template_param_format" | "unknown_parameter" | "unknown_button" | "unknown_card" => {
            (StatusCode::BAD_REQUEST, 132012, "Parameter format does not match format in the created template")
        }
        "template_paused" => (StatusCode::BAD_REQUEST, 132015, "Template is Paused"),
        "template_disabled" => (StatusCode::BAD_REQUEST, 132016, "Template is Disabled"),
        "marketing_opt_out" => (
            StatusCode::BAD_REQUEST,
            131050,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on \
             WhatsApp from your business",
        ),
        _ => return None,
    })
}

/// A refusal in Meta's words rather than the JSON reader's: `Param text['body'] must be a
/// string.`, `Unexpected key "bodyy" on param "text".`
fn meta_wording(e: &FieldError, param: &str, rule: &str) -> String {
    match e.rule {
        // The path ends at the unexpected key; Meta names the object it stands in.
        "unknown_field" => {
            let key = rule.split('`').nth(1).unwrap_or_default();
            match e.path.rsplit_once('.') {
                Some((parent, _)) => format!("Unexpected key \"{key}\" on param \"{}\".", meta_param(parent)),
                None => format!("Unexpected key \"{key}\"."),
            }
        }
        "invalid_type" => {
            let expected = rule.rsplit_once("expected ").map_or("", |(_, x)| x);
            let kind = if expected.starts_with("a string") {
                "a string"
            } else if expected.starts_with("a boolean") {
                "a boolean"
            } else if expected.starts_with("a sequence") || expected.contains("array") {
                "an array"
            } else if expected.starts_with("struct") || expected.contains("map") {
                "a JSON object"
            } else if ["u", "i", "f"].iter().any(|p| expected.starts_with(p)) || expected.contains("number") {
                "a number"
            } else {
                "of another type"
            };
            format!("Param {param} must be {kind}.")
        }
        _ => format!("Param {param} {rule}."),
    }
}

/// `text.body` → `text['body']`, `interactive.action.buttons[0].reply.title` →
/// `interactive['action']['buttons'][0]['reply']['title']`: how Meta names parameters.
fn meta_param(path: &str) -> String {
    let mut out = String::new();
    for (i, segment) in path.split('.').enumerate() {
        let (name, indexes) = match segment.find('[') {
            Some(at) => segment.split_at(at),
            None => (segment, ""),
        };
        if i == 0 {
            out.push_str(name)
        } else {
            out.push_str(&format!("['{name}']"))
        }
        out.push_str(indexes);
    }
    out
}

async fn messages_endpoint(
    State(state): State<AppState>,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
    route: MatchedPath,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, GraphApiError> {
    let caller = auth::admit(&state, &headers, &Method::POST, route.as_str())
        .await
        .map_err(|refusal| GraphApiError::refused(refusal, uri.path()))?;
    let invalid =
        |details: String| GraphApiError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter", Some(details));
    if let Some(why) = path_problem(uri.path()) {
        return Err(invalid(why));
    }
    let Path((_version, phone_number_id)) = path.map_err(|e| invalid(e.body_text()))?;
    let sender = state
        .store
        .get_phone_number(&phone_number_id)
        .await
        .map_err(|e| GraphApiError::from_service(e.into()))?
        .ok_or_else(|| GraphApiError::unknown_number(&phone_number_id))?;
    let body = body.map_err(|e| {
        let (status, why) = body_failure(&e);
        GraphApiError::new(status, 100, "(#100) Invalid parameter", Some(why))
    })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| invalid(format!("The body is not JSON: {e}")))?;
    input::nul_free(&value).map_err(|e| GraphApiError::from_field(&e))?;
    match GraphRequest::parse(&value).map_err(|e| GraphApiError::from_field(&e))? {
        GraphRequest::Read(receipt) => {
            messages::send_read_receipt(state.store.as_ref(), &state.graph, &sender.id, &receipt)
                .await
                .map_err(GraphApiError::from_service)?;
            Ok(Json(json!({ "success": true })).into_response())
        }
        GraphRequest::Send(outbound) => {
            // Not Meta's, but harmless to Meta's clients: a retry with the same key is
            // answered with the first request's outcome instead of sending again.
            let idempotency = match headers.get("idempotency-key").map(|v| v.to_str()) {
                None => None,
                Some(Ok(k)) if check_idempotency_key("Idempotency-Key", k).is_ok() => {
                    Some(Idempotency { api_key_id: caller.id, key: k.to_owned(), request_hash: request_hash(&value) })
                }
                Some(_) => {
                    return Err(GraphApiError::from_field(&FieldError::new(
                        "Idempotency-Key",
                        "idempotency_key",
                        "must be 1 to 255 visible ASCII characters",
                    )));
                }
            };
            let options = SendOptions { idempotency, ..SendOptions::default() };
            let sent = messages::enqueue(&state, &sender, *outbound, None, options, &|_| Value::Null)
                .await
                .map_err(GraphApiError::from_service)?;
            let id = match sent {
                Sent::New(details) => details.message.id,
                Sent::Replayed { message_id, .. } => message_id,
            };
            let wait = Duration::from_millis(state.config.graph_surface.wait_ms);
            let outcome = state
                .outbox
                .wait_for_dispatch(state.store.as_ref(), &id, wait)
                .await
                .map_err(GraphApiError::from_service)?;
            Ok(answer(outcome))
        }
    }
}

/// Meta's answer to the send, or the error a client would get from Meta.
fn answer(outcome: DispatchOutcome) -> Response {
    match outcome {
        DispatchOutcome::Accepted(body) => Json(body).into_response(),
        DispatchOutcome::Failed { status, body: Some(body), .. } => {
            (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
        }
        DispatchOutcome::Failed { body: None, error, .. } => {
            let mut e = GraphApiError::unknown();
            if let Some(error) = error {
                e.body["error"]["error_data"] = json!({"messaging_product": "whatsapp", "details": error.message});
            }
            e.into_response()
        }
        // Throughput is the honest name for "not sent in time", and every client retries it.
        DispatchOutcome::Cancelled => GraphApiError::new(
            StatusCode::BAD_REQUEST,
            130429,
            "(#130429) Rate limit hit",
            Some("Cloud API message throughput has been reached. The message was not sent; retry it.".into()),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_named_as_meta_names_them() {
        assert_eq!(super::meta_param("text.body"), "text['body']");
        assert_eq!(
            super::meta_param("interactive.action.buttons[0].reply.title"),
            "interactive['action']['buttons'][0]['reply']['title']"
        );
        assert_eq!(super::meta_param("to"), "to");
    }
}
