//! `/v1/media`: the media files customers sent, as wagate downloaded them, and the files the
//! business uploads to send; `/media/{id}`: an upload by a signed link that needs no key.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::media_file;
use wagate_domain::time::Timestamp;
use wagate_storage::{Media, MediaState, Upload};

use super::list::List;
use super::upload_form::{self, FormRefused};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query, parse_json};
use crate::media_store::StoredFile;
use crate::services::media::{self, ContentError};
use crate::services::uploads::{self, LinkRefused, NewFile};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    // A document may have 100 MB, and a multipart body a little more around it.
    let upload = OpenApiRouter::new()
        .routes(routes!(upload_media))
        .layer(DefaultBodyLimit::max(media_file::MAX_BYTES as usize + 64 * 1024));
    OpenApiRouter::new()
        .routes(routes!(list_media))
        .routes(routes!(get_media, delete_media))
        .routes(routes!(get_media_content))
        .routes(routes!(create_link))
        .merge(upload)
}

/// What needs no key: an upload by its signed link.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(public_media))
}

/// A file the business uploaded to send.
#[derive(Serialize, ToSchema)]
pub struct UploadView {
    #[schema(example = "med_01JX3ZQ8V6W5T4S3R2Q1P0N9M8")]
    id: String,
    /// `upload`: the business's, to send (a customer's file shows `message_id` instead).
    #[schema(example = "upload")]
    source: &'static str,
    /// The message type that sends it: `image`, `audio`, `video`, `document` or `sticker`.
    kind: String,
    mime_type: String,
    file_size: i64,
    /// SHA-256 of the bytes, base64.
    sha256: String,
    filename: Option<String>,
    /// The URL it was fetched from, when given as one.
    url: Option<String>,
    created_at: Timestamp,
}

impl From<Upload> for UploadView {
    fn from(u: Upload) -> Self {
        Self {
            id: u.id.into_string(),
            source: "upload",
            kind: u.kind,
            mime_type: u.mime_type,
            file_size: u.file_size,
            sha256: u.sha256,
            filename: u.filename,
            url: u.source_url,
            created_at: u.created_at,
        }
    }
}

/// `POST /v1/media` as JSON: a file wagate fetches.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UploadFromUrl {
    /// A public http(s) URL, fetched under the network rules (no private addresses).
    url: String,
    /// The name a document shows; the URL's last segment when left out.
    #[serde(default)]
    filename: Option<String>,
}

/// Upload a file to send.
///
/// Multipart with a `file` part (its `Content-Type` is the file's type; an optional `filename`
/// part), or JSON `{"url", "filename"}` for wagate to fetch. Checked against Meta's types and
/// limits (image 5 MB, video and audio 16 MB, document 100 MB, sticker 100 KB or 500 KB
/// animated), its bytes against its type. Send it with `{"image": {"media_id": "med_…"}}`:
/// wagate uploads it to Meta for the sending number the first time (and again after 29 days).
#[utoipa::path(
    post,
    path = "/v1/media",
    tag = "media",
    request_body(content = UploadFromUrl, description = "JSON with a URL, or multipart/form-data with a `file` part"),
    responses(
        (status = 201, body = UploadView),
        (status = 413, description = "Larger than any file Meta takes", body = ErrorBody),
        (status = 422, description = "`unsupported_media_type`, `media_type_mismatch`, `too_large`, `empty_file`, …", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn upload_media(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let upload = if content_type.starts_with("multipart/form-data") {
        let file = read_multipart(&state, request).await?;
        uploads::create(&state, file).await?
    } else {
        let JsonBody(req) = JsonBody::<UploadFromUrl>::from_request(request, &state).await?;
        uploads::fetch(&state, &req.url, req.filename).await?
    };
    Ok((StatusCode::CREATED, Json(UploadView::from(upload))).into_response())
}

/// The `file` part (and an optional `filename` part) of a multipart upload.
async fn read_multipart(state: &AppState, request: Request) -> Result<NewFile, ApiError> {
    let (file, mut texts) =
        upload_form::read(state, request, &["filename"]).await.map_err(|refused| match refused {
            FormRefused::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is larger than any file WhatsApp takes (100 MB)",
            ),
            FormRefused::Invalid(why) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_multipart", why),
            FormRefused::Field(e) => e.into(),
        })?;
    let filename = texts.remove("filename").or(file.file_name);
    Ok(NewFile { bytes: file.bytes, content_type: file.content_type, filename, source_url: None })
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

/// Get a media file's metadata: a customer's file and how its download went, or an upload.
#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    tag = "media",
    params(("id" = String, Path, description = "wagate's media id")),
    responses((status = 200, body = MediaView, description = "A customer's file, or an upload (`UploadView`)"), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_media(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if let Some(upload) = uploads::find(&state, &id).await? {
        return Ok(Json(UploadView::from(upload)).into_response());
    }
    Ok(Json(MediaView::from(media::get(state.store.as_ref(), &id).await?)).into_response())
}

/// Delete an upload: it can no longer be sent, served or linked to.
#[utoipa::path(
    delete,
    path = "/v1/media/{id}",
    tag = "media",
    params(("id" = String, Path, description = "wagate's media id of an upload")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_media(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    uploads::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/media/{id}/link`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// Seconds the link works: 1 to 604800 (a week); an hour when left out.
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Serialize, ToSchema)]
struct LinkView {
    /// Serves the upload to anyone who has it, without a key, until `expires_at`.
    url: String,
    expires_at: Timestamp,
}

/// A public link to an upload that expires.
#[utoipa::path(
    post,
    path = "/v1/media/{id}/link",
    tag = "media",
    params(("id" = String, Path, description = "wagate's media id of an upload")),
    request_body = LinkRequest,
    responses((status = 200, body = LinkView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LinkView>, ApiError> {
    // The body may be left out.
    let req: LinkRequest =
        if body.iter().all(u8::is_ascii_whitespace) { LinkRequest::default() } else { parse_json(&body)? };
    let link = uploads::link(&state, &id, req.expires_in).await?;
    // The address the caller reached this server by is the one the link is for.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    Ok(Json(LinkView { url: format!("{scheme}://{host}{}", link.path_and_query), expires_at: link.expires_at }))
}

/// `?expires=&signature=` of a public link.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LinkQuery {
    expires: Option<String>,
    signature: Option<String>,
}

/// An upload by its signed link; needs no key. `403` for a link that is not genuine, `410` once
/// it expired.
#[utoipa::path(
    get,
    path = "/media/{id}",
    tag = "media",
    params(("id" = String, Path), LinkQuery),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, body = ErrorBody),
        (status = 410, body = ErrorBody),
    )
)]
async fn public_media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    let (upload, file) =
        uploads::open_link(&state, &id, q.expires.as_deref(), q.signature.as_deref()).await.map_err(|e| match e {
            LinkRefused::Invalid => ApiError::new(StatusCode::FORBIDDEN, "invalid_link", e.to_string()),
            LinkRefused::Expired => ApiError::new(StatusCode::GONE, "link_expired", e.to_string()),
            LinkRefused::Failed(e) => e.into(),
        })?;
    Ok(file_response(&upload.mime_type, file))
}

fn file_response(mime_type: &str, file: StoredFile) -> Response {
    let len = file.size;
    let mut response = Body::from_stream(file.bytes).into_response();
    let headers = response.headers_mut();
    let mime =
        HeaderValue::from_str(mime_type).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
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
    if let Some(upload) = uploads::find(&state, &id).await? {
        let file = uploads::content(&state, &upload).await?;
        return Ok(file_response(&upload.mime_type, file));
    }
    let (found, file) = media::content(state.store.as_ref(), &state.media, &id).await.map_err(content_error)?;
    Ok(file_response(&found.mime_type, file))
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
        ContentError::Store(e) => ApiError::internal("reading a media file failed", e),
    }
}
