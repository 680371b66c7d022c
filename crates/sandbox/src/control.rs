//! The test tool's own API (`/control/…`): look inside the sandbox and change how it behaves
//! while it runs. Errors are `{"error": {"code", "message", "path"}}`, the shape of wagate's
//! native API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::catalogue;
use crate::graph::templates;
use crate::ids;
use crate::received::Received;
use crate::seed::SeedNumber;
use crate::state::{Business, DownloadFailure, State, hello_world};
use crate::test_tool::{ControlBody, ControlError, parse};

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/control/accounts", get(accounts).post(create_account))
        .route("/control/messages", get(messages).delete(clear_messages))
        .route("/control/settings", get(settings).put(replace_settings).patch(patch_settings))
        .route("/control/phone-numbers/{id}/throughput", put(set_throughput))
        .route("/control/failures", get(failures))
        .route("/control/failures/{user}", put(set_failure).delete(clear_failure))
        .route("/control/windows", put(set_window))
        .route("/control/templates/{id}/status", put(set_template_status))
        .route("/control/webhook", get(webhook_url).put(set_webhook_url))
        .route("/control/access-token", put(rotate_access_token))
        .route("/control/reset", post(reset))
        .route("/control/media/{id}/download-failures", put(set_download_failures).delete(clear_download_failures))
        .with_state(state)
}

fn business_json(state: &State, b: &Business) -> Value {
    json!({
        "waba_id": b.waba_id,
        "name": b.name,
        "phone_numbers": b.phone_numbers,
        "access_token": state.access_token(),
        "app_secret": state.app_secret,
        "verify_token": state.verify_token,
    })
}

/// Every business with the app's credentials, which all of them share.
async fn accounts(AxState(state): AxState<Shared>) -> Response {
    let data: Vec<Value> = state.businesses().iter().map(|b| business_json(&state, b)).collect();
    axum::Json(json!({ "data": data })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    #[serde(default)]
    name: Option<String>,
    /// How many phone numbers (1 to 5, 1 by default).
    #[serde(default)]
    phone_numbers: Option<usize>,
}

/// A new WABA with its numbers, starting, as every new account does, with `hello_world`.
async fn create_account(
    AxState(state): AxState<Shared>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let req: NewAccount = if body.iter().all(u8::is_ascii_whitespace) {
        NewAccount { name: None, phone_numbers: None }
    } else {
        parse(&body, "account")?
    };
    let count = req.phone_numbers.unwrap_or(1);
    if !(1..=5).contains(&count) {
        return Err(ControlError::invalid("phone_numbers", "must be 1 to 5"));
    }
    let name = req.name.unwrap_or_else(|| "Sandbox Business".into());
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(ControlError::invalid("name", "must have 1 to 128 characters"));
    }
    let business = Business {
        waba_id: ids::numeric_id(),
        name: name.clone(),
        phone_numbers: (0..count)
            .map(|_| SeedNumber {
                id: ids::numeric_id(),
                display_phone_number: ids::display_number(),
                verified_name: name.clone(),
            })
            .collect(),
    };
    {
        let mut inner = state.lock();
        inner.saved.templates.push(hello_world(&business.waba_id));
        inner.saved.businesses.push(business.clone());
    }
    state.save();
    Ok((StatusCode::CREATED, axum::Json(business_json(&state, &business))).into_response())
}

#[derive(Deserialize)]
struct MessagesQuery {
    phone_number_id: Option<String>,
    to: Option<String>,
}

/// What the messages endpoint received: each body exactly as sent, with the wamid answered or
/// the error refused with.
async fn messages(
    AxState(state): AxState<Shared>,
    q: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Response, ControlError> {
    let Query(q) = q.map_err(|rejection| match crate::body::query_fault(&rejection) {
        (Some(param), why) => ControlError::invalid(param, why),
        (None, why) => ControlError::invalid("query", why),
    })?;
    let data = state.received_matching(|r| {
        q.phone_number_id.as_ref().is_none_or(|p| &r.phone_number_id == p)
            && q.to.as_ref().is_none_or(|wanted| r.to.as_deref().is_some_and(|to| same_recipient(to, wanted)))
    });
    // Serialised as a struct, not through `json!`, which would re-parse the raw bodies.
    #[derive(serde::Serialize)]
    struct List {
        data: Vec<Received>,
    }
    Ok(axum::Json(List { data }).into_response())
}

/// Whether a send's `to` names the recipient `wanted`: phone numbers by their digits, as Meta
/// reads them (`+1 555-0100` and `15550100` are one user, and a `+` in a query string arrives as
/// a space), user and group ids exactly.
fn same_recipient(to: &str, wanted: &str) -> bool {
    let phone = |s: &str| {
        s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b))
    };
    to == wanted || (phone(to) && phone(wanted) && ids::digits_only(to) == ids::digits_only(wanted))
}

async fn clear_messages(AxState(state): AxState<Shared>) -> StatusCode {
    state.clear_received();
    StatusCode::NO_CONTENT
}

async fn settings(AxState(state): AxState<Shared>) -> Response {
    axum::Json(state.settings()).into_response()
}

fn settings_answer(state: &State, patch: &Value) -> Result<Response, ControlError> {
    let settings = state.patch_settings(patch).map_err(|e| ControlError::invalid(e.path, e.message))?;
    Ok(axum::Json(settings).into_response())
}

/// Changes the fields the body names; the rest stay.
async fn patch_settings(
    AxState(state): AxState<Shared>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let patch: Value = parse(&body, "settings object")?;
    if !patch.is_object() {
        return Err(ControlError::bad_json("settings object", "expected a JSON object"));
    }
    settings_answer(&state, &patch)
}

/// Replaces all settings: fields left out return to their defaults.
async fn replace_settings(
    AxState(state): AxState<Shared>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let given: Value = parse(&body, "settings object")?;
    if !given.is_object() {
        return Err(ControlError::bad_json("settings object", "expected a JSON object"));
    }
    let settings = state.replace_settings(&given).map_err(|e| ControlError::invalid(e.path, e.message))?;
    Ok(axum::Json(settings).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Throughput {
    messages_per_second: u32,
}

/// A number's own throughput (Meta: 80 by default, 1,000 after an upgrade).
async fn set_throughput(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let t: Throughput = parse(&body, "throughput")?;
    if !(1..=10_000).contains(&t.messages_per_second) {
        return Err(ControlError::invalid("messages_per_second", "must be 1 to 10000"));
    }
    if state.business_of_number(&id).is_none() {
        return Err(ControlError::not_found(format!("phone number '{id}' is not one of this sandbox's")));
    }
    {
        let mut inner = state.lock();
        inner.saved.throughput.insert(id.clone(), t.messages_per_second);
        inner.rate.remove(&id);
    }
    state.save();
    Ok(axum::Json(json!({"phone_number_id": id, "messages_per_second": t.messages_per_second})).into_response())
}

/// The codes a recipient can be set to fail with, as Meta reports them in `failed` statuses.
pub const FAILURE_CODES: &[i64] = &[131_000, 131_026, 131_049, 131_050];

async fn failures(AxState(state): AxState<Shared>) -> Response {
    let data: Vec<Value> = state
        .lock()
        .saved
        .failing
        .iter()
        .map(|(user, code)| json!({"user": user, "code": code, "title": catalogue(*code).0}))
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    code: i64,
}

/// Messages to `user` (a wa_id, user id or group id) are accepted, then fail by webhook with
/// `code`: 131026 for every message; 131049 and 131050 for marketing templates only, as on Meta.
async fn set_failure(
    AxState(state): AxState<Shared>,
    Path(user): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let f: Failure = parse(&body, "failure")?;
    if !FAILURE_CODES.contains(&f.code) {
        return Err(ControlError::invalid("code", format!("must be one of {FAILURE_CODES:?}")));
    }
    let key = if user.bytes().all(|b| b.is_ascii_digit() || b == b'+') { ids::digits_only(&user) } else { user };
    state.lock().saved.failing.insert(key.clone(), f.code);
    state.save();
    Ok(axum::Json(json!({"user": key, "code": f.code, "title": catalogue(f.code).0})).into_response())
}

async fn clear_failure(AxState(state): AxState<Shared>, Path(user): Path<String>) -> Result<StatusCode, ControlError> {
    let key = if user.bytes().all(|b| b.is_ascii_digit() || b == b'+') { ids::digits_only(&user) } else { user };
    let removed = state.lock().saved.failing.remove(&key);
    state.save();
    removed
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| ControlError::not_found(format!("'{key}' is not set to fail")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    phone_number_id: String,
    user: String,
    /// Unix seconds of the user's last message; null closes the window.
    last_inbound_at: Option<u64>,
}

/// Moves a customer-service window without waiting a day: the user last wrote at
/// `last_inbound_at`.
async fn set_window(AxState(state): AxState<Shared>, ControlBody(body): ControlBody) -> Result<Response, ControlError> {
    let w: Window = parse(&body, "window")?;
    if state.business_of_number(&w.phone_number_id).is_none() {
        return Err(ControlError::invalid("phone_number_id", "is not one of this sandbox's numbers"));
    }
    let user = ids::digits_only(&w.user);
    if user.is_empty() {
        return Err(ControlError::invalid("user", "must be the user's phone number or wa_id"));
    }
    match w.last_inbound_at {
        Some(at) => state.note_inbound(&w.phone_number_id, &user, at),
        None => state.close_window(&w.phone_number_id, &user),
    }
    Ok(axum::Json(json!({"phone_number_id": w.phone_number_id, "user": user, "open": state.window_open(&w.phone_number_id, &user)})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateStatus {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

const TEMPLATE_STATUSES: &[&str] = &["APPROVED", "REJECTED", "PAUSED", "DISABLED", "PENDING"];

/// Decides a template's review (or pauses or disables it) now, with its webhook.
async fn set_template_status(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let t: TemplateStatus = parse(&body, "template status")?;
    let status = t.status.to_ascii_uppercase();
    if !TEMPLATE_STATUSES.contains(&status.as_str()) {
        return Err(ControlError::invalid("status", format!("must be one of {TEMPLATE_STATUSES:?}")));
    }
    let reason = t.reason.unwrap_or_else(|| if status == "REJECTED" { "INVALID_FORMAT".into() } else { "NONE".into() });
    if !templates::set_status(&state, &id, &status, &reason) {
        return Err(ControlError::not_found(format!("template '{id}' does not exist")));
    }
    Ok(axum::Json(json!({"id": id, "status": status, "reason": reason})).into_response())
}

/// Where webhooks go, and what became of those sent so far.
async fn webhook_url(AxState(state): AxState<Shared>) -> Response {
    axum::Json(json!({"url": state.webhook_url(), "deliveries": state.webhook_stats.json()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookUrl {
    url: Option<String>,
    /// Meta verifies a new callback URL first (`GET ?hub.mode=subscribe&hub.challenge=…&
    /// hub.verify_token=…`, answered with the challenge); `false` skips that.
    #[serde(default = "yes")]
    verify: bool,
}

fn yes() -> bool {
    true
}

/// Where webhooks go; null stops them. The endpoint must pass Meta's verification request first.
async fn set_webhook_url(
    AxState(state): AxState<Shared>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let w: WebhookUrl = parse(&body, "webhook")?;
    if let Some(url) = &w.url {
        let mut parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| ["http", "https"].contains(&u.scheme()))
            .ok_or_else(|| ControlError::invalid("url", "must be an http(s) URL"))?;
        if w.verify {
            let challenge = ids::numeric_id();
            parsed
                .query_pairs_mut()
                .append_pair("hub.mode", "subscribe")
                .append_pair("hub.challenge", &challenge)
                .append_pair("hub.verify_token", &state.verify_token);
            // The answer's body is never shown: the URL may be anything the caller wants read.
            let answer = match state.http.get(parsed).send().await {
                Ok(r) => {
                    let status = r.status();
                    if status.is_success() && r.text().await.is_ok_and(|t| t.trim() == challenge) {
                        Ok(())
                    } else if status.is_redirection() {
                        Err(format!("answered {status}, a redirect, which is not followed"))
                    } else {
                        Err(format!("answered {status} without the challenge"))
                    }
                }
                Err(e) => Err(format!("could not be reached: {}", e.without_url())),
            };
            answer.map_err(|why| {
                ControlError::invalid("url", format!("failed Meta's verification request (hub.challenge): it {why}"))
            })?;
        }
    }
    *state.webhook_url.write().unwrap_or_else(|e| e.into_inner()) = w.url.clone();
    Ok(axum::Json(json!({"url": w.url})).into_response())
}

/// Forgets messages and the webhooks still owed, windows, limits and per-number throughput,
/// templates (but `hello_world`), media, groups, encryption keys, known users, failures and
/// settings. Businesses stay.
async fn reset(AxState(state): AxState<Shared>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    access_token: Option<String>,
}

/// Replaces the app's access token, as a token expiring or being revoked at Meta would: Graph
/// calls with the old one get 190 (subcode 463, "Session has expired") from now on.
async fn rotate_access_token(AxState(state): AxState<Shared>, body: Bytes) -> Result<Response, ControlError> {
    let req: NewToken =
        if body.iter().all(u8::is_ascii_whitespace) { NewToken::default() } else { parse(&body, "access token")? };
    if let Some(t) = &req.access_token
        && (t.len() < 16 || t.len() > 512 || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ControlError::invalid("access_token", "must be 16 to 512 visible ASCII characters"));
    }
    let token = state.rotate_token(req.access_token);
    Ok(axum::Json(json!({"access_token": token})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadFailures {
    /// The HTTP status the downloads answer: 404 (as Meta's for an expired URL), a 5xx, or a
    /// redirect (301, 302, 303, 307, 308) to `location`.
    status: u16,
    /// How many downloads fail before they work again.
    count: u32,
    #[serde(default)]
    location: Option<String>,
}

/// Makes the next `count` downloads of a media file answer `status`, to test a downloader's
/// retries (`{"status": 404, "count": 3}`) or that it follows no redirect (`{"status": 302,
/// "location": URL, "count": 1}`): `PUT /control/media/{id}/download-failures`.
async fn set_download_failures(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let f: DownloadFailures = parse(&body, "download failures")?;
    let redirect = [301, 302, 303, 307, 308].contains(&f.status);
    if !(redirect || f.status == 404 || (500..=599).contains(&f.status)) {
        return Err(ControlError::invalid("status", "must be 404, a 5xx status, or 301, 302, 303, 307 or 308"));
    }
    let location_ok = f.location.as_deref().and_then(|l| reqwest::Url::parse(l).ok()).is_some();
    if redirect != location_ok {
        return Err(ControlError::invalid("location", "must be an absolute URL with a redirect status, and only then"));
    }
    if f.count == 0 {
        return Err(ControlError::invalid("count", "must be at least 1 (DELETE clears the failures)"));
    }
    let mut inner = state.lock();
    if !inner.saved.media.iter().any(|m| m.id == id) {
        return Err(ControlError::not_found(format!("no media with id '{id}'")));
    }
    let answer = json!({"media_id": id, "status": f.status, "count": f.count, "location": f.location});
    inner.media_failures.insert(id, DownloadFailure { status: f.status, location: f.location, left: f.count });
    Ok(axum::Json(answer).into_response())
}

async fn clear_download_failures(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ControlError> {
    state
        .lock()
        .media_failures
        .remove(&id)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| ControlError::not_found(format!("downloads of '{id}' are not set to fail")))
}
