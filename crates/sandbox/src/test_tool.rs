//! What the test tool's paths (`/control/…`, `/simulate/…`) share: their error shape, that of
//! wagate's native API (`{"error": {"code", "message", "path"}}`), and how they read bodies.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A refused control request.
pub struct ControlError {
    status: StatusCode,
    code: &'static str,
    message: String,
    path: Option<String>,
}

impl ControlError {
    pub fn bad_json(what: &str, e: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: format!("body is not a valid {what}: {e}"),
            path: None,
        }
    }

    /// A field breaks a rule: 422 naming the field.
    pub fn invalid(path: impl Into<String>, rule: impl std::fmt::Display) -> Self {
        let path = path.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: format!("{path}: {rule}"),
            path: Some(path),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: what.into(), path: None }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(path) = self.path {
            error["path"] = json!(path);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

/// A request body, refused in this API's shape when it cannot be read (over axum's default 2 MB,
/// for one).
pub struct ControlBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ControlBody {
    type Rejection = ControlError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ControlError> {
        Bytes::from_request(req, state).await.map(Self).map_err(|rejection| ControlError {
            status: rejection.status(),
            code: "invalid_body",
            message: rejection.body_text(),
            path: None,
        })
    }
}

/// Parses a JSON body, naming the field at fault when it does not fit.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ControlError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || e.inner().is_syntax() || e.inner().is_eof() {
            ControlError::bad_json(what, e.inner())
        } else {
            ControlError::invalid(path, e.inner())
        }
    })
}
