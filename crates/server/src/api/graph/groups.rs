//! Meta's group paths — a number's groups, a group's invite link, participants and join
//! requests — served by wagate's groups, so what a client does through them is kept current in
//! `/v1/groups` too.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::{Map, Value, json};

use super::call::{GraphCall, post_params, query_params};
use super::error::GraphApiError;
use crate::extract::body_failure;
use crate::services::groups::{self, CreateGroup, Created, Outcome};
use crate::state::AppState;

fn params(call: &GraphCall, body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, GraphApiError> {
    let body = body.map_err(|e| GraphApiError::invalid(body_failure(&e).1))?;
    post_params(&call.uri, &call.headers, &body)
}

fn text(params: &Map<String, Value>, key: &str) -> Result<Option<String>, GraphApiError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(GraphApiError::invalid(format!("Param {key} must be a string."))),
    }
}

async fn number(state: &AppState, call: &GraphCall) -> Result<(), GraphApiError> {
    match crate::services::accounts::phone_number(state, &call.node).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(GraphApiError::unknown_object(&call.method, &call.node)),
        Err(e) => Err(GraphApiError::from_service(e.into())),
    }
}

async fn group(state: &AppState, call: &GraphCall) -> Result<String, GraphApiError> {
    match groups::get(state, &call.node).await {
        Ok(g) => Ok(g.id),
        Err(crate::services::ServiceError::NotFound { .. }) => {
            Err(GraphApiError::unknown_object(&call.method, &call.node))
        }
        Err(e) => Err(GraphApiError::from_service(e)),
    }
}

/// `GET /{phone-number-id}/groups?limit=&after=`.
pub(super) async fn list(State(state): State<AppState>, call: GraphCall) -> Result<Json<Value>, GraphApiError> {
    number(&state, &call).await?;
    let query = query_params(&call.uri);
    let limit = match query.get("limit").and_then(Value::as_str) {
        None => 25,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1024).contains(l))
            .ok_or_else(|| GraphApiError::invalid("Param limit must be a number from 1 to 1024.".into()))?,
    };
    let after = query.get("after").and_then(Value::as_str).map(str::to_owned);
    let (page, more) =
        groups::list(&state, Some(call.node.clone()), after, limit).await.map_err(GraphApiError::from_service)?;
    let items: Vec<Value> = page
        .iter()
        .map(|g| json!({"id": g.id, "subject": g.subject, "created_at": (g.created_at.as_millis() / 1000).to_string()}))
        .collect();
    let mut paging = json!({"cursors": {}});
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        paging["cursors"] = json!({"before": first.id, "after": last.id});
    }
    if more && let Some(last) = page.last() {
        let base = super::nodes::base_url(&call.headers);
        paging["next"] = json!(format!("{base}{}?limit={limit}&after={}", call.uri.path(), last.id));
    }
    Ok(Json(json!({"data": {"groups": items}, "paging": paging})))
}

/// `POST /{phone-number-id}/groups` with `subject`, `description`, `join_approval_mode`:
/// answered with Meta's `request_id`, which the group's creation webhook names.
pub(super) async fn create(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    number(&state, &call).await?;
    let params = params(&call, body)?;
    let subject =
        text(&params, "subject")?.ok_or_else(|| GraphApiError::invalid("The parameter subject is required.".into()))?;
    let req = CreateGroup {
        phone_number_id: call.node.clone(),
        subject,
        description: text(&params, "description")?,
        join_approval_mode: text(&params, "join_approval_mode")?,
    };
    let request_id = match groups::create(&state, req).await.map_err(GraphApiError::from_service)? {
        Created::Group(g) => g.request_id.unwrap_or_default(),
        Created::Pending { request_id } => request_id,
    };
    Ok(Json(json!({"messaging_product": "whatsapp", "request_id": request_id})))
}

/// `GET /{group-id}/invite_link`.
pub(super) async fn invite_link(State(state): State<AppState>, call: GraphCall) -> Result<Json<Value>, GraphApiError> {
    let id = group(&state, &call).await?;
    let link = groups::invite_link(&state, &id, false).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"messaging_product": "whatsapp", "invite_link": link})))
}

/// `POST /{group-id}/invite_link`: a new link; the old one stops working.
pub(super) async fn reset_invite_link(
    State(state): State<AppState>,
    call: GraphCall,
) -> Result<Json<Value>, GraphApiError> {
    let id = group(&state, &call).await?;
    let link = groups::invite_link(&state, &id, true).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"messaging_product": "whatsapp", "invite_link": link})))
}

/// `DELETE /{group-id}/participants` with `participants: [{"user"}]`.
pub(super) async fn remove_participants(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    let id = group(&state, &call).await?;
    let params = params(&call, body)?;
    let list = params
        .get("participants")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphApiError::invalid("The parameter participants is required.".into()))?;
    let users = list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.get("user")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| GraphApiError::invalid(format!("Param participants[{i}]['user'] must be a string.")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = groups::remove_participants(&state, &id, users).await.map_err(GraphApiError::from_service)?;
    Ok(Json(answer(outcome, None)))
}

/// `GET /{group-id}/join_requests`: the open requests.
pub(super) async fn join_requests(
    State(state): State<AppState>,
    call: GraphCall,
) -> Result<Json<Value>, GraphApiError> {
    let id = group(&state, &call).await?;
    let data = groups::join_requests(&state, &id).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"data": data, "paging": {"cursors": {}}})))
}

async fn answer_requests(
    state: &AppState,
    call: &GraphCall,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> Result<Json<Value>, GraphApiError> {
    let id = group(state, call).await?;
    let params = params(call, body)?;
    let list = params
        .get("join_requests")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphApiError::invalid("The parameter join_requests is required.".into()))?;
    let ids = list
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_str()
                .map(str::to_owned)
                .ok_or_else(|| GraphApiError::invalid(format!("Param join_requests[{i}] must be a string.")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = groups::answer_join_requests(state, &id, ids, approve).await.map_err(GraphApiError::from_service)?;
    let key = if approve { "approved_join_requests" } else { "rejected_join_requests" };
    Ok(Json(answer(outcome, Some(key))))
}

/// `POST /{group-id}/join_requests` with `join_requests: ["…"]`.
pub(super) async fn approve_join_requests(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    answer_requests(&state, &call, body, true).await
}

/// `DELETE /{group-id}/join_requests` with `join_requests: ["…"]`.
pub(super) async fn reject_join_requests(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    answer_requests(&state, &call, body, false).await
}

/// Meta's answer to a list of participants or join requests: what was done under `key`, and
/// what failed with Meta's reason.
fn answer(outcome: Outcome, key: Option<&str>) -> Value {
    let mut v = json!({"messaging_product": "whatsapp", "success": outcome.failed.is_empty()});
    if let Some(key) = key {
        v[key] = json!(outcome.done);
        if !outcome.failed.is_empty() {
            v["failed_join_requests"] = json!(outcome.failed);
        }
    } else if !outcome.failed.is_empty() {
        v["failed_participants"] = json!(outcome.failed);
    }
    v
}
