//! The Graph API client: a configurable base URL and version, a bearer token, and Meta's success
//! and error bodies parsed into types. Failures are classified by what is known of the outcome.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wagate_domain::input;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::meta::{GraphError, GraphErrorBody, Page, PhoneNumberInfo, SendResponse};
use wagate_domain::network::AddressPolicy;
use wagate_domain::secret::Secret;
use wagate_storage::{Account, AccountMode};

use crate::outbound::{AddressRefused, OutboundClient};

/// Where and as whom to call: an account's base URL, API version and token.
pub struct Target<'a> {
    pub base_url: &'a str,
    pub api_version: &'a str,
    pub token: &'a Secret,
    /// The in-process sandbox, on this server's own address (which the API cannot change):
    /// exempt from the address policy. Every other account is held to it, whatever its URL.
    pub in_process_sandbox: bool,
}

impl<'a> From<&'a Account> for Target<'a> {
    fn from(a: &'a Account) -> Self {
        Self {
            base_url: &a.graph_base_url,
            api_version: &a.api_version,
            token: &a.access_token,
            in_process_sandbox: a.mode == AccountMode::Sandbox,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphFailure {
    /// Meta answered with its error object (`body` is that answer as it came).
    #[error("Meta error {}: {}", .error.code, .error.message)]
    Meta { status: u16, error: GraphError, body: Value },
    /// A status whose body is not what was asked for (a proxy, an outage page, a redirect), or a
    /// success whose body is: `reason` says which, never what the body held.
    #[error("HTTP {status} from the Graph API: {reason}")]
    Http { status: u16, reason: String, retry_after: Option<Duration> },
    /// The address policy refused the destination; nothing was sent.
    #[error("{0}")]
    Refused(#[from] AddressRefused),
    /// The request was never written: connecting failed. Safe to retry.
    #[error("cannot reach the Graph API: {0}")]
    Connect(String),
    /// The request may have reached Meta; its outcome is unknown.
    #[error("Graph API request outcome unknown: {0}")]
    Unknown(String),
}

impl GraphFailure {
    /// True when the request certainly did not take effect at Meta.
    pub fn not_applied(&self) -> bool {
        !matches!(self, Self::Unknown(_))
    }
}

/// What Meta says of a number's limits.
#[derive(Debug, Default)]
pub struct NumberLimits {
    pub throughput_level: Option<ThroughputLevel>,
    /// None also when Meta names a tier wagate does not know: the configured default applies.
    pub messaging_tier: Option<MessagingTier>,
}

#[derive(Clone)]
pub struct GraphClient {
    /// Live accounts: destinations checked against the address policy.
    guarded: OutboundClient,
    /// The in-process sandbox account, while the sandbox runs in this process.
    in_process: Option<OutboundClient>,
}

impl GraphClient {
    /// `in_process_sandbox`: whether this process serves the sandbox account's base URL; if not,
    /// that URL is held to the policy like any other.
    pub fn new(timeout: Duration, policy: AddressPolicy, in_process_sandbox: bool) -> Self {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
        };
        Self {
            guarded: OutboundClient::new(builder(), Some(Arc::new(policy))).expect("HTTP client"),
            in_process: in_process_sandbox.then(|| OutboundClient::new(builder(), None).expect("HTTP client")),
        }
    }

    /// A GET or POST of `url` as `target`, with its token.
    fn request(
        &self,
        target: &Target<'_>,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, AddressRefused> {
        let http = match &self.in_process {
            Some(trusted) if target.in_process_sandbox => trusted,
            _ => &self.guarded,
        };
        Ok(http.request(method, url)?.bearer_auth(target.token.expose()))
    }

    fn url(target: &Target<'_>, path: &str) -> String {
        format!("{}/{}/{}", target.base_url.trim_end_matches('/'), target.api_version, path)
    }

    /// `POST /{phone-number-id}/messages` with a message: its wamid, and Meta's answer as it came.
    pub async fn send_message(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<(String, Value), GraphFailure> {
        let raw: Value = self.post_messages(target, phone_number_id, body).await?;
        let parsed: SendResponse = serde_json::from_value(raw.clone())
            .map_err(|_| GraphFailure::Unknown("Meta's answer is JSON without the messages Meta sends".into()))?;
        match parsed.messages.into_iter().next() {
            Some(m) => Ok((m.id, raw)),
            None => Err(GraphFailure::Unknown("Meta's answer carries no message id".into())),
        }
    }

    /// `POST /{phone-number-id}/messages` with a read receipt (and typing indicator).
    pub async fn mark_read(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<(), GraphFailure> {
        let raw: Value = self.post_messages(target, phone_number_id, body).await?;
        if raw.get("success").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(GraphFailure::Unknown("the answer to a read receipt is not {\"success\": true}".into()))
        }
    }

    async fn post_messages(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<Value, GraphFailure> {
        let url = Self::url(target, &format!("{phone_number_id}/messages"));
        let req = self.request(target, reqwest::Method::POST, &url)?.json(body);
        self.call(req, true).await
    }

    /// `GET /{path}` (with its query) as `target`: Meta's answer.
    pub async fn get_json(&self, target: &Target<'_>, path: &str) -> Result<Value, GraphFailure> {
        let url = Self::url(target, path);
        self.call(self.request(target, reqwest::Method::GET, &url)?, false).await
    }

    /// `POST /{path}` with a JSON body as `target`: Meta's answer.
    pub async fn post_json(&self, target: &Target<'_>, path: &str, body: &Value) -> Result<Value, GraphFailure> {
        let url = Self::url(target, path);
        self.call(self.request(target, reqwest::Method::POST, &url)?.json(body), true).await
    }

    /// `DELETE /{path}` (with its query) as `target`: Meta's answer.
    pub async fn delete_json(&self, target: &Target<'_>, path: &str) -> Result<Value, GraphFailure> {
        let url = Self::url(target, path);
        self.call(self.request(target, reqwest::Method::DELETE, &url)?, true).await
    }

    /// `DELETE /{path}` with a JSON body as `target`: Meta's answer (some deletions name what
    /// they delete in the body).
    pub async fn delete_json_body(&self, target: &Target<'_>, path: &str, body: &Value) -> Result<Value, GraphFailure> {
        let url = Self::url(target, path);
        self.call(self.request(target, reqwest::Method::DELETE, &url)?.json(body), true).await
    }

    /// `POST /{path}` with a form (`application/x-www-form-urlencoded`) as `target`.
    pub async fn post_form(
        &self,
        target: &Target<'_>,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, GraphFailure> {
        let url = Self::url(target, path);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .request(target, reqwest::Method::POST, &url)?
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.call(req, true).await
    }

    /// `POST /{phone-number-id}/media`: a file uploaded for the number; Meta's media id.
    pub async fn upload_media(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
        mime_type: &str,
        filename: Option<&str>,
        bytes: bytes::Bytes,
    ) -> Result<String, GraphFailure> {
        let url = Self::url(target, &format!("{phone_number_id}/media"));
        let part = reqwest::multipart::Part::stream(bytes)
            .file_name(filename.unwrap_or("file").to_owned())
            .mime_str(mime_type)
            .map_err(|e| GraphFailure::Connect(format!("the file's type cannot be sent: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_owned())
            .part("file", part);
        // An upload that may have reached Meta is harmless to make again: its outcome never
        // needs to be known.
        let raw: Value = self.call(self.request(target, reqwest::Method::POST, &url)?.multipart(form), false).await?;
        raw.get("id")
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
            .ok_or_else(|| GraphFailure::Http {
                status: 200,
                reason: "Meta's answer to an upload has no media id".into(),
                retry_after: None,
            })
    }

    /// A GET of a public URL a user gave (no token), held to the address policy, its body read
    /// up to `max_bytes`: what wagate fetches on a user's behalf.
    pub async fn fetch_public(&self, url: &str, timeout: Duration, max_bytes: u64) -> Result<Fetched, GraphFailure> {
        let req = self.guarded.request(reqwest::Method::GET, url)?.timeout(timeout);
        let mut resp = req.send().await.map_err(|e| classify_transport(e, false))?;
        let status = resp.status();
        if !status.is_success() {
            let reason = unexpected(
                status,
                resp.headers().get(reqwest::header::CONTENT_TYPE),
                resp.content_length(),
                "the file",
            );
            return Err(GraphFailure::Http { status: status.as_u16(), reason, retry_after: None });
        }
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| GraphFailure::Connect(describe(e)))? {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                let reason = format!("the file is larger than {max_bytes} bytes");
                return Err(GraphFailure::Http { status: status.as_u16(), reason, retry_after: None });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes: body.into(), content_type })
    }

    /// Every page of a Graph list (`{"data": [...], "paging": {"next"}}`), at most `max_pages`.
    pub async fn get_all_pages(
        &self,
        target: &Target<'_>,
        path: &str,
        max_pages: usize,
    ) -> Result<Vec<Value>, GraphFailure> {
        let mut url = Self::url(target, path);
        let mut all = Vec::new();
        for _ in 0..max_pages {
            let page: Page<Value> = self.call(self.request(target, reqwest::Method::GET, &url)?, false).await?;
            all.extend(page.data);
            match page.paging.as_ref().and_then(|p| p.get("next")).and_then(Value::as_str) {
                Some(next) => url = without_token(next),
                None => break,
            }
        }
        Ok(all)
    }

    /// `GET /{waba-id}/phone_numbers`, every page.
    pub async fn phone_numbers(
        &self,
        target: &Target<'_>,
        waba_id: &str,
    ) -> Result<Vec<PhoneNumberInfo>, GraphFailure> {
        let mut url = Self::url(target, &format!("{waba_id}/phone_numbers"));
        let mut all = Vec::new();
        // A WABA has at most a few dozen numbers; the bound only guards against a paging loop.
        for _ in 0..50 {
            let req = self.request(target, reqwest::Method::GET, &url)?;
            let page: Page<PhoneNumberInfo> = self.call(req, false).await?;
            all.extend(page.data);
            match page.paging.as_ref().and_then(|p| p.get("next")).and_then(Value::as_str) {
                Some(next) => url = without_token(next),
                None => break,
            }
        }
        Ok(all)
    }

    /// `GET /{phone-number-id}?fields=throughput,whatsapp_business_manager_messaging_limit`: the
    /// number's throughput level and its portfolio's messaging limit tier, where Meta says them.
    pub async fn number_limits(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
    ) -> Result<NumberLimits, GraphFailure> {
        let url = Self::url(
            target,
            &format!("{phone_number_id}?fields=throughput,whatsapp_business_manager_messaging_limit"),
        );
        let raw: Value = self.call(self.request(target, reqwest::Method::GET, &url)?, false).await?;
        Ok(NumberLimits {
            throughput_level: raw.pointer("/throughput/level").and_then(Value::as_str).map(ThroughputLevel::parse),
            messaging_tier: raw
                .get("whatsapp_business_manager_messaging_limit")
                .and_then(Value::as_str)
                .and_then(MessagingTier::parse),
        })
    }

    /// `GET /{media-id}`: a fresh download URL (valid for five minutes) and what Meta says of
    /// the file. Without `phone_number_id`: Meta's docs tie that filter to the number a file was
    /// uploaded on, which a customer's file never was.
    pub async fn media_info(
        &self,
        target: &Target<'_>,
        media_id: &str,
        timeout: Duration,
    ) -> Result<MediaInfo, GraphFailure> {
        let url = Self::url(target, media_id);
        let req = self.request(target, reqwest::Method::GET, &url)?.timeout(timeout);
        let raw: Value = self.call(req, false).await?;
        let Some(url) = raw.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()) else {
            let reason = "the answer has no media URL".into();
            return Err(GraphFailure::Http { status: 200, reason, retry_after: None });
        };
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(MediaInfo {
            url: url.to_owned(),
            mime_type: text("mime_type"),
            sha256: text("sha256"),
            // A string in Meta's reference; a number would do as well.
            file_size: match raw.get("file_size") {
                Some(Value::String(s)) => s.parse().ok(),
                Some(v) => v.as_u64(),
                None => None,
            },
        })
    }

    /// `GET` of a media URL with the access token: the response, its body still to be read.
    /// Meta answers 404 for an expired URL; the caller asks for a fresh one.
    pub async fn media_download(
        &self,
        target: &Target<'_>,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, GraphFailure> {
        let req = self.request(target, reqwest::Method::GET, url)?.timeout(timeout);
        let resp = req.send().await.map_err(|e| classify_transport(e, false))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE);
        let reason = unexpected(status, content_type, resp.content_length(), "not the file");
        Err(GraphFailure::Http { status: status.as_u16(), reason, retry_after: None })
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, mutating: bool) -> Result<T, GraphFailure> {
        let resp = req.send().await.map_err(|e| classify_transport(e, mutating))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let bytes = resp.bytes().await.map_err(|e| {
            let e = describe(e);
            if mutating && status.is_success() {
                GraphFailure::Unknown(format!("reading Meta's answer failed: {e}"))
            } else {
                GraphFailure::Http { status: status.as_u16(), reason: e, retry_after }
            }
        })?;
        let unexpected = |what: &str| unexpected(status, content_type.as_ref(), Some(bytes.len() as u64), what);
        if status.is_success() {
            return parse_answer(&bytes).map_err(|e| {
                let reason = unexpected(match e.classify() {
                    serde_json::error::Category::Data => "JSON without the fields Meta sends",
                    _ => "not JSON",
                });
                if mutating {
                    GraphFailure::Unknown(format!("HTTP {status} from the Graph API: {reason}"))
                } else {
                    GraphFailure::Http { status: status.as_u16(), reason, retry_after }
                }
            });
        }
        match parse_answer::<Value>(&bytes)
            .and_then(|body| Ok((serde_json::from_value::<GraphErrorBody>(body.clone())?, body)))
        {
            Ok((parsed, body)) => Err(GraphFailure::Meta { status: status.as_u16(), error: parsed.error, body }),
            // A 5xx from something in between (a proxy, a load balancer) says nothing of
            // whether Meta got the request.
            Err(_) if mutating && status.is_server_error() => Err(GraphFailure::Unknown(format!(
                "HTTP {status} from the Graph API: {}",
                unexpected("not Meta's error object")
            ))),
            Err(_) => Err(GraphFailure::Http {
                status: status.as_u16(),
                reason: unexpected("not Meta's error object"),
                retry_after,
            }),
        }
    }
}

/// A file fetched from a URL: its bytes and the type the server gave.
pub struct Fetched {
    pub bytes: bytes::Bytes,
    pub content_type: Option<String>,
}

/// An answer of Meta's read so that all of it can be stored (see `wagate_domain::input`).
fn parse_answer<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut value: Value = input::parse_from_meta(bytes)?;
    input::bound_ids(&mut value);
    serde_json::from_value(value)
}

/// What `GET /{media-id}` says of a media file.
#[derive(Debug)]
pub struct MediaInfo {
    pub url: String,
    pub mime_type: Option<String>,
    /// Meta's SHA-256 of the file (hex from the media API, base64 in webhooks).
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

/// Errors are shown to API callers and logged: without the URL, which may carry a token.
fn classify_transport(e: reqwest::Error, mutating: bool) -> GraphFailure {
    if let Some(refused) = AddressRefused::of(&e) {
        return GraphFailure::Refused(refused.clone());
    }
    let connect = e.is_connect() || e.is_builder();
    let message = describe(e);
    if connect || !mutating { GraphFailure::Connect(message) } else { GraphFailure::Unknown(message) }
}

/// A transport error with its causes: reqwest's own text is only "error sending request",
/// the why (refused, timed out, reset, TLS) is in the chain below it. Without the URL, which
/// may carry a signed media link.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        // Some layers repeat their cause's text in their own.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Graph's paging URLs repeat the access token in the query; wagate sends it as a header.
fn without_token(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "access_token")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// What is wrong with an answer, from its status and headers alone: the body of an unexpected
/// answer may be anything its URL returns (an internal page, a credential) and is never repeated.
fn unexpected(
    status: StatusCode,
    content_type: Option<&reqwest::header::HeaderValue>,
    length: Option<u64>,
    what: &str,
) -> String {
    let what = if status.is_redirection() { "a redirect, not followed" } else { what };
    // The media type alone: parameters are the server's free text.
    let kind = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().chars().take(64).collect::<String>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "no content type".into());
    match length {
        Some(n) => format!("{what} ({kind}, {n} bytes)"),
        None => format!("{what} ({kind})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_urls_lose_their_token() {
        assert_eq!(
            without_token("https://graph.facebook.com/v23.0/1/phone_numbers?access_token=EAAG&after=QVF"),
            "https://graph.facebook.com/v23.0/1/phone_numbers?after=QVF"
        );
        assert_eq!(without_token("http://h/x?access_token=EAAG"), "http://h/x");
    }

    fn loopback_allowed() -> AddressPolicy {
        AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
    }

    fn target(base_url: &str) -> (String, String, Secret) {
        (base_url.to_owned(), "v23.0".to_owned(), Secret::new("EAAG".to_owned()))
    }

    /// What a proxy, an outage page or a hostile URL answers is described, never repeated: the
    /// errors reach API callers and stored messages.
    #[tokio::test]
    async fn unexpected_answers_are_described_not_echoed() {
        const PAGE: &str = "Content-Type: text/html; charset=secret-7d1e\r\nContent-Length: 25\r\nConnection: close\r\n\r\n<html>secret-7d1e</html>\n";
        let client = GraphClient::new(Duration::from_secs(5), loopback_allowed(), false);
        for (head, expected) in [
            (
                "HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/secret-7d1e\r\n",
                "a redirect, not followed (text/html, 25 bytes)",
            ),
            ("HTTP/1.1 200 OK\r\n", "not JSON (text/html, 25 bytes)"),
            ("HTTP/1.1 502 Bad Gateway\r\n", "not Meta's error object (text/html, 25 bytes)"),
        ] {
            let answer: &'static str = format!("{head}{PAGE}").leak();
            let (base_url, api_version, token) =
                target(&format!("http://{}", crate::outbound::answering(answer).await));
            let t = Target { base_url: &base_url, api_version: &api_version, token: &token, in_process_sandbox: false };
            let send = client.send_message(&t, "1", &serde_json::json!({"to": "1"})).await.unwrap_err().to_string();
            let read = client.phone_numbers(&t, "1").await.unwrap_err();
            // A 200 is the file itself.
            let media = client.media_download(&t, &format!("{base_url}/media"), Duration::from_secs(5)).await.err();
            for e in [Some(send), Some(read.to_string()), media.map(|e| e.to_string())].into_iter().flatten() {
                assert!(!e.contains("secret-7d1e"), "{head}: {e}");
            }
            assert!(read.to_string().ends_with(expected), "{head}: {read}");
        }
        let json = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 23\r\nConnection: close\r\n\r\n{\"token\":\"secret-7d1e\"}";
        let (base_url, api_version, token) = target(&format!("http://{}", crate::outbound::answering(json).await));
        let t = Target { base_url: &base_url, api_version: &api_version, token: &token, in_process_sandbox: false };
        let send = client.send_message(&t, "1", &serde_json::json!({"to": "1"})).await.unwrap_err().to_string();
        let read = client.mark_read(&t, "1", &serde_json::json!({})).await.unwrap_err().to_string();
        let info = client.media_info(&t, "1", Duration::from_secs(5)).await.unwrap_err().to_string();
        for (e, why) in [(send, "without the messages"), (read, "not {\"success\": true}"), (info, "no media URL")] {
            assert!(e.contains(why) && !e.contains("secret-7d1e"), "{e}");
        }
    }

    /// A read that fails says why: refused, or no answer in time.
    #[tokio::test]
    async fn transport_failures_name_their_cause() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused_url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        // Accepts, then never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("http://{}", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        let client = GraphClient::new(Duration::from_millis(300), loopback_allowed(), false);
        for (url, cause) in [(refused_url, "refused"), (silent_url, "timed out")] {
            let (base_url, api_version, token) = target(&url);
            let t = Target { base_url: &base_url, api_version: &api_version, token: &token, in_process_sandbox: false };
            match client.phone_numbers(&t, "102290129340398").await {
                Err(GraphFailure::Connect(message)) => {
                    assert!(message.to_lowercase().contains(cause), "{url}: {message}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        held.abort();
    }
}
