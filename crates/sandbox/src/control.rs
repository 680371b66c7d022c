//! The test tool's own API: look inside the sandbox and make customers act.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ids;
use crate::state::{Faults, State, unix_now};
use crate::webhook;

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/control/accounts", get(accounts))
        .route("/control/messages", get(messages).delete(clear_messages))
        .route("/control/faults", get(get_faults).put(put_faults))
        .route("/simulate/inbound", post(simulate_inbound))
        .with_state(state)
}

/// `{"error": {"code", "message", "path"}}`, the same shape as wagate's native API.
struct ControlError {
    status: StatusCode,
    code: &'static str,
    message: String,
    path: Option<&'static str>,
}

impl ControlError {
    fn bad_json(what: &str, e: serde_json::Error) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: format!("body is not a valid {what}: {e}"),
            path: None,
        }
    }

    fn invalid(path: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            path: Some(path),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(path) = self.path {
            error["path"] = json!(path);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

async fn accounts(AxState(state): AxState<Shared>) -> Response {
    let seed = &state.seed;
    axum::Json(json!({
        "data": [{
            "waba_id": seed.waba_id,
            "name": seed.business_name,
            "access_token": seed.access_token,
            "app_secret": seed.app_secret,
            "verify_token": seed.verify_token,
            "phone_numbers": seed.phone_numbers,
        }],
    }))
    .into_response()
}

#[derive(Deserialize)]
struct MessagesQuery {
    phone_number_id: Option<String>,
    to: Option<String>,
}

async fn messages(AxState(state): AxState<Shared>, Query(q): Query<MessagesQuery>) -> Response {
    let data: Vec<_> = state
        .received()
        .into_iter()
        .filter(|r| q.phone_number_id.as_ref().is_none_or(|p| &r.phone_number_id == p))
        .filter(|r| q.to.as_ref().is_none_or(|to| r.body.get("to").and_then(Value::as_str) == Some(to)))
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

async fn clear_messages(AxState(state): AxState<Shared>) -> StatusCode {
    state.clear_received();
    StatusCode::NO_CONTENT
}

async fn get_faults(AxState(state): AxState<Shared>) -> Response {
    axum::Json(state.faults()).into_response()
}

async fn put_faults(AxState(state): AxState<Shared>, body: Bytes) -> Result<Response, ControlError> {
    let faults: Faults = serde_json::from_slice(&body).map_err(|e| ControlError::bad_json("faults object", e))?;
    *state.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    Ok(axum::Json(faults).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateInbound {
    phone_number_id: String,
    from: String,
    #[serde(default)]
    name: Option<String>,
    message: Map<String, Value>,
}

/// Delivers a customer's message to the webhook URL as Meta would, and answers its wamid.
async fn simulate_inbound(AxState(state): AxState<Shared>, body: Bytes) -> Result<Response, ControlError> {
    let req: SimulateInbound =
        serde_json::from_slice(&body).map_err(|e| ControlError::bad_json("simulate request", e))?;
    if state.number(&req.phone_number_id).is_none() {
        return Err(ControlError::invalid(
            "phone_number_id",
            format!("phone_number_id: '{}' is not one of this sandbox's numbers", req.phone_number_id),
        ));
    }
    let from = ids::digits_only(&req.from);
    if from.len() < 7 || from.len() > 15 || !req.from.trim_start_matches('+').chars().all(|c| c.is_ascii_digit()) {
        return Err(ControlError::invalid(
            "from",
            "from: must be the customer's phone number, digits with an optional +",
        ));
    }
    let kind = match req.message.get("type") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        _ => return Err(ControlError::invalid("message.type", "message.type: is required (for example \"text\")")),
    };
    if kind != "unsupported" && !req.message.contains_key(&kind) {
        return Err(ControlError::invalid("message", format!("message: a '{kind}' message needs a '{kind}' object")));
    }
    let now = unix_now();
    let wamid = ids::wamid(&from);
    let mut message = Map::new();
    message.insert("from".into(), json!(from));
    message.insert("id".into(), json!(wamid));
    message.insert("timestamp".into(), json!(now.to_string()));
    for (k, v) in req.message {
        message.entry(k).or_insert(v);
    }
    let name = req.name.unwrap_or_else(|| "Sandbox Customer".into());
    let value = json!({
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [Value::Object(message)],
    });
    state.note_inbound(&req.phone_number_id, &from, now);
    let payload = webhook::envelope(&state, &req.phone_number_id, value);
    webhook::schedule(&state, Duration::ZERO, payload);
    Ok(axum::Json(json!({ "wamid": wamid })).into_response())
}
