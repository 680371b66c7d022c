//! Extractors for the native API that fail with [`ApiError`]s naming the field and the rule.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use wagate_domain::input;
use wagate_domain::message::from_value;
use wagate_domain::validation::FieldError;

use crate::error::ApiError;

/// For `#[serde(default, deserialize_with = "present")]`: tells a field set to `null`
/// (`Some(None)`) from one left out (`None`).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON body: 415 without a JSON content type, 400 when it is not JSON, 422 naming the path
/// when it is JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A request body declared as JSON, not yet parsed: 415 without a JSON content type.
struct JsonBytes(Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        Ok(JsonBytes(bytes))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
        })
}

/// A request body as it came: 408 when it did not arrive in time (`[http] body_timeout_ms`),
/// 413 over the size limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|e| match body_failure(&e) {
            (StatusCode::REQUEST_TIMEOUT, why) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", why),
            (status, why) => ApiError::new(status, "invalid_body", format!("cannot read the request body: {why}")),
        })
    }
}

/// Why a request body could not be read, and the status that says so: 408 when it did not
/// arrive in time, 413 over the size limit, 400 otherwise.
pub fn body_failure(e: &BytesRejection) -> (StatusCode, String) {
    let status = if crate::http::timed_out(e) { StatusCode::REQUEST_TIMEOUT } else { e.status() };
    (status, e.body_text())
}

/// A JSON body as [`JsonBody`], with the bytes it came as (to hash, for idempotency keys).
pub struct JsonBodyWithBytes<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBodyWithBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        Ok(Self(parse_json(&bytes)?, bytes))
    }
}

/// Parses a JSON body into `T` with the error rules of [`JsonBody`]. A well-formed body is read
/// straight into `T`; only one that fails goes through a `Value`, whose errors name the field
/// (and whose rules, such as a later duplicate key winning, are the ones the answer follows).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if input::may_hold_nul(bytes) {
        let value = parse_object(bytes)?;
        input::nul_free(&value)?;
        return Ok(from_value("", &value)?);
    }
    // A struct also reads from an array: only an object takes the direct way.
    if bytes.trim_ascii_start().first() == Some(&b'{')
        && let Ok(parsed) = serde_json::from_slice(bytes)
    {
        return Ok(parsed);
    }
    Ok(from_value("", &parse_object(bytes)?)?)
}

/// Parses a JSON body that must be an object, once: 400 when it is not JSON, 422 when it is
/// something else.
fn parse_object(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "the body must be a JSON object"));
    }
    Ok(value)
}

/// A query string read into `T`, answered with the native API's errors: each parameter at most
/// once, and none holding a NUL (422 naming it); a value of the wrong form is 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query()).map(Query)
    }
}

/// Parses a query string by the rules of [`Query`].
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let query = query.unwrap_or_default();
    check_query(query)?;
    serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("the query string cannot be read: {e}"))
    })
}

/// The rules every query string follows whatever reads it: a parameter is given once (which of
/// two would count is a guess), and holds no NUL (no backend could store or compare it).
pub fn check_query(query: &str) -> Result<(), FieldError> {
    let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        input::nul_free_text(&name, &name)?;
        input::nul_free_text(&name, &value)?;
        if seen.contains(&name) {
            return Err(FieldError::new(name, "duplicate_parameter", "is given more than once"));
        }
        seen.push(name);
    }
    Ok(())
}

/// Path parameters, answered with the native API's errors: a segment that is not UTF-8 once
/// percent-decoded, or that holds a NUL, is 400 `invalid_path`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(why) = path_problem(parts.uri.path()) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", why));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text())),
        }
    }
}

/// Why a request path cannot name anything wagate stores, if it cannot: percent-decoded, it is
/// not UTF-8, or it holds a NUL.
pub fn path_problem(path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(path);
    match decoded.decode_utf8() {
        Err(_) => Some(format!("the path {path} is not UTF-8 once percent-decoded")),
        Ok(text) if text.contains('\0') => Some(format!("the path {path} holds a NUL (%00)")),
        Ok(_) => None,
    }
}

/// `?limit=&cursor=` of every list: `limit` is 1 to 100 (default 50); `cursor` is the
/// `next_cursor` of the previous page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1 to 100.
    pub limit: Option<String>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

pub const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let p: ListParams = parse_query(parts.uri.query())?;
        let limit = match p.limit.as_deref() {
            None => DEFAULT_PAGE,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(FieldError::new(
                        "limit",
                        "range",
                        format!("must be an integer from 1 to {MAX_PAGE}, got '{s}'"),
                    )
                    .into());
                }
            },
        };
        Ok(Self { limit, cursor: p.cursor.filter(|c| !c.is_empty()) })
    }
}

impl PageRequest {
    /// One page of `items` (sorted by `key`), and the cursor of the next page.
    pub fn slice<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
        let mut page: Vec<T> = items
            .into_iter()
            .filter(|i| self.cursor.as_deref().is_none_or(|c| key(i) > c))
            .take(self.limit + 1)
            .collect();
        let next = (page.len() > self.limit).then(|| {
            page.truncate(self.limit);
            page.last().map(|i| key(i).to_owned())
        });
        (page, next.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_cursors() {
        let items: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        let req = PageRequest { limit: 2, cursor: None };
        let (page, next) = req.slice(items.clone(), |s| s);
        assert_eq!((page, next.clone()), (vec!["k0".to_owned(), "k1".to_owned()], Some("k1".to_owned())));
        let req = PageRequest { limit: 2, cursor: Some("k3".into()) };
        assert_eq!(req.slice(items, |s| s), (vec!["k4".to_owned()], None));
    }

    #[test]
    fn json_errors_name_their_kind() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct T {
            #[allow(dead_code)]
            name: String,
        }
        assert_eq!(parse_json::<T>(b"{").unwrap_err().code, "invalid_json");
        assert_eq!(parse_json::<T>(b"[]").unwrap_err().code, "invalid_type");
        let e = parse_json::<T>(br#"{"name": 1}"#).unwrap_err();
        assert_eq!((e.code, e.path.as_deref()), ("invalid_type", Some("name")));
    }
}
