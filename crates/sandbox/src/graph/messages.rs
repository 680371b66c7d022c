//! `POST /{phone-number-id}/messages`: sends, read receipts and typing indicators. A send passes
//! Meta's checks and limits, is answered with a wamid, and its fate follows by webhook: `sent`,
//! `delivered`, `read` (`played` for voice), or `failed` with Meta's error.

use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::call::{GraphCall, Shared};
use super::template_send::check_send as check_template_send;
use super::validate;
use crate::errors::{GraphError, status_error};
use crate::ids;
use crate::received::Received;
use crate::settings::FailMode;
use crate::state::{State, unix_now};
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

    /// Who is behind the recipient, for limits, windows and failures: a user's BSUID and number
    /// are the same person once the sandbox knows the number.
    fn person(&self, state: &State) -> String {
        match self {
            Self::User(u) => state.wa_id_of(u).unwrap_or_else(|| u.clone()),
            other => other.key(),
        }
    }
}

/// The largest body a send may have: Meta takes large interactive and template bodies, and
/// this is well above any of them.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The page a proxy in front of Meta answers with, for the `http500` fault.
const PROXY_500: &str = "<html><body>500 Internal Server Error</body></html>";

pub async fn send(AxState(state): AxState<Shared>, call: GraphCall, req: Request) -> Result<Response, GraphError> {
    let node = call.node;
    // Every body is listed in control/messages, whatever the answer: too large, to an unknown
    // number, refused, failed by a fault, or accepted.
    let body = match crate::body::read(req.into_body(), BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            // Too large, it is listed by its start; a body that broke off never arrived.
            let kept = match &e {
                crate::body::BodyError::TooLarge { head, size, .. } => Some(Received::head_of(&node, head, *size)),
                crate::body::BodyError::Broken(_) => None,
            };
            let e = GraphError::from(e);
            if let Some(kept) = kept {
                state.record(kept.refused(e.status.as_u16(), e.body["error"].clone()));
            }
            return Err(e);
        }
    };
    let parsed = as_graph_reads(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let request = Received::new(&node, &body, &parsed);
    let refuse = |e: GraphError| {
        state.record(request.refused(e.status.as_u16(), e.body["error"].clone()));
        e
    };
    let Some((_, number)) = state.business_of_number(&node) else {
        return Err(refuse(GraphError::unknown_node(&node, "post")));
    };
    let faults = state.settings().graph;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let Some(obj) = parsed.as_object() else {
        return Err(refuse(GraphError::invalid("The request body must be a JSON object.")));
    };
    if obj.contains_key("status") && !obj.contains_key("to") {
        validate_read(obj).map_err(refuse)?;
        state.record(request.clone());
        return Ok(axum::Json(json!({ "success": true })).into_response());
    }
    if let Some(mode) = take_fault(&state) {
        let hang = Duration::from_millis(faults.hang_ms);
        match mode {
            FailMode::Http500 => {
                state.record(request.refused(500, json!(PROXY_500)));
                return Ok((StatusCode::INTERNAL_SERVER_ERROR, PROXY_500).into_response());
            }
            FailMode::Unavailable => return Err(refuse(GraphError::of(131016, None))),
            FailMode::Throughput => return Err(refuse(GraphError::of(130429, None))),
            FailMode::HangBeforeAccept => {
                // Listed with the answer it will get before the wait, so a client that gives up
                // waiting still finds it there. Nothing is accepted either way.
                let e = refuse(GraphError::of(131016, None));
                hang_for(&state, hang).await;
                return Err(e);
            }
            FailMode::HangAfterAccept => {
                let answer = accept(&state, &node, &number.display_phone_number, obj, &request);
                hang_for(&state, hang).await;
                return answer.map_err(refuse);
            }
        }
    }
    accept(&state, &node, &number.display_phone_number, obj, &request).map_err(refuse)
}

/// A message body as the Graph API reads it: an object parameter given as a JSON-encoded string
/// is that object; a top-level `recipient` (a BSUID) is the recipient when `to` is absent, and
/// `to` wins when both are given.
fn as_graph_reads(mut body: Value) -> Value {
    let Some(obj) = body.as_object_mut() else { return body };
    // Each type's object, and `context`.
    for key in super::validate::TYPES.iter().copied().chain(["context"]) {
        let decoded = match obj.get(key) {
            Some(Value::String(s)) => {
                serde_json::from_str::<Value>(s.trim()).ok().filter(|v| v.is_object() || v.is_array())
            }
            _ => None,
        };
        if let Some(v) = decoded {
            obj.insert(key.to_owned(), v);
        }
    }
    if let Some(recipient) = obj.remove("recipient")
        && !obj.contains_key("to")
    {
        obj.insert("to".to_owned(), recipient);
    }
    body
}

/// Spends one failure of the configured Graph fault, if any are left.
fn take_fault(state: &Shared) -> Option<FailMode> {
    let mode = {
        let mut inner = state.lock();
        let g = &mut inner.saved.settings.graph;
        match (g.fail, g.fail_count) {
            (Some(mode), None) => Some(mode),
            (Some(mode), Some(n)) if n > 0 => {
                g.fail_count = Some(n - 1);
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

async fn hang_for(state: &Shared, how_long: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(how_long) => {}
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
        None => return Err(GraphError::missing("message_id")),
        Some(_) => return Err(GraphError::invalid("Param message_id must be the wamid of a message received.")),
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

/// Whether `to` is written as a phone number.
fn number_shaped(to: &str) -> bool {
    to.bytes().any(|b| b.is_ascii_digit()) && to.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b))
}

fn recipient(state: &State, obj: &Map<String, Value>) -> Result<To, GraphError> {
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
    // `groups-messaging.mdx`: a `recipient_type` that does not fit `to` is refused at once.
    let mismatch = |kind: &str| {
        GraphError::invalid(format!(
            "Param recipient_type does not fit to: '{to}' is {kind}; recipient_type must be 'group' for a group ID \
             and 'individual' (or left out) for a phone number or a business-scoped user ID."
        ))
    };
    match obj.get("recipient_type").map(|v| v.as_str()) {
        Some(Some("group")) if number_shaped(&to) => Err(mismatch("a phone number")),
        Some(Some("group")) => Ok(To::Group(to)),
        None | Some(Some("individual")) if super::groups::is_group_id(state, &to) => Err(mismatch("a group ID")),
        // A BSUID is up to 256 alphanumerics (Meta's own example has `user.` before them); it
        // starts with a letter, as no phone number does.
        None | Some(Some("individual"))
            if to.starts_with(|c: char| c.is_ascii_alphabetic())
                && to.len() <= 256
                && to.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            Ok(To::User(to))
        }
        // Neither a number nor a BSUID: a value out of the parameter's rules.
        None | Some(Some("individual")) if !to.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b)) => {
            Err(GraphError::invalid(format!(
                "Param to must be a phone number, a business-scoped user ID or a group ID; '{to}' is none of them."
            )))
        }
        // Written as a number, but no number has that many digits: no WhatsApp user is there.
        None | Some(Some("individual")) if !(7..=15).contains(&ids::digits_only(&to).len()) => {
            Err(GraphError::bad_value(format!("Recipient phone number '{to}' is not a valid phone number.")))
        }
        None | Some(Some("individual")) => Ok(To::Number(to)),
        Some(_) => Err(GraphError::invalid("Param recipient_type must be 'individual' or 'group'.")),
    }
}

/// Checks and accepts a send: answers Meta's body and owes the webhooks of what happens next.
fn accept(
    state: &Shared,
    node: &str,
    display_number: &str,
    obj: &Map<String, Value>,
    request: &Received,
) -> Result<Response, GraphError> {
    let to = recipient(state, obj)?;
    let kind = validate::content(obj)?;
    if let To::Number(n) = &to
        && ids::digits_only(n) == ids::digits_only(display_number)
    {
        return Err(GraphError::of(131021, None));
    }
    let category = if kind == "template" { Some(check_template_send(state, node, &obj["template"])?) } else { None };
    if let To::Group(id) = &to {
        match super::groups::find(state, id).filter(|g| g.phone_number_id == node) {
            None => return Err(GraphError::of(131_041, None)),
            Some(g) if g.participants.is_empty() => return Err(GraphError::of(131_020, None)),
            Some(_) => {}
        }
    }
    let key = to.key();
    if let Err(code) = state.take_rate(node, &to.person(state)) {
        return Err(GraphError::of(code, None));
    }
    let wamid = ids::wamid(&key);
    state.record(Received { wamid: Some(wamid.clone()), ..request.clone() });
    let participants = match &to {
        To::Group(id) => super::groups::find(state, id).map(|g| g.participants).unwrap_or_default(),
        _ => Vec::new(),
    };
    let fate = fate(state, node, &to, &kind, category.as_deref(), obj);
    schedule(state, node, &wamid, &to, &participants, fate, obj);
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
    let (key, person) = (to.key(), to.person(state));
    let failing = {
        let inner = state.lock();
        inner.saved.failing.get(&key).or_else(|| inner.saved.failing.get(&person)).copied()
    };
    if let Some(code) = failing {
        // Opting out of marketing, or Meta's engagement limit, stops marketing templates only.
        let marketing_only = [131_049, 131_050].contains(&code);
        if !marketing_only || category == Some("MARKETING") {
            return Fate::Fails(code);
        }
    }
    // Outside the 24-hour window Meta accepts the message, then fails it (groups have no window).
    if kind != "template" && !matches!(to, To::Group(_)) && !state.window_open(node, &person) {
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

/// When each of `delays` (already in order) falls due with the `reorder` fault: the last first,
/// as far apart as they would have been. Saturating, so no delays can make it underflow.
fn reversed(delays: &[u64]) -> Vec<u64> {
    let (first, last) = (delays.first().copied().unwrap_or_default(), delays.last().copied().unwrap_or_default());
    delays.iter().map(|d| last.saturating_sub(*d).saturating_add(first)).collect()
}

/// Owes the status webhooks of one message, in Meta's v23 shape. A group's `sent` (or `failed`)
/// is one status about the group; its `delivered`, `read` and `played` are one webhook each,
/// holding a status per participant (`status.mdx`, `groups/groups-messaging.mdx`).
fn schedule(
    state: &Shared,
    node: &str,
    wamid: &str,
    to: &To,
    participants: &[String],
    fate: Fate,
    obj: &Map<String, Value>,
) {
    let settings = state.settings();
    // Each status no earlier than the one before, whatever the delays: Meta's order holds.
    let [sent_ms, delivered_ms, read_ms, played_ms] = settings.statuses.effective();
    let now = unix_now();
    let steps: Vec<(&str, u64)> = match fate {
        Fate::Fails(_) => vec![("failed", sent_ms)],
        Fate::SentOnly => vec![("sent", sent_ms)],
        Fate::Delivered { voice } => {
            let mut s = vec![("sent", sent_ms), ("delivered", delivered_ms), ("read", read_ms)];
            if voice {
                s.push(("played", played_ms));
            }
            s
        }
    };
    // When each is posted: when due, or with the `reorder` fault the last first. Each keeps the
    // timestamp of when it happened, by which a receiver can put them back in order.
    let delays: Vec<u64> = steps.iter().map(|(_, d)| *d).collect();
    let mut posts: Vec<(&str, u64, u64)> = if settings.webhooks.reorder {
        steps.iter().zip(reversed(&delays)).map(|((name, due), at)| (*name, *due, at)).collect()
    } else {
        steps.iter().map(|(name, due)| (*name, *due, *due)).collect()
    };
    if settings.webhooks.reorder {
        // Owed last first, so statuses posted at the same moment go in reverse order too.
        posts.reverse();
    }
    let conversation = ids::hex_token(16);
    // Meta's per-message pricing (`pricing.mdx`, `groups/pricing.md`): non-template messages are
    // free customer service; templates are billed at their category's rate, except utility
    // templates inside the customer-service window. The sandbox keeps no group windows, so a
    // group's utility templates are billed.
    let group = matches!(to, To::Group(_));
    let category = match obj.get("type").and_then(Value::as_str) {
        Some("template") => check_template_send(state, node, &obj["template"]).ok(),
        _ => None,
    }
    .map_or_else(|| "service".to_owned(), |c| c.to_ascii_lowercase());
    let free = category == "service" || (category == "utility" && !group && state.window_open(node, &to.person(state)));
    // Statuses name the user by BSUID and, unless the message went to the BSUID, by number
    // (`business-scoped-user-ids.mdx`), on sent, delivered and read only.
    let contacts = match to {
        To::Number(n) => Some(json!([state.user(&ids::digits_only(n)).contact(&ids::digits_only(n))])),
        To::User(u) => {
            let mut user = state.wa_id_of(u).map(|wa_id| state.user(&wa_id)).unwrap_or_else(|| state.user(""));
            user.user_id = u.clone();
            Some(json!([user.contact("")]))
        }
        To::Group(_) => None,
    };
    let pricing = json!({
        "billable": !free,
        "pricing_model": "PMP",
        "type": match (free, group) {
            (false, _) => "regular",
            (true, false) => "free_customer_service",
            (true, true) => "free_group_customer_service",
        },
        "category": if group && category != "authentication" { format!("group_{category}") } else { category.clone() },
    });
    for (status, due, at) in &posts {
        let mut entry = json!({
            "id": wamid,
            "status": status,
            "timestamp": (now + due / 1000).to_string(),
            "recipient_id": to.key(),
        });
        match to {
            To::Group(_) => entry["recipient_type"] = json!("group"),
            To::User(u) => {
                // Sent to a BSUID, Meta leaves `recipient_id` empty unless it may share the
                // user's phone number, which the sandbox never knows (`business-scoped-user-ids.mdx`).
                entry["recipient_id"] = json!("");
                entry["recipient_user_id"] = json!(u);
            }
            To::Number(_) => {}
        }
        if let Some(data) = obj.get("biz_opaque_callback_data") {
            entry["biz_opaque_callback_data"] = data.clone();
        }
        if let Fate::Fails(code) = fate {
            entry["errors"] = json!([status_error(code, None)]);
        } else if *status != "read" && *status != "played" {
            // v23 attaches conversation and pricing to `sent` and one of delivered/read (here
            // `delivered`, which the sandbox always sends); what `played` carries is undocumented.
            // A group's message is charged per participant it reaches, so each participant's
            // `delivered` carries them.
            let mut c = json!({"id": conversation, "origin": {"type": category}});
            if *status == "sent" {
                c["expiration_timestamp"] = json!((now + 86_400).to_string());
            }
            entry["conversation"] = c;
            entry["pricing"] = pricing.clone();
        }
        let statuses = if group && !["sent", "failed"].contains(status) {
            // The group stays `recipient_id`; the participant's number is `recipient_participant_id`.
            participants
                .iter()
                .map(|p| {
                    let mut e = entry.clone();
                    e["recipient_participant_id"] = json!(p);
                    e
                })
                .collect()
        } else {
            vec![entry]
        };
        let mut value = json!({ "statuses": statuses });
        if let Some(c) = contacts.as_ref().filter(|_| ["sent", "delivered", "read"].contains(status)) {
            value["contacts"] = c.clone();
        }
        webhook::push_messages(state, node, Duration::from_millis(*at), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_times_never_underflow() {
        assert_eq!(reversed(&[300, 800, 1_500]), [1_500, 1_000, 300]);
        // Out of order (a later status due sooner), the old `last - delay + first` underflowed.
        assert_eq!(reversed(&[300, 800, 3_000, 2_000]), [2_000, 1_500, 300, 300]);
        assert_eq!(reversed(&[]), Vec::<u64>::new());
    }
}
