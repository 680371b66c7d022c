//! `wagate bench`: the real application in-process, with the in-process sandbox and the
//! dispatcher as in production, loaded by a minimal HTTP/1.1 keep-alive client. First
//! `GET /healthz` (the ceiling of the HTTP stack), then `POST /v1/messages` (accepted sends per
//! second and their latency), then `POST /webhooks/meta` (signed deliveries verified and stored
//! per second, and the time to their 200), on SQLite and/or a throw-away PostgreSQL database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use wagate_domain::id::new_id;
use wagate_domain::secret::Secret;
use wagate_domain::signature;
use wagate_server::config::{LogFormat, SandboxSettings};
use wagate_server::{Application, Config, telemetry};
use wagate_storage::Store;

/// Sends cycle over this many recipients, +1 555 010 0000 to +1 555 010 9999 (fictional numbers).
const RECIPIENTS: usize = 10_000;
const RECIPIENT_PREFIX: &str = "+155501";
/// Digits after the prefix; the only bytes of a send request that change between requests.
const RECIPIENT_DIGITS: usize = 5;
/// Each webhook delivery carries a message with its own wamid, `wamid.BENCH` and these digits.
const WAMID_DIGITS: usize = 12;
/// The sandbox app's secret in the benchmark, which signs its webhook deliveries.
const APP_SECRET: &str = "bench-app-secret";

#[derive(Args)]
pub struct BenchArgs {
    /// Storage backend(s) to measure, one after the other.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// PostgreSQL server on which a fresh database wagate_bench_<random> is created, then dropped.
    #[arg(
        long,
        env = "WAGATE_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test",
        hide_env_values = true
    )]
    database_url: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Seconds measured, per phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    duration_secs: u64,
    /// Seconds of load before each phase's measurement, not counted.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Print one JSON object with all figures instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "warn");
    let backends = match args.backend {
        BackendChoice::Sqlite => vec![Backend::Sqlite],
        BackendChoice::Postgres => vec![Backend::Postgres],
        BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let mut reports = Vec::new();
    for backend in backends {
        reports.push(bench_backend(backend, &args).await.with_context(|| format!("benchmarking {}", backend.name()))?);
    }
    if args.json {
        println!("{}", to_json(&args, &reports));
    } else {
        print_table(&args, &reports);
    }
    Ok(())
}

/// One backend: a fresh data directory (and database), the application, both phases, clean-up.
async fn bench_backend(backend: Backend, args: &BenchArgs) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ScratchDatabase::create(&args.database_url).await?),
    };
    let report = bench_app(backend, args, dir.path(), database.as_ref().map(|d| d.url.as_str())).await;
    if let Some(database) = database {
        database.drop_database().await;
    }
    report
}

async fn bench_app(
    backend: Backend,
    args: &BenchArgs,
    dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Report> {
    let api_key = new_id("bench-key");
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.join("data"),
        database_url: database_url.map(str::to_owned),
        log_level: "warn".into(),
        bootstrap_api_key: Some(Secret::new(api_key.clone())),
        sandbox: SandboxSettings { app_secret: Some(Secret::new(APP_SECRET.to_owned())), ..SandboxSettings::default() },
        ..Config::default()
    };
    let app = Application::build(config).await.context("the application did not start")?;
    let addr = app.local_addr();
    let cancel = app.shutdown_token();
    let store = app.state().store.clone();
    let server = tokio::spawn(app.run());
    let measured = tokio::select! {
        r = measure(backend, addr, &api_key, args, store.as_ref()) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    cancel.cancel();
    let stopped = server.await.context("the application panicked")?.context("the application did not stop cleanly");
    let report = measured?;
    stopped?;
    Ok(report)
}

async fn measure(
    backend: Backend,
    addr: SocketAddr,
    api_key: &str,
    args: &BenchArgs,
    store: &dyn Store,
) -> anyhow::Result<Report> {
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let number = first_sandbox_number(&http, &base, api_key).await?;
    let sends = Workload::sends(addr, api_key, &number.id)?;
    let webhooks = Workload::webhooks(addr, &number)?;
    // A refused request would make the whole run a measurement of error answers: fail at once.
    check_one(&http, &base, &sends).await?;
    check_one(&http, &base, &webhooks).await?;

    let plan = Plan {
        connections: args.connections as usize,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
    };
    let phase = |what: &str| {
        eprintln!(
            "{}: {what}, {} connections, {} s warm-up + {} s measured",
            backend.name(),
            plan.connections,
            args.warmup_secs,
            args.duration_secs
        )
    };
    // Each phase's figures as soon as it ends: the drain after the last can take minutes.
    let done = |phase: &Phase| {
        let tally = &phase.tally;
        eprintln!(
            "{}: {:.0}/s, p50 {} ms, p99 {} ms, server CPU {} µs/request",
            backend.name(),
            tally.per_sec(plan.duration),
            ms(tally.percentile_ms(50.0)),
            ms(tally.percentile_ms(99.0)),
            server_us(phase),
        )
    };
    phase("GET /healthz");
    let healthz = load(addr, Workload::healthz(addr), plan).await?;
    done(&healthz);
    phase("POST /v1/messages");
    let sends = load(addr, sends, plan).await?;
    done(&sends);
    phase("POST /webhooks/meta");
    let webhooks = load(addr, webhooks, plan).await?;
    done(&webhooks);
    eprintln!("{}: waiting for the webhook processor to work through the backlog", backend.name());
    // The sends still queued would keep adding their statuses to the backlog: the number's
    // dispatch slows to 1/s first, so the drain measures the processor alone.
    let slowed = http
        .patch(format!("{base}/v1/phone-numbers/{}", number.id))
        .bearer_auth(api_key)
        .json(&json!({"messages_per_second": 1}))
        .send()
        .await?;
    ensure!(slowed.status().is_success(), "slowing the number's dispatch answered {}", slowed.status());
    let processing = drain(store).await?;
    Ok(Report { backend, duration: plan.duration, healthz, sends, webhooks, processing })
}

/// The webhook deliveries stored but not yet processed when the load stopped, and how long the
/// processor took to work through them with nothing else to do (dispatch slowed to 1/s).
struct Drain {
    left: i64,
    took: Duration,
}

impl Drain {
    fn per_sec(&self) -> Option<f64> {
        (self.left > 0).then(|| self.left as f64 / self.took.as_secs_f64())
    }
}

async fn drain(store: &dyn Store) -> anyhow::Result<Drain> {
    const PATIENCE: Duration = Duration::from_secs(600);
    let left = store.deliveries().pending().await?;
    let started = Instant::now();
    while store.deliveries().pending().await? > 0 {
        ensure!(started.elapsed() < PATIENCE, "webhook deliveries were still unprocessed after {PATIENCE:?}");
        // Counting a large backlog is work for the database too: not too often.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Drain { left, took: started.elapsed() })
}

struct SandboxNumber {
    id: String,
    waba_id: String,
    display: String,
}

/// The seeded sandbox account's first number.
async fn first_sandbox_number(http: &reqwest::Client, base: &str, api_key: &str) -> anyhow::Result<SandboxNumber> {
    let response = http.get(format!("{base}/v1/phone-numbers")).bearer_auth(api_key).send().await?;
    let status = response.status();
    let body: Value = response.json().await.context("GET /v1/phone-numbers did not answer JSON")?;
    ensure!(status.is_success(), "GET /v1/phone-numbers answered {status}: {body}");
    let number = body["data"]
        .as_array()
        .and_then(|numbers| numbers.iter().find(|n| n["mode"] == "sandbox"))
        .with_context(|| format!("no sandbox phone number in GET /v1/phone-numbers: {body}"))?;
    let field = |name: &str| {
        number[name].as_str().map(str::to_owned).with_context(|| format!("the sandbox number has no {name}: {number}"))
    };
    Ok(SandboxNumber { id: field("id")?, waba_id: field("waba_id")?, display: field("display_phone_number")? })
}

/// One request of the workload through an ordinary client, its answer checked.
async fn check_one(http: &reqwest::Client, base: &str, workload: &Workload) -> anyhow::Result<()> {
    let mut request = workload.request.clone();
    workload.prepare(&mut request, 0);
    let text = String::from_utf8_lossy(&request);
    let (head, body) = text.split_once("\r\n\r\n").expect("a built request has a head");
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).expect("a built request has a path");
    let mut builder = http.post(format!("{base}{path}"));
    for (name, value) in lines.filter_map(|l| l.split_once(": ")) {
        if !["host", "content-length"].contains(&name) {
            builder = builder.header(name, value);
        }
    }
    let response = builder.body(body.to_owned()).send().await?;
    let status = response.status();
    ensure!(
        status.as_u16() == workload.expected,
        "a trial POST {path} answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Requests one connection repeats: pre-built bytes, with a counter rewritten in place (a send's
/// recipient, a delivery's wamid) and, for webhooks, the signature made again.
#[derive(Clone)]
struct Workload {
    request: Vec<u8>,
    counter: Option<Counter>,
    signature: Option<Signature>,
    expected: u16,
}

#[derive(Clone, Copy)]
struct Counter {
    at: usize,
    digits: usize,
    modulo: usize,
}

/// Where the hex of `X-Hub-Signature-256` goes, and where the signed body starts.
#[derive(Clone, Copy)]
struct Signature {
    hex_at: usize,
    body_at: usize,
}

impl Workload {
    fn healthz(addr: SocketAddr) -> Self {
        let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes();
        Self { request, counter: None, signature: None, expected: 200 }
    }

    fn sends(addr: SocketAddr, api_key: &str, from: &str) -> anyhow::Result<Self> {
        let first = format!("{RECIPIENT_PREFIX}{:0RECIPIENT_DIGITS$}", 0);
        let body = json!({
            "from": from,
            "to": first,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        })
        .to_string();
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {api_key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        let at =
            position(&request, format!("\"{first}\"").as_bytes()).context("the recipient is not in the request")?;
        let counter = Counter { at: at + 1 + RECIPIENT_PREFIX.len(), digits: RECIPIENT_DIGITS, modulo: RECIPIENTS };
        Ok(Self { request, counter: Some(counter), signature: None, expected: 202 })
    }

    /// A customer's text message, as Meta delivers it: one entry, one change, one message.
    fn webhooks(addr: SocketAddr, number: &SandboxNumber) -> anyhow::Result<Self> {
        let wamid = format!("wamid.BENCH{:0WAMID_DIGITS$}", 0);
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": number.waba_id,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": number.display.trim_start_matches('+'),
                            "phone_number_id": number.id,
                        },
                        "contacts": [{"profile": {"name": "Bench Customer"}, "wa_id": "15550100000"}],
                        "messages": [{
                            "from": "15550100000",
                            "id": wamid,
                            "timestamp": "1763700000",
                            "type": "text",
                            "text": {"body": "Hello from the benchmark"},
                        }],
                    },
                }],
            }],
        })
        .to_string();
        let placeholder = "0".repeat(64);
        let request = format!(
            "POST /webhooks/meta HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             x-hub-signature-256: sha256={placeholder}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        let hex_at = position(&request, b"sha256=").context("no signature header")? + "sha256=".len();
        let body_at = position(&request, b"\r\n\r\n").context("no end of head")? + 4;
        let at = position(&request, wamid.as_bytes()).context("the wamid is not in the request")?;
        let counter = Counter { at: at + "wamid.BENCH".len(), digits: WAMID_DIGITS, modulo: usize::MAX };
        Ok(Self { request, counter: Some(counter), signature: Some(Signature { hex_at, body_at }), expected: 200 })
    }

    /// Writes request number `n` of this workload into `request`.
    fn prepare(&self, request: &mut [u8], n: usize) {
        if let Some(c) = self.counter {
            write_digits(&mut request[c.at..c.at + c.digits], n % c.modulo);
        }
        if let Some(s) = self.signature {
            let header = signature::sign(APP_SECRET, &request[s.body_at..]);
            request[s.hex_at..s.hex_at + 64].copy_from_slice(&header.as_bytes()["sha256=".len()..]);
        }
    }
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy)]
struct Plan {
    connections: usize,
    warmup: Duration,
    duration: Duration,
}

/// Runs `plan` on a thread of its own, so the load generator's CPU time is one thread's (told
/// apart from the server's by the thread's own clock) and it cannot take more than one core.
async fn load(addr: SocketAddr, workload: Workload, plan: Plan) -> anyhow::Result<Phase> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("bench-client".into()).spawn(move || {
        let tally = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the load generator's runtime")
            .and_then(|rt| rt.block_on(drive_all(addr, workload, plan)));
        let _ = done.send(tally);
    })?;
    result.await.context("the load generator's thread died")?
}

async fn drive_all(addr: SocketAddr, workload: Workload, plan: Plan) -> anyhow::Result<Phase> {
    // Connected before the clock starts: the figures are of requests, not of TCP handshakes.
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(HttpConnection::open(addr).await?);
    }
    let start = Instant::now() + plan.warmup;
    let window = Window { start, end: start + plan.duration };
    let cpu = tokio::spawn(cpu_used(window));
    let mut tasks = JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        tasks.spawn(drive(addr, connection, workload.clone(), index, plan.connections, window));
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        total.merge(tally.context("a load task panicked")??);
    }
    total.latencies_us.sort_unstable();
    Ok(Phase { tally: total, cpu: cpu.await.context("the CPU clock task panicked")? })
}

/// A phase's answers, and the CPU time spent while they were counted.
struct Phase {
    tally: Tally,
    cpu: CpuUse,
}

/// CPU time used during the measured window: by the whole process, and by the load
/// generator's thread (the rest is the server's).
struct CpuUse {
    process: Duration,
    load_generator: Duration,
}

/// Read on the load generator's thread (its runtime has only that one), at the window's edges.
async fn cpu_used(window: Window) -> CpuUse {
    use rustix::time::{ClockId, clock_gettime};
    let read = || {
        // CPU clocks start at zero: never negative.
        let clock = |id| Duration::try_from(clock_gettime(id)).unwrap_or_default();
        (clock(ClockId::ProcessCPUTime), clock(ClockId::ThreadCPUTime))
    };
    tokio::time::sleep_until(window.start.into()).await;
    let (process, thread) = read();
    tokio::time::sleep_until(window.end.into()).await;
    let (process_end, thread_end) = read();
    CpuUse { process: process_end.saturating_sub(process), load_generator: thread_end.saturating_sub(thread) }
}

impl Phase {
    /// Microseconds of CPU per answer (expected or not): the server's, the load generator's.
    fn cpu_us_per_request(&self) -> Option<(f64, f64)> {
        let answered = self.tally.latencies_us.len() as u64 + self.tally.other_total();
        (answered > 0).then(|| {
            let per = |d: Duration| d.as_secs_f64() * 1e6 / answered as f64;
            (per(self.cpu.process.saturating_sub(self.cpu.load_generator)), per(self.cpu.load_generator))
        })
    }
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// One connection's closed loop: a request, its answer, the next request. An answer counts when
/// it arrives inside the window, so the in-flight requests at either edge balance out.
async fn drive(
    addr: SocketAddr,
    mut connection: HttpConnection,
    workload: Workload,
    index: usize,
    stride: usize,
    window: Window,
) -> anyhow::Result<Tally> {
    let mut tally = Tally { latencies_us: Vec::with_capacity(4096), ..Tally::default() };
    // Connections take interleaved counters, so together they go through every value in turn.
    let mut n = index;
    let mut request = workload.request.clone();
    loop {
        let sent_at = Instant::now();
        if sent_at >= window.end {
            return Ok(tally);
        }
        workload.prepare(&mut request, n);
        n += stride;
        let answer = connection.exchange(&request).await?;
        let answered_at = Instant::now();
        if answered_at >= window.start && answered_at < window.end {
            tally.record(answer.status, workload.expected, answered_at - sent_at);
        }
        if answer.close {
            connection = HttpConnection::open(addr).await?;
        }
    }
}

fn write_digits(dst: &mut [u8], mut n: usize) {
    for digit in dst.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Latencies of the expected answers, and how many of each other status came.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    others: BTreeMap<u16, u64>,
}

impl Tally {
    fn record(&mut self, status: u16, expected: u16, latency: Duration) {
        if status == expected {
            self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        } else {
            *self.others.entry(status).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.others {
            *self.others.entry(status).or_default() += n;
        }
    }

    fn per_sec(&self, duration: Duration) -> f64 {
        self.latencies_us.len() as f64 / duration.as_secs_f64()
    }

    fn other_total(&self) -> u64 {
        self.others.values().sum()
    }

    /// Nearest-rank percentile in milliseconds; needs `latencies_us` sorted.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.latencies_us.get(rank - 1).map(|&us| f64::from(us) / 1000.0)
    }
}

/// A keep-alive HTTP/1.1 connection, one request at a time. Reads only what wagate sends: a
/// head, then a Content-Length body.
struct HttpConnection {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    close: bool,
}

impl HttpConnection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        // Requests are written whole; Nagle would only hold them back.
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(8192) })
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await.context("writing a request")?;
        self.buf.clear();
        let mut scanned: usize = 0;
        let head_len = loop {
            let from = scanned.saturating_sub(3);
            if let Some(i) = self.buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                break from + i + 4;
            }
            scanned = self.buf.len();
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..head_len])?;
        let total = head_len + head.content_length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        ensure!(self.buf.len() == total, "the server sent more than the answer to the one request in flight");
        Ok(Answer { status: head.status, close: head.close })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8192);
        }
        let n = self.stream.read_buf(&mut self.buf).await.context("reading an answer")?;
        ensure!(n > 0, "the server closed the connection mid-answer");
        Ok(())
    }
}

struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

fn parse_head(head: &[u8]) -> anyhow::Result<Head> {
    let text = std::str::from_utf8(head).context("the answer's head is not UTF-8")?;
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let (name, value) = line.split_once(':').with_context(|| format!("not a header: {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().with_context(|| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("the answer is Transfer-Encoding: {value}; the bench client reads Content-Length bodies only");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    let content_length = match content_length {
        Some(n) => n,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => bail!("a {status} answer without Content-Length; the bench client cannot tell where it ends"),
    };
    Ok(Head { status, content_length, close })
}

struct Report {
    backend: Backend,
    duration: Duration,
    healthz: Phase,
    sends: Phase,
    webhooks: Phase,
    processing: Drain,
}

impl Report {
    /// Each phase: what was loaded, the answer expected, and what came.
    fn phases(&self) -> [(&'static str, u16, &Phase); 3] {
        [
            ("GET /healthz", 200, &self.healthz),
            ("POST /v1/messages", 202, &self.sends),
            ("POST /webhooks/meta", 200, &self.webhooks),
        ]
    }

    /// A phase's rate as a share of `GET /healthz`'s, the ceiling of the HTTP stack.
    fn of_healthz_percent(&self, phase: &Phase) -> Option<f64> {
        let healthz = self.healthz.tally.per_sec(self.duration);
        (healthz > 0.0).then(|| phase.tally.per_sec(self.duration) / healthz * 100.0)
    }
}

fn print_table(args: &BenchArgs, reports: &[Report]) {
    let columns = [
        "backend",
        "request",
        "answered/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "other",
        "of healthz",
        "server CPU µs",
    ];
    let rows: Vec<[String; 10]> = reports
        .iter()
        .flat_map(|r| {
            r.phases().map(|(what, _, phase)| {
                let t = &phase.tally;
                [
                    r.backend.name().to_owned(),
                    what.to_owned(),
                    format!("{:.0}", t.per_sec(r.duration)),
                    ms(t.percentile_ms(50.0)),
                    ms(t.percentile_ms(90.0)),
                    ms(t.percentile_ms(99.0)),
                    ms(t.percentile_ms(100.0)),
                    t.other_total().to_string(),
                    r.of_healthz_percent(phase).map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%")),
                    server_us(phase),
                ]
            })
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|row| row[i].chars().count()).chain([columns[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&columns);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    for r in reports {
        for (what, expected, phase) in r.phases() {
            if !phase.tally.others.is_empty() {
                println!("{}: {what} answered other than {expected}: {}", r.backend.name(), by_status(&phase.tally));
            }
        }
        let p = &r.processing;
        println!(
            "{}: {} webhook deliveries were stored but not yet processed when the load stopped; processed in {:.1} s{}",
            r.backend.name(),
            p.left,
            p.took.as_secs_f64(),
            p.per_sec().map_or_else(String::new, |n| format!(" ({n:.0}/s)")),
        );
    }
    println!(
        "{} connections, {} s warm-up + {} s measured per phase; latencies are of the expected answers \
         (200, 202, 200); the load generator shares this machine's {} cores with the server; server CPU is \
         the process's CPU time less the load generator's thread's, per answer.",
        args.connections,
        args.warmup_secs,
        args.duration_secs,
        cores()
    );
}

/// A phase's server CPU per answer, as the table shows it.
fn server_us(phase: &Phase) -> String {
    phase.cpu_us_per_request().map_or_else(|| "-".to_owned(), |(server, _)| format!("{server:.1}"))
}

/// Milliseconds as the table shows them.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn by_status(tally: &Tally) -> String {
    tally.others.iter().map(|(status, n)| format!("{status} × {n}")).collect::<Vec<_>>().join(", ")
}

fn to_json(args: &BenchArgs, reports: &[Report]) -> Value {
    let phase = |r: &Report, p: &Phase| {
        let t = &p.tally;
        let cpu = p.cpu_us_per_request();
        json!({
            "per_sec": t.per_sec(r.duration),
            "answered": t.latencies_us.len(),
            "latency_ms": {
                "p50": t.percentile_ms(50.0),
                "p90": t.percentile_ms(90.0),
                "p99": t.percentile_ms(99.0),
                "max": t.percentile_ms(100.0),
            },
            "other_statuses": t.others.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "of_healthz_percent": r.of_healthz_percent(p),
            "cpu_us_per_request": {
                "server": cpu.map(|(server, _)| server),
                "load_generator": cpu.map(|(_, load)| load),
            },
        })
    };
    let results: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "backend": r.backend.name(),
                "healthz": phase(r, &r.healthz),
                "sends": phase(r, &r.sends),
                "webhooks": phase(r, &r.webhooks),
                "webhook_processing": {
                    "left_when_load_stopped": r.processing.left,
                    "drained_secs": r.processing.took.as_secs_f64(),
                    "per_sec": r.processing.per_sec(),
                },
            })
        })
        .collect();
    json!({
        "connections": args.connections,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "cores": cores(),
        "results": results,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A fresh PostgreSQL database for one run, created through the server URL given.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let shown = wagate_storage::redact_url(admin_url);
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown} (--database-url)"))?;
        let name = new_id("wagate_bench").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create database {name} at {shown}"))?;
        let _ = admin.close().await;
        Ok(Self { url: wagate_storage::with_database(admin_url, &name), admin_url: admin_url.to_owned(), name })
    }

    async fn drop_database(self) {
        let dropped = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut admin)
                .await?;
            admin.close().await
        }
        .await;
        if let Err(e) = dropped {
            eprintln!("warning: could not drop the bench database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_with_content_length() {
        let head = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\nContent-Length: 17\r\n\r\n";
        let parsed = parse_head(head).unwrap();
        assert_eq!((parsed.status, parsed.content_length, parsed.close), (202, 17, false));
        let closing = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, close\r\n\r\n");
        assert!(closing.unwrap().close);
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().content_length, 0);
        assert!(parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").is_err());
    }

    #[test]
    fn rewrites_only_the_recipient() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let w = Workload::sends(addr, "k", "123").unwrap();
        let mut request = w.request.clone();
        w.prepare(&mut request, 19_876);
        let text = String::from_utf8(request.clone()).unwrap();
        assert!(text.contains("\"+15550109876\""), "{text}");
        assert_eq!(request.len(), w.request.len());
        assert_eq!(w.request.iter().zip(&request).filter(|(a, b)| a != b).count(), 4);
    }

    #[test]
    fn signs_each_delivery_with_its_own_wamid() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let number =
            SandboxNumber { id: "106540352242922".into(), waba_id: "102290129340398".into(), display: "+1 555".into() };
        let w = Workload::webhooks(addr, &number).unwrap();
        let mut request = w.request.clone();
        w.prepare(&mut request, 42);
        let text = String::from_utf8(request).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.contains("\"wamid.BENCH000000000042\""), "{body}");
        let header = head.lines().find_map(|l| l.strip_prefix("x-hub-signature-256: ")).unwrap();
        assert!(signature::verify(APP_SECRET, body.as_bytes(), header));
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"], "106540352242922");
    }

    #[test]
    fn server_cpu_is_the_process_less_the_load_generator_per_answer() {
        let tally = Tally { latencies_us: vec![1_000; 300], others: BTreeMap::from([(503, 100)]) };
        let cpu = CpuUse { process: Duration::from_millis(50), load_generator: Duration::from_millis(10) };
        let (server, load) = Phase { tally, cpu }.cpu_us_per_request().unwrap();
        assert_eq!((server, load), (100.0, 25.0));
        let idle = Phase {
            tally: Tally::default(),
            cpu: CpuUse { process: Duration::from_millis(5), load_generator: Duration::ZERO },
        };
        assert_eq!(idle.cpu_us_per_request(), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let tally = Tally { latencies_us: (1..=100).map(|ms| ms * 1000).collect(), others: BTreeMap::new() };
        assert_eq!(tally.percentile_ms(50.0), Some(50.0));
        assert_eq!(tally.percentile_ms(99.0), Some(99.0));
        assert_eq!(tally.percentile_ms(100.0), Some(100.0));
        assert_eq!(Tally::default().percentile_ms(50.0), None);
    }
}
