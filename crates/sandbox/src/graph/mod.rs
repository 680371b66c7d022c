//! The Graph API paths, answered as Meta answers them.

pub(crate) mod call;
mod encryption;
mod form;
pub(crate) mod groups;
pub(crate) mod media;
mod messages;
mod template_send;
pub(crate) mod templates;
mod validate;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as AxState};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::{self, JSON_LIMIT};
use crate::errors::GraphError;
use crate::seed::SeedNumber;
use call::{GraphCall, GraphQuery, Shared, check_version, test_tool_path};

pub fn router(state: Shared) -> Router {
    Router::new()
        // `POST /{group-id}` takes a profile picture (multipart, which reads this limit).
        .route(
            "/{version}/{node}",
            get(get_node).post(post_node).delete(delete_node).layer(DefaultBodyLimit::max(groups::UPDATE_LIMIT)),
        )
        .route("/{version}/{node}/phone_numbers", get(list_phone_numbers))
        .route("/{version}/{node}/messages", post(messages::send))
        .route(
            "/{version}/{node}/message_templates",
            get(templates::list).post(templates::create).delete(templates::delete),
        )
        .route("/{version}/{node}/media", post(media::upload).layer(DefaultBodyLimit::max(media::MAX_UPLOAD)))
        .route("/{version}/{node}/groups", get(groups::list).post(groups::create))
        .route(
            "/{version}/{node}/invite_link",
            get(groups::invite_link_get).post(groups::invite_link_reset).delete(groups::invite_link_delete),
        )
        .route("/{version}/{node}/participants", post(groups::add_participants).delete(groups::remove_participants))
        .route(
            "/{version}/{node}/join_requests",
            get(groups::join_requests).post(groups::approve_join_requests).delete(groups::reject_join_requests),
        )
        .route(
            "/{version}/{node}/whatsapp_business_encryption",
            get(encryption::get).post(encryption::set).layer(DefaultBodyLimit::max(JSON_LIMIT)),
        )
        .route("/media-download/{media_id}", get(media::download))
        .fallback(unknown_path)
        .with_state(state)
}

/// What no route takes. The control and simulate routes merged beside these (a router can have
/// only one fallback) answer in their own shape; anything else is a Graph path Meta does not
/// know.
async fn unknown_path(uri: Uri) -> Response {
    let path = uri.path();
    if let Some(not_found) = test_tool_path(path) {
        return not_found.into_response();
    }
    // Meta names what follows the node it found: `/{version}/{node}/foo` → `/foo`.
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let unknown = match parts.as_slice() {
        [version, _, rest] if check_version(version).is_ok() => format!("/{rest}"),
        [version, ..] if check_version(version).is_err() => format!("/{version}"),
        _ => path.to_owned(),
    };
    GraphError::unknown_path(&unknown).into_response()
}

fn number_json(n: &SeedNumber, mps: u32) -> Value {
    json!({
        "verified_name": n.verified_name,
        "display_phone_number": n.display_phone_number,
        "id": n.id,
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": if mps >= 1000 { "HIGH" } else { "STANDARD" }},
    })
}

/// Only the `fields` asked for, and always the id, as Graph answers `?fields=`. A field the
/// sandbox does not keep is left out rather than refused, so a bot asking for more of Meta's
/// fields still works here.
fn pick_fields(full: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields else { return full };
    let mut picked = json!({ "id": full["id"] });
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(v) = full.get(f) {
            picked[f] = v.clone();
        }
    }
    picked
}

#[derive(Deserialize, Default)]
pub(crate) struct NodeQuery {
    fields: Option<String>,
    phone_number_id: Option<String>,
}

/// `GET /{node}`: a phone number (its `throughput` among its fields), a WABA, a template, a
/// media object or a group, whichever the id names.
async fn get_node(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<NodeQuery>,
) -> Result<Response, GraphError> {
    let node = call.node;
    if let Some((_, n)) = state.business_of_number(&node) {
        let mps = state.throughput_of(&node);
        return Ok(axum::Json(pick_fields(number_json(&n, mps), q.fields.as_deref())).into_response());
    }
    if let Some(b) = state.business(&node) {
        return Ok(axum::Json(json!({
            "id": b.waba_id,
            "name": b.name,
            "currency": "USD",
            "timezone_id": "1",
            "message_template_namespace": "sandbox_namespace",
        }))
        .into_response());
    }
    if let Some(r) = templates::get(&state, &node, q.fields.as_deref()) {
        return Ok(r);
    }
    if let Some(r) = media::get(&state, &node, &call.base, q.phone_number_id.as_deref()) {
        return r;
    }
    if let Some(r) = groups::get(&state, &node, q.fields.as_deref()) {
        return r;
    }
    Err(GraphError::unknown_node(&node, "get"))
}

/// `POST /{node}`: edits a template or a group's settings.
async fn post_node(AxState(state): AxState<Shared>, call: GraphCall, req: Request) -> Result<Response, GraphError> {
    if groups::find(&state, &call.node).is_some() {
        return groups::update(&state, &call.node, req).await;
    }
    let body = body::read(req.into_body(), JSON_LIMIT).await?;
    templates::edit(&state, &call.node, &body)
}

/// `DELETE /{node}`: deletes a media object or a group.
async fn delete_node(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<NodeQuery>,
) -> Result<Response, GraphError> {
    if let Some(r) = media::delete(&state, &call.node, q.phone_number_id.as_deref()) {
        return r;
    }
    if let Some(r) = groups::delete(&state, &call.node) {
        return Ok(r);
    }
    Err(GraphError::unknown_node(&call.node, "delete"))
}

async fn list_phone_numbers(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<NodeQuery>,
) -> Result<Response, GraphError> {
    let Some(business) = state.business(&call.node) else {
        return Err(GraphError::unknown_node(&call.node, "get"));
    };
    let data: Vec<Value> = business
        .phone_numbers
        .iter()
        .map(|n| pick_fields(number_json(n, state.throughput_of(&n.id)), q.fields.as_deref()))
        .collect();
    Ok(axum::Json(json!({
        "data": data,
        "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUl"}},
    }))
    .into_response())
}
