//! Files the business uploads to send: checked against Meta's types and limits, kept in the
//! media store under their `med_…` id with their SHA-256, uploaded to Meta for each number that
//! sends one (again once Meta's copy is near its 30 days), deleted, and shared by expiring
//! signed links.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wagate_domain::id::MediaId;
use wagate_domain::media_file::{self, MediaType};
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{Account, MetaCopy, StorageError, Upload};

use super::ServiceError;
use super::media::digest_base64;
use crate::graph::{GraphFailure, Target};
use crate::media_store::StoredFile;
use crate::state::AppState;

/// Meta keeps an upload 30 days; a copy older than this is uploaded again before it is used.
pub const META_COPY_LIFETIME: Duration = Duration::from_secs(29 * 24 * 3600);
/// How long a public link works when the request does not say: an hour; at most a week.
const LINK_DEFAULT: Duration = Duration::from_secs(3600);
const LINK_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
const FILENAME_MAX: usize = 255;

/// A file to store: its bytes, what it says it is, and its name.
pub struct NewFile {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub source_url: Option<String>,
}

/// `POST /v1/media`: checks the file against Meta's types and limits, stores it, records it.
pub async fn create(state: &AppState, file: NewFile) -> Result<Upload, ServiceError> {
    let found: MediaType = media_file::check_upload("file", file.content_type.as_deref(), &file.bytes)?;
    let filename = match file.filename.filter(|f| !f.trim().is_empty()) {
        Some(f) => {
            wagate_domain::validation::check_length("filename", &f, 1, FILENAME_MAX)?;
            wagate_domain::input::nul_free_text("filename", &f)?;
            Some(f)
        }
        None => None,
    };
    let upload = Upload {
        id: MediaId::generate(),
        kind: found.kind.to_owned(),
        mime_type: found.mime_type.to_owned(),
        file_size: file.bytes.len() as i64,
        sha256: digest_base64(&Sha256::digest(&file.bytes)),
        filename,
        source_url: file.source_url,
        created_at: Timestamp::now(),
    };
    // The bytes first: a row never names a file that is not there.
    state
        .media
        .put(upload.id.as_str(), file.bytes)
        .await
        .map_err(|e| ServiceError::Storage(StorageError::Setup(e.to_string())))?;
    state.store.insert_upload(&upload).await?;
    Ok(upload)
}

/// `POST /v1/media` with `{"url"}`: the file fetched by wagate, under the network rules, then
/// checked and stored as an upload.
pub async fn fetch(state: &AppState, url: &str, filename: Option<String>) -> Result<Upload, ServiceError> {
    let parsed = super::http_url("url", url, 2048)?;
    let resp = state
        .graph
        .fetch_public(parsed.as_str(), state.config.media.timeout(), media_file::MAX_BYTES)
        .await
        .map_err(|e| match e {
            GraphFailure::Refused(r) => FieldError::new("url", "private_address", r.to_string()).into(),
            other => ServiceError::from(FieldError::new("url", "unreachable", format!("cannot be fetched: {other}"))),
        })?;
    let filename = filename.or_else(|| {
        parsed.path_segments().and_then(|mut s| s.next_back()).filter(|n| !n.is_empty()).map(str::to_owned)
    });
    create(
        state,
        NewFile { bytes: resp.bytes, content_type: resp.content_type, filename, source_url: Some(url.to_owned()) },
    )
    .await
}

fn parse_id(id: &str) -> Result<MediaId, ServiceError> {
    MediaId::parse(id).ok_or_else(|| ServiceError::not_found("media", id))
}

/// An upload by id; None for an id that is not one (it may be a customer's file).
pub async fn find(state: &AppState, id: &str) -> Result<Option<Upload>, ServiceError> {
    match MediaId::parse(id) {
        Some(parsed) => Ok(state.store.get_upload(&parsed).await?),
        None => Ok(None),
    }
}

/// The bytes of an upload.
pub async fn content(state: &AppState, upload: &Upload) -> Result<StoredFile, ServiceError> {
    state
        .media
        .get(upload.id.as_str())
        .await
        .map_err(|e| ServiceError::Storage(StorageError::Setup(e.to_string())))?
        .ok_or_else(|| ServiceError::not_found("media file", upload.id.as_str()))
}

/// `DELETE /v1/media/{id}`: the record, then the bytes. Meta's copies expire on their own.
pub async fn delete(state: &AppState, id: &str) -> Result<(), ServiceError> {
    let parsed = parse_id(id)?;
    if !state.store.delete_upload(&parsed).await? {
        return Err(ServiceError::not_found("media", id));
    }
    if let Err(e) = state.media.delete(parsed.as_str()).await {
        // The record is gone, so nothing serves or sends it; the bytes are only left behind.
        tracing::warn!(media = %parsed, error = %e, "removing a deleted upload's file failed");
    }
    Ok(())
}

fn signature(key: &[u8; 32], id: &str, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}:{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A link that needs no key, until it expires: the path and query, and when it expires.
pub struct Link {
    pub path_and_query: String,
    pub expires_at: Timestamp,
}

/// `POST /v1/media/{id}/link`: valid for `expires_in` seconds (an hour by default, a week at most).
pub async fn link(state: &AppState, id: &str, expires_in: Option<u64>) -> Result<Link, ServiceError> {
    let upload = find(state, id).await?.ok_or_else(|| ServiceError::not_found("media", id))?;
    let lifetime = match expires_in {
        None => LINK_DEFAULT,
        Some(s) if s == 0 || Duration::from_secs(s) > LINK_MAX => {
            return Err(
                FieldError::new("expires_in", "range", format!("must be 1 to {} seconds", LINK_MAX.as_secs())).into()
            );
        }
        Some(s) => Duration::from_secs(s),
    };
    let expires_at = Timestamp::now().plus(lifetime);
    let expires = (expires_at.as_millis() + 999) / 1000;
    let sig = signature(&state.media_link_key, upload.id.as_str(), expires);
    Ok(Link {
        path_and_query: format!("/media/{}?expires={expires}&signature={sig}", upload.id),
        expires_at: Timestamp::from_unix_seconds(expires),
    })
}

/// Why a public link serves nothing.
#[derive(Debug, thiserror::Error)]
pub enum LinkRefused {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link expired")]
    Expired,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// `GET /media/{id}?expires=&signature=`: the upload, when the link is genuine and unexpired.
pub async fn open_link(
    state: &AppState,
    id: &str,
    expires: Option<&str>,
    sig: Option<&str>,
) -> Result<(Upload, StoredFile), LinkRefused> {
    let (Some(expires), Some(sig)) = (expires.and_then(|e| e.parse::<i64>().ok()), sig) else {
        return Err(LinkRefused::Invalid);
    };
    let expected = signature(&state.media_link_key, id, expires);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LinkRefused::Invalid);
    }
    if Timestamp::now().as_millis() >= expires.saturating_mul(1000) {
        return Err(LinkRefused::Expired);
    }
    let upload = find(state, id).await?.ok_or(LinkRefused::Invalid)?;
    let file = content(state, &upload).await?;
    Ok((upload, file))
}

/// The objects that name media: a message's own, and those of headers and template values.
const MEDIA_OBJECTS: &[&str] = &["image", "video", "audio", "document", "sticker"];

/// The `med_…` ids a message's content names in the `media_id` of its media objects, each with
/// its JSON path (a `media_id` in other data, such as a Flow's, is that data's own).
pub fn named_uploads(content: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: &str, parent: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    match (k.as_str(), child) {
                        ("media_id", Value::String(id)) if MEDIA_OBJECTS.contains(&parent) => out.push((p, id.clone())),
                        _ => walk(child, &p, k, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), parent, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(content, "", "", &mut out);
    out
}

/// On the Graph surface an upload is named as Meta's media ids are, `{"image": {"id": "…"}}`,
/// with the digits `/{phone-number-id}/media` answered (or its `med_…` id): such ids become the
/// `media_id` the dispatcher resolves. Meta's own ids are shorter ([`MediaId::from_digits`]).
pub fn name_uploads_by_id(content: &mut Value) {
    fn walk(v: &mut Value, parent: &str) {
        match v {
            Value::Object(map) => {
                let upload = match map.get("id").and_then(Value::as_str) {
                    Some(id) if MEDIA_OBJECTS.contains(&parent) && !map.contains_key("media_id") => {
                        MediaId::parse(id).or_else(|| MediaId::from_digits(id))
                    }
                    _ => None,
                };
                if let Some(upload) = upload {
                    map.remove("id");
                    map.insert("media_id".into(), Value::String(upload.into_string()));
                }
                for (k, child) in map.iter_mut() {
                    walk(child, k);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|child| walk(child, parent)),
            _ => {}
        }
    }
    walk(content, "");
}

/// Which upload kinds a media object of each place takes: a sticker is a sticker; an image is
/// an image; a document may be any file.
fn fits(place: &str, kind: &str) -> bool {
    let object = place.rsplit('.').nth(1).unwrap_or_default();
    let object = object.split('[').next().unwrap_or_default();
    match object {
        "image" | "video" | "audio" | "sticker" => object == kind,
        _ => true,
    }
}

/// Checks at acceptance that every upload a message names exists and fits where it stands.
pub async fn check_named(state: &AppState, content: &Value) -> Result<(), ServiceError> {
    for (path, id) in named_uploads(content) {
        let unknown = || {
            FieldError::new(
                &path,
                "unknown_media",
                format!("'{id}' is not a file uploaded to wagate (POST /v1/media), or it was deleted"),
            )
        };
        let upload = find(state, &id).await?.ok_or_else(unknown)?;
        if !fits(&path, &upload.kind) {
            return Err(FieldError::new(
                &path,
                "media_kind",
                format!("'{id}' is {} ({}); it cannot be sent here", upload.kind, upload.mime_type),
            )
            .into());
        }
    }
    Ok(())
}

/// Meta failed a message because it could not use its media (131053): the copies of uploads the
/// message named, made before then, are forgotten, so the next send uploads the file again.
pub async fn forget_failed_copies(state: &AppState, wamid: &str, failed_at: Timestamp) -> Result<(), StorageError> {
    let Some(message) = state.store.find_message_by_wamid(wamid).await? else { return Ok(()) };
    // Meta's times are whole seconds: the copy this message used was made before the next one.
    let before = failed_at.plus(Duration::from_secs(1));
    for (_, id) in named_uploads(&message.content) {
        if let Some(parsed) = MediaId::parse(&id) {
            state.store.forget_meta_copy(&parsed, &message.phone_number_id, before).await?;
        }
    }
    Ok(())
}

/// Why a send's uploads could not be put in Meta's hands.
pub enum Unresolved {
    /// The upload was deleted after the message was accepted.
    Gone(String),
    /// Storage failed; try again.
    Storage(String),
    /// Meta's media upload failed.
    Graph(Box<GraphFailure>),
}

/// Replaces each `{"media_id": "med_…"}` in a send's body by `{"id": <Meta's id>}` for the
/// sending number, uploading the file to Meta first when the number has no fresh copy.
pub async fn resolve(
    state: &AppState,
    account: &Account,
    phone_number_id: &str,
    body: &mut Value,
) -> Result<(), Unresolved> {
    let named = named_uploads(body);
    for (_, id) in named {
        let meta_id = meta_id(state, account, phone_number_id, &id).await?;
        replace(body, &id, &meta_id);
    }
    Ok(())
}

fn replace(v: &mut Value, upload_id: &str, meta_id: &str) {
    fn walk(v: &mut Value, parent: &str, upload_id: &str, meta_id: &str) {
        match v {
            Value::Object(map) => {
                if MEDIA_OBJECTS.contains(&parent) && map.get("media_id").and_then(Value::as_str) == Some(upload_id) {
                    map.remove("media_id");
                    map.insert("id".into(), Value::String(meta_id.to_owned()));
                }
                for (k, child) in map.iter_mut() {
                    walk(child, k, upload_id, meta_id);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, parent, upload_id, meta_id)),
            _ => {}
        }
    }
    walk(v, "", upload_id, meta_id)
}

/// Meta's id for upload `id` on the number: the copy recorded, or a new upload.
async fn meta_id(state: &AppState, account: &Account, phone_number_id: &str, id: &str) -> Result<String, Unresolved> {
    let storage = |e: StorageError| Unresolved::Storage(e.to_string());
    let parsed = MediaId::parse(id).ok_or_else(|| Unresolved::Gone(id.to_owned()))?;
    let now = Timestamp::now();
    if let Some(copy) = state.store.meta_copy(&parsed, phone_number_id).await.map_err(storage)?
        && copy.uploaded_at.plus(META_COPY_LIFETIME) > now
    {
        return Ok(copy.meta_media_id);
    }
    let upload =
        state.store.get_upload(&parsed).await.map_err(storage)?.ok_or_else(|| Unresolved::Gone(id.to_owned()))?;
    let bytes = state
        .media
        .read(upload.id.as_str())
        .await
        .map_err(|e| Unresolved::Storage(e.to_string()))?
        .ok_or_else(|| Unresolved::Gone(id.to_owned()))?;
    let meta_media_id = state
        .graph
        .upload_media(&Target::from(account), phone_number_id, &upload.mime_type, upload.filename.as_deref(), bytes)
        .await
        .map_err(|e| Unresolved::Graph(Box::new(e)))?;
    let copy = MetaCopy { meta_media_id: meta_media_id.clone(), uploaded_at: Timestamp::now() };
    state.store.record_meta_copy(&parsed, phone_number_id, &copy).await.map_err(storage)?;
    tracing::debug!(media = %parsed, phone_number_id, meta_media_id, "upload sent to Meta for the number");
    Ok(meta_media_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn uploads_named_anywhere_are_found_and_replaced() {
        let mut content = json!({"template": {"components": [{"type": "header", "parameters": [
            {"type": "image", "image": {"media_id": "med_A"}}]}]}, "image": {"media_id": "med_B", "caption": "x"}});
        let named = named_uploads(&content);
        assert_eq!(
            named,
            [
                ("image.media_id".to_owned(), "med_B".to_owned()),
                ("template.components[0].parameters[0].image.media_id".to_owned(), "med_A".to_owned()),
            ]
        );
        assert!(fits("image.media_id", "image") && !fits("image.media_id", "video"));
        assert!(fits("document.media_id", "image") && !fits("sticker.media_id", "image"));
        replace(&mut content, "med_A", "123");
        assert_eq!(content["template"]["components"][0]["parameters"][0]["image"], json!({"id": "123"}));
        assert_eq!(content["image"]["media_id"], "med_B");
        // A Flow's own data is not a media object.
        let flow = json!({"interactive": {"action": {"parameters": {"flow_action_payload": {"data": {"media_id": "med_C"}}}}}});
        assert!(named_uploads(&flow).is_empty());
    }
}
