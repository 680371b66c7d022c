//! `/v1/users` and `/v1/teams`: the people of the team inbox.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::users::{self, CreateUser, TeamInput, TeamView, UpdateUser, UserView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, rename_team, delete_team))
}

/// Add a user of the team inbox: an `agent` (their teams' conversations and the unassigned
/// ones) or an `admin` (everything, and the users and teams).
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 409, description = "The email is taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_user(State(state): State<AppState>, JsonBody(req): JsonBody<CreateUser>) -> Result<Response, ApiError> {
    let user = users::create_user(state.store.as_ref(), req).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(user))).into_response())
}

/// `?team_id=` of `GET /v1/users`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserQuery {
    /// Only the members of this team.
    team_id: Option<String>,
}

/// List users, by id.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    params(UserQuery, ListParams),
    responses((status = 200, body = List<UserView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_users(
    State(state): State<AppState>,
    Query(q): Query<UserQuery>,
    page: PageRequest,
) -> Result<Json<List<UserView>>, ApiError> {
    let (found, more) =
        users::list_users(state.store.as_ref(), q.team_id.as_deref(), page.cursor.as_deref(), page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|u| u.id.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (`usr_…`)")),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<UserView>, ApiError> {
    Ok(Json(users::get_user(state.store.as_ref(), &id).await?.into()))
}

/// Change a user: what is given changes; a new password ends their sessions; `team_ids`
/// replaces their teams. The last admin stays an admin.
#[utoipa::path(
    patch,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UpdateUser,
    responses(
        (status = 200, body = UserView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The email is taken, or this is the last admin", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(users::update_user(state.store.as_ref(), &id, req).await?.into()))
}

/// Remove a user and their sessions; the last admin stays.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_user(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    users::delete_user(state.store.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a team.
#[utoipa::path(
    post,
    path = "/v1/teams",
    tag = "users",
    request_body = TeamInput,
    responses((status = 201, body = TeamView), (status = 409, description = "The name is taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_team(State(state): State<AppState>, JsonBody(req): JsonBody<TeamInput>) -> Result<Response, ApiError> {
    let team = users::create_team(state.store.as_ref(), req).await?;
    Ok((StatusCode::CREATED, Json(TeamView::from(team))).into_response())
}

/// Every team, by name.
#[utoipa::path(
    get,
    path = "/v1/teams",
    tag = "users",
    responses((status = 200, body = List<TeamView>)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_teams(State(state): State<AppState>) -> Result<Json<List<TeamView>>, ApiError> {
    let teams = state.store.list_teams().await.map_err(crate::services::ServiceError::from)?;
    Ok(Json(List { data: teams.into_iter().map(Into::into).collect(), next_cursor: None }))
}

#[utoipa::path(
    get,
    path = "/v1/teams/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The team's id (`team_…`)")),
    responses((status = 200, body = TeamView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_team(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TeamView>, ApiError> {
    Ok(Json(users::get_team(state.store.as_ref(), &id).await?.into()))
}

/// Rename a team.
#[utoipa::path(
    patch,
    path = "/v1/teams/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The team's id")),
    request_body = TeamInput,
    responses((status = 200, body = TeamView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn rename_team(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<TeamInput>,
) -> Result<Json<TeamView>, ApiError> {
    Ok(Json(users::rename_team(state.store.as_ref(), &id, req).await?.into()))
}

/// Remove a team: its members stay, without it.
#[utoipa::path(
    delete,
    path = "/v1/teams/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The team's id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_team(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    users::delete_team(state.store.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
