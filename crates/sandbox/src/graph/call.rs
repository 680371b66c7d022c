//! What every Graph path checks (a version-shaped `{version}`, a valid access token) and what
//! the handlers read from a request: the node, the sandbox's own URL, query, body and paging.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::body::{self, JSON_LIMIT};
use crate::errors::GraphError;
use crate::state::{State, TokenCheck};
use crate::test_tool::ControlError;

pub(crate) type Shared = Arc<State>;

/// The test tool's answer for a path under `/control` or `/simulate` that none of its routes
/// takes: its own JSON 404, not a Graph error.
pub(super) fn test_tool_path(path: &str) -> Option<Response> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    ["control", "simulate"]
        .contains(&first)
        .then(|| ControlError::not_found(format!("there is no {path} in this sandbox")).into_response())
}

/// Query parameters, refused in Meta's shape (100, naming the parameter) when they do not parse.
pub(crate) struct GraphQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for GraphQuery<T> {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, GraphError> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(q)| Self(q)).map_err(|rejection| {
            let (param, why) = body::query_fault(&rejection);
            GraphError::bad_query(param.as_deref(), &why)
        })
    }
}

/// A JSON or form body of at most [`JSON_LIMIT`] bytes; a larger one is refused in Meta's shape.
pub(crate) struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = GraphError;

    async fn from_request(req: Request, _: &S) -> Result<Self, GraphError> {
        Ok(Self(body::read(req.into_body(), JSON_LIMIT).await?))
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// A Graph call that passed Meta's checks: a version-shaped `{version}` and a valid access token,
/// as a bearer header or an `access_token` query parameter. Carries the path's `{node}` and the
/// URL the sandbox is reached at, for the URLs it hands out (media downloads).
pub(crate) struct GraphCall {
    pub node: String,
    pub base: String,
    /// This request's URL, for the `next`/`previous` links of a page.
    pub url: reqwest::Url,
}

impl FromRequestParts<Shared> for GraphCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| GraphError::bad_version("?").into_response())?;
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        // `/control/nope` fits `/{version}/{node}`: a test-tool path, not a Graph one.
        if let Some(not_found) = test_tool_path(parts.uri.path()) {
            return Err(not_found);
        }
        check_version(&param("version")).map_err(IntoResponse::into_response)?;
        authenticate_headers(&parts.headers, parts.uri.query(), state).map_err(IntoResponse::into_response)?;
        let base = base_url(parts);
        let url = format!("{base}{}", parts.uri.path_and_query().map_or("", |p| p.as_str()));
        let url = reqwest::Url::parse(&url).map_err(|_| GraphError::bad_version("?").into_response())?;
        Ok(Self { node: param("node"), base, url })
    }
}

/// The sandbox's own URL as the request reached it, for handlers outside the Graph paths.
pub(crate) struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(base_url(parts)))
    }
}

/// The sandbox's own URL as this request reached it: scheme and host from the request, and the
/// prefix it is mounted under (`/sandbox`), which is what the full path has beyond the route's.
fn base_url(parts: &Parts) -> String {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("host").unwrap_or_else(|| "localhost".into());
    let full =
        parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
    let prefix = full.strip_suffix(parts.uri.path()).unwrap_or_default();
    format!("{scheme}://{host}{prefix}")
}

/// Meta takes the token as a bearer header or an `access_token` query parameter.
pub(crate) fn authenticate_headers(headers: &HeaderMap, query: Option<&str>, state: &State) -> Result<(), GraphError> {
    let query = query.and_then(serde_urlencoded_token);
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .map(str::to_owned);
    match header.or(query).map(|t| state.check_token(&t)) {
        Some(TokenCheck::Valid) => Ok(()),
        Some(TokenCheck::Expired) => Err(GraphError::expired_token()),
        _ => Err(GraphError::invalid_token()),
    }
}

fn serde_urlencoded_token(query: &str) -> Option<String> {
    let parsed: Query<TokenQuery> = Query::try_from_uri(&format!("/?{query}").parse().ok()?).ok()?;
    parsed.0.access_token
}

pub(super) fn check_version(version: &str) -> Result<(), GraphError> {
    let ok = version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if ok { Ok(()) } else { Err(GraphError::bad_version(version)) }
}

/// `limit`, `after` and `before`, as Graph lists take them.
#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub before: Option<String>,
}

fn cursor(i: usize) -> String {
    URL_SAFE_NO_PAD.encode(i.to_string())
}

fn uncursor(c: &str) -> Result<usize, GraphError> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| GraphError::of(131_059, Some(format!("The cursor '{c}' is not one this API gave."))))
}

/// One page of `all` (25 by default, at most `max`) and its `paging` object, with opaque
/// cursors and absolute `next`/`previous` links that keep the request's other parameters, as
/// Graph pages lists.
pub(crate) fn page(
    all: &[Value],
    q: &PageQuery,
    max: usize,
    call: &GraphCall,
) -> Result<(Vec<Value>, Value), GraphError> {
    let limit = q.limit.unwrap_or(25);
    if limit == 0 || limit > max {
        return Err(GraphError::invalid(format!("Param limit must be between 1 and {max}.")));
    }
    // `after` starts past its item; `before` ends at its item. A crafted cursor may name an
    // index no list reaches: it is not one this API gave.
    let (start, end) = match (&q.after, &q.before) {
        (Some(a), _) => {
            let out_of_range = || GraphError::of(131_059, Some(format!("The cursor '{a}' is not one this API gave.")));
            let start = uncursor(a)?.checked_add(1).ok_or_else(out_of_range)?;
            (start, start.checked_add(limit).ok_or_else(out_of_range)?)
        }
        (None, Some(b)) => {
            let end = uncursor(b)?;
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, limit),
    };
    let end = end.min(all.len());
    let start = start.min(end);
    let items = all[start..end].to_vec();
    let link = |cursor_name: &str, cursor_value: String| {
        let mut url = call.url.clone();
        let kept: Vec<(String, String)> = call
            .url
            .query_pairs()
            .filter(|(k, _)| !["after", "before", "limit"].contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("limit", &limit.to_string())
            .append_pair(cursor_name, &cursor_value);
        url.to_string()
    };
    let mut paging = json!({});
    if !items.is_empty() {
        paging["cursors"] = json!({"before": cursor(start), "after": cursor(end - 1)});
        if end < all.len() {
            paging["next"] = json!(link("after", cursor(end - 1)));
        }
        if start > 0 {
            paging["previous"] = json!(link("before", cursor(start)));
        }
    }
    Ok((items, paging))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_look_like_graph_versions() {
        assert!(check_version("v23.0").is_ok());
        assert!(check_version("23.0").is_err());
        assert!(check_version("v23").is_err());
    }

    #[test]
    fn a_cursor_past_any_index_is_refused_not_overflowed() {
        let call =
            GraphCall { node: "1".into(), base: "http://x".into(), url: "http://x/v23.0/1/groups".parse().unwrap() };
        let all = vec![json!(1), json!(2)];
        for i in [usize::MAX, usize::MAX - 3] {
            let q = PageQuery { limit: Some(25), after: Some(cursor(i)), before: None };
            let e = page(&all, &q, 100, &call).unwrap_err();
            assert_eq!(e.body["error"]["code"], 131_059, "{i}");
        }
        let q = PageQuery { limit: Some(25), after: None, before: Some(cursor(usize::MAX)) };
        assert_eq!(page(&all, &q, 100, &call).unwrap().0.len(), 0);
    }
}
