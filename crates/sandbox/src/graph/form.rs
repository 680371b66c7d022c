//! Request bodies as Graph endpoints take them: `multipart/form-data` (uploads), URL-encoded
//! forms, or JSON objects, read into one shape.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::errors::GraphError;

/// An uploaded file part.
pub struct File {
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A form's text fields and its file parts.
#[derive(Default)]
pub struct Form {
    pub fields: BTreeMap<String, String>,
    pub files: BTreeMap<String, File>,
}

impl Form {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Reads a multipart, URL-encoded or JSON body of at most `limit` bytes. JSON values that are not
/// strings keep their JSON text. A multipart body is held to the route's `DefaultBodyLimit`,
/// which must be `limit`.
pub async fn read(req: Request, limit: usize) -> Result<Form, GraphError> {
    let content_type =
        req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| GraphError::invalid(format!("The multipart body cannot be read: {e}")))?;
        let mut form = Form::default();
        while let Some(field) =
            multipart.next_field().await.map_err(|e| multipart_error(e, limit, "The multipart body cannot be read"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let filename = field.file_name().map(str::to_owned);
            let part_type = field.content_type().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| multipart_error(e, limit, &format!("The multipart part '{name}' cannot be read")))?;
            if filename.is_some() {
                form.files.insert(name, File { filename, content_type: part_type, bytes: bytes.to_vec() });
            } else {
                form.fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        return Ok(form);
    }
    let bytes = crate::body::read(req.into_body(), limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Form::default());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
            &format!("/?{}", String::from_utf8_lossy(&bytes))
                .parse()
                .map_err(|_| GraphError::invalid("The form body cannot be read."))?,
        )
        .map_err(|e| GraphError::invalid(format!("The form body cannot be read: {e}")))?
        .0;
        return Ok(Form { fields: pairs.into_iter().collect(), files: BTreeMap::new() });
    }
    let object: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| GraphError::invalid(format!("The body is not a JSON object: {e}")))?;
    let fields = object
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    Ok(Form { fields, files: BTreeMap::new() })
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize, what: &str) -> GraphError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        GraphError::too_large(limit)
    } else {
        GraphError::invalid(format!("{what}: {e}"))
    }
}

/// Meta's bodies for these endpoints all carry `messaging_product: whatsapp`.
pub fn require_whatsapp(value: Option<&str>) -> Result<(), GraphError> {
    match value {
        Some("whatsapp") => Ok(()),
        None => Err(GraphError::missing("messaging_product")),
        Some(_) => Err(GraphError::invalid("Param messaging_product must be 'whatsapp'.")),
    }
}
