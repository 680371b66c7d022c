//! What every Graph path reads first: the key and the node (`GraphCall`), and parameters given
//! as the Graph API takes them.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, MatchedPath, OriginalUri, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use serde::Deserialize;
use serde_json::{Map, Value};
use wagate_domain::input;

use super::error::GraphApiError;
use crate::auth::{self, AuthenticatedKey};
use crate::extract::path_problem;
use crate::state::AppState;

/// `{version}` and `{node}` of a Graph path (a ChakraHQ mount adds its plugin id beside them).
#[derive(Deserialize)]
struct NodePath {
    node: String,
}

/// A Graph request let in: its key, the node its path names, and what was asked.
pub(crate) struct GraphCall {
    pub(crate) caller: AuthenticatedKey,
    pub(crate) node: String,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
}

/// The door of every Graph path: the key (refused in Meta's codes), and a well-formed path.
impl FromRequestParts<AppState> for GraphCall {
    type Rejection = GraphApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let route = parts.extensions.get::<MatchedPath>().map_or("", MatchedPath::as_str).to_owned();
        // As the caller wrote it: a nested router sees its path without the base path.
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let caller = auth::admit(state, &parts.headers, &parts.method, &route)
            .await
            .map_err(|refusal| GraphApiError::refused(refusal, &parts.method, uri.path()))?;
        if let Some(why) = path_problem(uri.path()) {
            return Err(GraphApiError::invalid(why));
        }
        let Path(path) = Path::<NodePath>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| GraphApiError::invalid(e.body_text()))?;
        Ok(Self { caller, node: path.node, method: parts.method.clone(), uri, headers: parts.headers.clone() })
    }
}

/// The parameters of a POST as the Graph API takes them: a JSON body, or a form (whose values
/// may be JSON-encoded objects), over the query string's.
pub(crate) fn post_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, GraphApiError> {
    let mut params = query_params(uri);
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if body.iter().all(u8::is_ascii_whitespace) {
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(body) {
            let value = match serde_json::from_str::<Value>(v.trim()) {
                Ok(object @ (Value::Object(_) | Value::Array(_))) => object,
                _ => Value::String(v.into_owned()),
            };
            params.insert(k.into_owned(), value);
        }
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => params.extend(map),
            Ok(_) => return Err(GraphApiError::invalid("The body must be a JSON object.".into())),
            Err(e) => return Err(GraphApiError::invalid(format!("The body is not JSON: {e}"))),
        }
    }
    input::nul_free(&Value::Object(params.clone())).map_err(|e| GraphApiError::from_field(&e))?;
    Ok(params)
}

/// The query string's parameters, as strings.
pub(crate) fn query_params(uri: &Uri) -> Map<String, Value> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}
