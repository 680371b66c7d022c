//! `/v1/jobs`, and `POST /v1/contacts/import`, which makes one.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::id::JobId;
use wagate_domain::validation::FieldError;
use wagate_storage::{JobFilter, JobKind, JobState};

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ListParams, PageRequest, Path, Query};
use crate::services::jobs::{self, EntryView, JobView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    // An import is streamed into the media store as it arrives: the service keeps to its limit.
    let upload = OpenApiRouter::new().routes(routes!(import_contacts)).layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(list_entries))
        .routes(routes!(cancel_job))
        .routes(routes!(get_result))
        .merge(upload)
}

/// Whether a request's body is CSV.
pub fn is_csv(request: &Request) -> bool {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    content_type.starts_with("text/csv") || content_type.starts_with("application/csv")
}

/// Stores a CSV body as a job of `kind`: 202 with the job.
pub async fn accept_upload(
    state: &AppState,
    kind: JobKind,
    subject: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    if !is_csv(&request) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as the body with Content-Type: text/csv",
        ));
    }
    let body = request.into_body().into_data_stream().boxed();
    let job = jobs::upload(state, kind, subject, body).await?;
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(JobView::from(job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Import contacts from a CSV file, as a background job.
///
/// The header row names a `phone` column (or `wa_id`, `to`, `number`), optionally `tags`
/// (separated by `;` or `|`, added to the contact's) and `marketing_opt_out` (`true`/`false`);
/// every other column is an attribute (`attributes.<key>` or `<key>`; an empty cell sets
/// nothing). Contacts are found by number, created when new. Follow the job at
/// `GET /v1/jobs/{id}`; each row's outcome is at `GET /v1/jobs/{id}/entries`.
#[utoipa::path(
    post,
    path = "/v1/contacts/import",
    tag = "jobs",
    request_body(content = String, content_type = "text/csv", description = "The CSV file, at most 1 GiB"),
    responses(
        (status = 202, description = "Stored and queued: the job", body = JobView),
        (status = 415, body = ErrorBody),
        (status = 422, description = "The header row lacks a phone column, or the file is empty", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn import_contacts(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    accept_upload(&state, JobKind::ContactsImport, None, request).await
}

/// `?kind=&state=` of `GET /v1/jobs`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    /// `contacts.import`, `campaign.recipients.import` or `campaign.recipients.export`.
    kind: Option<String>,
    /// `queued`, `running`, `completed`, `failed` or `canceled`.
    state: Option<String>,
}

/// List jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(JobQuery, ListParams),
    responses((status = 200, body = List<JobView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_jobs(
    State(state): State<AppState>,
    Query(q): Query<JobQuery>,
    page: PageRequest,
) -> Result<Json<List<JobView>>, ApiError> {
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            JobKind::parse(k).ok_or_else(|| {
                FieldError::new(
                    "kind",
                    "one_of",
                    "must be contacts.import, campaign.recipients.import or campaign.recipients.export",
                )
            })
        })
        .transpose()?;
    let job_state = q
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                FieldError::new("state", "one_of", "must be queued, running, completed, failed or canceled")
            })
        })
        .transpose()?;
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            JobId::parse(c).ok_or_else(|| FieldError::new("cursor", "invalid_cursor", "is not a cursor this list gave"))
        })
        .transpose()?;
    let (found, more) = jobs::list(&state, &JobFilter { kind, state: job_state, before }, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|j| j.id.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Get a job: its state and progress in rows.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (`job_…`)")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(jobs::get(&state, &id).await?.into()))
}

/// `?outcome=` of a job's entries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EntryQuery {
    /// `succeeded`, `failed` or `invalid`.
    outcome: Option<String>,
}

/// Each row's outcome, by line: what it was about, and the rule a refused row broke.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/entries",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id"), EntryQuery, ListParams),
    responses((status = 200, body = List<EntryView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_entries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
    page: PageRequest,
) -> Result<Json<List<EntryView>>, ApiError> {
    let after = page
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| FieldError::new("cursor", "invalid_cursor", "is not a cursor this list gave"))
        })
        .transpose()?;
    let (found, more) = jobs::entries(&state, &id, q.outcome.as_deref(), after, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|e| e.line.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Cancel a job: it stops after the batch it is in; what it did stays done.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, description = "It has ended", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(jobs::cancel(&state, &id).await?.into()))
}

/// An export's file.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The file", content_type = "text/csv", body = String),
        (status = 404, description = "No such job, or its file is not written yet", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_result(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let file = jobs::result(&state, &id).await?;
    let mut response = Body::from_stream(file.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
