//! `/v1/groups`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_storage::Group;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::groups::{self, CreateGroup, Created, Outcome, UpdateGroup};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(get_invite_link, reset_invite_link))
        .routes(routes!(list_join_requests))
        .routes(routes!(approve_join_requests))
        .routes(routes!(reject_join_requests))
        .routes(routes!(remove_participants))
}

/// A group of a business number, with Meta's group webhooks applied.
#[derive(Serialize, ToSchema)]
pub struct GroupView {
    /// Meta's group id: send to it with `"recipient_type": "group"`.
    id: String,
    account_id: String,
    phone_number_id: String,
    subject: String,
    description: Option<String>,
    /// `https://chat.whatsapp.com/…`: customers join through it.
    invite_link: Option<String>,
    /// `auto_approve` or `approval_required`, when wagate made the group.
    join_approval_mode: Option<String>,
    /// `[{"wa_id", "user_id"}]`.
    #[schema(value_type = Vec<Object>)]
    participants: Value,
    /// Open requests to join: `[{"join_request_id", "wa_id", "user_id", "created_at"}]`.
    #[schema(value_type = Vec<Object>)]
    join_requests: Value,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            account_id: g.account_id.into_string(),
            phone_number_id: g.phone_number_id,
            subject: g.subject,
            description: g.description,
            invite_link: g.invite_link,
            join_approval_mode: g.join_approval_mode,
            participants: g.participants,
            join_requests: g.join_requests,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

/// A creation Meta took but has not announced yet.
#[derive(Serialize, ToSchema)]
struct PendingGroup {
    /// Meta's request id; the group appears in `GET /v1/groups` once Meta announces it.
    request_id: String,
    #[schema(example = "creating")]
    status: &'static str,
}

/// Create a group of a business number.
///
/// Meta announces the group (its id and invite link) by webhook; wagate waits a few seconds for
/// it: `201` with the group, or `202` with Meta's `request_id` when it has not come yet.
#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "groups",
    request_body = CreateGroup,
    responses(
        (status = 201, body = GroupView),
        (status = 202, body = PendingGroup),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_group(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateGroup>,
) -> Result<Response, ApiError> {
    Ok(match groups::create(&state, req).await? {
        Created::Group(g) => (StatusCode::CREATED, Json(GroupView::from(*g))).into_response(),
        Created::Pending { request_id } => {
            (StatusCode::ACCEPTED, Json(PendingGroup { request_id, status: "creating" })).into_response()
        }
    })
}

/// `?phone_number_id=` of `GET /v1/groups`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GroupQuery {
    phone_number_id: Option<String>,
}

/// List groups by id.
#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "groups",
    params(GroupQuery, ListParams),
    responses((status = 200, body = List<GroupView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_groups(
    State(state): State<AppState>,
    Query(q): Query<GroupQuery>,
    page: PageRequest,
) -> Result<Json<List<GroupView>>, ApiError> {
    let (found, more) = groups::list(&state, q.phone_number_id, page.cursor, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|g| g.id.clone())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Get a group.
#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_group(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(groups::get(&state, &id).await?.into()))
}

/// Change a group's subject or description.
#[utoipa::path(
    patch,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    request_body = UpdateGroup,
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateGroup>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(groups::update(&state, &id, req).await?.into()))
}

/// Delete a group: everyone leaves, and nobody can message it after.
#[utoipa::path(
    delete,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_group(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    groups::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct InviteLink {
    invite_link: String,
}

/// The group's invite link, as Meta has it.
#[utoipa::path(
    get,
    path = "/v1/groups/{id}/invite-link",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    responses((status = 200, body = InviteLink), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_invite_link(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<InviteLink>, ApiError> {
    Ok(Json(InviteLink { invite_link: groups::invite_link(&state, &id, false).await? }))
}

/// A new invite link; the old one stops working.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/invite-link",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    responses((status = 200, body = InviteLink), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn reset_invite_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InviteLink>, ApiError> {
    Ok(Json(InviteLink { invite_link: groups::invite_link(&state, &id, true).await? }))
}

/// Open requests to join, as Meta has them.
#[utoipa::path(
    get,
    path = "/v1/groups/{id}/join-requests",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    responses((status = 200, body = List<Object>), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_join_requests(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<List<Value>>, ApiError> {
    Ok(Json(List { data: groups::join_requests(&state, &id).await?, next_cursor: None }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct JoinRequestIds {
    /// From `GET /v1/groups/{id}/join-requests`.
    join_request_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct OutcomeView {
    /// What Meta did.
    done: Vec<String>,
    /// What it did not, each with Meta's error.
    #[schema(value_type = Vec<Object>)]
    failed: Vec<Value>,
}

impl From<Outcome> for OutcomeView {
    fn from(o: Outcome) -> Self {
        Self { done: o.done, failed: o.failed }
    }
}

/// Approve join requests: those users join.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/join-requests/approve",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    request_body = JoinRequestIds,
    responses((status = 200, body = OutcomeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn approve_join_requests(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<JoinRequestIds>,
) -> Result<Json<OutcomeView>, ApiError> {
    Ok(Json(groups::answer_join_requests(&state, &id, req.join_request_ids, true).await?.into()))
}

/// Reject join requests.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/join-requests/reject",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    request_body = JoinRequestIds,
    responses((status = 200, body = OutcomeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn reject_join_requests(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<JoinRequestIds>,
) -> Result<Json<OutcomeView>, ApiError> {
    Ok(Json(groups::answer_join_requests(&state, &id, req.join_request_ids, false).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Participants {
    /// 1 to 8 phone numbers or user ids.
    participants: Vec<String>,
}

/// Remove participants from a group.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/participants/remove",
    tag = "groups",
    params(("id" = String, Path, description = "Meta's group id")),
    request_body = Participants,
    responses((status = 200, body = OutcomeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn remove_participants(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Participants>,
) -> Result<Json<OutcomeView>, ApiError> {
    Ok(Json(groups::remove_participants(&state, &id, req.participants).await?.into()))
}
