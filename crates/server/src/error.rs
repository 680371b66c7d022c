//! The native API's one error type: `{"error": {"code", "message", "path"}}` with a stable
//! snake_case `code`. Internal errors are logged with their context and answered as an opaque 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use wagate_domain::validation::FieldError;
use wagate_storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub path: Option<String>,
    /// Meta's own error, when Meta refused what wagate asked on the caller's behalf.
    pub meta: Option<Value>,
    /// Seconds, for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// The error body of every native endpoint.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: what programs match on (`max_length`, `e164`, `not_found`, …).
    pub code: String,
    /// For people: what is wrong and which rule it broke.
    pub message: String,
    /// JSON path of the field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Meta's error object, when Meta refused the request wagate made for you.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), path: None, meta: None, retry_after: None }
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} with id '{id}'"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// Logs `err` with `context` and hides both from the caller.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let path = e.path.clone();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.rule, e.message).at(path)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self::internal("storage failed", e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, path: self.path, meta: self.meta },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}
