//! `/chakra/…`: ChakraHQ's WhatsApp plugin API, for its users to switch by changing the base
//! URL. A plugin is a connected account (`{plugin_id}` is its id); its pass-through paths are
//! the Graph surface's, answered in ChakraHQ's envelope (`{"_data": …}`, errors in `_errors`);
//! its configuration is wagate's accounts and webhook endpoints.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use wagate_domain::api_key::Scope;
use wagate_domain::id::AccountId;
use wagate_domain::validation::FieldError;
use wagate_storage::{Account, WebhookEndpoint};

use super::graph;
use crate::auth::{self, CHAKRA_GRAPH, Refusal};
use crate::extract::parse_json;
use crate::services::{self, ServiceError, accounts, api_keys};
use crate::state::AppState;

const PLUGIN: &str = "/chakra/v1/ext/plugin/whatsapp/{plugin_id}";

pub fn router(state: &AppState) -> Router<AppState> {
    let pass_through = graph::routes().layer(middleware::from_fn(envelope));
    Router::new()
        .route(&format!("{PLUGIN}/config"), get(get_config))
        .route(&format!("{PLUGIN}/update-config"), post(update_config))
        .nest(CHAKRA_GRAPH, pass_through)
        .layer(middleware::from_fn_with_state(state.clone(), plugin_door))
}

/// An error in ChakraHQ's envelope: `{"_data": null, "_meta": {}, "_errors": [{…}]}`.
pub struct ChakraError {
    status: StatusCode,
    error: Value,
}

impl ChakraError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, error: json!({"code": code, "message": message.into()}) }
    }

    fn field(e: &FieldError) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST, e.rule, &e.message);
        err.error["field"] = json!(e.path);
        err
    }

    fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} with id '{id}'"))
    }
}

impl From<ServiceError> for ChakraError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(f) => Self::field(&f),
            ServiceError::NotFound { what, id } => Self::not_found(what, &id),
            other => {
                let api: crate::error::ApiError = other.into();
                let mut e = Self::new(api.status, api.code, api.message);
                if let Some(meta) = api.meta {
                    e.error["meta"] = meta;
                }
                e
            }
        }
    }
}

impl From<FieldError> for ChakraError {
    fn from(e: FieldError) -> Self {
        Self::field(&e)
    }
}

impl IntoResponse for ChakraError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"_data": null, "_meta": {}, "_errors": [self.error]}))).into_response()
    }
}

/// Every plugin path: a known key, and a plugin (account) that exists, whose number it is when
/// the path names one. Scopes and rates are the routes' own (the Graph surface's door).
async fn plugin_door(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Result<Response, ChakraError> {
    let unauthorized = |why: &str| ChakraError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
    let presented = auth::presented_key(request.headers())
        .ok_or_else(|| unauthorized("missing API key: send Authorization: Bearer <key>"))?;
    let key = api_keys::authenticate(state.store.as_ref(), &state.caches.api_keys, presented)
        .await
        .map_err(|e| ChakraError::from(ServiceError::from(e)))?
        .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
    // Before anything is said of the plugin: a key that may not use the route learns nothing.
    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    let needs = auth::required_scope(request.method(), route).unwrap_or(Scope::Admin);
    if !key.scopes.allows(needs) {
        let refusal = Refusal::InsufficientScope { has: key.scopes, needs };
        let message = refusal.describe(request.method(), request.uri().path());
        return Err(ChakraError::new(StatusCode::FORBIDDEN, "insufficient_scope", message));
    }
    let plugin_id = params.get("plugin_id").map(String::as_str).unwrap_or_default();
    let account = plugin(&state, plugin_id).await?;
    if let Some(node) = params.get("node")
        && let Some(number) = accounts::phone_number(&state, node).await.map_err(ServiceError::from)?
        && number.account_id != account.id
    {
        return Err(ChakraError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("phone number {node} is not a number of plugin {plugin_id}"),
        ));
    }
    Ok(next.run(request).await)
}

async fn plugin(state: &AppState, id: &str) -> Result<Account, ChakraError> {
    let parsed = AccountId::parse(id).ok_or_else(|| ChakraError::not_found("plugin", id))?;
    accounts::account(state, &parsed)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ChakraError::not_found("plugin", id))
}

/// The Graph surface's answer in ChakraHQ's envelope: a send's wamid as `whatsappMessageId`,
/// anything else as Meta answered it under `_data`; Meta's error object under `_errors`.
async fn envelope(route: MatchedPath, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let value = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if is_json => v,
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    let wrapped = if parts.status.is_success() {
        let sent = value.pointer("/messages/0/id").filter(|_| route.as_str().ends_with("/messages"));
        match sent {
            Some(id) => json!({"_data": {"whatsappMessageId": id}}),
            None => json!({ "_data": value }),
        }
    } else {
        json!({"_data": null, "_meta": {}, "_errors": [value.get("error").unwrap_or(&value)]})
    };
    let mut response = (parts.status, Json(wrapped)).into_response();
    for (name, v) in parts.headers.iter().filter(|(n, _)| *n == header::RETRY_AFTER) {
        response.headers_mut().insert(name, v.clone());
    }
    response
}

/// What marks the endpoints a plugin's configuration is made of.
fn marker(plugin: &AccountId, which: &str) -> String {
    format!("ChakraHQ plugin {plugin}: {which}")
}

const PASS_THROUGH: &str = "pass-through webhook";
const PASS_THROUGH_TEMPLATE_EVENTS: &str = "pass-through webhook, template send events";
const CHAKRA_WEBHOOK: &str = "chakra webhook";

/// ChakraHQ's webhook events and the wagate events each stands for.
const CHAKRA_EVENTS: &[(&str, &[&str])] = &[
    ("message", &["message.received"]),
    ("status", &["message.sent", "message.delivered", "message.read", "message.played", "message.failed"]),
    ("message_echo", &["message.accepted"]),
    ("smb_message_echo", &["message.received"]),
];

/// ChakraHQ's events an endpoint was made for, kept in its description (`… [message,status]`):
/// two of them stand for the same wagate events, so the events cannot say which was chosen.
fn chosen_events(description: &str) -> Vec<&str> {
    let listed = description.rsplit_once('[').and_then(|(_, l)| l.strip_suffix(']')).unwrap_or_default();
    listed.split(',').filter(|e| CHAKRA_EVENTS.iter().any(|(n, _)| n == e)).collect()
}

fn chakra_description(plugin: &AccountId, events: &[String]) -> String {
    format!("{} [{}]", marker(plugin, CHAKRA_WEBHOOK), events.join(","))
}

/// The plugin's two endpoints: the pass-through one (Meta's format) and ChakraHQ's (standard).
struct PluginEndpoints {
    pass_through: Option<WebhookEndpoint>,
    chakra: Option<WebhookEndpoint>,
}

impl PluginEndpoints {
    async fn read(state: &AppState, plugin: &AccountId) -> Result<Self, ChakraError> {
        let all = services::events::list(state.store.as_ref()).await?;
        let find = |names: &[&str]| {
            all.iter()
                .find(|e| names.iter().any(|n| e.description.as_deref() == Some(marker(plugin, n).as_str())))
                .cloned()
        };
        let chakra_prefix = marker(plugin, CHAKRA_WEBHOOK);
        Ok(Self {
            pass_through: find(&[PASS_THROUGH, PASS_THROUGH_TEMPLATE_EVENTS]),
            chakra: all
                .iter()
                .find(|e| e.description.as_deref().is_some_and(|d| d.starts_with(&chakra_prefix)))
                .cloned(),
        })
    }
}

/// The configuration as ChakraHQ shows it, from the plugin's account and endpoints.
async fn config(state: &AppState, account: &Account) -> Result<Value, ChakraError> {
    let endpoints = PluginEndpoints::read(state, &account.id).await?;
    let numbers = accounts::numbers_of(state, &account.id).await?;
    let pass = endpoints.pass_through.as_ref();
    let chakra = endpoints.chakra.as_ref();
    let events = chakra.map(|e| chosen_events(e.description.as_deref().unwrap_or_default())).unwrap_or_default();
    Ok(json!({
        "passThroughWebhookUrl": pass.map(|e| &e.url),
        "enableMessageEchoesForPassThroughWebhook": pass.is_some_and(|e| e.include_echoes),
        "enableSendMessageTemplateEventForPassThroughWebhook": pass.is_some_and(|e| {
            e.description.as_deref() == Some(marker(&account.id, PASS_THROUGH_TEMPLATE_EVENTS).as_str())
        }),
        "enableChakraWebhook": chakra.is_some_and(|e| e.enabled),
        "chakraWebhookUrl": chakra.map(|e| &e.url),
        "whichChakraWebhookEventsToSend": events,
        "whatsappBusinessAccounts": [graph::account_view(account)],
        "whatsappPhoneNumbers": numbers.iter().map(graph::number_view).collect::<Vec<_>>(),
    }))
}

/// Lets a configuration request in: the key's scope for the route, and its rate.
async fn admit(state: &AppState, headers: &HeaderMap, method: &Method, route: &MatchedPath) -> Result<(), ChakraError> {
    auth::admit(state, headers, method, route.as_str()).await.map(drop).map_err(|refusal| {
        let message = refusal.describe(method, route.as_str());
        match refusal {
            Refusal::Unauthenticated(_) => ChakraError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            Refusal::InsufficientScope { .. } => ChakraError::new(StatusCode::FORBIDDEN, "insufficient_scope", message),
            Refusal::RateLimited { .. } => ChakraError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message),
            Refusal::Failed(e) => ServiceError::from(e).into(),
        }
    })
}

/// `GET …/{plugin_id}/config`.
async fn get_config(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    route: MatchedPath,
    headers: HeaderMap,
) -> Result<Json<Value>, ChakraError> {
    admit(&state, &headers, &method, &route).await?;
    let account = plugin(&state, &params["plugin_id"]).await?;
    Ok(Json(json!({ "_data": config(&state, &account).await? })))
}

/// The settable fields of `update-config`, each optional (what is left out stays).
#[derive(Default)]
struct ConfigChange {
    pass_through_url: Option<Option<String>>,
    echoes: Option<bool>,
    template_events: Option<bool>,
    chakra_enabled: Option<bool>,
    chakra_url: Option<Option<String>>,
    chakra_events: Option<Vec<String>>,
}

impl ConfigChange {
    fn parse(body: &Map<String, Value>) -> Result<Self, FieldError> {
        let mut change = Self::default();
        let url = |k: &str, v: &Value| match v {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(FieldError::new(k, "invalid_type", "must be a URL or null")),
        };
        let flag =
            |k: &str, v: &Value| v.as_bool().ok_or_else(|| FieldError::new(k, "invalid_type", "must be a boolean"));
        for (k, v) in body {
            match k.as_str() {
                "passThroughWebhookUrl" => change.pass_through_url = Some(url(k, v)?),
                "enableMessageEchoesForPassThroughWebhook" => change.echoes = Some(flag(k, v)?),
                "enableSendMessageTemplateEventForPassThroughWebhook" => change.template_events = Some(flag(k, v)?),
                "enableChakraWebhook" => change.chakra_enabled = Some(flag(k, v)?),
                "chakraWebhookUrl" => change.chakra_url = Some(url(k, v)?),
                "whichChakraWebhookEventsToSend" => {
                    let list = v.as_array().ok_or_else(|| FieldError::new(k, "invalid_type", "must be an array"))?;
                    let mut events = Vec::new();
                    for (i, e) in list.iter().enumerate() {
                        match e.as_str() {
                            Some(name) if CHAKRA_EVENTS.iter().any(|(n, _)| *n == name) => events.push(name.to_owned()),
                            _ => {
                                return Err(FieldError::new(
                                    format!("{k}[{i}]"),
                                    "one_of",
                                    "must be message, status, message_echo or smb_message_echo",
                                ));
                            }
                        }
                    }
                    if events.is_empty() {
                        return Err(FieldError::new(
                            k,
                            "min_items",
                            "must name an event; to send none, disable the webhook",
                        ));
                    }
                    change.chakra_events = Some(events);
                }
                // Read-only: they are the plugin's account and numbers.
                "whatsappBusinessAccounts" | "whatsappPhoneNumbers" => {
                    return Err(FieldError::new(k, "read_only", "is the plugin's account and numbers: not settable"));
                }
                _ => return Err(FieldError::new(k, "unknown_field", "is not a plugin configuration field")),
            }
        }
        Ok(change)
    }
}

/// `POST …/{plugin_id}/update-config`: the pass-through URL is a Meta-format endpoint of the
/// plugin's numbers (echoes as asked); ChakraHQ's webhook a standard endpoint of the events
/// chosen. Answers the configuration, and the ChakraHQ webhook's signing secret when it was made.
async fn update_config(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    route: MatchedPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ChakraError> {
    admit(&state, &headers, &method, &route).await?;
    let account = plugin(&state, &params["plugin_id"]).await?;
    let body: Map<String, Value> = parse_json(&body).map_err(|e| {
        let mut err = ChakraError::new(e.status, e.code, e.message);
        if let Some(path) = e.path {
            err.error["field"] = json!(path);
        }
        err
    })?;
    wagate_domain::input::nul_free(&Value::Object(body.clone()))?;
    let change = ConfigChange::parse(&body)?;
    let numbers: Vec<String> = accounts::numbers_of(&state, &account.id).await?.into_iter().map(|n| n.id).collect();
    let current = PluginEndpoints::read(&state, &account.id).await?;
    let store = state.store.as_ref();
    let policy = &state.config.network.policy();

    // The pass-through webhook.
    let was_templates = current
        .pass_through
        .as_ref()
        .is_some_and(|e| e.description.as_deref() == Some(marker(&account.id, PASS_THROUGH_TEMPLATE_EVENTS).as_str()));
    let template_events = change.template_events.unwrap_or(was_templates);
    let echoes = change.echoes.unwrap_or_else(|| current.pass_through.as_ref().is_some_and(|e| e.include_echoes));
    let description = marker(&account.id, if template_events { PASS_THROUGH_TEMPLATE_EVENTS } else { PASS_THROUGH });
    // Template sends reach Meta's format only as echoes of what wagate sent.
    let settings = |url: Option<String>| services::events::EndpointSettings {
        url,
        phone_number_ids: Some(Some(numbers.clone())),
        description: Some(Some(description.clone())),
        format: Some("meta".into()),
        include_echoes: Some(echoes || template_events),
        ..Default::default()
    };
    match (&current.pass_through, change.pass_through_url.clone()) {
        (Some(e), Some(None)) => services::events::delete(store, &e.id).await?,
        (Some(e), url) => {
            let mut s = settings(url.flatten());
            s.format = None;
            services::events::update(store, policy, &e.id, s).await.map(drop)?
        }
        (None, Some(Some(url))) => services::events::create(store, policy, settings(Some(url))).await.map(drop)?,
        (None, _) if change.echoes.is_some() || change.template_events.is_some() => {
            return Err(FieldError::new(
                "passThroughWebhookUrl",
                "required",
                "is required to enable pass-through echoes or template events",
            )
            .into());
        }
        (None, _) => {}
    }

    // ChakraHQ's webhook.
    let mut secret = None;
    let events = |names: &[String]| -> Vec<String> {
        let mut out: Vec<String> = CHAKRA_EVENTS
            .iter()
            .filter(|(n, _)| names.iter().any(|x| x == n))
            .flat_map(|(_, types)| types.iter().map(|t| (*t).to_owned()))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let chosen =
        change.chakra_events.clone().unwrap_or_else(|| CHAKRA_EVENTS.iter().map(|(n, _)| (*n).to_owned()).collect());
    match (&current.chakra, change.chakra_url.clone()) {
        (Some(e), Some(None)) => services::events::delete(store, &e.id).await?,
        (Some(e), url) => {
            let s = services::events::EndpointSettings {
                url: url.flatten(),
                events: change.chakra_events.as_deref().map(events),
                description: change.chakra_events.as_deref().map(|c| Some(chakra_description(&account.id, c))),
                enabled: change.chakra_enabled,
                ..Default::default()
            };
            services::events::update(store, policy, &e.id, s).await.map(drop)?
        }
        (None, Some(Some(url))) => {
            let s = services::events::EndpointSettings {
                url: Some(url),
                events: Some(events(&chosen)),
                phone_number_ids: Some(Some(numbers.clone())),
                description: Some(Some(chakra_description(&account.id, &chosen))),
                enabled: Some(change.chakra_enabled.unwrap_or(true)),
                ..Default::default()
            };
            let created = services::events::create(store, policy, s).await?;
            secret = created.secret.map(|s| s.expose().to_owned());
        }
        (None, _) if change.chakra_enabled == Some(true) || change.chakra_events.is_some() => {
            return Err(
                FieldError::new("chakraWebhookUrl", "required", "is required to enable the ChakraHQ webhook").into()
            );
        }
        (None, _) => {}
    }
    let mut data = config(&state, &account).await?;
    if let Some(secret) = secret {
        // Not ChakraHQ's: the Standard Webhooks secret its deliveries are signed with, shown once.
        data["chakraWebhookSecret"] = json!(secret);
    }
    Ok(Json(json!({ "_data": data })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_are_checked_by_name_and_type() {
        let parse = |v: Value| ConfigChange::parse(v.as_object().unwrap()).map(drop).map_err(|e| (e.path, e.rule));
        assert!(parse(json!({"enableChakraWebhook": true, "chakraWebhookUrl": "https://x.example"})).is_ok());
        assert_eq!(parse(json!({"enableChakraWebhook": "yes"})), Err(("enableChakraWebhook".into(), "invalid_type")));
        assert_eq!(
            parse(json!({"whichChakraWebhookEventsToSend": ["message", "nope"]})),
            Err(("whichChakraWebhookEventsToSend[1]".into(), "one_of"))
        );
        assert_eq!(parse(json!({"whatsappPhoneNumbers": []})), Err(("whatsappPhoneNumbers".into(), "read_only")));
        assert_eq!(parse(json!({"pluginName": "x"})), Err(("pluginName".into(), "unknown_field")));
    }
}
