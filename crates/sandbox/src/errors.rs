//! Graph API errors in Meta's shape: `{"error": {"message", "type", "code", "error_subcode",
//! "error_data": {"messaging_product", "details"}, "fbtrace_id"}}`, with Meta's HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids;

#[derive(Debug)]
pub struct GraphError {
    pub status: StatusCode,
    pub body: Value,
}

impl GraphError {
    pub fn new(status: StatusCode, code: i64, kind: &str, message: impl Into<String>, details: Option<String>) -> Self {
        let mut error = json!({
            "message": message.into(),
            "type": kind,
            "code": code,
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let Some(details) = details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
        }
        Self { status, body: json!({ "error": error }) }
    }

    /// A WhatsApp error with Meta's "(#code) Title" message.
    pub fn whatsapp(status: StatusCode, code: i64, title: &str, details: impl Into<String>) -> Self {
        Self::new(status, code, "OAuthException", format!("(#{code}) {title}"), Some(details.into()))
    }

    /// Meta's answer to a token that was valid and no longer is (190, subcode 463).
    pub fn expired_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            190,
            "OAuthException",
            "Error validating access token: Session has expired.",
            None,
        );
        e.body["error"]["error_subcode"] = json!(463);
        e
    }

    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            190,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
            None,
        )
    }

    pub fn unknown_node(node: &str, verb: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            "GraphMethodException",
            format!(
                "Unsupported {verb} request. Object with ID '{node}' does not exist, cannot be loaded due to \
                 missing permissions, or does not support this operation. Please read the Graph API \
                 documentation at https://developers.facebook.com/docs/graph-api"
            ),
            None,
        );
        e.body["error"]["error_subcode"] = json!(33);
        e
    }

    pub fn bad_version(version: &str) -> Self {
        Self::unknown_path(&format!("/{version}"))
    }

    /// Meta's answer to a path it has no edge for: `components` is what it could not place.
    pub fn unknown_path(components: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            2500,
            "OAuthException",
            format!("Unknown path components: {components}"),
            None,
        )
    }

    /// A body over what the endpoint takes, in Meta's shape (code 100) with HTTP 413.
    pub fn too_large(limit: usize) -> Self {
        Self::whatsapp(
            StatusCode::PAYLOAD_TOO_LARGE,
            100,
            "Invalid parameter",
            format!("The request body is larger than the {limit} bytes this endpoint accepts."),
        )
    }

    /// A query parameter that does not parse (`?limit=abc`), named.
    pub fn bad_query(param: Option<&str>, why: &str) -> Self {
        match param {
            Some(p) => Self::invalid(format!("Param {p} is not valid: {why}.")),
            None => Self::invalid(format!("The query string is not valid: {why}.")),
        }
    }

    /// 131008: a required parameter is missing.
    pub fn missing(param: &str) -> Self {
        Self::whatsapp(
            StatusCode::BAD_REQUEST,
            131008,
            "Required parameter is missing",
            format!("The parameter {param} is required."),
        )
    }

    /// 100: an unsupported parameter, or a value out of its rules.
    pub fn invalid(details: impl Into<String>) -> Self {
        Self::whatsapp(StatusCode::BAD_REQUEST, 100, "Invalid parameter", details)
    }

    /// 131009: a value Meta cannot use (a bad recipient, an unknown media id, …).
    pub fn bad_value(details: impl Into<String>) -> Self {
        Self::whatsapp(StatusCode::BAD_REQUEST, 131009, "Parameter value is not valid", details)
    }
}

impl From<crate::body::BodyError> for GraphError {
    fn from(e: crate::body::BodyError) -> Self {
        match e {
            crate::body::BodyError::TooLarge { limit, .. } => Self::too_large(limit),
            crate::body::BodyError::Broken(why) => Self::invalid(format!("The body cannot be read: {why}")),
        }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Meta's codes this sandbox answers or reports, with their titles and descriptions
/// (`reference/meta/docs/error-codes.mdx`) and the HTTP status a synchronous answer carries.
pub fn catalogue(code: i64) -> (&'static str, &'static str, StatusCode) {
    let bad = StatusCode::BAD_REQUEST;
    match code {
        130429 => ("Rate limit hit", "Cloud API message throughput has been reached.", bad),
        130501 => ("Unsupported message type", "Message type is not currently supported.", bad),
        131000 => (
            "Something went wrong",
            "Message failed to send due to an unknown error.",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        131016 => ("Service unavailable", "A service is temporarily unavailable.", StatusCode::INTERNAL_SERVER_ERROR),
        131020 => ("Bad Group", "Messages cannot be sent to a group with only one member.", bad),
        131021 => ("Recipient cannot be sender", "Sender and recipient phone number is the same.", bad),
        131026 => ("Message Undeliverable", "Unable to deliver message.", bad),
        131047 => (
            "Re-engagement message",
            "More than 24 hours have passed since the recipient last replied to the sender number.",
            bad,
        ),
        131041 => ("Group unknown", "The group does not exist or the business is not a member of it.", bad),
        131049 => (
            "Meta chose not to deliver.",
            "This message was not delivered to maintain healthy ecosystem engagement.",
            bad,
        ),
        131050 => (
            "User has stopped receipt of marketing messages.",
            "This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
            bad,
        ),
        131051 => ("Message type unknown", "Message type is currently not supported.", bad),
        131053 => ("Media upload error", "Unable to upload the media used in the message.", bad),
        131056 => (
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
            bad,
        ),
        131059 => ("Invalid cursor", "The paging cursor is not valid.", bad),
        131201 => (
            "Request partially succeeded",
            "Some of the request succeeded; see the details of what failed.",
            StatusCode::PARTIAL_CONTENT,
        ),
        131202 => ("Duplicate participant", "A participant is listed more than once.", bad),
        131212 => ("Participant is not a part of the group.", "The participant is not a member of the group.", bad),
        131213 => ("Group join request does not exist.", "The join request does not exist.", bad),
        132000 => (
            "Template Param Count Mismatch",
            "The number of variable parameter values included in the request did not match the number of variable parameters defined in the template.",
            bad,
        ),
        132001 => (
            "Template does not exist",
            "The template does not exist in the specified language or the template has not been approved.",
            StatusCode::NOT_FOUND,
        ),
        132012 => (
            "Template Parameter Format Mismatch",
            "The variable parameter values included in the request are not using the format specified in the template.",
            bad,
        ),
        132015 => (
            "Template is Paused",
            "Template is paused due to low quality so it cannot be sent in a template message.",
            bad,
        ),
        132016 => (
            "Template is Disabled",
            "Template has been paused too many times due to low quality and is now permanently disabled.",
            bad,
        ),
        _ => ("Something went wrong", "An unknown error occurred.", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl GraphError {
    /// The synchronous answer for `code`, from the catalogue.
    pub fn of(code: i64, details: Option<String>) -> Self {
        let (title, description, status) = catalogue(code);
        Self::whatsapp(status, code, title, details.unwrap_or_else(|| description.to_owned()))
    }
}

/// The `errors` item of a `failed` status webhook for `code`.
pub fn status_error(code: i64, details: Option<&str>) -> Value {
    let (title, description, _) = catalogue(code);
    json!({
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details.unwrap_or(description)},
        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
    })
}
