//! The Graph API paths, answered as Meta answers them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ids;
use crate::state::{Received, State, unix_now};
use crate::webhook;

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/{version}/{node}", get(get_node))
        .route("/{version}/{node}/phone_numbers", get(list_phone_numbers))
        .route("/{version}/{node}/messages", post(send_message))
        .with_state(state)
}

/// A Graph API error in Meta's shape.
pub struct GraphError {
    status: StatusCode,
    body: Value,
}

impl GraphError {
    fn new(status: StatusCode, code: i64, kind: &str, message: String, details: Option<String>) -> Self {
        let mut error = json!({
            "message": message,
            "type": kind,
            "code": code,
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let Some(details) = details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
        }
        Self { status, body: json!({ "error": error }) }
    }

    fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            190,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token".into(),
            None,
        )
    }

    fn unknown_node(node: &str, verb: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            "GraphMethodException",
            format!(
                "Unsupported {verb} request. Object with ID '{node}' does not exist, cannot be loaded due to \
                 missing permissions, or does not support this operation. Please read the Graph API \
                 documentation at https://developers.facebook.com/docs/graph-api"
            ),
            None,
        );
        e.body["error"]["error_subcode"] = json!(33);
        e
    }

    fn bad_version(version: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 2500, "OAuthException", format!("Unknown path components: /{version}"), None)
    }

    /// 131008: a required parameter is missing.
    fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131008,
            "OAuthException",
            "(#131008) Required parameter is missing".into(),
            Some(format!("The parameter {param} is required.")),
        )
    }

    /// 100: a parameter has an invalid value.
    fn invalid(details: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, "OAuthException", "(#100) Invalid parameter".into(), Some(details))
    }

    fn body(&self) -> &Value {
        &self.body
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// A Graph call that passed Meta's checks: a version-shaped `{version}` and a valid access token,
/// as a bearer header or an `access_token` query parameter. Carries the path's `{node}`.
struct GraphCall {
    node: String,
}

impl FromRequestParts<Shared> for GraphCall {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, GraphError> {
        let Path((version, node)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| GraphError::bad_version("?"))?;
        check_version(&version)?;
        let query = Query::<TokenQuery>::from_request_parts(parts, state).await.map(|q| q.0).ok();
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match header.or(query.as_ref().and_then(|q| q.access_token.as_deref())) {
            Some(token) if state.token_is_valid(token) => Ok(Self { node }),
            _ => Err(GraphError::invalid_token()),
        }
    }
}

fn check_version(version: &str) -> Result<(), GraphError> {
    let ok = version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if ok { Ok(()) } else { Err(GraphError::bad_version(version)) }
}

fn number_json(n: &crate::SeedNumber) -> Value {
    json!({
        "verified_name": n.verified_name,
        "display_phone_number": n.display_phone_number,
        "id": n.id,
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
    })
}

async fn get_node(AxState(state): AxState<Shared>, GraphCall { node }: GraphCall) -> Result<Response, GraphError> {
    if let Some(n) = state.number(&node) {
        return Ok(axum::Json(number_json(n)).into_response());
    }
    if node == state.seed.waba_id {
        return Ok(axum::Json(json!({
            "id": state.seed.waba_id,
            "name": state.seed.business_name,
            "currency": "USD",
            "timezone_id": "1",
            "message_template_namespace": "sandbox_namespace",
        }))
        .into_response());
    }
    Err(GraphError::unknown_node(&node, "get"))
}

async fn list_phone_numbers(
    AxState(state): AxState<Shared>,
    GraphCall { node }: GraphCall,
) -> Result<Response, GraphError> {
    if node != state.seed.waba_id {
        return Err(GraphError::unknown_node(&node, "get"));
    }
    let data: Vec<Value> = state.seed.phone_numbers.iter().map(number_json).collect();
    Ok(axum::Json(json!({
        "data": data,
        "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUl"}},
    }))
    .into_response())
}

const TEXT_BODY_MAX: usize = 4096;

/// Types the messages endpoint takes, each carried in an object of the same name.
const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
];

/// Meta's `to`: a phone number in any common notation, or a user id; its wa_id is the digits.
fn wa_id_of(to: &str) -> String {
    let digits = ids::digits_only(to);
    let looks_like_number = to.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if looks_like_number && !digits.is_empty() { digits } else { to.to_owned() }
}

/// Who a send goes to, as Meta reports it back.
enum To {
    Number(String),
    User(String),
    Group(String),
}

fn check_product(obj: &serde_json::Map<String, Value>) -> Result<(), GraphError> {
    match obj.get("messaging_product").and_then(Value::as_str) {
        Some("whatsapp") => Ok(()),
        Some(other) => Err(GraphError::invalid(format!("Param messaging_product must be 'whatsapp', not '{other}'."))),
        None => Err(GraphError::missing("messaging_product")),
    }
}

/// A read receipt (with an optional typing indicator): `{"status": "read", "message_id"}`.
fn validate_read(obj: &serde_json::Map<String, Value>) -> Result<(), GraphError> {
    check_product(obj)?;
    if obj.get("status").and_then(Value::as_str) != Some("read") {
        return Err(GraphError::invalid("Param status must be 'read'.".into()));
    }
    match obj.get("message_id") {
        Some(Value::String(id)) if !id.is_empty() => {}
        _ => return Err(GraphError::missing("message_id")),
    }
    if let Some(t) = obj.get("typing_indicator")
        && t.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(GraphError::invalid("Param typing_indicator['type'] must be 'text'.".into()));
    }
    Ok(())
}

fn validate_send(body: &Value) -> Result<(To, String), GraphError> {
    let Some(obj) = body.as_object() else {
        return Err(GraphError::invalid("Request body must be a JSON object.".into()));
    };
    check_product(obj)?;
    let to = match obj.get("to") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None => return Err(GraphError::missing("to")),
        Some(_) => return Err(GraphError::invalid("Param to must be a string.".into())),
    };
    let to = match obj.get("recipient_type").map(|v| v.as_str()) {
        None | Some(Some("individual")) if to.bytes().any(|b| b.is_ascii_alphabetic()) => To::User(to),
        None | Some(Some("individual")) => To::Number(to),
        Some(Some("group")) => To::Group(to),
        Some(_) => return Err(GraphError::invalid("Param recipient_type must be 'individual' or 'group'.".into())),
    };
    let kind = match obj.get("type") {
        None => "text".to_owned(),
        Some(Value::String(s)) if MESSAGE_TYPES.contains(&s.as_str()) => s.clone(),
        Some(other) => return Err(GraphError::invalid(format!("Param type has an unsupported value: {other}."))),
    };
    let Some(content) = obj.get(&kind) else {
        return Err(GraphError::missing(&kind));
    };
    if kind == "text" {
        match content.get("body") {
            Some(Value::String(b)) if b.is_empty() => return Err(GraphError::missing("text['body']")),
            Some(Value::String(b)) if b.chars().count() > TEXT_BODY_MAX => {
                return Err(GraphError::invalid(format!(
                    "Param text['body'] must be at most {TEXT_BODY_MAX} characters long."
                )));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(GraphError::invalid("Param text['body'] must be a string.".into())),
            None => return Err(GraphError::missing("text['body']")),
        }
    }
    Ok((to, kind))
}

async fn send_message(
    AxState(state): AxState<Shared>,
    GraphCall { node }: GraphCall,
    body: Bytes,
) -> Result<Response, GraphError> {
    if state.number(&node).is_none() {
        return Err(GraphError::unknown_node(&node, "post"));
    }
    let latency = state.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let received_at = unix_now();
    if let Some(obj) = parsed.as_object().filter(|o| o.contains_key("status") && !o.contains_key("to")) {
        let result = validate_read(obj);
        state.record(Received {
            phone_number_id: node,
            body: parsed.clone(),
            wamid: None,
            error: result.as_ref().err().map(|e| e.body()["error"].clone()),
            received_at,
        });
        result?;
        return Ok(axum::Json(json!({ "success": true })).into_response());
    }
    let (to, kind) = match validate_send(&parsed) {
        Ok(v) => v,
        Err(e) => {
            state.record(Received {
                phone_number_id: node,
                body: parsed,
                wamid: None,
                error: Some(e.body()["error"].clone()),
                received_at,
            });
            return Err(e);
        }
    };
    // Meta's answer names the recipient as it knows it: a number's wa_id, or the user or group id.
    let (contact, recipient) = match &to {
        To::Number(n) => {
            let wa_id = wa_id_of(n);
            (json!({"input": n, "wa_id": wa_id}), wa_id)
        }
        To::User(u) => (json!({"input": u, "wa_id": "", "user_id": u}), u.clone()),
        To::Group(g) => (json!({"input": g, "wa_id": g}), g.clone()),
    };
    let wamid = ids::wamid(&recipient);
    state.record(Received {
        phone_number_id: node.clone(),
        body: parsed,
        wamid: Some(wamid.clone()),
        error: None,
        received_at,
    });
    let mut message = json!({ "id": wamid });
    if let To::Group(g) = &to {
        message["group_id"] = json!(g);
    }
    if kind == "template" {
        message["message_status"] = json!("accepted");
    }
    // A reaction gets only `sent` (Meta's reaction page).
    let last = if kind == "reaction" { "sent" } else { "read" };
    schedule_statuses(&state, &node, &wamid, &recipient, last);
    Ok(axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [message],
    }))
    .into_response())
}

/// `sent`, `delivered`, `read`, each after its configured delay, in Meta's v23 shape.
fn schedule_statuses(state: &Shared, phone_number_id: &str, wamid: &str, recipient: &str, last: &str) {
    let now = unix_now();
    let conversation_id = ids::hex_token(16);
    let delays = state.delays;
    for (status, delay) in [("sent", delays.sent), ("delivered", delays.delivered), ("read", delays.read)] {
        if status == "delivered" && last == "sent" {
            break;
        }
        let mut entry = json!({
            "id": wamid,
            "status": status,
            "timestamp": (now + delay.as_secs()).to_string(),
            "recipient_id": recipient,
        });
        // Meta attaches conversation and pricing to `sent` and to one of delivered/read.
        if status != "read" {
            let mut conversation = json!({"id": conversation_id, "origin": {"type": "service"}});
            if status == "sent" {
                conversation["expiration_timestamp"] = json!((now + 86_400).to_string());
            }
            entry["conversation"] = conversation;
            entry["pricing"] = json!({
                "billable": false,
                "pricing_model": "PMP",
                "type": "free_customer_service",
                "category": "service",
            });
        }
        let payload = webhook::envelope(state, phone_number_id, json!({ "statuses": [entry] }));
        webhook::schedule(state, delay, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_validation_follows_meta_codes() {
        let code = |v: Value| validate_send(&v).err().map(|e| e.body()["error"]["code"].as_i64().unwrap());
        assert_eq!(
            code(json!({"messaging_product": "whatsapp", "to": "1", "recipient_type": "all", "text": {"body": "x"}})),
            Some(100)
        );
        assert_eq!(code(json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}})), None);
        assert_eq!(code(json!({"to": "1", "text": {"body": "x"}})), Some(131008));
        assert_eq!(code(json!({"messaging_product": "whatsapp", "text": {"body": "x"}})), Some(131008));
        assert_eq!(code(json!({"messaging_product": "whatsapp", "to": "1", "type": "text"})), Some(131008));
        assert_eq!(code(json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": ""}})), Some(131008));
        let long = "x".repeat(4097);
        assert_eq!(code(json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": long}})), Some(100));
        assert_eq!(code(json!({"messaging_product": "whatsapp", "to": "1", "type": "fax"})), Some(100));
    }

    #[test]
    fn wa_ids_are_digits_of_numbers() {
        assert_eq!(wa_id_of("+1 (650) 555-1234"), "16505551234");
        assert_eq!(wa_id_of("US.13491208655302741918"), "US.13491208655302741918");
    }

    #[test]
    fn versions_look_like_graph_versions() {
        assert!(check_version("v23.0").is_ok());
        assert!(check_version("23.0").is_err());
        assert!(check_version("v23").is_err());
    }
}
