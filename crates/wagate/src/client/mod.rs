//! `wagate campaign …` and `wagate contacts …`: a command-line client of a running wagate's
//! HTTP API. Answers are printed for people, or as the server's JSON with `--json`; an error is
//! one `error: …` line and exit status 1.

pub mod campaign;
pub mod contacts;
mod events;
mod jobs;
mod progress;

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long a plain request may take, from connecting to the last byte of its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which wagate, as whom, and how to print.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The running wagate's base URL.
    #[arg(long, env = "WAGATE_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// An API key, sent as `Authorization: Bearer`.
    #[arg(long, env = "WAGATE_API_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Print the server's JSON answers instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Prints a client command's failure as `error: …` and exits with status 1.
pub fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// An error answer of the native API: `{"error": {"code", "message", "path"}}`.
#[derive(Debug)]
pub struct ServerError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub path: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.is_empty() => write!(f, "{} ({} at {path})", self.message, self.code),
            _ => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

impl std::error::Error for ServerError {}

/// A running wagate's API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<HeaderValue>,
    /// `--json`: print the server's answers as they are.
    pub json: bool,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = args.url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).with_context(|| format!("--url {base} is not a URL"))?;
        anyhow::ensure!(matches!(parsed.scheme(), "http" | "https"), "--url {base} must be an http:// or https:// URL");
        let key = args
            .key
            .as_deref()
            .map(|k| {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .context("--key has characters a header cannot carry")?;
                v.set_sensitive(true);
                anyhow::Ok(v)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("wagate-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base, key, json: args.json })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the key; no time limit (uploads and streams take as long as
    /// they take).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match &self.key {
            Some(key) => req.header(AUTHORIZATION, key.clone()),
            None => req,
        }
    }

    /// Sends `req` and reads its answer: the status and its JSON, or the server's error.
    pub async fn send(&self, req: RequestBuilder, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let resp = self.open(req, path).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(path, e))?;
        if text.is_empty() {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_str(&text).with_context(|| {
            format!("{} answered {status} with something that is not JSON: {}", self.url(path), snippet(&text))
        })?;
        Ok((status, value))
    }

    /// Sends `req`; a success's response, unread, or the server's error.
    pub async fn open(&self, req: RequestBuilder, path: &str) -> anyhow::Result<Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(path, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        match parsed.as_ref().and_then(|v| v.get("error")).filter(|e| e.is_object()) {
            Some(e) => Err(ServerError {
                status,
                code: e["code"].as_str().unwrap_or("unknown").to_owned(),
                message: e["message"].as_str().unwrap_or("(no message)").to_owned(),
                path: e["path"].as_str().map(str::to_owned),
            }
            .into()),
            None => Err(anyhow::anyhow!("{} answered {status}: {}", self.url(path), snippet(&text))),
        }
    }

    fn unreachable(&self, path: &str, e: reqwest::Error) -> anyhow::Error {
        anyhow::Error::new(e.without_url()).context(format!("cannot reach {}", self.url(path)))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.request(Method::GET, path).timeout(REQUEST_TIMEOUT);
        Ok(self.send(req, path).await?.1)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self.request(Method::POST, path).json(body).timeout(REQUEST_TIMEOUT);
        Ok(self.send(req, path).await?.1)
    }
}

/// Reads an answer as `T`, naming what it was when it is not.
pub fn parse<T: DeserializeOwned>(what: &str, value: &Value) -> anyhow::Result<T> {
    T::deserialize(value).with_context(|| format!("the server's answer is not {what}: {}", snippet(&value.to_string())))
}

/// Prints a JSON answer for `--json`.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
}

/// `s` percent-encoded for a path segment or a query value.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The start of a long text, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_names_its_rule_and_field() {
        let e = ServerError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "rfc3339".into(),
            message: "'soon' is not an RFC 3339 time".into(),
            path: Some("send_at".into()),
        };
        assert_eq!(e.to_string(), "'soon' is not an RFC 3339 time (rfc3339 at send_at)");
        let e = ServerError { path: None, code: "not_found".into(), message: "no such campaign".into(), ..e };
        assert_eq!(e.to_string(), "no such campaign (not_found)");
    }

    #[test]
    fn ids_cannot_leave_their_path_segment() {
        assert_eq!(segment("cmp_01ABC"), "cmp_01ABC");
        assert_eq!(segment("../x?y=1"), "..%2Fx%3Fy%3D1");
    }
}
