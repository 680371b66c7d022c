//! Test harness: the real application on 127.0.0.1:0 with the real sandbox and a real database,
//! the real binary as a child process, and polling with deadlines.

use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagate_domain::id::MessageId;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_sandbox::{Sandbox, SandboxConfig, Seed, StatusDelays};
use wagate_server::config::LogFormat;
use wagate_server::state::AppState;
use wagate_server::{Application, Config, telemetry};
use wagate_storage::testing::{self, TestDatabase};
use wagate_storage::{Backend, Dispatch, Enqueued, Leased, Store};

pub const PATIENCE: Duration = Duration::from_secs(20);

/// Config for tests: port 0, the test database, fast sandbox statuses and polls.
pub fn test_config(db: &TestDatabase, api_key: &str) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: db.data_dir(),
        database_url: Some(db.url().to_owned()),
        bootstrap_api_key: Some(Secret::new(api_key)),
        shutdown_grace_secs: 10,
        ..Config::default()
    };
    c.sandbox.sent_delay_ms = 30;
    c.sandbox.delivered_delay_ms = 60;
    c.sandbox.read_delay_ms = 90;
    c.dispatcher.poll_interval_ms = 50;
    c.dispatcher.graph_timeout_ms = 5_000;
    c.dispatcher.lease_margin_ms = 2_000;
    c.dispatcher.number_lease_ms = 3_000;
    c.dispatcher.retry_base_ms = 100;
    c.dispatcher.retry_max_ms = 1_000;
    c.dispatcher.pair_retry_base_ms = 50;
    // Tests send Meta's 48 documented examples to one customer; the pair-rate tests set their own.
    c.dispatcher.pair_rate_capacity = 1_000;
    c.inbound.poll_interval_ms = 50;
    // Standalone sandboxes and test receivers listen on loopback.
    c.network.allow_private = LOOPBACK.split(',').map(|r| r.parse().unwrap()).collect();
    c
}

/// `WAGATE_ALLOW_PRIVATE` for a `wagate serve` that connects to a standalone sandbox on loopback.
pub const LOOPBACK: &str = "127.0.0.0/8,::1/128";

pub struct TestApp {
    pub url: String,
    pub api_key: String,
    pub http: reqwest::Client,
    pub state: AppState,
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    pub db: TestDatabase,
}

impl TestApp {
    /// The application on `backend`, started; `None` when that backend is not available here.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let app = Self::build(backend, tweak).await?;
        Some(app.started())
    }

    /// Built (schema, keys and sandbox account in place) but not yet running its workers.
    pub async fn build(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<BuiltApp> {
        telemetry::init(LogFormat::Text, "warn");
        let db = TestDatabase::new(backend).await?;
        let api_key = format!("test-key-{}", wagate_domain::id::new_id("k"));
        let mut config = test_config(&db, &api_key);
        tweak(&mut config);
        let app = Application::build(config).await.expect("application builds");
        Some(BuiltApp { app, db, api_key })
    }

    pub fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        request(&self.http, method, &format!("{}{path}", self.url), Some(&self.api_key), body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Posts a CSV file as the body (an import).
    pub async fn post_csv(&self, path: &str, csv: String) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.api_key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The job once it has ended (completed, failed or canceled).
    pub async fn job_ended(&self, id: &str) -> Value {
        eventually("the job to end", || async {
            let (status, job) = self.get(&format!("/v1/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            matches!(job["state"].as_str(), Some("completed" | "failed" | "canceled")).then_some(job)
        })
        .await
    }

    /// A customer writes to `phone_number_id` through the built-in sandbox, opening the 24-hour
    /// window; returns once wagate has stored the message (its wamid).
    pub async fn customer_writes(&self, phone_number_id: &str, customer: &str, text: &str) -> String {
        let sandbox = format!("{}/sandbox", self.url);
        let wamid = simulate_inbound(&self.http, &sandbox, Some(&self.api_key), phone_number_id, customer, text).await;
        eventually("the customer's message to be stored", || async {
            self.store().find_message_by_wamid(&wamid).await.unwrap().map(|_| ())
        })
        .await;
        wamid
    }

    /// The id of the contact a customer who wrote became (`ct_…`).
    pub async fn contact_of(&self, customer: &str) -> String {
        let (status, found) = self.get(&format!("/v1/contacts?q={}", customer.replace('+', "%2B"))).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        found["data"][0]["id"].as_str().unwrap_or_else(|| panic!("{customer} is a contact: {found}")).to_owned()
    }

    /// The documented examples' templates and group, in the built-in sandbox.
    pub async fn prepare_examples(&self, phone_number_id: &str, customer: &str) -> String {
        prepare_examples(&self.http, &format!("{}/sandbox", self.url), Some(&self.api_key), phone_number_id, customer)
            .await
    }

    /// The seeded sandbox's phone numbers (ids).
    pub async fn sandbox_numbers(&self) -> Vec<String> {
        let (status, body) = self.get("/v1/phone-numbers").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["mode"] == "sandbox")
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Connects a sandbox running on its own (at `sandbox_url`) as a live account; its id and
    /// its phone-number ids.
    pub async fn connect_sandbox(&self, sandbox_url: &str) -> (String, Vec<String>) {
        let (status, accounts) =
            request(&self.http, Method::GET, &format!("{sandbox_url}/control/accounts"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{accounts}");
        let a = &accounts["data"][0];
        let body = json!({
            "name": "standalone sandbox",
            "graph_base_url": sandbox_url,
            "access_token": a["access_token"],
            "waba_id": a["waba_id"],
            "app_secret": a["app_secret"],
            "verify_token": a["verify_token"],
        });
        let (status, account) = self.post("/v1/accounts", body).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        let numbers =
            account["phone_numbers"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect();
        (account["id"].as_str().unwrap().to_owned(), numbers)
    }

    /// Another instance of the application on the same database, started.
    pub async fn another_instance(&self, tweak: impl FnOnce(&mut Config)) -> Instance {
        let mut config = test_config(&self.db, &self.api_key);
        tweak(&mut config);
        let app = Application::build(config).await.expect("a second instance builds");
        let url = format!("http://{}", app.local_addr());
        let cancel = app.shutdown_token();
        let state = app.state().clone();
        Instance { url, cancel, task: tokio::spawn(app.run()), state }
    }

    /// Stops the application as SIGTERM would, and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("app task").expect("app stops cleanly");
    }

    /// Stops the application and hands back its database and API key, for the test to start
    /// it again its own way.
    pub async fn stop_keeping_database(self) -> (TestDatabase, String) {
        let TestApp { api_key, cancel, task, db, .. } = self;
        cancel.cancel();
        task.await.expect("app task").expect("app stops cleanly");
        (db, api_key)
    }

    /// Stops the application and starts a new one on the same database.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (db, api_key) = self.stop_keeping_database().await;
        let mut config = test_config(&db, &api_key);
        tweak(&mut config);
        let app = Application::build(config).await.expect("application rebuilds");
        BuiltApp { app, db, api_key }.started()
    }
}

/// A further instance on a [`TestApp`]'s database.
pub struct Instance {
    pub url: String,
    pub state: AppState,
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("instance task").expect("instance stops cleanly");
    }
}

pub struct BuiltApp {
    pub app: Application,
    pub db: TestDatabase,
    pub api_key: String,
}

impl BuiltApp {
    pub fn started(self) -> TestApp {
        let url = format!("http://{}", self.app.local_addr());
        let state = self.app.state().clone();
        let cancel = self.app.shutdown_token();
        let task = tokio::spawn(self.app.run());
        TestApp { url, api_key: self.api_key, http: reqwest::Client::new(), state, cancel, task, db: self.db }
    }
}

pub async fn request(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    api_key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, value)
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
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {PATIENCE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A customer writes first (opening the 24-hour window), as every send test does.
pub async fn simulate_inbound(
    http: &reqwest::Client,
    sandbox_url: &str,
    api_key: Option<&str>,
    phone_number_id: &str,
    from: &str,
    text: &str,
) -> String {
    let body = json!({
        "phone_number_id": phone_number_id,
        "from": from,
        "name": "Ana Customer",
        "message": {"type": "text", "text": {"body": text}},
    });
    let (status, resp) =
        request(http, Method::POST, &format!("{sandbox_url}/simulate/inbound"), api_key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    resp["wamid"].as_str().expect("simulate answers a wamid").to_owned()
}

const TEMPLATES: &str = include_str!("../../../../testdata/meta-templates.json");

/// What the documented send examples need in a sandbox: their templates, created through the
/// template API and approved, and a group of `phone_number_id` that `customer` has joined.
/// Returns the group's id.
pub async fn prepare_examples(
    http: &reqwest::Client,
    sandbox_url: &str,
    api_key: Option<&str>,
    phone_number_id: &str,
    customer: &str,
) -> String {
    let (status, accounts) =
        request(http, Method::GET, &format!("{sandbox_url}/control/accounts"), api_key, None).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let business = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["phone_numbers"].as_array().unwrap().iter().any(|n| n["id"] == phone_number_id))
        .expect("the number is the sandbox's")
        .clone();
    let token = business["access_token"].as_str().unwrap();
    // The examples all go to one customer, more than Meta's pair rate lets through at once.
    let burst = json!({"pair_rate": {"capacity": 1000}});
    let (status, body) =
        request(http, Method::PATCH, &format!("{sandbox_url}/control/settings"), api_key, Some(burst)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let graph = |path: String| format!("{sandbox_url}/v23.0/{path}");
    let templates: Vec<Value> = serde_json::from_str(TEMPLATES).unwrap();
    for t in templates {
        let url = graph(format!("{}/message_templates", business["waba_id"].as_str().unwrap()));
        let (status, created) = request(http, Method::POST, &url, Some(token), Some(t.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}: {created}", t["name"]);
        let url = format!("{sandbox_url}/control/templates/{}/status", created["id"].as_str().unwrap());
        let (status, body) = request(http, Method::PUT, &url, api_key, Some(json!({"status": "APPROVED"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let subject = format!("Examples {}", customer);
    let group = json!({"messaging_product": "whatsapp", "subject": subject});
    let (status, body) =
        request(http, Method::POST, &graph(format!("{phone_number_id}/groups")), Some(token), Some(group)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, list) =
        request(http, Method::GET, &graph(format!("{phone_number_id}/groups?limit=1024")), Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let id = list["data"]["groups"].as_array().unwrap().iter().find(|g| g["subject"] == subject).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{sandbox_url}/simulate/groups/{id}/join");
    let (status, body) = request(http, Method::POST, &url, api_key, Some(json!({"wa_id": customer}))).await;
    assert_eq!((status, &body["joined"]), (StatusCode::OK, &json!(true)), "{body}");
    id
}

/// What the sandbox's messages endpoint received, filtered to one recipient.
pub async fn sandbox_received(
    http: &reqwest::Client,
    sandbox_url: &str,
    api_key: Option<&str>,
    to: &str,
) -> Vec<Value> {
    let (status, body) = request(http, Method::GET, &format!("{sandbox_url}/control/messages"), api_key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().iter().filter(|m| m["body"]["to"] == to).cloned().collect()
}

/// A new E.164 number in the fictional 555-01xx range: no two calls in a process share one.
pub fn customer() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("+1555017{:04}", NEXT.fetch_add(1, Ordering::Relaxed) % 10_000)
}

/// Polls a message until `done` holds for its JSON.
pub async fn wait_for_message(
    app_http: &reqwest::Client,
    url: &str,
    key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, || async {
        let (status, body) = request(app_http, Method::GET, &format!("{url}/v1/messages/{id}"), Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        done(&body).then_some(body)
    })
    .await
}

/// A sandbox of its own, as `wagate sandbox` runs it, posting webhooks to `webhook_url`.
pub async fn spawn_sandbox(webhook_url: &str) -> (String, Seed) {
    let webhook_url = webhook_url.to_owned();
    let (ready, started) = tokio::sync::oneshot::channel();
    // On a runtime of its own, as Meta is another machine: the times it stamps on what it
    // receives are not held back by wagate's load on the test's runtime. It serves until the
    // test process ends.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let sandbox = Sandbox::new(SandboxConfig {
                seed: Seed::generate(None, None, None),
                webhook_url: Some(webhook_url),
                delays: StatusDelays {
                    sent: Duration::from_millis(30),
                    delivered: Duration::from_millis(60),
                    read: Duration::from_millis(90),
                },
                state_dir: None,
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/sandbox", listener.local_addr().unwrap());
            let _ = ready.send((url, sandbox.seed()));
            let router = axum::Router::new().nest("/sandbox", sandbox.router());
            axum::serve(listener, router).await.unwrap();
        });
    });
    started.await.expect("the sandbox starts")
}

/// The number's throughput, at the sandbox (Meta) and in wagate alike.
pub async fn set_throughput(app: &TestApp, sandbox: &str, phone: &str, messages_per_second: u32) {
    let limit = json!({"messages_per_second": messages_per_second});
    let url = format!("{sandbox}/control/phone-numbers/{phone}/throughput");
    let (status, body) = request(&app.http, Method::PUT, &url, Some(&app.api_key), Some(limit.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.request(Method::PATCH, &format!("/v1/phone-numbers/{phone}"), Some(limit)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Queues a text straight into storage, bypassing the API, to stage states the API cannot reach
/// on purpose (what a crashed process left behind).
pub async fn enqueue_direct(store: &dyn Store, phone_number_id: &str, recipient: &str, body: &str) -> MessageId {
    let number = store.get_phone_number(phone_number_id).await.unwrap().expect("a connected number");
    let message = testing::send_now(&number, recipient, "text", json!({"text": {"body": body}}));
    let id = message.id.clone();
    let stored = store.enqueue_message(message).await.unwrap();
    assert_eq!(stored, Enqueued::Stored);
    id
}

/// The `wagate` binary cargo built for these tests, as a child process.
pub struct Process {
    pub child: Child,
    /// The URL the process printed on its first line.
    pub url: String,
}

impl Process {
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(env!("CARGO_BIN_EXE_wagate"), args, env).await
    }

    /// `program` with `args`, which runs the binary in the end (a shell setting limits first).
    pub async fn start_command(program: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        cmd.env_remove("WAGATE_DATABASE_URL").env_remove("WAGATE_CONFIG").env_remove("WAGATE_SECRET_KEY");
        cmd.env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the wagate binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the process prints its address in time")
            .unwrap()
            .expect("the process prints its address");
        let url = line.split_whitespace().last().unwrap().to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url }
    }

    /// SIGKILL: gone at once, nothing cleaned up.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("the process is killed");
    }

    /// SIGTERM, then the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().expect("running") as i32;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(PATIENCE, self.child.wait()).await.expect("exits after SIGTERM").unwrap();
        exit.code()
    }
}

/// `wagate sandbox` on a free port with quick status webhooks, posting to `webhook_url` if given.
pub async fn standalone_sandbox(webhook_url: Option<&str>) -> Process {
    let mut args = vec!["sandbox", "--listen", "127.0.0.1:0"];
    args.extend(["--sent-delay-ms", "30", "--delivered-delay-ms", "60", "--read-delay-ms", "90"]);
    if let Some(url) = webhook_url {
        args.extend(["--webhook-url", url]);
    }
    Process::start(&args, &[]).await
}

/// Runs the binary to completion and returns its stdout.
pub async fn run_binary(args: &[&str]) -> String {
    let out = run_binary_with(args, &[]).await;
    assert!(out.status.success(), "wagate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary to completion with these environment variables, whatever its outcome.
pub async fn run_binary_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wagate"));
    cmd.args(args).kill_on_drop(true);
    cmd.env_remove("WAGATE_DATABASE_URL").env_remove("WAGATE_CONFIG").env_remove("WAGATE_SECRET_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(PATIENCE, cmd.output()).await.expect("the command ends in time").unwrap()
}

/// `wagate serve` (the binary) on port 0, on the test database, with the configuration file
/// `config` and the environment `env`.
pub async fn serve_binary(db: &TestDatabase, config: &std::path::Path, env: &[(&str, &str)]) -> Process {
    let data_dir = db.data_dir();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--database-url",
        db.url(),
        "--config",
        config.to_str().unwrap(),
    ];
    Process::start(&args, env).await
}

/// The test database opened as `wagate serve` opens it, with the key it uses.
pub async fn open_store(db: &TestDatabase) -> std::sync::Arc<dyn Store> {
    wagate_server::database::open(&test_config(db, "")).await.expect("the database opens")
}

/// The tests that count what reached the sandbox within one second, against a bound a single
/// message over which fails them: each runs alone in this binary, so that the other tests'
/// load on the machine does not hold back a burst's first sends and crowd the second after.
const RUNS_ALONE: &[&str] =
    &["a_burst_to_500_recipients_keeps_to_the_numbers_throughput", "two_instances_on_one_database_keep_to_one_limit"];

static TURNS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held for a test's whole run: shared by most tests, exclusive for [`RUNS_ALONE`]'s.
pub async fn take_turn(test: &str) -> Box<dyn Send> {
    if RUNS_ALONE.contains(&test) { Box::new(TURNS.write().await) } else { Box::new(TURNS.read().await) }
}

/// Generates one test per backend from `async fn name(backend: Backend)`.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = crate::support::take_turn(stringify!($name)).await;
                    Box::pin(super::$name(wagate_storage::Backend::Sqlite)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = crate::support::take_turn(stringify!($name)).await;
                    Box::pin(super::$name(wagate_storage::Backend::Postgres)).await;
                }
            )*
        }
    };
}
pub(crate) use on_each_backend;

/// The in-process sandbox's account, whose app secret signs test webhooks.
pub struct SandboxAccount {
    pub waba_id: String,
    pub app_secret: String,
    pub verify_token: String,
    pub access_token: String,
    pub phone_number_id: String,
}

pub async fn sandbox_account(app: &TestApp) -> SandboxAccount {
    let (status, body) = app.get("/sandbox/control/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = &body["data"][0];
    SandboxAccount {
        waba_id: a["waba_id"].as_str().unwrap().into(),
        app_secret: a["app_secret"].as_str().unwrap().into(),
        verify_token: a["verify_token"].as_str().unwrap().into(),
        access_token: a["access_token"].as_str().unwrap().into(),
        phone_number_id: a["phone_numbers"][0]["id"].as_str().unwrap().into(),
    }
}

/// Posts a body to the webhook receiver with the signature header given (if any).
pub async fn post_webhook(app: &TestApp, body: Vec<u8>, signature: Option<String>) -> StatusCode {
    let mut req =
        app.http.post(format!("{}/webhooks/meta", app.url)).header("content-type", "application/json").body(body);
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    req.send().await.unwrap().status()
}

/// Signs `body` with the sandbox app's secret, as Meta would, and posts it: Meta's 200 expected.
pub async fn post_signed(app: &TestApp, account: &SandboxAccount, body: Vec<u8>) {
    let sig = wagate_domain::signature::sign(&account.app_secret, &body);
    assert_eq!(post_webhook(app, body, Some(sig)).await, StatusCode::OK);
}

/// Waits until every stored webhook delivery has been processed.
pub async fn all_processed(app: &TestApp) {
    eventually("every delivery processed", || async {
        (app.store().deliveries().pending().await.unwrap() == 0).then_some(())
    })
    .await;
}

/// A message the app believes it sent, with a wamid of the test's choosing; the dispatcher is
/// kept out of it by holding the outbox lease.
pub async fn claimed_message(store: &dyn Store, phone_number_id: &str) -> Leased<Dispatch> {
    enqueue_direct(store, phone_number_id, "+15550171234", "hi").await;
    let now = Timestamp::now();
    let mut claimed = store.outbox().claim(now, now.plus(std::time::Duration::from_secs(600)), 1).await.unwrap();
    claimed.pop().expect("the message is claimable")
}

/// A listener on loopback that answers every request with one canned answer (an HTTP/1.1 status
/// line's code and reason, extra header lines, a body) and counts the requests it got.
pub struct Canned {
    pub url: String,
    hits: std::sync::Arc<AtomicU32>,
}

impl Canned {
    pub async fn start(status: &str, headers: &str, body: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let hits = std::sync::Arc::new(AtomicU32::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (answer, counted) = (answer.clone(), counted.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { url, hits }
    }

    /// Requests received so far.
    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}
