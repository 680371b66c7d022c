//! Groups: `/{phone-number-id}/groups` (create, list), `/{group-id}` (info, settings, delete),
//! its invite link, participants and join requests, and the group webhooks
//! (`group_lifecycle_update`, `group_participants_update`, `group_settings_update`).
//!
//! Groups are invite-only, as on Meta: customers join through the invite link (simulated with
//! `POST /simulate/groups/{group-id}/join`), directly or by a join request the business approves.

use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::call::{GraphCall, GraphQuery, JsonBody, PageQuery, Shared, page};
use super::form;
use crate::errors::{GraphError, status_error};
use crate::ids;
use crate::state::{Group, State, unix_now};
use crate::webhook;

const SUBJECT_MAX: usize = 128;
const DESCRIPTION_MAX: usize = 2048;
/// Participants one remove request may name.
const PARTICIPANTS_PER_REQUEST: usize = 8;
/// A profile picture may have 5 MB; the multipart body around it a little more.
const PICTURE_MAX: usize = 5 * 1024 * 1024;
pub const UPDATE_LIMIT: usize = PICTURE_MAX + 64 * 1024;

/// A group id shaped like Meta's: base64 of `capi_group:<business number>:<id>`, then `ZD`.
fn group_id(display_number: &str) -> String {
    let raw = format!("capi_group:{}:{}", ids::digits_only(display_number), ids::numeric_id());
    format!("{}ZD", URL_SAFE_NO_PAD.encode(raw))
}

/// Whether `id` is a group id: one of this sandbox's, or shaped as Meta's are.
pub fn is_group_id(state: &State, id: &str) -> bool {
    let shaped = id
        .strip_suffix("ZD")
        .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
        .is_some_and(|raw| raw.starts_with(b"capi_group:"));
    shaped || find(state, id).is_some()
}

/// How a group webhook or answer shows a user: number, BSUID and country
/// (`business-scoped-user-ids.mdx`, Groups API).
fn participant(state: &State, wa_id: &str) -> Value {
    let user = state.user(wa_id);
    let country = user.contact(wa_id)["profile"]["country_code"].clone();
    json!({"wa_id": wa_id, "user_id": user.user_id, "country_code": country})
}

fn invite_link() -> String {
    format!("https://chat.whatsapp.com/{}", ids::alnum(22))
}

fn request_id() -> String {
    ids::hex_token(16).to_ascii_uppercase()
}

pub fn find(state: &State, id: &str) -> Option<Group> {
    state.lock().saved.groups.iter().find(|g| g.id == id).cloned()
}

fn find_or_unknown(state: &State, id: &str, verb: &str) -> Result<Group, GraphError> {
    find(state, id).ok_or_else(|| GraphError::unknown_node(id, verb))
}

fn update_group(state: &State, id: &str, change: impl FnOnce(&mut Group)) -> Option<Group> {
    let updated = {
        let mut inner = state.lock();
        inner.saved.groups.iter_mut().find(|g| g.id == id).map(|g| {
            change(g);
            g.clone()
        })
    };
    state.save();
    updated
}

/// Posts one group event under `field` for the group's number.
fn announce(state: &State, group: &Group, field: &str, kind: &str, mut event: Map<String, Value>) {
    event.insert("timestamp".into(), json!(unix_now().to_string()));
    event.insert("group_id".into(), json!(group.id));
    event.insert("type".into(), json!(kind));
    webhook::push_number(state, &group.phone_number_id, field, std::time::Duration::ZERO, json!({ "groups": [event] }));
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn text_field(body: &Map<String, Value>, key: &str, max: usize, required: bool) -> Result<Option<String>, GraphError> {
    match body.get(key) {
        None | Some(Value::Null) if required => Err(GraphError::missing(key)),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if required && s.is_empty() {
                return Err(GraphError::missing(key));
            }
            if s.chars().count() > max {
                return Err(GraphError::invalid(format!("Param {key} must be at most {max} characters long.")));
            }
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err(GraphError::invalid(format!("Param {key} must be a string."))),
    }
}

fn json_body(bytes: &[u8]) -> Result<Map<String, Value>, GraphError> {
    let body: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|e| GraphError::invalid(format!("The body is not a JSON object: {e}")))?;
    form::require_whatsapp(body.get("messaging_product").and_then(Value::as_str))?;
    Ok(body)
}

/// `POST /{phone-number-id}/groups`: answers a request id; the group itself, with its invite
/// link, arrives by `group_lifecycle_update`.
pub async fn create(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    let (_, number) =
        state.business_of_number(&call.node).ok_or_else(|| GraphError::unknown_node(&call.node, "post"))?;
    let body = json_body(&body)?;
    let subject = text_field(&body, "subject", SUBJECT_MAX, true)?.unwrap_or_default();
    let description = text_field(&body, "description", DESCRIPTION_MAX, false)?;
    let mode = match body.get("join_approval_mode").and_then(Value::as_str) {
        None => "auto_approve",
        Some(m @ ("auto_approve" | "approval_required")) => m,
        Some(_) => {
            return Err(GraphError::invalid("Param join_approval_mode must be 'auto_approve' or 'approval_required'."));
        }
    };
    let group = Group {
        id: group_id(&number.display_phone_number),
        phone_number_id: call.node.clone(),
        subject,
        description,
        invite_link: invite_link(),
        join_approval_mode: mode.to_owned(),
        participants: Vec::new(),
        join_requests: Vec::new(),
        removed: Vec::new(),
        created_at: unix_now(),
    };
    state.lock().saved.groups.push(group.clone());
    state.save();
    let request = request_id();
    let mut event = object(json!({"request_id": request, "subject": group.subject, "invite_link": group.invite_link}));
    if let Some(d) = &group.description {
        event.insert("description".into(), json!(d));
    }
    announce(&state, &group, "group_lifecycle_update", "group_create", event);
    Ok(axum::Json(json!({"messaging_product": "whatsapp", "request_id": request})).into_response())
}

/// `GET /{phone-number-id}/groups`: the number's active groups, paged.
pub async fn list(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<PageQuery>,
) -> Result<Response, GraphError> {
    if state.business_of_number(&call.node).is_none() {
        return Err(GraphError::unknown_node(&call.node, "get"));
    }
    let groups: Vec<Value> = state
        .lock()
        .saved
        .groups
        .iter()
        .filter(|g| g.phone_number_id == call.node)
        .map(|g| json!({"id": g.id, "subject": g.subject, "created_at": g.created_at.to_string()}))
        .collect();
    let (items, paging) = page(&groups, &q, 1024, &call)?;
    Ok(axum::Json(json!({"data": {"groups": items}, "paging": paging})).into_response())
}

/// `GET /{group-id}?fields=…`: only the id without fields, as Meta answers.
pub fn get(state: &State, id: &str, fields: Option<&str>) -> Option<Result<Response, GraphError>> {
    let g = find(state, id)?;
    let full = json!({
        "subject": g.subject,
        "description": g.description.clone().unwrap_or_default(),
        "suspended": false,
        "creation_timestamp": g.created_at,
        "participants": g.participants.iter().map(|p| participant(state, p)).collect::<Vec<_>>(),
        "total_participant_count": g.participants.len(),
        "join_approval_mode": g.join_approval_mode,
    });
    let mut out = json!({"messaging_product": "whatsapp", "id": g.id});
    for f in fields.unwrap_or_default().split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match full.get(f) {
            Some(v) => out[f] = v.clone(),
            None => {
                return Some(Err(GraphError::invalid(format!(
                    "Unknown field '{f}'. Available fields: subject, description, suspended, creation_timestamp, participants, total_participant_count, join_approval_mode."
                ))));
            }
        }
    }
    Some(Ok(axum::Json(out).into_response()))
}

/// `POST /{group-id}`: a new subject or description (JSON), or a profile picture (multipart
/// `file`, JPEG); announced by `group_settings_update`.
pub async fn update(state: &Shared, id: &str, req: Request) -> Result<Response, GraphError> {
    let group = find_or_unknown(state, id, "post")?;
    let form = form::read(req, UPDATE_LIMIT).await?;
    form::require_whatsapp(form.text("messaging_product"))?;
    let body: Map<String, Value> = form.fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let subject = text_field(&body, "subject", SUBJECT_MAX, false)?;
    if subject.as_deref() == Some("") {
        return Err(GraphError::invalid("Param subject cannot be empty."));
    }
    let description = text_field(&body, "description", DESCRIPTION_MAX, false)?;
    let picture = match form.files.get("file") {
        Some(f)
            if f.content_type.as_deref().is_some_and(|t| t != "image/jpeg")
                || !f.bytes.starts_with(b"\xFF\xD8\xFF") =>
        {
            return Err(GraphError::invalid("A group's profile picture must be a JPEG image."));
        }
        Some(f) if f.bytes.len() > PICTURE_MAX => {
            return Err(GraphError::invalid("A group's profile picture may have at most 5 MB."));
        }
        Some(f) => Some(sha2_base64(&f.bytes)),
        None => None,
    };
    if subject.is_none() && description.is_none() && picture.is_none() {
        return Err(GraphError::missing("subject"));
    }
    update_group(state, id, |g| {
        if let Some(s) = &subject {
            g.subject = s.clone();
        }
        if let Some(d) = &description {
            g.description = Some(d.clone());
        }
    });
    let mut event = object(json!({"request_id": request_id()}));
    if let Some(s) = subject {
        event.insert("subject".into(), json!(s));
    }
    if let Some(d) = description {
        event.insert("description".into(), json!(d));
    }
    if let Some(sha) = picture {
        event.insert("profile_picture".into(), json!({"mime_type": "image/jpeg", "sha256": sha}));
    }
    announce(state, &group, "group_settings_update", "group_settings_update", event);
    Ok(axum::Json(json!({"success": true})).into_response())
}

fn sha2_base64(bytes: &[u8]) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// `DELETE /{group-id}`: everyone, the business included, leaves; nobody can message it after.
pub fn delete(state: &State, id: &str) -> Option<Response> {
    let group = find(state, id)?;
    state.lock().saved.groups.retain(|g| g.id != id);
    state.save();
    announce(state, &group, "group_lifecycle_update", "group_delete", object(json!({"request_id": request_id()})));
    Some(axum::Json(json!({"success": true})).into_response())
}

fn link_answer(group: &Group) -> Response {
    axum::Json(json!({"messaging_product": "whatsapp", "invite_link": group.invite_link})).into_response()
}

/// `GET /{group-id}/invite_link`.
pub async fn invite_link_get(AxState(state): AxState<Shared>, call: GraphCall) -> Result<Response, GraphError> {
    Ok(link_answer(&find_or_unknown(&state, &call.node, "get")?))
}

/// `POST /{group-id}/invite_link`: a new link; the old one stops working.
pub async fn invite_link_reset(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    find_or_unknown(&state, &call.node, "post")?;
    json_body(&body)?;
    let group = update_group(&state, &call.node, |g| g.invite_link = invite_link())
        .ok_or_else(|| GraphError::unknown_node(&call.node, "post"))?;
    Ok(link_answer(&group))
}

/// `DELETE /{group-id}/invite_link`: the link stops working until a new one is made.
pub async fn invite_link_delete(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    find_or_unknown(&state, &call.node, "delete")?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        json_body(&body)?;
    }
    update_group(&state, &call.node, |g| g.invite_link.clear());
    // A string here, as both the reference and the OpenAPI spec show it.
    Ok(axum::Json(json!({"messaging_product": "whatsapp", "success": "true"})).into_response())
}

/// `POST /{group-id}/participants`: Meta's groups are invite-only.
pub async fn add_participants(AxState(state): AxState<Shared>, call: GraphCall) -> Result<Response, GraphError> {
    find_or_unknown(&state, &call.node, "post")?;
    Err(GraphError::invalid(
        "Participants cannot be added directly; send them the group's invite link (a template with a group_id parameter).",
    ))
}

fn participant_error(code: i64, input: &str) -> Value {
    let mut e = status_error(code, Some(&format!("Participant {input}")));
    e.as_object_mut().map(|o| o.remove("href"));
    e
}

/// `DELETE /{group-id}/participants`: 1 to 8 users, by phone number or BSUID. Some unknown →
/// HTTP 206 with 131201 and the failures; all unknown → 131212.
pub async fn remove_participants(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    let group = find_or_unknown(&state, &call.node, "delete")?;
    let body = json_body(&body)?;
    let list = body.get("participants").and_then(Value::as_array).ok_or_else(|| GraphError::missing("participants"))?;
    if list.is_empty() || list.len() > PARTICIPANTS_PER_REQUEST {
        return Err(GraphError::invalid(format!(
            "Param participants must have 1 to {PARTICIPANTS_PER_REQUEST} items."
        )));
    }
    // Each input with the wa_id it names: a number's digits, or the user a BSUID belongs to
    // (`business-scoped-user-ids.mdx`: `user` takes either).
    let mut inputs: Vec<(String, Option<String>)> = Vec::new();
    for p in list {
        let user = p.get("user").and_then(Value::as_str).ok_or_else(|| GraphError::missing("participants[].user"))?;
        let is_number = !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
        // A member who never wrote is known by the BSUID the group webhooks showed them with.
        let wa_id = if is_number {
            Some(ids::digits_only(user))
        } else {
            state.wa_id_of(user).or_else(|| group.participants.iter().find(|p| state.user(p).user_id == user).cloned())
        };
        let same = |(u, w): &(String, Option<String>)| u == user || (w.is_some() && *w == wa_id);
        if inputs.iter().any(same) {
            return Err(GraphError::of(131_202, Some(format!("Participant {user} is listed twice."))));
        }
        inputs.push((user.to_owned(), wa_id));
    }
    let (removed, missing): (Vec<_>, Vec<_>) =
        inputs.iter().partition(|(_, w)| w.as_ref().is_some_and(|w| group.participants.iter().any(|p| p == w)));
    if removed.is_empty() {
        return Err(GraphError::of(131_212, Some("None of the participants is in the group.".into())));
    }
    let gone: Vec<String> = removed.iter().filter_map(|(_, w)| w.clone()).collect();
    update_group(&state, &group.id, |g| {
        g.participants.retain(|p| !gone.contains(p));
        g.removed.extend(gone.iter().cloned());
    });
    // Removed by the business, a participant is shown by what the business named them with.
    let event = object(json!({
        "request_id": request_id(),
        "removed_participants": removed.iter().map(|(u, w)| json!({"input": u, "wa_id": w})).collect::<Vec<_>>(),
        "initiated_by": "business",
    }));
    announce(&state, &group, "group_participants_update", "group_participants_remove", event);
    if missing.is_empty() {
        return Ok(axum::Json(json!({"success": true})).into_response());
    }
    let errors: Vec<Value> = missing.iter().map(|(u, _)| participant_error(131_212, u)).collect();
    let mut partial = GraphError::of(131_201, Some("Some participants could not be removed.".into()));
    partial.status = StatusCode::PARTIAL_CONTENT;
    partial.body["error"]["error_data"]["failed_participants"] = json!(errors);
    Err(partial)
}

/// `GET /{group-id}/join_requests`: open requests, paged.
pub async fn join_requests(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<PageQuery>,
) -> Result<Response, GraphError> {
    let group = find_or_unknown(&state, &call.node, "get")?;
    let items: Vec<Value> = group
        .join_requests
        .iter()
        .map(|(id, wa_id, at)| {
            let mut item = participant(&state, wa_id);
            item["join_request_id"] = json!(id);
            item["creation_timestamp"] = json!(at);
            item
        })
        .collect();
    let (items, paging) = page(&items, &q, 1024, &call)?;
    Ok(axum::Json(json!({"data": items, "paging": paging})).into_response())
}

fn request_ids(body: &Map<String, Value>) -> Result<Vec<String>, GraphError> {
    let list =
        body.get("join_requests").and_then(Value::as_array).ok_or_else(|| GraphError::missing("join_requests"))?;
    if list.is_empty() {
        return Err(GraphError::invalid("Param join_requests must not be empty."));
    }
    list.iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| GraphError::invalid("Param join_requests must hold strings."))
        })
        .collect()
}

/// Splits `ids` into the requests that exist (taking them off the group) and failures.
fn take_requests(state: &State, group: &Group, ids: &[String]) -> (Vec<(String, String)>, Vec<Value>) {
    let mut taken = Vec::new();
    let mut failed = Vec::new();
    update_group(state, &group.id, |g| {
        for id in ids {
            match g.join_requests.iter().position(|(r, _, _)| r == id) {
                Some(i) => {
                    let (r, wa_id, _) = g.join_requests.remove(i);
                    taken.push((r, wa_id));
                }
                None => failed.push(json!({"join_request_id": id, "errors": [participant_error(131_213, id)]})),
            }
        }
    });
    (taken, failed)
}

fn join_answer(key: &str, done: Vec<(String, String)>, failed: Vec<Value>) -> Response {
    let mut body =
        json!({"messaging_product": "whatsapp", key: done.into_iter().map(|(id, _)| id).collect::<Vec<_>>()});
    if !failed.is_empty() {
        body["errors"] = json!([participant_error(131_213, "join requests")]);
        body["failed_join_requests"] = json!(failed);
    }
    axum::Json(body).into_response()
}

/// `POST /{group-id}/join_requests`: approve; each approved user joins the group.
pub async fn approve_join_requests(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    let group = find_or_unknown(&state, &call.node, "post")?;
    let ids = request_ids(&json_body(&body)?)?;
    let (approved, failed) = take_requests(&state, &group, &ids);
    for (_, wa_id) in &approved {
        add_member(&state, &group, wa_id, "join_request_approved");
    }
    Ok(join_answer("approved_join_requests", approved, failed))
}

/// `DELETE /{group-id}/join_requests`: reject; Meta sends no webhook for it.
pub async fn reject_join_requests(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    let group = find_or_unknown(&state, &call.node, "delete")?;
    let ids = request_ids(&json_body(&body)?)?;
    let (rejected, failed) = take_requests(&state, &group, &ids);
    Ok(join_answer("rejected_join_requests", rejected, failed))
}

fn add_member(state: &State, group: &Group, wa_id: &str, reason: &str) {
    update_group(state, &group.id, |g| {
        if !g.participants.iter().any(|p| p == wa_id) {
            g.participants.push(wa_id.to_owned());
        }
    });
    let event = object(json!({"reason": reason, "added_participants": [participant(state, wa_id)]}));
    announce(state, group, "group_participants_update", "group_participants_add", event);
}

/// What a customer following the invite link leads to.
pub enum Joined {
    Member,
    Requested(String),
}

/// A customer follows the group's invite link: joins, or asks to when approval is required.
pub fn join(state: &State, group_id: &str, wa_id: &str) -> Result<Joined, String> {
    let group = find(state, group_id).ok_or_else(|| format!("group '{group_id}' does not exist"))?;
    if group.invite_link.is_empty() {
        return Err("the group has no invite link".into());
    }
    if group.participants.iter().any(|p| p == wa_id) {
        return Err(format!("{wa_id} is already in the group"));
    }
    // `groups/reference.mdx`: removed users can't rejoin through the invite link.
    if group.removed.iter().any(|p| p == wa_id) {
        return Err(format!("{wa_id} was removed by the business and cannot rejoin through the invite link"));
    }
    // A user has one open request per group; following the link again does not add another.
    if group.join_requests.iter().any(|(_, w, _)| w == wa_id) {
        return Err(format!("{wa_id} has already asked to join; approve or reject that request first"));
    }
    if group.join_approval_mode == "approval_required" {
        let id = URL_SAFE_NO_PAD.encode(format!("{wa_id}:{}", ids::numeric_id()));
        let now = unix_now();
        update_group(state, group_id, |g| g.join_requests.push((id.clone(), wa_id.to_owned(), now)));
        let mut event = object(participant(state, wa_id));
        event.insert("join_request_id".into(), json!(id));
        announce(state, &group, "group_participants_update", "group_join_request_created", event);
        return Ok(Joined::Requested(id));
    }
    add_member(state, &group, wa_id, "invite_link");
    Ok(Joined::Member)
}

/// A customer leaves the group.
pub fn leave(state: &State, group_id: &str, wa_id: &str) -> Result<(), String> {
    let group = find(state, group_id).ok_or_else(|| format!("group '{group_id}' does not exist"))?;
    if !group.participants.iter().any(|p| p == wa_id) {
        return Err(format!("{wa_id} is not in the group"));
    }
    update_group(state, group_id, |g| g.participants.retain(|p| p != wa_id));
    let event = object(json!({"removed_participants": [participant(state, wa_id)], "initiated_by": "participant"}));
    announce(state, &group, "group_participants_update", "group_participants_remove", event);
    Ok(())
}
