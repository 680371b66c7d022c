//! `/v1/campaigns`.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::campaign::{CampaignState, RecipientStatus};
use wagate_domain::id::CampaignId;
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{Campaign, CampaignFilter, CampaignRecipient, JobKind, RecipientFilter};

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::campaign_recipients::{self, Added, ContactSelection, Preflight, RecipientInput};
use crate::services::campaigns::{self, CampaignView, CreateCampaign};
use crate::services::jobs::JobView;
use crate::state::AppState;

/// Bytes of a JSON array of recipients, at most (a CSV file may have more: it is a job).
const JSON_MAX_BYTES: usize = 64 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    // A CSV file is streamed into the media store as it arrives (see `jobs::accept_upload`); a
    // JSON body is read whole, up to its own limit.
    let upload =
        OpenApiRouter::new().routes(routes!(add_recipients, list_recipients)).layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign))
        .routes(routes!(export_recipients))
        .routes(routes!(export_job))
        .routes(routes!(remove_recipient))
        .routes(routes!(preflight))
        .routes(routes!(start_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(retry_failed))
        .routes(routes!(clone_campaign))
        .merge(upload)
}

async fn shown(state: &AppState, c: &Campaign) -> Result<Json<CampaignView>, ApiError> {
    Ok(Json(campaigns::show(state, c).await?))
}

/// Create a campaign: a draft, its template checked to exist at Meta.
///
/// Add recipients, check them with a preflight, then start it. It is fed into the number's
/// queue at its rate, a little at a time, so the number's own sends are not stuck behind it.
#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "campaigns",
    request_body = CreateCampaign,
    responses((status = 201, body = CampaignView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_campaign(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateCampaign>,
) -> Result<Response, ApiError> {
    let c = campaigns::create(&state, req).await?;
    Ok((StatusCode::CREATED, shown(&state, &c).await?).into_response())
}

/// `?state=&phone_number_id=` of `GET /v1/campaigns`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CampaignQuery {
    /// `draft`, `scheduled`, `running`, `paused`, `completed` or `canceled`.
    state: Option<String>,
    phone_number_id: Option<String>,
}

/// List campaigns, newest first.
#[utoipa::path(
    get,
    path = "/v1/campaigns",
    tag = "campaigns",
    params(CampaignQuery, ListParams),
    responses((status = 200, body = List<CampaignView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_campaigns(
    State(state): State<AppState>,
    Query(q): Query<CampaignQuery>,
    page: PageRequest,
) -> Result<Json<List<CampaignView>>, ApiError> {
    let state_filter = q
        .state
        .as_deref()
        .map(|s| {
            CampaignState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = CampaignState::ALL.iter().map(|c| c.as_str()).collect();
                FieldError::new("state", "one_of", format!("must be one of {}", all.join(", ")))
            })
        })
        .transpose()?;
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            CampaignId::parse(c)
                .ok_or_else(|| FieldError::new("cursor", "invalid_cursor", "is not a cursor this list gave"))
        })
        .transpose()?;
    let filter = CampaignFilter { state: state_filter, phone_number_id: q.phone_number_id, before };
    let (found, more) = campaigns::list(state.store.as_ref(), &filter, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|c| c.id.to_string())).flatten();
    let mut data = Vec::with_capacity(found.len());
    for c in &found {
        data.push(campaigns::show(&state, c).await?);
    }
    Ok(Json(List { data, next_cursor }))
}

/// Get a campaign with its counts by recipient status.
///
/// The counts are read from the recipients themselves: they always equal what
/// `GET /v1/campaigns/{id}/recipients?status=` lists.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id (`cmp_…`)")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_campaign(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<CampaignView>, ApiError> {
    let c = campaigns::get(&state, &id).await?;
    shown(&state, &c).await
}

/// Add recipients to a campaign (a draft, or one running or paused).
///
/// The body is one of: a JSON array of `{"to", "params", "metadata"}` (at most 10,000); a JSON
/// object choosing contacts (`{"tags": [...], "q", "params"}`); or a CSV file
/// (`Content-Type: text/csv`, up to 1 GiB) whose header row names a `to` column and the
/// variables (`1`, `2`… or names) and `metadata.<key>` columns. Numbers are normalised to E.164
/// and deduplicated; every row refused is reported with its line and the rule it broke. JSON is
/// added at once (200); a CSV file is stored and added by a background job (202 with the job:
/// follow it at `GET /v1/jobs/{id}`, each row's outcome at `GET /v1/jobs/{id}/entries`).
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/recipients",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = Vec<RecipientInput>, description = "A JSON array of recipients, a JSON object choosing contacts (ContactSelection), or text/csv"),
    responses(
        (status = 200, description = "JSON: the recipients added", body = Added),
        (status = 202, description = "CSV: stored, and added by the job", body = JobView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The campaign is completed or canceled", body = ErrorBody),
        (status = 413, description = "JSON larger than 64 MiB", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn add_recipients(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    if super::jobs::is_csv(&request) {
        let c = campaign_recipients::open_campaign(&state, &id).await?;
        return super::jobs::accept_upload(&state, JobKind::RecipientsImport, Some(c.id.to_string()), request).await;
    }
    let body = axum::body::to_bytes(request.into_body(), JSON_MAX_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "a JSON list of recipients may have at most 64 MiB: upload larger lists as CSV",
        )
    })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    wagate_domain::input::nul_free(&value)?;
    match value {
        Value::Array(items) => {
            let mut inputs = Vec::with_capacity(items.len());
            let mut refused = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                match serde_json::from_value::<RecipientInput>(item) {
                    Ok(r) => inputs.push((i, r)),
                    Err(e) => refused.push(campaign_recipients::RowError {
                        line: Some(i as u64),
                        position: None,
                        to: String::new(),
                        code: "invalid".into(),
                        path: format!("[{i}]"),
                        message: e.to_string(),
                    }),
                }
            }
            Ok(Json(campaign_recipients::add(&state, &id, inputs, refused).await?).into_response())
        }
        Value::Object(_) => {
            let selection: ContactSelection = serde_json::from_value(value)
                .map_err(|e| ApiError::from(FieldError::new("", "invalid", e.to_string())))?;
            Ok(Json(campaign_recipients::add_contacts(&state, &id, selection).await?).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            "the body must be a JSON array of recipients, a JSON object choosing contacts, or text/csv",
        )),
    }
}

/// A recipient as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct RecipientView {
    to: String,
    /// `pending`, `queued`, `accepted`, `sent`, `delivered`, `read`, `failed` or `skipped`.
    status: RecipientStatus,
    /// Why it was skipped: `opted_out`, `invalid`, `outside_window`, `canceled`.
    skip_reason: Option<String>,
    /// Why it was skipped, or Meta's error when its message failed.
    error: Option<MessageError>,
    /// Its message (see `GET /v1/messages/{id}`).
    message_id: Option<String>,
    wamid: Option<String>,
    /// Sends made for it: more than one after a retry.
    attempts: i64,
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Map<String, Value>>,
    /// Its place in the campaign (from 1): the order it is sent in.
    position: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<CampaignRecipient> for RecipientView {
    fn from(r: CampaignRecipient) -> Self {
        Self {
            to: r.to,
            status: r.status,
            skip_reason: r.skip_reason,
            error: r.error,
            message_id: r.message_id.map(|m| m.to_string()),
            wamid: r.wamid,
            attempts: r.attempts,
            params: r.params,
            metadata: r.metadata,
            position: r.position,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `?status=` of a campaign's recipients.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RecipientQuery {
    /// `pending`, `queued`, `accepted`, `sent`, `delivered`, `read`, `failed` or `skipped`.
    status: Option<String>,
}

fn status_filter(q: &RecipientQuery) -> Result<Option<RecipientStatus>, ApiError> {
    Ok(q.status.as_deref().map(campaigns::parse_status).transpose()?)
}

fn position_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    Ok(cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| FieldError::new("cursor", "invalid_cursor", "is not a cursor this list gave"))
        })
        .transpose()?)
}

/// List a campaign's recipients in the order they are sent, with their message and error.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/recipients",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id"), RecipientQuery, ListParams),
    responses((status = 200, body = List<RecipientView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_recipients(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RecipientQuery>,
    page: PageRequest,
) -> Result<Json<List<RecipientView>>, ApiError> {
    let after = position_cursor(page.cursor.as_deref())?;
    let (found, more) = campaign_recipients::list(&state, &id, status_filter(&q)?, after, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|r| r.position.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Export a campaign's recipients as CSV, each with its status, message and error.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/recipients.csv",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id"), RecipientQuery),
    responses(
        (status = 200, description = "`to,status,reason,message_id,wamid,error_code,error,attempts,updated_at`", content_type = "text/csv", body = String),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn export_recipients(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RecipientQuery>,
) -> Result<Response, ApiError> {
    let c = campaigns::get(&state, &id).await?;
    let status = status_filter(&q)?;
    // Streamed a page at a time: an export of a million recipients is never in memory whole.
    let store = state.store.clone();
    let stream = futures_util::stream::unfold(
        (Some(campaign_recipients::EXPORT_HEADER.to_owned()), Some(0i64)),
        move |(header, after)| {
            let (store, id) = (store.clone(), c.id.clone());
            async move {
                if let Some(h) = header {
                    return Some((Ok::<_, std::io::Error>(h), (None, after)));
                }
                let after = after?;
                let filter = RecipientFilter { status, after: Some(after) };
                match store.list_recipients(&id, &filter, campaign_recipients::EXPORT_PAGE).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let next = page.last().map(|r| r.position);
                        let text: String = page.iter().map(campaign_recipients::export_line).collect();
                        Some((Ok(text), (None, next)))
                    }
                    Err(e) => {
                        tracing::error!(campaign = %id, error = %e, "exporting recipients failed midway");
                        Some((Err(std::io::Error::other(e.to_string())), (None, None)))
                    }
                }
            }
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let disposition = format!("attachment; filename=\"{id}-recipients.csv\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Export a campaign's recipients to a CSV file, as a background job (for lists too large to
/// download in one request); the file is at the job's `result_url` once it completes.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/recipients/export",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id"), RecipientQuery),
    responses((status = 202, body = JobView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn export_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RecipientQuery>,
) -> Result<Response, ApiError> {
    let job = crate::services::jobs::export_recipients(&state, &id, q.status.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(job))).into_response())
}

/// Remove a recipient not yet queued.
#[utoipa::path(
    delete,
    path = "/v1/campaigns/{id}/recipients/{to}",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id"), ("to" = String, Path, description = "The recipient's number")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Queued already", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn remove_recipient(
    State(state): State<AppState>,
    Path((id, to)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    campaign_recipients::remove(&state, &id, &to).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check every pending recipient as its send would be checked, without sending.
///
/// Counts who would be sent and who skipped and why (opted out of marketing, invalid values:
/// each listed with its position and rule), how many are outside the 24-hour window (they count
/// against the messaging limit, also shown), and how long sending would take at the rate.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/preflight",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, body = Preflight), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn preflight(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Preflight>, ApiError> {
    Ok(Json(campaign_recipients::preflight(&state, &id).await?))
}

/// Start a draft: running now, or `scheduled` until its `send_at`.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/start",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, body = CampaignView),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, description = "The template cannot be sent", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn start_campaign(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<CampaignView>, ApiError> {
    let c = campaigns::start(&state, &id).await?;
    shown(&state, &c).await
}

/// Pause a campaign: no more is fed; what is queued already (half a second of it) still goes.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/pause",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn pause_campaign(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<CampaignView>, ApiError> {
    let c = campaigns::pause(&state, &id).await?;
    shown(&state, &c).await
}

/// Resume a paused campaign where it stopped: nobody is sent twice.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/resume",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn resume_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let c = campaigns::resume(&state, &id).await?;
    shown(&state, &c).await
}

/// Cancel a campaign: what is queued and not handed to Meta is withdrawn, and the recipients
/// not sent are skipped as `canceled`.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/cancel",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn cancel_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let c = campaigns::cancel(&state, &id).await?;
    shown(&state, &c).await
}

/// What a retry did.
#[derive(Serialize, ToSchema)]
struct Retried {
    /// Failed recipients put back to `pending`.
    requeued: u64,
    campaign: CampaignView,
}

/// Send again to the failed recipients whose failure may pass (Meta's throughput, a per-user
/// marketing limit, outages, network errors); each under a new idempotency key.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/retry-failed",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, body = Retried), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn retry_failed(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Retried>, ApiError> {
    let (c, requeued) = campaigns::retry_failed(&state, &id).await?;
    Ok(Json(Retried { requeued, campaign: campaigns::show(&state, &c).await? }))
}

/// Copy a campaign into a new draft: its template, number, pace and recipients, none sent.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/clone",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 201, body = CampaignView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn clone_campaign(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let c = campaigns::clone(&state, &id).await?;
    Ok((StatusCode::CREATED, shown(&state, &c).await?).into_response())
}
