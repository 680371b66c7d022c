//! `wagate-bench`: the real application in-process, with the in-process sandbox and the
//! dispatcher as in production, loaded by a minimal HTTP/1.1 keep-alive client. First
//! `GET /healthz` (the ceiling of the HTTP stack), then `POST /v1/messages` (accepted sends per
//! second and their latency), then `POST /webhooks/meta` (signed deliveries verified and stored
//! per second, and the time to their 200), on SQLite and/or a throw-away PostgreSQL database.
//! With `--events`, instead: sends paced at a number's top rate with every event they make posted
//! to a receiver in this process (see `events`). With `--sustained`: numbers × rate sends a
//! second from an open-loop generator with every status coming back, followed second by second
//! (see `sustained`). With `--import-contacts N`: a CSV file of N contacts imported into a
//! `wagate serve` process, timed, with the server's memory and CPU (see `import`).
//! A binary of its own so that `wagate` does not carry the load generator.

mod events;
mod http;
mod import;
mod load;
mod report;
mod scale_out;
mod scratch_database;
mod sustained;
mod workload;

// The server's allocator, as in the `wagate` binary: the bench measures the server as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use wagate_domain::id::new_id;
use wagate_domain::secret::Secret;
use wagate_server::config::{LogFormat, SandboxSettings};
use wagate_server::{Application, Config, telemetry};
use wagate_storage::Store;

use crate::load::{Phase, Plan, load};
use crate::report::{Report, ms, print_table, server_us, to_json};
use crate::scratch_database::ScratchDatabase;
use crate::workload::{APP_SECRET, SandboxNumber, Workload};

#[derive(Parser)]
#[command(
    name = "wagate-bench",
    version,
    about = "Measure this machine: GET /healthz throughput, then accepted sends and signed webhook deliveries \
             per second and their latency, against the wagate application run in-process on SQLite and/or \
             PostgreSQL."
)]
struct BenchArgs {
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
    /// Instead of the three phases: sends paced at `--events-rate` a second for `--duration-secs`,
    /// every event they make delivered to a receiver in this process.
    #[arg(long)]
    events: bool,
    /// Sends a second in the events phase (Meta's top tier: 1,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    events_rate: u32,
    /// Instead of the three phases: `--numbers` numbers each limited to `--rate` a second, fed
    /// at exactly numbers × rate template sends a second for `--duration-secs`, every status
    /// coming back; figures each second and at the end.
    #[arg(long)]
    sustained: bool,
    /// Numbers in the sustained phase (the sandbox has two).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    numbers: u32,
    /// Messages a second per number in the sustained phase (Meta's top tier: 1,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// After the sustained phase: this many sends scheduled for one instant, and the rate at
    /// which each number hands them to Meta.
    #[arg(long, default_value_t = 0)]
    drain: u64,
    /// The sustained phase on this many `wagate serve` processes sharing a fresh PostgreSQL
    /// database, with a standalone `wagate sandbox` as Meta (the `wagate` binary built beside
    /// this one); each number is sent by one instance at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    instances: u32,
    /// With `--instances 2`: kill the second instance (`SIGKILL`) after this many seconds, and
    /// report how long the first takes to dispatch its number.
    #[arg(long)]
    kill_after_secs: Option<u64>,
    /// Instead of the three phases: a CSV file of this many contacts (a few with bad numbers)
    /// uploaded to `POST /v1/contacts/import` of a `wagate serve` process (the `wagate` binary
    /// built beside this one) and the job followed to its end: the time, the server's memory
    /// and CPU, and the refused rows checked by line.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    import_contacts: Option<u64>,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    telemetry::init(LogFormat::Text, "warn");
    if args.instances > 1 {
        ensure!(args.sustained, "--instances is a setting of the sustained phase (--sustained)");
        return scale_out::measure(scale_out::ScaleOut {
            admin_url: args.database_url.clone(),
            instances: args.instances as usize,
            rate: args.rate,
            duration: Duration::from_secs(args.duration_secs),
            drain: args.drain,
            kill_after: args.kill_after_secs.map(Duration::from_secs),
        })
        .await;
    }
    let backends = match args.backend {
        BackendChoice::Sqlite => vec![Backend::Sqlite],
        BackendChoice::Postgres => vec![Backend::Postgres],
        BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    if let Some(rows) = args.import_contacts {
        return import_contacts(&args, &backends, rows).await;
    }
    let mut reports = Vec::new();
    for backend in backends {
        match bench_backend(backend, &args).await.with_context(|| format!("benchmarking {}", backend.name()))? {
            Outcome::Phases(report) => reports.push(*report),
            Outcome::Done => {}
            Outcome::Events(r) => println!(
                "{}: {} sends asked a second: {:.0}/s accepted ({} in all); events delivered {:.0}/s while they ran, \
                 {} in all; deliveries waiting: at most {}, {} when the sends stopped (upstream then: {} sends not yet \
                 sent, {} webhooks not yet processed); the last event arrived {:.1} s after the sends stopped",
                backend.name(),
                r.rate,
                r.sends_per_sec,
                r.sends,
                r.delivered_per_sec,
                r.delivered,
                r.max_backlog,
                r.backlog_at_end,
                r.outbox_at_end,
                r.webhooks_at_end,
                r.caught_up_after.as_secs_f64()
            ),
        }
    }
    if reports.is_empty() {
        return Ok(());
    }
    if args.json {
        println!("{}", to_json(&args, &reports));
    } else {
        print_table(&args, &reports);
    }
    Ok(())
}

/// `--import-contacts`: each backend in turn, then the figures; an error when an import did not
/// come out as the file says it should.
async fn import_contacts(args: &BenchArgs, backends: &[Backend], rows: u64) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for &backend in backends {
        let report = import::measure(backend, rows, &args.database_url).await;
        reports.push(report.with_context(|| format!("importing contacts on {}", backend.name()))?);
    }
    if args.json {
        println!(
            "{}",
            json!({"import_contacts": reports.iter().map(import::ImportReport::to_json).collect::<Vec<_>>()})
        );
    } else {
        import::print_table(&reports);
    }
    let wrong: Vec<&str> = reports.iter().filter(|r| !r.problems().is_empty()).map(|r| r.backend.name()).collect();
    ensure!(wrong.is_empty(), "the import did not come out as expected on {}", wrong.join(", "));
    Ok(())
}

/// What a run on one backend measured: the three phases, or the events phase; the sustained
/// phase prints its own.
enum Outcome {
    Phases(Box<Report>),
    Events(events::EventsReport),
    Done,
}

/// One backend: a fresh data directory (and database), the application, the phases, clean-up.
async fn bench_backend(backend: Backend, args: &BenchArgs) -> anyhow::Result<Outcome> {
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
) -> anyhow::Result<Outcome> {
    let api_key = new_id("bench-key");
    // A path of its own, so that the sustained phase can read the file after the run.
    let sqlite_file = dir.join("bench.sqlite");
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.join("data"),
        database_url: Some(database_url.map_or_else(|| format!("sqlite://{}", sqlite_file.display()), str::to_owned)),
        log_level: "warn".into(),
        bootstrap_api_key: Some(Secret::new(api_key.clone())),
        sandbox: SandboxSettings { app_secret: Some(Secret::new(APP_SECRET.to_owned())), ..SandboxSettings::default() },
        ..Config::default()
    };
    // The events phase's receiver listens on loopback.
    config.network.allow_private = vec!["127.0.0.0/8".parse().expect("a CIDR")];
    let app = Application::build(config).await.context("the application did not start")?;
    let addr = app.local_addr();
    let cancel = app.shutdown_token();
    let store = app.state().store.clone();
    let state = app.state().clone();
    let server = tokio::spawn(app.run());
    let run = async {
        if args.sustained {
            let base = format!("http://{addr}");
            let numbers = sandbox_numbers(&reqwest::Client::new(), &base, &api_key).await?;
            ensure!(numbers.len() >= args.numbers as usize, "the sandbox has {} numbers", numbers.len());
            let plan = sustained::Plan {
                bases: vec![base.clone()],
                sandbox: format!("{base}/sandbox"),
                numbers: numbers.into_iter().take(args.numbers as usize).collect(),
                rate: args.rate,
                duration: Duration::from_secs(args.duration_secs),
                drain: args.drain,
                database: match database_url {
                    Some(url) => sustained::Database::Postgres(url.to_owned()),
                    None => sustained::Database::Sqlite(sqlite_file.clone()),
                },
            };
            sustained::run(&api_key, sustained::Server::InProcess(state), plan).await.map(|()| Outcome::Done)
        } else if args.events {
            let http = reqwest::Client::new();
            let number = first_sandbox_number(&http, &format!("http://{addr}"), &api_key).await?;
            let duration = Duration::from_secs(args.duration_secs);
            events::measure(addr, &api_key, &number.id, store.clone(), args.events_rate, duration)
                .await
                .map(Outcome::Events)
        } else {
            measure(backend, addr, &api_key, args, store.as_ref()).await.map(|r| Outcome::Phases(Box::new(r)))
        }
    };
    let measured = tokio::select! {
        r = run => r,
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

/// The seeded sandbox account's numbers.
async fn sandbox_numbers(http: &reqwest::Client, base: &str, api_key: &str) -> anyhow::Result<Vec<String>> {
    let response = http.get(format!("{base}/v1/phone-numbers")).bearer_auth(api_key).send().await?;
    let body: Value = response.json().await.context("GET /v1/phone-numbers did not answer JSON")?;
    Ok(body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["mode"] == "sandbox")
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect())
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
