//! `/v1/media`: the media files customers sent, as wagate downloaded them.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_storage::{Media, MediaState};

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ListParams, PageRequest, Path, Query};
use crate::services::media::{self, ContentError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_media)).routes(routes!(get_media)).routes(routes!(get_media_content))
}

/// A media file a customer sent: what Meta said of it, and how its download went.
#[derive(Serialize, ToSchema)]
pub struct MediaView {
    #[schema(example = "med_01JX3ZQ8V6W5T4S3R2Q1P0N9M8")]
    id: String,
    /// The inbound message that carried it.
    message_id: String,
    /// The business number it was sent to.
    phone_number_id: String,
    /// Meta's media id.
    meta_media_id: String,
    /// The message type: `image`, `audio`, `video`, `document` or `sticker`.
    #[schema(example = "image")]
    kind: String,
    #[schema(example = "image/jpeg")]
    mime_type: String,
    /// SHA-256 of the file, base64 (as Meta's webhooks carry it).
    sha256: Option<String>,
    /// Bytes, once downloaded.
    file_size: Option<i64>,
    /// A document's file name.
    filename: Option<String>,
    caption: Option<String>,
    /// `pending` (being downloaded, perhaps after failed attempts), `stored` (the content can be
    /// fetched) or `failed`.
    #[schema(example = "stored")]
    status: &'static str,
    /// Download attempts made.
    attempts: i64,
    /// Why the last attempt failed (for `failed`: why it was given up).
    error: Option<String>,
    /// When the next attempt is due, while `pending`.
    next_attempt_at: Option<Timestamp>,
    created_at: Timestamp,
    downloaded_at: Option<Timestamp>,
}

impl From<Media> for MediaView {
    fn from(m: Media) -> Self {
        Self {
            id: m.id.into_string(),
            message_id: m.message_id.into_string(),
            phone_number_id: m.phone_number_id,
            meta_media_id: m.meta_media_id,
            kind: m.kind,
            mime_type: m.mime_type,
            sha256: m.sha256,
            file_size: m.file_size,
            filename: m.filename,
            caption: m.caption,
            status: m.state.as_str(),
            attempts: m.attempts,
            error: m.last_error,
            next_attempt_at: m.available_at.filter(|_| m.state == MediaState::Pending),
            created_at: m.created_at,
            downloaded_at: m.downloaded_at,
        }
    }
}

/// `?message_id=` of `GET /v1/media`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MediaQuery {
    /// Only the media of this message (wagate's message id).
    message_id: Option<String>,
}

/// List media, newest first; with `message_id`, an inbound message's media.
#[utoipa::path(
    get,
    path = "/v1/media",
    tag = "media",
    params(MediaQuery, ListParams),
    responses((status = 200, body = List<MediaView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_media(
    State(state): State<AppState>,
    Query(query): Query<MediaQuery>,
    page: PageRequest,
) -> Result<Json<List<MediaView>>, ApiError> {
    let filter = media::filter(query.message_id.as_deref(), page.cursor.as_deref())?;
    let (found, more) = media::list(state.store.as_ref(), &filter, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|m| m.id.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Get a media file's metadata and download status.
#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    tag = "media",
    params(("id" = String, Path, description = "wagate's media id")),
    responses((status = 200, body = MediaView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_media(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(media::get(state.store.as_ref(), &id).await?.into()))
}

/// Get a media file's bytes, with its MIME type as `Content-Type`.
#[utoipa::path(
    get,
    path = "/v1/media/{id}/content",
    tag = "media",
    params(("id" = String, Path, description = "wagate's media id")),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`media_not_ready` while downloading, `media_failed` when the download failed", body = ErrorBody),
        (status = 503, description = "`media_unavailable`: stored, but not in this instance's data directory", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_media_content(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (found, file, len) =
        media::content(state.store.as_ref(), &state.config.data_dir, &id).await.map_err(content_error)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let mime = HeaderValue::from_str(&found.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(response)
}

fn content_error(e: ContentError) -> ApiError {
    let message = e.to_string();
    match e {
        ContentError::Service(e) => e.into(),
        ContentError::NotReady { .. } => ApiError::new(StatusCode::CONFLICT, "media_not_ready", message),
        ContentError::Failed { .. } => ApiError::new(StatusCode::CONFLICT, "media_failed", message),
        ContentError::FileMissing { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "media_unavailable", message)
        }
    }
}
