//! The standalone sandbox on a real port, as `wagate sandbox` serves it, with a webhook receiver
//! that records every delivery exactly as it arrived.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use wagate_sandbox::{Sandbox, SandboxConfig, Seed, StatusDelays};

pub const PATIENCE: Duration = Duration::from_secs(15);
pub const SEND_EXAMPLES: &str = include_str!("../../../../testdata/meta-send-examples.json");
pub const INVALID_SENDS: &str = include_str!("../../../../testdata/invalid-sends.json");
pub const TEMPLATES: &str = include_str!("../../../../testdata/meta-templates.json");

/// One POST the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub bytes: Vec<u8>,
    pub signature: Option<String>,
    pub json: Value,
}

/// A webhook receiver: answers 200, or 500 while `fail_next` lasts.
#[derive(Clone, Default)]
pub struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Every POST, refused ones too, in arrival order, with whether it was refused.
    attempts: Arc<Mutex<Vec<(Delivery, bool)>>>,
    fail_next: Arc<AtomicU32>,
    /// Attempts answered with 500.
    pub refused: Arc<AtomicU32>,
}

impl Receiver {
    pub async fn start() -> (Self, String) {
        let receiver = Self::default();
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            // Meta's verification request: the challenge back, as a receiver answers it.
            axum::routing::get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                q.get("hub.challenge").cloned().unwrap_or_default()
            })
            .post(move |headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let failing =
                        r.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let json = serde_json::from_slice(&body).expect("webhooks are JSON");
                    let delivery = Delivery { bytes: body.to_vec(), signature, json };
                    r.attempts.lock().unwrap().push((delivery.clone(), failing));
                    if failing {
                        r.refused.fetch_add(1, Ordering::SeqCst);
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    r.deliveries.lock().unwrap().push(delivery);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    /// Answers the next `n` deliveries with HTTP 500.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Every POST received, refused ones included, with whether it was refused.
    pub fn attempts(&self) -> Vec<(Delivery, bool)> {
        self.attempts.lock().unwrap().clone()
    }

    /// Every change delivered so far, as (field, value), in arrival order.
    pub fn changes(&self) -> Vec<(String, Value)> {
        self.deliveries()
            .iter()
            .flat_map(|d| d.json["entry"].as_array().cloned().unwrap_or_default())
            .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
            .map(|c| (c["field"].as_str().unwrap_or_default().to_owned(), c["value"].clone()))
            .collect()
    }

    /// The status entries delivered for `wamid`, in arrival order.
    pub fn statuses(&self, wamid: &str) -> Vec<Value> {
        self.changes()
            .into_iter()
            .filter(|(f, _)| f == "messages")
            .flat_map(|(_, v)| v["statuses"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["id"] == wamid)
            .collect()
    }

    /// Waits until `statuses(wamid)` holds `n` entries, and returns them.
    pub async fn wait_statuses(&self, wamid: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} statuses of {wamid}"), || async {
            let got = self.statuses(wamid);
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Waits for a change of `field` whose value satisfies `pick`.
    pub async fn wait_change(&self, field: &str, pick: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("a {field} webhook"), || async {
            self.changes().into_iter().find(|(f, v)| f == field && pick(v)).map(|(_, v)| v)
        })
        .await
    }
}

/// Polls `check` until it yields a value or `PATIENCE` runs out.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running standalone sandbox and its webhook receiver.
pub struct Harness {
    /// `http://127.0.0.1:PORT/sandbox`.
    pub url: String,
    pub http: reqwest::Client,
    pub seed: Seed,
    pub sandbox: Sandbox,
    pub hooks: Receiver,
}

pub struct Options {
    pub delays: StatusDelays,
    pub state_dir: Option<PathBuf>,
    pub seed: Option<Seed>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            delays: StatusDelays {
                sent: Duration::from_millis(20),
                delivered: Duration::from_millis(40),
                read: Duration::from_millis(60),
            },
            state_dir: None,
            seed: None,
        }
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let (hooks, hook_url) = Receiver::start().await;
        let sandbox = Sandbox::new(SandboxConfig {
            seed: options.seed.unwrap_or_else(|| Seed::generate(None, None, None)),
            webhook_url: Some(hook_url),
            delays: options.delays,
            state_dir: options.state_dir,
        });
        // `played` comes after `read`; keep it as quick as the rest.
        sandbox.patch_settings(&json!({"statuses": {"played_ms": 80}})).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sandbox", listener.local_addr().unwrap());
        let router = axum::Router::new().nest("/sandbox", sandbox.router());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, http: reqwest::Client::new(), seed: sandbox.seed(), sandbox, hooks }
    }

    /// The first phone number's id.
    pub fn number(&self) -> String {
        self.seed.phone_numbers[0].id.clone()
    }

    /// The first phone number's display number, digits only, as webhooks carry it.
    pub fn number_digits(&self) -> String {
        self.seed.phone_numbers[0].display_phone_number.chars().filter(char::is_ascii_digit).collect()
    }

    pub fn waba(&self) -> String {
        self.seed.waba_id.clone()
    }

    /// A Graph call with the access token; `path` follows the version (`{node}/messages`).
    pub async fn graph(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.graph_as(Some(&self.seed.access_token.clone()), method, path, body).await
    }

    pub async fn graph_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/v23.0/{path}", self.url);
        let mut req = self.http.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    /// Uploads a multipart form to the first number's `/media`, as Meta's upload takes it.
    pub async fn upload(&self, form: reqwest::multipart::Form) -> (StatusCode, Value) {
        let url = format!("{}/v23.0/{}/media", self.url, self.number());
        answer(self.http.post(url).bearer_auth(&self.seed.access_token).multipart(form)).await
    }

    /// A control or simulate call (`control/…`, `simulate/…`).
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    /// Sends `body` (Meta's form, `messaging_product` added) from the first number; the answer.
    pub async fn send(&self, body: Value) -> (StatusCode, Value) {
        let mut body = body;
        body["messaging_product"] = json!("whatsapp");
        self.graph(Method::POST, &format!("{}/messages", self.number()), Some(body)).await
    }

    /// Sends and expects a wamid.
    pub async fn send_ok(&self, body: Value) -> String {
        let (status, answer) = self.send(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["messages"][0]["id"].as_str().expect("a wamid").to_owned()
    }

    /// A customer writes text to the first number (opening the 24-hour window); its wamid.
    pub async fn customer_writes(&self, from: &str, text: &str) -> String {
        let body = json!({"phone_number_id": self.number(), "from": from, "message": {"type": "text", "text": {"body": text}}});
        let (status, answer) = self.control(Method::POST, "simulate/inbound", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["wamid"].as_str().unwrap().to_owned()
    }

    /// A new customer who has written `text` to the first number: one whose 24-hour window is open.
    pub async fn customer_who_wrote(&self, text: &str) -> String {
        let c = customer();
        self.customer_writes(&c, text).await;
        c
    }

    pub async fn patch_settings(&self, patch: Value) {
        let (status, body) = self.control(Method::PATCH, "control/settings", Some(patch)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates a template and approves it at once; its id.
    pub async fn approved_template(&self, definition: Value) -> String {
        let (status, created) =
            self.graph(Method::POST, &format!("{}/message_templates", self.waba()), Some(definition.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}: {created}", definition["name"]);
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .control(Method::PUT, &format!("control/templates/{id}/status"), Some(json!({"status": "APPROVED"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// What the documented send examples need: their templates (approved) and a group the
    /// customer is in. Returns the group id.
    pub async fn prepare_examples(&self, customer: &str) -> String {
        // The examples all go to one customer, more than the pair rate lets through at once.
        self.patch_settings(json!({"pair_rate": {"capacity": 1000}})).await;
        let templates: Vec<Value> = serde_json::from_str(TEMPLATES).unwrap();
        for t in templates {
            self.approved_template(t).await;
        }
        self.group_with(&[customer]).await
    }

    /// A group of the first number with these members; its id.
    pub async fn group_with(&self, members: &[&str]) -> String {
        let subject = format!("Group {}", members.join(","));
        let body = json!({"messaging_product": "whatsapp", "subject": subject});
        let (status, created) = self.graph(Method::POST, &format!("{}/groups", self.number()), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let (_, list) = self.graph(Method::GET, &format!("{}/groups?limit=1024", self.number()), None).await;
        let id = list["data"]["groups"].as_array().unwrap().iter().find(|g| g["subject"] == subject).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for m in members {
            let (status, body) =
                self.control(Method::POST, &format!("simulate/groups/{id}/join"), Some(json!({"wa_id": m}))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        id
    }

    /// What `control/messages` lists for the first number.
    pub async fn received(&self) -> Vec<Value> {
        let (status, body) =
            self.control(Method::GET, &format!("control/messages?phone_number_id={}", self.number()), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }
}

async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("the sandbox answers");
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, value)
}

/// A new customer number in the fictional 555-01xx range: no two calls in a process share one.
pub fn customer() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("1555018{:04}", NEXT.fetch_add(1, Ordering::Relaxed) % 10_000)
}

/// The documented send examples: (name, Meta body).
pub fn send_examples() -> Vec<(String, Value)> {
    let all: Vec<Value> = serde_json::from_str(SEND_EXAMPLES).unwrap();
    all.into_iter().map(|e| (e["name"].as_str().unwrap().to_owned(), e["body"].clone())).collect()
}

/// The documented body addressed to `customer`, or to `group` for group sends.
pub fn addressed(body: &Value, customer: &str, group: &str) -> Value {
    let mut body = body.clone();
    if body["recipient_type"] == "group" {
        body["to"] = json!(group);
    } else if body["to"].as_str().is_some_and(|to| to.starts_with('+')) {
        body["to"] = json!(customer);
    }
    body
}
