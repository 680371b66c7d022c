//! What storage keeps of the media files customers send: one row per Meta media id and
//! account, downloaded by a worker that claims it with a lease.

use wagate_domain::id::{AccountId, MediaId, MessageId};
use wagate_domain::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaState {
    /// Waiting to be downloaded (perhaps again, after a failed attempt).
    Pending,
    /// Downloaded, checked and written under the data directory.
    Stored,
    /// Given up on: the checksum did not match, the file was too large, or attempts ran out.
    Failed,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Stored => "stored",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "stored" => Some(Self::Stored),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A media file named by an inbound message, to be downloaded.
#[derive(Clone, Debug)]
pub struct NewMedia {
    pub id: MediaId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub message_id: MessageId,
    /// Meta's media id: what the Graph media API is asked for.
    pub meta_media_id: String,
    /// The message type: `image`, `audio`, `video`, `document` or `sticker`.
    pub kind: String,
    pub mime_type: String,
    /// Meta's SHA-256 of the file, base64 as the webhook carries it.
    pub sha256: Option<String>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub created_at: Timestamp,
}

/// A media file as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    pub id: MediaId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub message_id: MessageId,
    pub meta_media_id: String,
    pub kind: String,
    pub mime_type: String,
    pub sha256: Option<String>,
    /// Bytes: as Meta reported it until the file is stored, then as stored.
    pub file_size: Option<i64>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub state: MediaState,
    pub attempts: i64,
    /// When a pending download may next be tried.
    pub available_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub downloaded_at: Option<Timestamp>,
}

/// What a finished download wrote.
#[derive(Clone, Debug)]
pub struct StoredMedia {
    pub file_size: i64,
    /// Base64 SHA-256 of the bytes written.
    pub sha256: String,
    pub at: Timestamp,
}

/// Which media `list_media` returns: newest first, optionally of one message, before a cursor.
#[derive(Clone, Debug, Default)]
pub struct MediaFilter {
    pub message_id: Option<MessageId>,
    pub before: Option<MediaId>,
}

/// A file the business uploaded to send (`POST /v1/media`): kept in the media store under its id,
/// uploaded to Meta for each number that sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub id: MediaId,
    /// `image`, `audio`, `video`, `document` or `sticker`.
    pub kind: String,
    pub mime_type: String,
    pub file_size: i64,
    /// Base64 SHA-256 of the bytes, as Meta's webhooks write digests.
    pub sha256: String,
    pub filename: Option<String>,
    /// The URL it was fetched from, when it was given as one.
    pub source_url: Option<String>,
    pub created_at: Timestamp,
}

/// Meta's id for an upload on one number, and when it was uploaded there (Meta keeps uploads
/// 30 days).
#[derive(Clone, Debug, PartialEq)]
pub struct MetaCopy {
    pub meta_media_id: String,
    pub uploaded_at: Timestamp,
}
