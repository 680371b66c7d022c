//! What every Whatomate path shares: its error and success shapes, the door, reading query,
//! path and body, and choosing the sending number.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wagate_domain::input;
use wagate_domain::validation::FieldError;
use wagate_storage::{Contact, PhoneNumber};

use crate::auth::{self, Refusal};
use crate::extract::{body_failure, path_problem};
use crate::services::contacts::ContactDetails;
use crate::services::{self, ServiceError};
use crate::state::AppState;

/// `{"status": "error", "message": "…"}`.
pub struct WhatomateError {
    status: StatusCode,
    message: String,
    /// Seconds, for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl WhatomateError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }

    fn refused(refusal: Refusal, method: &Method, path: &str) -> Self {
        let message = refusal.describe(method, path);
        match refusal {
            Refusal::Unauthenticated(_) => Self::new(StatusCode::UNAUTHORIZED, message),
            Refusal::InsufficientScope { .. } => Self::new(StatusCode::FORBIDDEN, message),
            Refusal::RateLimited { retry_after_secs } => {
                Self { retry_after: Some(retry_after_secs), ..Self::new(StatusCode::TOO_MANY_REQUESTS, message) }
            }
            Refusal::Failed(e) => Self::from(ServiceError::Storage(e)),
        }
    }

    /// A service's error with its fields named as this request names them.
    pub(super) fn renamed(e: ServiceError, rename: impl Fn(&str) -> String) -> Self {
        match e {
            ServiceError::Invalid(f) => Self::from(rename_field(f, rename)),
            ServiceError::OutsideWindow { customer, last_inbound } => {
                let last = last_inbound.map_or_else(|| "never".to_owned(), |t| format!("at {t}"));
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "{}: {customer} last wrote to this number {last}; outside the 24-hour window only a \
                         template may be sent (POST /api/messages/template)",
                        rename("to")
                    ),
                )
            }
            // The request's field that named it: `rename` is given what it is (`contact`).
            ServiceError::NotFound { what, id } => {
                Self::new(StatusCode::NOT_FOUND, format!("{}: no {what} with id '{id}'", rename(what)))
            }
            other => Self::from(other),
        }
    }
}

/// Renames a path by the first of `pairs` it starts with (whole segments); others stay as they are.
pub(super) fn renaming<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> String + 'a {
    move |path| {
        for (from, to) in pairs {
            if let Some(rest) = path.strip_prefix(from)
                && (rest.is_empty() || rest.starts_with(['.', '[']))
            {
                return format!("{to}{rest}");
            }
        }
        path.to_owned()
    }
}

/// `e` with its path (and the path its message starts with) renamed.
pub(super) fn rename_field(mut e: FieldError, rename: impl Fn(&str) -> String) -> FieldError {
    let renamed = rename(&e.path);
    if renamed != e.path {
        if let Some(rest) = e.message.strip_prefix(&format!("{}: ", e.path)) {
            e.message = format!("{renamed}: {rest}");
        }
        e.path = renamed;
    }
    e
}

impl From<FieldError> for WhatomateError {
    fn from(e: FieldError) -> Self {
        let status = match e.rule {
            "template_not_found" | "unknown_contact" | "unknown_account" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.message)
    }
}

impl From<ServiceError> for WhatomateError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(f) => f.into(),
            ServiceError::NotFound { what, id } => {
                Self::new(StatusCode::NOT_FOUND, format!("no {what} with id '{id}'"))
            }
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            ServiceError::MetaRejected { error } => Self::new(
                StatusCode::BAD_GATEWAY,
                format!("Meta refused the request (code {}): {}", error.code, error.message),
            ),
            e @ ServiceError::OutsideWindow { .. } => Self::renamed(e, |_| "contact_id".to_owned()),
            ServiceError::IdempotencyKeyReused { key, .. } => {
                Self::new(StatusCode::CONFLICT, format!("idempotency key '{key}' was used for a different request"))
            }
            ServiceError::Backpressure { backlog } => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("{backlog} messages are waiting to be sent; retry after a few seconds"),
                )
            },
            ServiceError::GraphUnavailable(m) => {
                Self::new(StatusCode::BAD_GATEWAY, format!("the WhatsApp Cloud API is unavailable: {m}"))
            }
            ServiceError::Storage(e) => {
                tracing::error!(error = %e, "whatomate surface request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
            }
        }
    }
}

impl IntoResponse for WhatomateError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"status": "error", "message": self.message}))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// `{"status": "success", "data": …}`.
pub(super) fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// What every request passes first: a key allowed on the route, and a path that can name
/// something stored.
pub(super) async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    route: &MatchedPath,
    uri: &Uri,
) -> Result<(), WhatomateError> {
    auth::admit(state, headers, method, route.as_str())
        .await
        .map_err(|refusal| WhatomateError::refused(refusal, method, uri.path()))?;
    if let Some(why) = path_problem(uri.path()) {
        return Err(WhatomateError::new(StatusCode::BAD_REQUEST, why));
    }
    Ok(())
}

/// The `{id}` of a route.
pub(super) fn path_id(path: Result<axum::extract::Path<String>, PathRejection>) -> Result<String, WhatomateError> {
    let axum::extract::Path(id) = path.map_err(|e| WhatomateError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    wagate_domain::validation::check_length("id", &id, 1, 64)?;
    Ok(id)
}

/// The query string, each parameter at most once and none holding a NUL.
pub(super) fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, WhatomateError> {
    let query = uri.query().unwrap_or_default();
    crate::extract::check_query(query)?;
    serde_urlencoded::from_str(query)
        .map_err(|e| WhatomateError::new(StatusCode::BAD_REQUEST, format!("the query string cannot be read: {e}")))
}

/// A JSON object body read into `T`: 400 naming the field for anything else (not JSON, not an
/// object, a NUL, a field of the wrong type or unknown).
pub(super) fn body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, WhatomateError> {
    let bytes = body.map_err(|e| {
        let (status, why) = body_failure(&e);
        WhatomateError::new(status, format!("cannot read the request body: {why}"))
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| WhatomateError::new(StatusCode::BAD_REQUEST, format!("body: is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(WhatomateError::new(StatusCode::BAD_REQUEST, "body: must be a JSON object"));
    }
    input::nul_free(&value)?;
    Ok(wagate_domain::message::from_value("", &value)?)
}

/// A positive integer query parameter no larger than `max`, `default` when absent.
pub(super) fn number(name: &str, value: Option<&str>, default: u32, max: u32) -> Result<u32, FieldError> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| FieldError::new(name, "range", format!("must be 1 to {max}, got '{v}'"))),
    }
}

/// `page` and `limit` as Whatomate takes them: page from 1, limit 1 to 100 (default 50).
pub(super) fn paging(page: Option<&str>, limit: Option<&str>) -> Result<(u32, u32), FieldError> {
    Ok((number("page", page, 1, 1_000_000)?, number("limit", limit, 50, 100)?))
}

/// What a send to a contact goes to: their phone number (E.164), else their user id.
pub(super) fn recipient(contact: &Contact, field: &str) -> Result<String, FieldError> {
    contact
        .wa_id
        .as_deref()
        .map(wagate_domain::contact::counterpart)
        .or_else(|| contact.user_id.clone())
        .ok_or_else(|| FieldError::new(field, "unreachable", "the contact has neither a phone number nor a user id"))
}

/// The number to send to `contact` from: among `candidates` (all numbers when None), the one the
/// contact last talked with, else the default number.
pub(super) async fn sender_for(
    state: &AppState,
    contact: &ContactDetails,
    candidates: Option<&[PhoneNumber]>,
) -> Result<PhoneNumber, ServiceError> {
    // Conversations come by last message, newest first.
    let allowed = |id: &str| candidates.is_none_or(|c| c.iter().any(|n| n.id == id));
    if let Some(c) = contact.conversations.iter().find(|c| allowed(&c.phone_number_id))
        && let Some(n) = services::accounts::phone_number(state, &c.phone_number_id).await?
    {
        return Ok(n);
    }
    match candidates {
        None => services::messages::resolve_sender(state, None).await,
        Some(numbers) => {
            numbers.iter().find(|n| n.is_default).or(numbers.first()).cloned().ok_or_else(|| {
                FieldError::new("account_name", "unknown_sender", "the account has no phone number").into()
            })
        }
    }
}

/// The numbers of the connected account named `name`.
pub(super) async fn account_numbers(state: &AppState, name: &str) -> Result<Vec<PhoneNumber>, ServiceError> {
    wagate_domain::validation::check_length("account_name", name, 1, 256)?;
    let accounts = services::accounts::known_accounts(state).await?;
    let Some(account) = accounts.iter().find(|a| a.name == name) else {
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        return Err(FieldError::new(
            "account_name",
            "unknown_account",
            format!("no connected account is named '{name}' (there are: {})", names.join(", ")),
        )
        .into());
    };
    services::accounts::numbers_of(state, &account.id).await
}

/// `MatchedPath` and the rest every handler takes, in one place.
pub(super) struct Request {
    pub(super) state: AppState,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) route: MatchedPath,
    pub(super) headers: HeaderMap,
}

impl Request {
    pub(super) async fn admit(&self) -> Result<(), WhatomateError> {
        admit(&self.state, &self.headers, &self.method, &self.route, &self.uri).await
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Request
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let State(app) =
            State::<AppState>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let route = MatchedPath::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: app,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            route,
            headers: parts.headers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_names_the_parameter_and_the_rule() {
        assert_eq!(paging(None, None).unwrap(), (1, 50));
        assert_eq!(paging(Some("3"), Some("100")).unwrap(), (3, 100));
        for (page, limit, path) in [(None, Some("101"), "limit"), (Some("0"), None, "page"), (None, Some("x"), "limit")]
        {
            let e = paging(page, limit).unwrap_err();
            assert_eq!(e.path, path);
            assert!(e.message.starts_with(&format!("{path}: must be 1 to ")), "{}", e.message);
        }
    }

    #[test]
    fn renamed_fields_keep_their_rule() {
        let e = FieldError::new("text.body", "max_length", "must be at most 4096 characters, got 5000");
        let e = rename_field(e, |p| p.replace("text.body", "text"));
        assert_eq!((e.path.as_str(), e.message.as_str()), ("text", "text: must be at most 4096 characters, got 5000"));
    }
}
