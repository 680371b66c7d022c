//! `POST /{phone-number-id}/messages`: sends, read receipts and typing indicators. A send passes
//! Meta's checks and limits, is answered with a wamid, and its fate follows by webhook: `sent`,
//! `delivered`, `read` (`played` for voice), or `failed` with Meta's error.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{GraphCall, Shared, validate};
use crate::errors::{GraphError, status_error};
use crate::ids;
use crate::settings::FailMode;
use crate::state::{Received, unix_now};
use crate::webhook;

/// Who a send goes to, as Meta reports it back.
enum To {
    Number(String),
    User(String),
    Group(String),
}

impl To {
    /// The id Meta knows the recipient by: a number's wa_id, or the user or group id.
    fn key(&self) -> String {
        match self {
            Self::Number(n) => ids::digits_only(n),
            Self::User(u) | Self::Group(u) => u.clone(),
        }
    }
}

pub async fn send(AxState(state): AxState<Shared>, call: GraphCall, body: Bytes) -> Result<Response, GraphError> {
    let node = call.node;
    let Some((_, number)) = state.business_of_number(&node) else {
        return Err(GraphError::unknown_node(&node, "post"));
    };
    let faults = state.settings().graph;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let received_at = unix_now();
    let refuse = |e: GraphError| {
        state.record(Received {
            phone_number_id: node.clone(),
            body: parsed.clone(),
            wamid: None,
            error: Some(e.body["error"].clone()),
            received_at,
        });
        e
    };
    let Some(obj) = parsed.as_object() else {
        return Err(refuse(GraphError::invalid("The request body must be a JSON object.")));
    };
    if obj.contains_key("status") && !obj.contains_key("to") {
        validate_read(obj).map_err(refuse)?;
        state.record(Received { phone_number_id: node, body: parsed.clone(), wamid: None, error: None, received_at });
        return Ok(axum::Json(json!({ "success": true })).into_response());
    }
    if let Some(mode) = take_fault(&state) {
        match mode {
            FailMode::Http500 => {
                return Ok((StatusCode::INTERNAL_SERVER_ERROR, "<html><body>500 Internal Server Error</body></html>")
                    .into_response());
            }
            FailMode::Unavailable => return Err(refuse(GraphError::of(131016, None))),
            FailMode::Throughput => return Err(refuse(GraphError::of(130429, None))),
            FailMode::HangBeforeAccept => {
                hang(&state).await;
                return Err(refuse(GraphError::of(131016, None)));
            }
            FailMode::HangAfterAccept => {
                let answer = accept(&state, &node, &number.display_phone_number, obj, &parsed, received_at);
                hang(&state).await;
                return answer.map_err(refuse);
            }
        }
    }
    accept(&state, &node, &number.display_phone_number, obj, &parsed, received_at).map_err(refuse)
}

/// Spends one failure of the configured Graph fault, if any are left.
fn take_fault(state: &Shared) -> Option<FailMode> {
    let mode = {
        let mut inner = state.lock();
        let g = &mut inner.saved.settings.graph;
        match g.fail {
            Some(mode) if g.fail_count > 0 => {
                g.fail_count -= 1;
                Some(mode)
            }
            _ => None,
        }
    };
    if mode.is_some() {
        state.save();
    }
    mode
}

async fn hang(state: &Shared) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        _ = state.shutdown.cancelled() => {}
    }
}

fn validate_read(obj: &Map<String, Value>) -> Result<(), GraphError> {
    if obj.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(GraphError::missing("messaging_product"));
    }
    if obj.get("status").and_then(Value::as_str) != Some("read") {
        return Err(GraphError::invalid("Param status must be 'read'."));
    }
    match obj.get("message_id") {
        Some(Value::String(id)) if !id.is_empty() => {}
        _ => return Err(GraphError::missing("message_id")),
    }
    if let Some(t) = obj.get("typing_indicator")
        && t.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(GraphError::invalid("Param typing_indicator['type'] must be 'text'."));
    }
    match obj.keys().find(|k| !["messaging_product", "status", "message_id", "typing_indicator"].contains(&k.as_str()))
    {
        Some(k) => Err(GraphError::invalid(format!("Unexpected key \"{k}\" on a read receipt."))),
        None => Ok(()),
    }
}

fn recipient(obj: &Map<String, Value>) -> Result<To, GraphError> {
    if obj.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return match obj.get("messaging_product") {
            None => Err(GraphError::missing("messaging_product")),
            Some(_) => Err(GraphError::invalid("Param messaging_product must be 'whatsapp'.")),
        };
    }
    let to = match obj.get("to") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None => return Err(GraphError::missing("to")),
        Some(_) => return Err(GraphError::invalid("Param to must be a string.")),
    };
    match obj.get("recipient_type").map(|v| v.as_str()) {
        Some(Some("group")) => Ok(To::Group(to)),
        None | Some(Some("individual")) if to.bytes().any(|b| b.is_ascii_alphabetic()) => {
            let ok = to.len() <= 256 && to.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if ok {
                Ok(To::User(to))
            } else {
                Err(GraphError::bad_value(format!("Recipient '{to}' is not a valid WhatsApp user.")))
            }
        }
        None | Some(Some("individual")) => {
            let digits = ids::digits_only(&to);
            let ok =
                to.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b)) && (7..=15).contains(&digits.len());
            if ok {
                Ok(To::Number(to))
            } else {
                Err(GraphError::bad_value(format!("Recipient phone number '{to}' is not valid.")))
            }
        }
        Some(_) => Err(GraphError::invalid("Param recipient_type must be 'individual' or 'group'.")),
    }
}

/// Checks and accepts a send: answers Meta's body and owes the webhooks of what happens next.
fn accept(
    state: &Shared,
    node: &str,
    display_number: &str,
    obj: &Map<String, Value>,
    parsed: &Value,
    received_at: u64,
) -> Result<Response, GraphError> {
    let to = recipient(obj)?;
    let kind = validate::content(obj)?;
    if let To::Number(n) = &to
        && ids::digits_only(n) == ids::digits_only(display_number)
    {
        return Err(GraphError::of(131021, None));
    }
    let category =
        if kind == "template" { Some(super::check_template_send(state, node, &obj["template"])?) } else { None };
    if let To::Group(id) = &to {
        match super::groups::find(state, id).filter(|g| g.phone_number_id == node) {
            None => return Err(GraphError::of(131_041, None)),
            Some(g) if g.participants.is_empty() => return Err(GraphError::of(131_020, None)),
            Some(_) => {}
        }
    }
    let key = to.key();
    if let Err(code) = state.take_rate(node, &key) {
        return Err(GraphError::of(code, None));
    }
    let wamid = ids::wamid(&key);
    state.record(Received {
        phone_number_id: node.to_owned(),
        body: parsed.clone(),
        wamid: Some(wamid.clone()),
        error: None,
        received_at,
    });
    let fate = fate(state, node, &to, &kind, category.as_deref(), obj);
    schedule(state, node, &wamid, &to, fate, obj);
    let (contact, mut message) = match &to {
        To::Number(n) => (json!({"input": n, "wa_id": key}), json!({ "id": wamid })),
        To::User(u) => (json!({"input": u, "wa_id": "", "user_id": u}), json!({ "id": wamid })),
        To::Group(g) => (json!({"input": g, "wa_id": g}), json!({ "id": wamid, "group_id": g })),
    };
    if kind == "template" {
        message["message_status"] = json!("accepted");
    }
    Ok(axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [message],
    }))
    .into_response())
}

/// What becomes of an accepted message.
enum Fate {
    /// `sent`, `delivered`, `read`, and `played` for a voice message.
    Delivered { voice: bool },
    /// Only `sent` (reactions get nothing more).
    SentOnly,
    /// `failed` with this code.
    Fails(i64),
}

fn fate(state: &Shared, node: &str, to: &To, kind: &str, category: Option<&str>, obj: &Map<String, Value>) -> Fate {
    let key = to.key();
    if let Some(code) = state.lock().saved.failing.get(&key).copied() {
        // Opting out of marketing, or Meta's engagement limit, stops marketing templates only.
        let marketing_only = [131_049, 131_050].contains(&code);
        if !marketing_only || category == Some("MARKETING") {
            return Fate::Fails(code);
        }
    }
    // Outside the 24-hour window Meta accepts the message, then fails it (groups have no window).
    if kind != "template" && !matches!(to, To::Group(_)) && !state.window_open(node, &key) {
        return Fate::Fails(131_047);
    }
    if let Some(id) = obj.get(kind).and_then(|m| m.get("id")).and_then(Value::as_str)
        && ["image", "audio", "video", "document", "sticker"].contains(&kind)
        && !state.lock().saved.media.iter().any(|m| m.id == id)
    {
        return Fate::Fails(131_053);
    }
    match kind {
        "reaction" => Fate::SentOnly,
        "audio" => Fate::Delivered { voice: obj["audio"].get("voice").and_then(Value::as_bool) == Some(true) },
        _ => Fate::Delivered { voice: false },
    }
}

/// Owes the status webhooks of one message, in Meta's v23 shape.
fn schedule(state: &Shared, node: &str, wamid: &str, to: &To, fate: Fate, obj: &Map<String, Value>) {
    let settings = state.settings();
    let delays = &settings.statuses;
    let now = unix_now();
    let steps: Vec<(&str, u64)> = match fate {
        Fate::Fails(_) => vec![("failed", delays.sent_ms)],
        Fate::SentOnly => vec![("sent", delays.sent_ms)],
        Fate::Delivered { voice } => {
            let mut s = vec![("sent", delays.sent_ms), ("delivered", delays.delivered_ms), ("read", delays.read_ms)];
            if voice {
                s.push(("played", delays.played_ms));
            }
            s
        }
    };
    let last = steps.last().map(|(_, d)| *d).unwrap_or_default();
    let conversation = ids::hex_token(16);
    for (status, delay) in &steps {
        let mut entry = json!({
            "id": wamid,
            "status": status,
            "timestamp": (now + delay / 1000).to_string(),
            "recipient_id": to.key(),
        });
        match to {
            To::Group(_) => entry["recipient_type"] = json!("group"),
            To::User(u) => entry["recipient_user_id"] = json!(u),
            To::Number(_) => {}
        }
        if let Some(data) = obj.get("biz_opaque_callback_data") {
            entry["biz_opaque_callback_data"] = data.clone();
        }
        if let Fate::Fails(code) = fate {
            entry["errors"] = json!([status_error(code, None)]);
        } else if *status != "read" && *status != "played" {
            // Meta attaches conversation and pricing to `sent` and one of delivered/read.
            let mut c = json!({"id": conversation, "origin": {"type": "service"}});
            if *status == "sent" {
                c["expiration_timestamp"] = json!((now + 86_400).to_string());
            }
            entry["conversation"] = c;
            entry["pricing"] = json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"});
        }
        // Reordering sends the last status first.
        let at = if settings.webhooks.reorder { last - delay + steps[0].1 } else { *delay };
        webhook::push_messages(state, node, Duration::from_millis(at), json!({ "statuses": [entry] }));
    }
}
