//! Media messages (`image`, `audio`, `video`, `document`, `sticker`) and the media objects of
//! interactive and template headers: each by Meta's media `id`, a public `link`, or a file
//! uploaded to wagate (`media_id`), exactly one.

use serde::{Deserialize, Serialize};

use super::Validate;
use super::rules::{http_url, key, opt_text};
use crate::validation::FieldError;

/// Captions of images, videos and documents.
pub const CAPTION_MAX: usize = 1024;
const ID_MAX: usize = 512;
const FILENAME_MAX: usize = 255;

fn source(path: &str, id: Option<&String>, link: Option<&String>, media_id: Option<&String>) -> Result<(), FieldError> {
    if let Some(m) = media_id {
        if id.is_some() || link.is_some() {
            let other = if id.is_some() { "id" } else { "link" };
            return Err(FieldError::new(key(path, other), "one_of", "give one of id, link and media_id"));
        }
        if !crate::id::has_shape(m, crate::id::MediaId::PREFIX) {
            return Err(FieldError::new(
                key(path, "media_id"),
                "invalid_value",
                "must be the id of a file uploaded to wagate (med_…, from POST /v1/media)",
            ));
        }
        return Ok(());
    }
    match (id, link) {
        (Some(_), Some(_)) => Err(FieldError::new(key(path, "link"), "one_of", "give either id or link, not both")),
        (None, None) => {
            Err(FieldError::new(key(path, "id"), "required", "is required (or give a link, or a media_id)"))
        }
        (Some(id), None) => {
            if id.is_empty() || id.len() > ID_MAX || id.chars().any(char::is_whitespace) {
                Err(FieldError::new(key(path, "id"), "invalid_value", "must be a media id without spaces"))
            } else {
                Ok(())
            }
        }
        (None, Some(link)) => http_url(&key(path, "link"), link),
    }
}

macro_rules! media_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// An uploaded media id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// A public http(s) URL Meta downloads the media from.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub link: Option<String>,
            /// A file uploaded to wagate (`med_…`, from `POST /v1/media`): wagate uploads it to
            /// Meta for the sending number and sends Meta's id in its place.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub media_id: Option<String>,
            $(
                $(#[$fdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

media_struct!(
    /// `image`: JPEG or PNG up to 5 MB.
    Image {
        /// Up to 1024 characters.
        caption: String,
    }
);
media_struct!(
    /// `video`: MP4 or 3GPP (H.264 and AAC) up to 16 MB.
    Video {
        /// Up to 1024 characters.
        caption: String,
    }
);
media_struct!(
    /// `document`: PDF, Office or text files up to 100 MB.
    Document {
        /// Up to 1024 characters.
        caption: String,
        /// The name shown, with its extension (the client picks the icon from it).
        filename: String,
    }
);
media_struct!(
    /// `audio`: AAC, AMR, MP3, M4A or OGG/OPUS up to 16 MB.
    Audio {
        /// A voice message (OGG/OPUS only).
        voice: bool,
    }
);
media_struct!(
    /// `sticker`: WebP, 100 KB static or 500 KB animated.
    Sticker {}
);
media_struct!(
    /// An image or video in an interactive or template header.
    MediaRef {}
);
media_struct!(
    /// A document in an interactive or template header.
    DocumentRef {
        filename: String,
    }
);

impl Validate for Image {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())?;
        opt_text(&key(path, "caption"), self.caption.as_ref(), CAPTION_MAX)
    }
}

impl Validate for Video {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())?;
        opt_text(&key(path, "caption"), self.caption.as_ref(), CAPTION_MAX)
    }
}

impl Validate for Document {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())?;
        opt_text(&key(path, "caption"), self.caption.as_ref(), CAPTION_MAX)?;
        opt_text(&key(path, "filename"), self.filename.as_ref(), FILENAME_MAX)
    }
}

impl Validate for Audio {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())
    }
}

impl Validate for Sticker {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())
    }
}

impl Validate for MediaRef {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())
    }
}

impl Validate for DocumentRef {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        source(path, self.id.as_ref(), self.link.as_ref(), self.media_id.as_ref())?;
        opt_text(&key(path, "filename"), self.filename.as_ref(), FILENAME_MAX)
    }
}
