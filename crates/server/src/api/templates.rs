//! `/v1/templates`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_storage::MessageTemplate;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::templates;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(sync_templates))
        .routes(routes!(get_template, edit_template, delete_template))
        .routes(routes!(get_template_by_name, edit_template_by_name, delete_template_by_name))
}

/// A message template as Meta keeps it, kept current by Meta's webhooks.
#[derive(Serialize, ToSchema)]
pub struct TemplateView {
    /// Meta's template id.
    #[schema(example = "1234567890123456")]
    id: String,
    account_id: String,
    waba_id: String,
    #[schema(example = "order_update")]
    name: String,
    #[schema(example = "en_US")]
    language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, …: only `APPROVED` ones are sent.
    status: String,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`).
    parameter_format: String,
    /// Meta's components: header, body, footer, buttons, carousel.
    #[schema(value_type = Vec<Object>)]
    components: Value,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    quality_score: Option<String>,
    /// Why Meta rejected it.
    rejected_reason: Option<String>,
    /// When wagate first stored it.
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<MessageTemplate> for TemplateView {
    fn from(t: MessageTemplate) -> Self {
        Self {
            id: t.id,
            account_id: t.account_id.into_string(),
            waba_id: t.waba_id,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            parameter_format: t.parameter_format,
            components: t.components,
            quality_score: t.quality_score,
            rejected_reason: t.rejected_reason,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `?account_id=&name=&language=&status=&category=` of `GET /v1/templates`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TemplateQuery {
    account_id: Option<String>,
    name: Option<String>,
    language: Option<String>,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, … (any case).
    status: Option<String>,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION` (any case).
    category: Option<String>,
}

/// List templates by name and language.
#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    params(TemplateQuery, ListParams),
    responses((status = 200, body = List<TemplateView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_templates(
    State(state): State<AppState>,
    Query(q): Query<TemplateQuery>,
    page: PageRequest,
) -> Result<Json<List<TemplateView>>, ApiError> {
    let wanted = templates::Wanted {
        account_id: q.account_id,
        name: q.name,
        language: q.language,
        status: q.status,
        category: q.category,
    };
    let (found, more) = templates::list(&state, wanted, page.cursor.as_deref(), page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|t| t.id.clone())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// `POST /v1/templates`: Meta's template body, and the account when several are connected.
#[derive(Deserialize, ToSchema)]
struct CreateTemplate {
    /// The account whose WABA gets the template; optional while one account is connected.
    #[serde(default)]
    account_id: Option<String>,
    /// Meta's body: `name`, `language`, `category`, `components`, `parameter_format`, …
    #[serde(flatten)]
    #[schema(value_type = Object)]
    template: Map<String, Value>,
}

/// Create a template at Meta, which reviews it.
///
/// The body is Meta's (`name`, `language`, `category`, `components`, `parameter_format`);
/// Meta's refusal comes back as `meta_rejected` with Meta's code and message. The template is
/// `PENDING` until Meta's review, which a webhook reports.
#[utoipa::path(
    post,
    path = "/v1/templates",
    tag = "templates",
    request_body = CreateTemplate,
    responses(
        (status = 201, body = TemplateView),
        (status = 422, description = "Invalid, or refused by Meta", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_template(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateTemplate>,
) -> Result<impl IntoResponse, ApiError> {
    let created = templates::create(&state, req.account_id.as_deref(), req.template).await?;
    Ok((StatusCode::CREATED, Json(TemplateView::from(created))))
}

#[derive(Serialize, ToSchema)]
struct SyncedView {
    account_id: String,
    /// Templates Meta listed.
    templates: Option<usize>,
    /// Of those, the new or changed ones.
    changed: Option<usize>,
    /// Why reading them failed.
    error: Option<String>,
}

/// Read templates from Meta now.
#[utoipa::path(
    post,
    path = "/v1/templates/sync",
    tag = "templates",
    params(("account_id" = Option<String>, Query, description = "Only this account's templates; every account's when left out")),
    responses((status = 200, body = List<SyncedView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn sync_templates(
    State(state): State<AppState>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<List<SyncedView>>, ApiError> {
    let results = templates::sync_some(&state, q.account_id.as_deref()).await?;
    let data = results
        .into_iter()
        .map(|(id, r)| match r {
            Ok(s) => SyncedView {
                account_id: id.into_string(),
                templates: Some(s.templates),
                changed: Some(s.changed),
                error: None,
            },
            Err(e) => {
                SyncedView { account_id: id.into_string(), templates: None, changed: None, error: Some(e.to_string()) }
            }
        })
        .collect();
    Ok(Json(List { data, next_cursor: None }))
}

/// Get a template by Meta's id.
#[utoipa::path(
    get,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "Meta's template id")),
    responses((status = 200, body = TemplateView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_template(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(templates::get(&state, &id).await?.into()))
}

/// `PATCH /v1/templates/{id}`: what Meta lets change.
#[derive(Deserialize, ToSchema)]
struct EditTemplate {
    /// Meta's edit body: new `components`, or a new `category` (not of an approved template),
    /// `message_send_ttl_seconds`, …
    #[serde(flatten)]
    #[schema(value_type = Object)]
    edit: Map<String, Value>,
}

/// Edit a template at Meta; it goes back to review.
///
/// Meta allows an approved template one edit a day and ten a month; its refusal comes back as
/// `meta_rejected`.
#[utoipa::path(
    patch,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "Meta's template id")),
    request_body = EditTemplate,
    responses(
        (status = 200, body = TemplateView),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn edit_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EditTemplate>,
) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(templates::edit(&state, &id, req.edit).await?.into()))
}

/// Delete a template (this language) at Meta and here.
#[utoipa::path(
    delete,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "Meta's template id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_template(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    templates::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?account_id=` of the by-name paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccountQuery {
    /// Needed while several accounts are connected.
    account_id: Option<String>,
}

async fn by_name(state: &AppState, q: AccountQuery, name: &str, language: &str) -> Result<MessageTemplate, ApiError> {
    Ok(templates::find(state, q.account_id.as_deref(), name, language).await?)
}

/// Get a template by name and language.
#[utoipa::path(
    get,
    path = "/v1/templates/{name}/{language}",
    tag = "templates",
    params(("name" = String, Path), ("language" = String, Path, description = "`en_US`, …"), AccountQuery),
    responses((status = 200, body = TemplateView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_template_by_name(
    State(state): State<AppState>,
    Path((name, language)): Path<(String, String)>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(by_name(&state, q, &name, &language).await?.into()))
}

/// Edit a template named by name and language.
#[utoipa::path(
    patch,
    path = "/v1/templates/{name}/{language}",
    tag = "templates",
    params(("name" = String, Path), ("language" = String, Path), AccountQuery),
    request_body = EditTemplate,
    responses((status = 200, body = TemplateView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn edit_template_by_name(
    State(state): State<AppState>,
    Path((name, language)): Path<(String, String)>,
    Query(q): Query<AccountQuery>,
    JsonBody(req): JsonBody<EditTemplate>,
) -> Result<Json<TemplateView>, ApiError> {
    let t = by_name(&state, q, &name, &language).await?;
    Ok(Json(templates::edit(&state, &t.id, req.edit).await?.into()))
}

/// Delete a template named by name and language.
#[utoipa::path(
    delete,
    path = "/v1/templates/{name}/{language}",
    tag = "templates",
    params(("name" = String, Path), ("language" = String, Path), AccountQuery),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_template_by_name(
    State(state): State<AppState>,
    Path((name, language)): Path<(String, String)>,
    Query(q): Query<AccountQuery>,
) -> Result<StatusCode, ApiError> {
    let t = by_name(&state, q, &name, &language).await?;
    templates::delete(&state, &t.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
