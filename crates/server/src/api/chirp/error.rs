//! Chirp's error shape, `{"error": {"type", "code", "message", "param"}}`, with `param` in
//! Chirp's notation (`media.mediaId`, `interactive.buttons[0].title`, `replyTo`).

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wagate_domain::validation::FieldError;

use super::ids::Ids;
use crate::auth::Refusal;
use crate::error::ApiError;
use crate::services::ServiceError;

#[derive(Debug)]
pub struct ChirpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    param: Option<String>,
    /// Seconds, for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ChirpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), param: None, retry_after: None }
    }

    /// A rule broken by a field named as the caller named it (the Chirp body itself).
    pub fn field(e: FieldError) -> Self {
        let message = e.message.clone();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.rule, message).at(e.path)
    }

    /// What the core refused, its fields named in the native model's notation: named back in
    /// Chirp's, and the ids in the message as the caller gave them.
    pub fn core(e: ServiceError, ids: &Ids) -> Self {
        Self::native(ApiError::from(e), ids)
    }

    /// A native error (an extractor's, or the core's mapped by the native API's rules).
    pub fn native(e: ApiError, ids: &Ids) -> Self {
        let message = ids.in_chirp_words(&e.message);
        let (param, message) = match e.path {
            Some(path) => {
                let param = chirp_param(&path);
                let message = format!("{param}: {}", without_path(&message, &path));
                (Some(param), message)
            }
            None => (None, message),
        };
        Self { status: e.status, code: e.code, message, param, retry_after: e.retry_after }
    }

    /// A key refused at the door.
    pub fn refused(refusal: Refusal, method: &Method, path: &str) -> Self {
        let message = refusal.describe(method, path);
        match refusal {
            Refusal::Unauthenticated(_) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            Refusal::InsufficientScope { .. } => Self::new(StatusCode::FORBIDDEN, "insufficient_scope", message),
            Refusal::RateLimited { retry_after_secs } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            Refusal::Failed(e) => {
                Self::native(ApiError::internal("authenticating an API key failed", e), &Ids::default())
            }
        }
    }

    pub fn message_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no message with id '{id}'"))
    }

    fn at(mut self, param: String) -> Self {
        self.param = (!param.is_empty()).then_some(param);
        self
    }

    /// Chirp's error types, by the answer's status.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl From<FieldError> for ChirpError {
    fn from(e: FieldError) -> Self {
        Self::field(e)
    }
}

impl IntoResponse for ChirpError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "type": self.kind(),
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A field error's message without the `path: ` it starts with.
fn without_path<'a>(message: &'a str, path: &str) -> &'a str {
    message.strip_prefix(path).and_then(|m| m.strip_prefix(": ")).unwrap_or(message)
}

/// Native field names and the Chirp names they come from.
const RENAMED: &[(&str, &str)] = &[
    ("media_id", "mediaId"),
    ("message_id", "messageId"),
    ("formatted_name", "formattedName"),
    ("first_name", "firstName"),
    ("last_name", "lastName"),
    ("middle_name", "middleName"),
    ("country_code", "countryCode"),
    ("flow_id", "flowId"),
    ("flow_token", "flowToken"),
    ("flow_action", "flowAction"),
    ("flow_action_payload", "flowActionPayload"),
];

/// A path of the native model (Meta's objects, as the core checks them) in Chirp's notation:
/// `image.media_id` → `media.mediaId`, `contacts[0].name.formatted_name` →
/// `contacts.contacts[0].name.formattedName`, `interactive.action.buttons[0].reply.title` →
/// `interactive.buttons[0].title`. A path with no Chirp counterpart is kept.
pub fn chirp_param(native: &str) -> String {
    let (head, rest) = native.split_at(native.find(['.', '[']).unwrap_or(native.len()));
    let path = match head {
        "image" | "video" | "audio" | "document" => format!("media{rest}"),
        "contacts" => format!("contacts.contacts{rest}"),
        "reply_to" | "context" => return "replyTo".to_owned(),
        // Chirp's callers give the key only as the header.
        "idempotency_key" => return "Idempotency-Key".to_owned(),
        "template" => match rest.strip_prefix(".params") {
            Some(tail) => format!("template.variables{tail}"),
            None => native.to_owned(),
        },
        "interactive" => format!("interactive{}", interactive_param(rest)),
        _ => native.to_owned(),
    };
    camel_case(&path)
}

/// The rest of an `interactive…` path: Chirp's interactive object is flat where Meta's nests.
fn interactive_param(rest: &str) -> String {
    if rest.starts_with(".body") {
        return ".body".into();
    }
    if rest.starts_with(".footer") {
        return ".footer".into();
    }
    if let Some(tail) = rest.strip_prefix(".header.") {
        let media = ["image", "video", "document"].iter().any(|k| tail.split('.').next() == Some(k));
        return if media { ".header.mediaId".into() } else { rest.to_owned() };
    }
    if let Some(tail) = rest.strip_prefix(".action.buttons") {
        let tail = tail.replacen(".reply", "", 1);
        return format!(".buttons{}", tail.strip_suffix(".type").unwrap_or(&tail));
    }
    if rest == ".action.button" {
        return ".buttonText".into();
    }
    if let Some(tail) = rest.strip_prefix(".action.sections") {
        return format!(".sections{tail}");
    }
    match rest.strip_prefix(".action.parameters") {
        Some(".display_text" | ".flow_cta") => ".buttonText".into(),
        Some(".flow_name") => ".flowId".into(),
        Some(tail) => tail.to_owned(),
        None if rest.starts_with(".action") => String::new(),
        None => rest.to_owned(),
    }
}

/// Renames the native field names of `path` to Chirp's, up to the first map of the caller's own
/// keys (template variables, a flow's data), which are kept as given.
fn camel_case(path: &str) -> String {
    let mut out = Vec::new();
    let mut renaming = true;
    for segment in path.split('.') {
        let (name, index) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        let name = match RENAMED.iter().find(|(native, _)| *native == name) {
            Some((_, chirp)) if renaming => chirp,
            _ => name,
        };
        if matches!(name, "variables" | "data") {
            renaming = false;
        }
        out.push(format!("{name}{index}"));
    }
    out.join(".")
}

#[cfg(test)]
mod tests {
    use super::chirp_param;

    #[test]
    fn native_paths_are_named_as_chirp_names_them() {
        for (native, chirp) in [
            ("to", "to"),
            ("text.body", "text.body"),
            ("image.media_id", "media.mediaId"),
            ("document.filename", "media.filename"),
            ("sticker.media_id", "sticker.mediaId"),
            ("contacts[0].name.formatted_name", "contacts.contacts[0].name.formattedName"),
            ("contacts[0].addresses[1].country_code", "contacts.contacts[0].addresses[1].countryCode"),
            ("reaction.message_id", "reaction.messageId"),
            ("reply_to", "replyTo"),
            ("idempotency_key", "Idempotency-Key"),
            ("template.params.first_name", "template.variables.first_name"),
            ("template.params[1]", "template.variables[1]"),
            ("interactive.body.text", "interactive.body"),
            ("interactive.footer.text", "interactive.footer"),
            ("interactive.header.text", "interactive.header.text"),
            ("interactive.header.image.media_id", "interactive.header.mediaId"),
            ("interactive.action.buttons[0].reply.title", "interactive.buttons[0].title"),
            ("interactive.action.buttons[2].type", "interactive.buttons[2]"),
            ("interactive.action.buttons", "interactive.buttons"),
            ("interactive.action.button", "interactive.buttonText"),
            ("interactive.action.sections[0].rows[1].description", "interactive.sections[0].rows[1].description"),
            ("interactive.action.parameters.display_text", "interactive.buttonText"),
            ("interactive.action.parameters.url", "interactive.url"),
            ("interactive.action.parameters.flow_id", "interactive.flowId"),
            ("interactive.action.parameters.flow_action_payload.data", "interactive.flowActionPayload.data"),
            (
                "interactive.action.parameters.flow_action_payload.data.flow_id",
                "interactive.flowActionPayload.data.flow_id",
            ),
        ] {
            assert_eq!(chirp_param(native), chirp, "{native}");
        }
    }
}
