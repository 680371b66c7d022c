//! Meta's error object, as the Graph surface answers every refusal: Meta's codes, and the
//! parameter at fault named as Meta names it.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wagate_domain::validation::FieldError;

use crate::auth::Refusal;
use crate::services::ServiceError;

/// An error in Meta's shape: `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`.
pub struct GraphApiError {
    status: StatusCode,
    pub(super) body: Value,
    /// Seconds, for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl GraphApiError {
    pub(crate) fn new(status: StatusCode, code: i64, message: &str, details: Option<String>) -> Self {
        let mut error = json!({
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": wagate_domain::id::new_id("trace"),
        });
        if let Some(details) = details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
        }
        Self { status, body: json!({ "error": error }), retry_after: None }
    }

    /// `(#100) Invalid parameter`, with what is wrong.
    pub(crate) fn invalid(details: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter", Some(details))
    }

    /// What Meta answers for an id it has no such object for (or no such edge on it).
    pub(crate) fn unknown_object(method: &Method, id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            &format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation.",
                method.as_str().to_ascii_lowercase()
            ),
            None,
        );
        e.body["error"]["type"] = json!("GraphMethodException");
        e.body["error"]["error_subcode"] = json!(33);
        e
    }

    fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token - Cannot parse access token", None)
    }

    /// A key refused at the door, in the codes Meta uses for its tokens: 190 for a bad token,
    /// 10 for a token without the permission, 4 for too many calls (with `Retry-After`).
    pub(super) fn refused(refusal: Refusal, method: &Method, path: &str) -> Self {
        let details = refusal.describe(method, path);
        match refusal {
            Refusal::Unauthenticated(_) => Self::invalid_token(),
            Refusal::InsufficientScope { .. } => Self::new(
                StatusCode::FORBIDDEN,
                10,
                "(#10) Application does not have permission for this action",
                Some(details),
            ),
            Refusal::RateLimited { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    4,
                    "(#4) Application request limit reached",
                    Some(details),
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            Refusal::Failed(e) => Self::from_service(e.into()),
        }
    }

    pub(super) fn unknown_number(id: &str) -> Self {
        Self::unknown_object(&Method::POST, id)
    }

    pub(super) fn unknown() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 131000, "(#131000) Something went wrong", None)
    }

    /// A rule broken in the request, as Meta words it: 131008 for a missing parameter, 131051
    /// for an unknown message type, 100 otherwise, with the parameter in Meta's notation.
    pub(crate) fn from_field(e: &FieldError) -> Self {
        let param = meta_param(&e.path);
        let rule = e.message.strip_prefix(&format!("{}: ", e.path)).unwrap_or(&e.message);
        if let Some((status, code, title)) = template_code(e.rule) {
            return Self::new(status, code, &format!("(#{code}) {title}"), Some(format!("Param {param} {rule}.")));
        }
        match (e.path.as_str(), e.rule) {
            (_, "required") => Self::new(
                StatusCode::BAD_REQUEST,
                131008,
                "(#131008) Required parameter is missing",
                Some(format!("The parameter {param} is required.")),
            ),
            ("type", "unsupported_type") => Self::new(
                StatusCode::BAD_REQUEST,
                131051,
                "(#131051) Unsupported message type",
                Some(format!("Param {param} {rule}.")),
            ),
            _ => {
                Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter", Some(meta_wording(e, &param, rule)))
            }
        }
    }

    pub(crate) fn from_service(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(f) => Self::from_field(&f),
            ServiceError::MetaRejected { error } => Self {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "error": serde_json::to_value(&error).unwrap_or_default() }),
                retry_after: None,
            },
            ServiceError::NotFound { id, .. } => Self::unknown_number(&id),
            ServiceError::IdempotencyKeyReused { key, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) Invalid parameter",
                Some(format!("Idempotency-Key {key} was used for a different request.")),
            ),
            // Meta's own answer when too much is sent: clients back off and retry it.
            ServiceError::Backpressure { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                130429,
                "(#130429) Rate limit hit",
                Some("Too many messages are waiting to be sent; retry later.".into()),
            ),
            // Meta accepts such a send and fails it later by webhook; wagate knows at once.
            ServiceError::OutsideWindow { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                131047,
                "(#131047) Re-engagement message",
                Some(
                    "Message failed to send because more than 24 hours have passed since the customer last \
                     replied to this number."
                        .into(),
                ),
            ),
            other => {
                tracing::error!(error = %other, "graph surface request failed");
                Self::unknown()
            }
        }
    }
}

impl IntoResponse for GraphApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// The code and title Meta answers a template send with that breaks `rule` (a rule of
/// wagate's template check, or the marketing opt-out).
fn template_code(rule: &str) -> Option<(StatusCode, i64, &'static str)> {
    Some(match rule {
        "template_param_count" => {
            (StatusCode::BAD_REQUEST, 132000, "Number of parameters does not match the expected number of params")
        }
        "template_not_found" | "template_not_approved" => {
            (StatusCode::NOT_FOUND, 132001, "Template name does not exist in the translation")
        }
        "template_text_too_long" => (StatusCode::BAD_REQUEST, 132005, "Translated text too long"),
        "template_param_format" | "unknown_parameter" | "unknown_button" | "unknown_card" => {
            (StatusCode::BAD_REQUEST, 132012, "Parameter format does not match format in the created template")
        }
        "template_paused" => (StatusCode::BAD_REQUEST, 132015, "Template is Paused"),
        "template_disabled" => (StatusCode::BAD_REQUEST, 132016, "Template is Disabled"),
        "marketing_opt_out" => (
            StatusCode::BAD_REQUEST,
            131050,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on \
             WhatsApp from your business",
        ),
        _ => return None,
    })
}

/// A refusal in Meta's words rather than the JSON reader's: `Param text['body'] must be a
/// string.`, `Unexpected key "bodyy" on param "text".`
fn meta_wording(e: &FieldError, param: &str, rule: &str) -> String {
    match e.rule {
        // The path ends at the unexpected key; Meta names the object it stands in.
        "unknown_field" => {
            let key = rule.split('`').nth(1).unwrap_or_default();
            match e.path.rsplit_once('.') {
                Some((parent, _)) => format!("Unexpected key \"{key}\" on param \"{}\".", meta_param(parent)),
                None => format!("Unexpected key \"{key}\"."),
            }
        }
        "invalid_type" => {
            let expected = rule.rsplit_once("expected ").map_or("", |(_, x)| x);
            let kind = if expected.starts_with("a string") {
                "a string"
            } else if expected.starts_with("a boolean") {
                "a boolean"
            } else if expected.starts_with("a sequence") || expected.contains("array") {
                "an array"
            } else if expected.starts_with("struct") || expected.contains("map") {
                "a JSON object"
            } else if ["u", "i", "f"].iter().any(|p| expected.starts_with(p)) || expected.contains("number") {
                "a number"
            } else {
                "of another type"
            };
            format!("Param {param} must be {kind}.")
        }
        _ => format!("Param {param} {rule}."),
    }
}

/// `text.body` → `text['body']`, `interactive.action.buttons[0].reply.title` →
/// `interactive['action']['buttons'][0]['reply']['title']`: how Meta names parameters.
fn meta_param(path: &str) -> String {
    let mut out = String::new();
    for (i, segment) in path.split('.').enumerate() {
        let (name, indexes) = match segment.find('[') {
            Some(at) => segment.split_at(at),
            None => (segment, ""),
        };
        if i == 0 {
            out.push_str(name)
        } else {
            out.push_str(&format!("['{name}']"))
        }
        out.push_str(indexes);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_named_as_meta_names_them() {
        assert_eq!(super::meta_param("text.body"), "text['body']");
        assert_eq!(
            super::meta_param("interactive.action.buttons[0].reply.title"),
            "interactive['action']['buttons'][0]['reply']['title']"
        );
        assert_eq!(super::meta_param("to"), "to");
    }
}
