//! Inbound media: the media files customers send are recorded when their message is processed,
//! downloaded by [`crate::workers::media`] into the media store, and served to API users from
//! there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wagate_domain::id::{MediaId, MessageId};
use wagate_domain::time::Timestamp;
use wagate_storage::{Media, MediaFilter, MediaState, NewInbound, NewMedia, StorageError, Store};

use super::ServiceError;
use crate::media_store::{MediaStore, StoredFile};
use crate::signals::Signals;

/// The message types whose object names a media file by its Meta media id.
pub const MEDIA_KINDS: &[&str] = &["image", "audio", "video", "document", "sticker"];

/// Records the media file an inbound message carries, if it carries one, to be downloaded.
/// Called for every inbound message the processor handles, newly stored or a duplicate: a
/// delivery may be processed again from scratch, and the row is recorded once per Meta media
/// id whatever happened before. The message must be stored already (it is looked up by wamid).
pub async fn record_inbound(store: &dyn Store, signals: &Signals, message: &NewInbound) -> Result<(), StorageError> {
    let Some(new) = new_media(store, message).await? else {
        return Ok(());
    };
    if store.insert_media(&new).await? {
        tracing::debug!(media = %new.id, meta_media_id = %new.meta_media_id, "inbound media recorded");
        signals.media_recorded();
    }
    Ok(())
}

async fn new_media(store: &dyn Store, message: &NewInbound) -> Result<Option<NewMedia>, StorageError> {
    if !MEDIA_KINDS.contains(&message.kind.as_str()) {
        return Ok(None);
    }
    let object = message.content.get(&message.kind);
    let text = |k: &str| object.and_then(|o| o.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let Some(meta_media_id) = text("id") else {
        tracing::warn!(wamid = %message.wamid, kind = %message.kind, "inbound media message without a media id");
        return Ok(None);
    };
    // Linked by wamid, so a duplicate (stored under an earlier id) links to the stored message.
    // Only this account's inbound message: a wamid named in another account's webhook is not it.
    let stored = store
        .find_message_by_wamid(&message.wamid)
        .await?
        .filter(|m| m.account_id == message.account_id && m.direction == wagate_storage::Direction::Inbound);
    let Some(stored) = stored else {
        tracing::warn!(wamid = %message.wamid, "inbound media whose message is not stored for this account; not recorded");
        return Ok(None);
    };
    Ok(Some(NewMedia {
        id: MediaId::generate(),
        account_id: message.account_id.clone(),
        phone_number_id: message.phone_number_id.clone(),
        message_id: stored.id,
        meta_media_id: meta_media_id.to_owned(),
        kind: message.kind.clone(),
        mime_type: text("mime_type").unwrap_or("application/octet-stream").to_owned(),
        sha256: text("sha256").map(str::to_owned),
        filename: text("filename").map(str::to_owned),
        caption: text("caption").map(str::to_owned),
        created_at: Timestamp::now(),
    }))
}

/// A SHA-256 digest as Meta writes it: base64 in webhooks, hex from the media API.
pub fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).ok()?
    } else {
        STANDARD.decode(s).ok()?
    };
    bytes.try_into().ok()
}

pub fn digest_base64(digest: &[u8]) -> String {
    STANDARD.encode(digest)
}

/// `GET /v1/media/{id}`.
pub async fn get(store: &dyn Store, id: &str) -> Result<Media, ServiceError> {
    let parsed = MediaId::parse(id).ok_or_else(|| ServiceError::not_found("media", id))?;
    store.get_media(&parsed).await?.ok_or_else(|| ServiceError::not_found("media", id))
}

/// `GET /v1/media`: a page of media, newest first, and whether there are more.
pub async fn list(store: &dyn Store, filter: &MediaFilter, limit: usize) -> Result<(Vec<Media>, bool), ServiceError> {
    let mut page = store.list_media(filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// Parses the list's `message_id` filter and cursor.
pub fn filter(message_id: Option<&str>, cursor: Option<&str>) -> Result<MediaFilter, ServiceError> {
    use wagate_domain::validation::FieldError;
    let message_id = message_id
        .map(|m| {
            MessageId::parse(m).ok_or_else(|| {
                FieldError::new("message_id", "invalid_value", format!("'{m}' is not a message id (msg_…)"))
            })
        })
        .transpose()?;
    let before = cursor
        .map(|c| {
            MediaId::parse(c).ok_or_else(|| FieldError::new("cursor", "invalid_value", "is not a cursor this API gave"))
        })
        .transpose()?;
    Ok(MediaFilter { message_id, before })
}

/// Why a file's bytes cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("media {id} is not downloaded yet ({attempts} attempts so far{})", .last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    NotReady { id: MediaId, attempts: i64, last_error: Option<String> },
    #[error("media {id} could not be downloaded: {error}")]
    Failed { id: MediaId, error: String },
    /// Stored, but its file is not in the media store: another instance downloaded it into its
    /// own directory (`media.store = "local"` on several instances), or it was removed.
    #[error(
        "media {id} is stored but its file is not in this instance's media store (several instances need media.store = \"s3\")"
    )]
    FileMissing { id: MediaId },
    #[error(transparent)]
    Store(#[from] crate::media_store::MediaStoreError),
}

impl From<StorageError> for ContentError {
    fn from(e: StorageError) -> Self {
        Self::Service(e.into())
    }
}

/// `GET /v1/media/{id}/content`: the stored file, as it is read, with its metadata.
pub async fn content(store: &dyn Store, files: &MediaStore, id: &str) -> Result<(Media, StoredFile), ContentError> {
    let media = get(store, id).await?;
    match media.state {
        MediaState::Pending => {
            return Err(ContentError::NotReady {
                id: media.id,
                attempts: media.attempts,
                last_error: media.last_error,
            });
        }
        MediaState::Failed => {
            let error = media.last_error.unwrap_or_else(|| "unknown error".into());
            return Err(ContentError::Failed { id: media.id, error });
        }
        MediaState::Stored => {}
    }
    match files.get(media.id.as_str()).await? {
        Some(file) => Ok((media, file)),
        None => Err(ContentError::FileMissing { id: media.id }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_from_base64_and_hex() {
        let b64 = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=";
        let digest = parse_digest(b64).unwrap();
        assert_eq!(parse_digest(&hex::encode(digest)), Some(digest));
        assert_eq!(digest_base64(&digest), b64);
        assert_eq!(parse_digest("not a digest"), None);
        assert_eq!(parse_digest("c2hh"), None, "base64 of fewer than 32 bytes");
    }
}
