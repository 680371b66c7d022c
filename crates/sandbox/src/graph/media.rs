//! Media: `POST /{phone-number-id}/media` (multipart upload, type and size checks),
//! `GET /{media-id}` (a download URL valid for five minutes, with `mime_type`, `sha256`,
//! `file_size`), the download itself (with the access token), and `DELETE /{media-id}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::call::{GraphCall, Shared, authenticate_headers};
use super::form;
use crate::errors::GraphError;
use crate::ids;
use crate::state::{Media, State, unix_now};

const MB: u64 = 1024 * 1024;

/// Meta's supported media types and their size limits (`business-phone-numbers/media.md`).
const TYPES: &[(&str, u64)] = &[
    ("audio/aac", 16 * MB),
    ("audio/amr", 16 * MB),
    ("audio/mpeg", 16 * MB),
    ("audio/mp4", 16 * MB),
    ("audio/ogg", 16 * MB),
    ("text/plain", 100 * MB),
    ("application/vnd.ms-excel", 100 * MB),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 100 * MB),
    ("application/msword", 100 * MB),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", 100 * MB),
    ("application/vnd.ms-powerpoint", 100 * MB),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation", 100 * MB),
    ("application/pdf", 100 * MB),
    ("image/jpeg", 5 * MB),
    ("image/png", 5 * MB),
    // Animated stickers may have 500 KB, static ones 100 KB; the sandbox does not look inside.
    ("image/webp", 500 * 1024),
    ("video/3gpp", 16 * MB),
    ("video/mp4", 16 * MB),
];

/// The largest upload any type allows, for the route's body limit.
pub const MAX_UPLOAD: usize = 101 * MB as usize;

/// How long a media URL works.
const URL_LIFETIME_SECS: u64 = 300;

/// The type a file's first bytes show, where they show one.
pub(crate) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\xFF\xD8\xFF") {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if bytes.get(4..8) == Some(b"ftyp") {
        Some("video/mp4")
    } else {
        None
    }
}

/// Whether content sniffed as `seen` may be declared as `declared` (MP4 containers carry audio,
/// video and 3GPP alike).
pub(crate) fn compatible(seen: &str, declared: &str) -> bool {
    seen == declared || (seen == "video/mp4" && ["audio/mp4", "audio/aac", "video/3gpp"].contains(&declared))
}

fn upload_error(details: impl Into<String>) -> GraphError {
    GraphError::of(131_053, Some(details.into()))
}

/// Keeps `bytes` as a new media object of `phone_number_id`.
pub fn store(state: &State, phone_number_id: &str, mime_type: &str, bytes: Vec<u8>, filename: Option<String>) -> Media {
    let media = Media {
        id: ids::numeric_id(),
        phone_number_id: phone_number_id.to_owned(),
        mime_type: mime_type.to_owned(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        file_size: bytes.len() as u64,
        filename,
        created_at: unix_now(),
    };
    {
        let mut inner = state.lock();
        inner.media_bytes.insert(media.id.clone(), bytes.into());
        inner.saved.media.push(media.clone());
    }
    state.save();
    media
}

/// The SHA-256 as webhooks carry it: base64 of the digest.
pub fn sha256_base64(media: &Media) -> String {
    hex::decode(&media.sha256).map(|d| STANDARD.encode(d)).unwrap_or_default()
}

pub async fn upload(AxState(state): AxState<Shared>, call: GraphCall, req: Request) -> Result<Response, GraphError> {
    if state.business_of_number(&call.node).is_none() {
        return Err(GraphError::unknown_node(&call.node, "post"));
    }
    let form = form::read(req, MAX_UPLOAD).await?;
    form::require_whatsapp(form.text("messaging_product"))?;
    let Some(file) = form.files.get("file") else {
        return Err(GraphError::missing("file"));
    };
    let declared = form
        .text("type")
        .or(file.content_type.as_deref())
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "application/octet-stream")
        .ok_or_else(|| GraphError::missing("type"))?;
    let Some((_, max)) = TYPES.iter().find(|(t, _)| *t == declared) else {
        return Err(upload_error(format!(
            "Param file must be a file with one of the following types: {}. Received file of type '{declared}'.",
            TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
        )));
    };
    let size = file.bytes.len() as u64;
    if size == 0 {
        return Err(upload_error("The file is empty."));
    }
    if size > *max {
        return Err(upload_error(format!("The file is {size} bytes; {declared} files may have at most {max} bytes.")));
    }
    if let Some(seen) = sniff(&file.bytes)
        && !compatible(seen, &declared)
    {
        return Err(upload_error(format!("The file's content is {seen}, not the declared {declared}.")));
    }
    let media = store(&state, &call.node, &declared, file.bytes.clone(), file.filename.clone());
    Ok(axum::Json(json!({ "id": media.id })).into_response())
}

/// The signature that makes a download URL unforgeable and ties it to its expiry.
fn url_hash(state: &State, media_id: &str, expires: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{media_id}:{expires}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// A download URL for `media_id`, valid for five minutes, under `base`.
pub fn url(state: &State, base: &str, media_id: &str) -> String {
    let expires = unix_now() + URL_LIFETIME_SECS;
    format!("{base}/media-download/{media_id}?expires={expires}&hash={}", url_hash(state, media_id, expires))
}

fn find(state: &State, id: &str) -> Option<Media> {
    state.lock().saved.media.iter().find(|m| m.id == id).cloned()
}

/// With `phone_number_id`, Meta processes the request only for media of that number.
fn check_owner(media: &Media, phone_number_id: Option<&str>) -> Result<(), GraphError> {
    match phone_number_id {
        Some(p) if p != media.phone_number_id => {
            Err(GraphError::invalid(format!("Media {} does not belong to phone number {p}.", media.id)))
        }
        _ => Ok(()),
    }
}

/// `GET /{media-id}`, when the node is a media object.
pub fn get(state: &State, id: &str, base: &str, phone_number_id: Option<&str>) -> Option<Result<Response, GraphError>> {
    let media = find(state, id)?;
    Some(check_owner(&media, phone_number_id).map(|()| {
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "url": url(state, base, &media.id),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            // A string, as Meta's reference and OpenAPI document it.
            "file_size": media.file_size.to_string(),
            "id": media.id,
        }))
        .into_response()
    }))
}

/// `DELETE /{media-id}`, when the node is a media object.
pub fn delete(state: &State, id: &str, phone_number_id: Option<&str>) -> Option<Result<Response, GraphError>> {
    let media = find(state, id)?;
    if let Err(e) = check_owner(&media, phone_number_id) {
        return Some(Err(e));
    }
    {
        let mut inner = state.lock();
        inner.saved.media.retain(|m| m.id != id);
        inner.media_bytes.remove(id);
    }
    state.remove_media_file(id);
    state.save();
    Some(Ok(axum::Json(json!({ "success": true })).into_response()))
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    expires: Option<String>,
    hash: Option<String>,
}

/// The file behind a media URL: the access token is required, and an expired, altered or deleted
/// URL answers 404, as Meta's does (fetch a new URL then).
pub async fn download(
    AxState(state): AxState<Shared>,
    Path(media_id): Path<String>,
    q: Result<Query<DownloadQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authenticate_headers(&headers, None, &state)?;
    if let Some((status, location)) = take_failure(&state, &media_id) {
        let reason = status.canonical_reason().unwrap_or("Error");
        return Ok(match location {
            Some(l) => (status, [(header::LOCATION, l.clone())], format!("{reason}: {l}")).into_response(),
            None => (status, reason).into_response(),
        });
    }
    let not_found = || (StatusCode::NOT_FOUND, "Not Found").into_response();
    // A URL altered into nonsense is as unknown as any other altered URL.
    let Ok(Query(q)) = q else { return Ok(not_found()) };
    let (Some(expires), Some(hash)) = (q.expires.and_then(|e| e.parse::<u64>().ok()), q.hash) else {
        return Ok(not_found());
    };
    if expires < unix_now() || hash != url_hash(&state, &media_id, expires) {
        return Ok(not_found());
    }
    let found = {
        let inner = state.lock();
        let media = inner.saved.media.iter().find(|m| m.id == media_id).cloned();
        media.and_then(|m| inner.media_bytes.get(&media_id).map(|b| (m, b.clone())))
    };
    let Some((media, bytes)) = found else { return Ok(not_found()) };
    Ok(([(header::CONTENT_TYPE, media.mime_type)], bytes).into_response())
}

/// The status (and a redirect's location) a download of `media_id` is set to fail with,
/// counting the failure down.
fn take_failure(state: &State, media_id: &str) -> Option<(StatusCode, Option<String>)> {
    let mut inner = state.lock();
    let failure = inner.media_failures.get_mut(media_id)?;
    let status = StatusCode::from_u16(failure.status).ok()?;
    let location = failure.location.clone();
    failure.left -= 1;
    if failure.left == 0 {
        inner.media_failures.remove(media_id);
    }
    Some((status, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_signatures() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), Some("video/mp4"));
        assert_eq!(sniff(b"hello"), None);
        assert!(compatible("video/mp4", "audio/mp4"));
        assert!(!compatible("image/png", "image/jpeg"));
    }
}
