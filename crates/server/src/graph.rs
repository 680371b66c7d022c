//! The Graph API client: a configurable base URL and version, a bearer token, and Meta's success
//! and error bodies parsed into types. Failures are classified by what is known of the outcome.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wagate_domain::input;
use wagate_domain::meta::{GraphError, GraphErrorBody, Page, PhoneNumberInfo, SendResponse};

use wagate_domain::secret::Secret;
use wagate_storage::Account;

/// Where and as whom to call: an account's base URL, API version and token.
pub struct Target<'a> {
    pub base_url: &'a str,
    pub api_version: &'a str,
    pub token: &'a Secret,
}

impl<'a> From<&'a Account> for Target<'a> {
    fn from(a: &'a Account) -> Self {
        Self { base_url: &a.graph_base_url, api_version: &a.api_version, token: &a.access_token }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphFailure {
    /// Meta answered with its error object (`body` is that answer as it came).
    #[error("Meta error {}: {}", .error.code, .error.message)]
    Meta { status: u16, error: GraphError, body: Value },
    /// A non-success status whose body is not Meta's error object (a proxy, an outage page).
    #[error("HTTP {status} from the Graph API: {body}")]
    Http { status: u16, body: String, retry_after: Option<Duration> },
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
    pub throughput_level: Option<String>,
    pub messaging_tier: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
}

impl GraphClient {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Self { http }
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
            .map_err(|e| GraphFailure::Unknown(format!("unexpected success body ({e}): {raw}")))?;
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
            Err(GraphFailure::Unknown(format!("unexpected answer to a read receipt: {raw}")))
        }
    }

    async fn post_messages(
        &self,
        target: &Target<'_>,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<Value, GraphFailure> {
        let req = self
            .http
            .post(Self::url(target, &format!("{phone_number_id}/messages")))
            .bearer_auth(target.token.expose())
            .json(body);
        self.call(req, true).await
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
            let req = self.http.get(&url).bearer_auth(target.token.expose());
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
        let raw: Value = self.call(self.http.get(url).bearer_auth(target.token.expose()), false).await?;
        Ok(NumberLimits {
            throughput_level: raw.pointer("/throughput/level").and_then(Value::as_str).map(str::to_owned),
            messaging_tier: raw
                .get("whatsapp_business_manager_messaging_limit")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    // Inbound media (wagate issue 6).
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
        let req = self.http.get(url).bearer_auth(target.token.expose()).timeout(timeout);
        let raw: Value = self.call(req, false).await?;
        let Some(url) = raw.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()) else {
            return Err(GraphFailure::Http { status: 200, body: format!("no media URL in {raw}"), retry_after: None });
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
        let req = self.http.get(url).bearer_auth(target.token.expose()).timeout(timeout);
        let resp = req.send().await.map_err(|e| classify_transport(e, false))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map(|b| snippet(&b)).unwrap_or_default();
        Err(GraphFailure::Http { status: status.as_u16(), body, retry_after: None })
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
        let bytes = resp.bytes().await.map_err(|e| {
            let e = describe(e);
            if mutating && status.is_success() {
                GraphFailure::Unknown(format!("reading Meta's answer failed: {e}"))
            } else {
                GraphFailure::Http { status: status.as_u16(), body: e, retry_after }
            }
        })?;
        if status.is_success() {
            return parse_answer(&bytes).map_err(|e| {
                let message = format!("unexpected success body ({e}): {}", snippet(&bytes));
                if mutating {
                    GraphFailure::Unknown(message)
                } else {
                    GraphFailure::Http { status: status.as_u16(), body: message, retry_after }
                }
            });
        }
        match parse_answer::<Value>(&bytes)
            .and_then(|body| Ok((serde_json::from_value::<GraphErrorBody>(body.clone())?, body)))
        {
            Ok((parsed, body)) => Err(GraphFailure::Meta { status: status.as_u16(), error: parsed.error, body }),
            // A 5xx from something in between (a proxy, a load balancer) says nothing of
            // whether Meta got the request.
            Err(_) if mutating && status.is_server_error() => {
                Err(GraphFailure::Unknown(format!("HTTP {status} from the Graph API: {}", snippet(&bytes))))
            }
            Err(_) => Err(GraphFailure::Http { status: status.as_u16(), body: snippet(&bytes), retry_after }),
        }
    }
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

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(300).collect()
}

/// True for statuses that mean "later" when the body says nothing more.
pub fn is_transient_status(status: u16) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS.as_u16() || (500..600).contains(&status)
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

    fn target(base_url: &str) -> (String, String, Secret) {
        (base_url.to_owned(), "v23.0".to_owned(), Secret::new("EAAG".to_owned()))
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
        let client = GraphClient::new(Duration::from_millis(300));
        for (url, cause) in [(refused_url, "refused"), (silent_url, "timed out")] {
            let (base_url, api_version, token) = target(&url);
            let t = Target { base_url: &base_url, api_version: &api_version, token: &token };
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
