//! The multipart form every surface takes a file upload in: a `file` part (its `Content-Type`
//! the file's type) and a few text parts each surface names. Read once here; each surface words
//! the refusals in its own error shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use wagate_domain::validation::FieldError;

use crate::state::AppState;

/// The `file` part: its bytes, the type its part says, and the name it came with.
pub struct FilePart {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
}

/// Why an upload form could not be read.
pub enum FormRefused {
    /// Larger than any file WhatsApp takes.
    TooLarge,
    /// Not a multipart form, or a broken one: why.
    Invalid(String),
    /// A part that is not taken (`unknown_field`), or no `file` part (`required`).
    Field(FieldError),
}

impl FormRefused {
    fn from_multipart(e: &MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE { Self::TooLarge } else { Self::Invalid(e.body_text()) }
    }
}

/// The file and the text parts named in `texts` (any other part is refused).
pub async fn read(
    state: &AppState,
    request: Request,
    texts: &[&'static str],
) -> Result<(FilePart, HashMap<&'static str, String>), FormRefused> {
    let mut form = Multipart::from_request(request, state).await.map_err(|e| FormRefused::Invalid(e.body_text()))?;
    let (mut file, mut values) = (None, HashMap::new());
    while let Some(field) = form.next_field().await.map_err(|e| FormRefused::from_multipart(&e))? {
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some("file") => {
                let content_type = field.content_type().map(str::to_owned);
                let file_name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| FormRefused::from_multipart(&e))?;
                file = Some(FilePart { bytes, content_type, file_name });
            }
            Some(other) => match texts.iter().find(|t| **t == other) {
                Some(text) => {
                    values.insert(*text, field.text().await.map_err(|e| FormRefused::from_multipart(&e))?);
                }
                None => {
                    let taken = std::iter::once("file").chain(texts.iter().copied()).collect::<Vec<_>>().join(", ");
                    return Err(FormRefused::Field(FieldError::new(
                        other,
                        "unknown_field",
                        format!("is not a part an upload takes ({taken})"),
                    )));
                }
            },
            None => return Err(FormRefused::Invalid("a part has no name".into())),
        }
    }
    let file = file.ok_or_else(|| FormRefused::Field(FieldError::required("file")))?;
    Ok((file, values))
}
