//! The sustained phase (`--sustained`): N numbers, each limited to R messages a second, fed at
//! exactly N×R template sends a second to distinct recipients by an open-loop generator (a send
//! is started when it is due, whatever the answers before it are doing), the sandbox posting
//! `sent`, `delivered` and `read` back. Each second it prints what was accepted, handed to Meta
//! per number, received as webhooks and applied as statuses, and the outbox and webhook backlog;
//! at the end the dispatch rate per number in 10-second windows, the backlog's maximum, the lag
//! from a webhook's arrival to its processing, accept latency, CPU per message, and how long the
//! backlog took to reach zero. Optionally a drain: K sends scheduled for one instant, and the
//! rate at which each number hands them to Meta. The server is the application in this process,
//! or `wagate serve` processes sharing a PostgreSQL database (see `scale_out`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use wagate_domain::time::Timestamp;
use wagate_server::metrics::{Metrics, NumberOutcomeLabels, OutcomeLabels};
use wagate_server::state::AppState;

use crate::scale_out::Instances;

/// What to run.
pub struct Plan {
    /// Where sends are posted, in turn.
    pub bases: Vec<String>,
    /// The sandbox's base URL (`…/sandbox`), whose throughput is raised out of the way.
    pub sandbox: String,
    pub numbers: Vec<String>,
    pub rate: u32,
    pub duration: Duration,
    /// Sends scheduled for one instant after the sustained part, 0 for none.
    pub drain: u64,
    /// Where the lag is read from after the run.
    pub database: Database,
}

/// The database the application wrote, read directly once the run is over.
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

/// One second of the run.
struct Second {
    accepted: u64,
    refused: u64,
    to_meta: Vec<u64>,
    webhooks_in: u64,
    statuses: u64,
    outbox: i64,
    backlog: i64,
}

/// Counters read from the application's metrics.
#[derive(Clone, Default)]
pub struct Counts {
    pub to_meta: Vec<u64>,
    pub webhooks_in: u64,
    pub statuses: u64,
}

/// The server measured.
pub enum Server {
    /// The application in this process: its metrics and store read directly.
    InProcess(AppState),
    /// `wagate serve` processes, read over HTTP and from their database.
    Instances(Arc<Instances>),
}

impl Server {
    async fn counts(&self, numbers: &[String]) -> anyhow::Result<Counts> {
        match self {
            Self::InProcess(state) => Ok(counts(&state.metrics, numbers)),
            Self::Instances(i) => i.counts(numbers).await,
        }
    }

    /// The outbox's depth and the webhook backlog.
    async fn depths(&self) -> anyhow::Result<(i64, i64)> {
        match self {
            Self::InProcess(state) => {
                Ok((state.store.outbox().pending().await?, state.store.deliveries().pending().await?))
            }
            Self::Instances(i) => i.depths().await,
        }
    }

    /// CPU the server has used so far; in this process, the generator's thread included.
    fn cpu(&self) -> Duration {
        match self {
            Self::InProcess(_) => process_cpu(),
            Self::Instances(i) => i.cpu(),
        }
    }

    /// The generator's share of [`Self::cpu`].
    fn generator_share(&self, generator: Duration) -> Duration {
        match self {
            Self::InProcess(_) => generator,
            Self::Instances(_) => Duration::ZERO,
        }
    }
}

fn counts(metrics: &Metrics, numbers: &[String]) -> Counts {
    let to_meta = numbers
        .iter()
        .map(|n| {
            metrics
                .dispatch
                .get_or_create(&NumberOutcomeLabels { phone_number_id: n.clone(), outcome: "accepted" })
                .get()
        })
        .collect();
    let outcome = |family: &prometheus_client::metrics::family::Family<
        OutcomeLabels,
        prometheus_client::metrics::counter::Counter,
    >,
                   o: &'static str| family.get_or_create(&OutcomeLabels { outcome: o }).get();
    Counts {
        to_meta,
        webhooks_in: outcome(&metrics.webhook_requests, "stored"),
        statuses: ["applied", "pending", "duplicate"].iter().map(|o| outcome(&metrics.statuses, o)).sum(),
    }
}

/// Answers of the open-loop generator.
#[derive(Default)]
struct Answers {
    accepted: AtomicU64,
    refused: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// Starts N×R sends a second for `duration` on a thread of its own (its CPU told apart from the
/// server's), each when it is due; answers the generator thread's CPU time.
fn generate(
    bases: Vec<String>,
    key: String,
    numbers: Vec<String>,
    rate: u32,
    duration: Duration,
    answers: Arc<Answers>,
) -> std::thread::JoinHandle<Duration> {
    std::thread::Builder::new()
        .name("bench-sustained".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().expect("an HTTP client");
                let total = f64::from(rate) * numbers.len() as f64;
                let started = Instant::now();
                let mut started_sends: u64 = 0;
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                let mut tasks = tokio::task::JoinSet::new();
                while started.elapsed() < duration {
                    tick.tick().await;
                    let due = (started.elapsed().as_secs_f64() * total) as u64;
                    while started_sends < due {
                        let number = &numbers[(started_sends % numbers.len() as u64) as usize];
                        // Distinct recipients: a run never writes to one twice.
                        let to = format!("+1{}", 2_000_000_000 + started_sends);
                        let body = json!({"from": number, "to": to, "type": "template",
                            "template": {"name": "hello_world", "language": {"code": "en_US"}}});
                        let first = (started_sends % bases.len() as u64) as usize;
                        // Posted to the bases in turn; one that does not answer is skipped, as a
                        // load balancer would.
                        let requests: Vec<_> = (0..bases.len())
                            .map(|i| {
                                let base = &bases[(first + i) % bases.len()];
                                http.post(format!("{base}/v1/messages")).bearer_auth(&key).json(&body)
                            })
                            .collect();
                        let answers = answers.clone();
                        tasks.spawn(async move {
                            let sent = Instant::now();
                            let mut ok = false;
                            for request in requests {
                                if let Ok(r) = request.send().await {
                                    ok = r.status().as_u16() == 202;
                                    break;
                                }
                            }
                            let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            if ok {
                                answers.accepted.fetch_add(1, Ordering::Relaxed);
                                answers.latencies_us.lock().expect("not poisoned").push(us);
                            } else {
                                answers.refused.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                        started_sends += 1;
                    }
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
                thread_cpu()
            })
        })
        .expect("a thread for the generator")
}

fn thread_cpu() -> Duration {
    use rustix::time::{ClockId, clock_gettime};
    Duration::try_from(clock_gettime(ClockId::ThreadCPUTime)).unwrap_or_default()
}

fn process_cpu() -> Duration {
    use rustix::time::{ClockId, clock_gettime};
    Duration::try_from(clock_gettime(ClockId::ProcessCPUTime)).unwrap_or_default()
}

async fn patch(http: &reqwest::Client, url: &str, key: &str, body: Value) -> anyhow::Result<()> {
    let r = http.patch(url).bearer_auth(key).json(&body).send().await?;
    let status = r.status();
    ensure!(status.is_success(), "PATCH {url} answered {status}: {}", r.text().await.unwrap_or_default());
    Ok(())
}

/// Runs the plan and prints its figures.
pub async fn run(key: &str, server: Server, plan: Plan) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let base = &plan.bases[0];
    let total_rate = plan.rate * plan.numbers.len() as u32;
    // Meta (the sandbox) must not be the limit: twice what is asked.
    let sandbox_settings = format!("{}/control/settings", plan.sandbox);
    patch(&http, &sandbox_settings, key, json!({"throughput_mps": total_rate * 2})).await?;
    for n in &plan.numbers {
        let number = format!("{base}/v1/phone-numbers/{n}");
        patch(&http, &number, key, json!({"messages_per_second": plan.rate})).await?;
    }
    let maintenance = match &plan.database {
        Database::Postgres(url) => Some(tokio::spawn(stand_in_for_autovacuum(url.clone()))),
        Database::Sqlite(_) => None,
    };
    let answers = Arc::new(Answers::default());
    let started_ms = Timestamp::now().as_millis();
    let cpu_before = server.cpu();
    let generator =
        generate(plan.bases.clone(), key.to_owned(), plan.numbers.clone(), plan.rate, plan.duration, answers.clone());

    eprintln!("  s  accepted  refused  to Meta (per number)  webhooks in  statuses applied  outbox  webhook backlog");
    let mut seconds: Vec<Second> = Vec::new();
    let mut last = server.counts(&plan.numbers).await?;
    let (mut last_accepted, mut last_refused) = (0, 0);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let started = Instant::now();
    let mut load_stopped: Option<Instant> = None;
    let mut backlog_zero_after: Option<Duration> = None;
    let mut quiet_since: Option<Instant> = None;
    let patience = plan.duration + Duration::from_secs(600);
    loop {
        tick.tick().await;
        let now = server.counts(&plan.numbers).await?;
        let (accepted, refused) = (answers.accepted.load(Ordering::Relaxed), answers.refused.load(Ordering::Relaxed));
        let (outbox, backlog) = server.depths().await?;
        let second = Second {
            accepted: accepted - last_accepted,
            refused: refused - last_refused,
            to_meta: now.to_meta.iter().zip(&last.to_meta).map(|(a, b)| a - b).collect(),
            webhooks_in: now.webhooks_in - last.webhooks_in,
            statuses: now.statuses - last.statuses,
            outbox,
            backlog,
        };
        eprintln!(
            "{:>3}  {:>8}  {:>7}  {:>20}  {:>11}  {:>16}  {:>6}  {:>15}",
            seconds.len() + 1,
            second.accepted,
            second.refused,
            format!("{:?}", second.to_meta),
            second.webhooks_in,
            second.statuses,
            second.outbox,
            second.backlog
        );
        let idle = second.webhooks_in == 0 && second.statuses == 0 && outbox == 0 && backlog == 0;
        seconds.push(second);
        (last, last_accepted, last_refused) = (now, accepted, refused);
        if load_stopped.is_none() && started.elapsed() >= plan.duration {
            load_stopped = Some(Instant::now());
        }
        if let Some(stopped) = load_stopped {
            if backlog_zero_after.is_none() && backlog == 0 && outbox == 0 {
                backlog_zero_after = Some(stopped.elapsed());
            }
            quiet_since = if idle { quiet_since.or(Some(Instant::now())) } else { None };
            if quiet_since.is_some_and(|q| q.elapsed() >= Duration::from_secs(2)) {
                break;
            }
        }
        ensure!(started.elapsed() < patience, "the run did not settle within 10 minutes of the load stopping");
    }
    if let Some(m) = maintenance {
        m.abort();
    }
    let generator_cpu = generator.join().map_err(|_| anyhow::anyhow!("the generator panicked"))?;
    let server_cpu = server.cpu().saturating_sub(cpu_before).saturating_sub(server.generator_share(generator_cpu));

    // Figures.
    let load_secs = plan.duration.as_secs() as usize;
    let accepted: u64 = answers.accepted.load(Ordering::Relaxed);
    println!(
        "sustained: {} number(s) × {}/s for {} s: {} sends accepted ({:.0}/s), {} refused",
        plan.numbers.len(),
        plan.rate,
        load_secs,
        accepted,
        accepted as f64 / plan.duration.as_secs_f64(),
        answers.refused.load(Ordering::Relaxed)
    );
    for (i, n) in plan.numbers.iter().enumerate() {
        // 10-second windows after the first, while the load ran.
        let windows: Vec<f64> = seconds[..load_secs.min(seconds.len())]
            .chunks(10)
            .skip(1)
            .filter(|w| w.len() == 10)
            .map(|w| w.iter().map(|s| s.to_meta[i]).sum::<u64>() as f64 / 10.0)
            .collect();
        let (lo, hi) = windows.iter().fold((f64::MAX, 0f64), |(lo, hi), w| (lo.min(*w), hi.max(*w)));
        let off = windows.iter().filter(|w| (**w - f64::from(plan.rate)).abs() > f64::from(plan.rate) * 0.05).count();
        println!(
            "  number {n}: handed to Meta {lo:.0}–{hi:.0}/s in 10-second windows after the first ({} windows, {off} outside ±5 % of {})",
            windows.len(),
            plan.rate
        );
    }
    let max_backlog = seconds.iter().map(|s| s.backlog).max().unwrap_or(0);
    let arrivals = seconds[..load_secs.min(seconds.len())].iter().map(|s| s.webhooks_in).max().unwrap_or(0);
    println!("  webhook backlog: at most {max_backlog} deliveries (arrivals peaked at {arrivals}/s)");
    let mut latencies = std::mem::take(&mut *answers.latencies_us.lock().expect("not poisoned"));
    latencies.sort_unstable();
    let pct =
        |v: &[u32], p: f64| v.get(((v.len() as f64 * p / 100.0) as usize).min(v.len().saturating_sub(1))).copied();
    println!(
        "  accept latency: p50 {:.1} ms, p99 {:.1} ms; server CPU {:.0} µs per message, end to end (sandbox included)",
        pct(&latencies, 50.0).unwrap_or(0) as f64 / 1000.0,
        pct(&latencies, 99.0).unwrap_or(0) as f64 / 1000.0,
        server_cpu.as_secs_f64() * 1e6 / accepted.max(1) as f64
    );
    let lags = lags(&plan.database, started_ms).await?;
    if !lags.is_empty() {
        println!(
            "  webhook arrival → processed: p50 {} ms, p99 {} ms, max {} ms ({} deliveries)",
            pct_i(&lags, 50.0),
            pct_i(&lags, 99.0),
            lags.last().copied().unwrap_or(0),
            lags.len()
        );
    }
    match backlog_zero_after {
        Some(d) => println!("  outbox and webhook backlog at zero {:.1} s after the load stopped", d.as_secs_f64()),
        None => println!("  the backlog never reached zero"),
    }
    if plan.drain > 0 {
        drain(&http, key, &server, &plan).await?;
    }
    Ok(())
}

/// PostgreSQL servers vacuum and analyze on their own unless `autovacuum` is off (as on CI
/// machines); then the run would measure tables bloated with dead rows and planned without
/// statistics, which no production server has. In that case the database is vacuumed and
/// analyzed every 10 seconds instead.
async fn stand_in_for_autovacuum(url: String) {
    use sqlx::Connection as _;
    let Ok(mut db) = sqlx::postgres::PgConnection::connect(&url).await else { return };
    let on: Result<(String,), _> = sqlx::query_as("SHOW autovacuum").fetch_one(&mut db).await;
    if on.is_ok_and(|(v,)| v == "on") {
        return;
    }
    println!("  autovacuum is off on this server: the bench runs VACUUM (ANALYZE) every 10 s in its stead");
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(10), Duration::from_secs(10));
    loop {
        every.tick().await;
        if let Err(e) = sqlx::query("VACUUM (ANALYZE)").execute(&mut db).await {
            eprintln!("warning: VACUUM (ANALYZE) failed: {e}");
        }
    }
}

fn pct_i(v: &[i64], p: f64) -> i64 {
    v.get(((v.len() as f64 * p / 100.0) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// Milliseconds from each webhook delivery's arrival to its processing, sorted.
async fn lags(database: &Database, since_ms: i64) -> anyhow::Result<Vec<i64>> {
    const SQL: &str = "SELECT processed_at - received_at FROM webhook_deliveries \
        WHERE processed_at IS NOT NULL AND received_at >= $1";
    let mut lags: Vec<i64> = match database {
        Database::Sqlite(path) => {
            let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut statement = db.prepare(&SQL.replace("$1", "?1"))?;
            let rows = statement.query_map([since_ms], |r| r.get::<_, i64>(0))?;
            rows.collect::<Result<_, _>>()?
        }
        Database::Postgres(url) => {
            use sqlx::Connection as _;
            let mut db = sqlx::postgres::PgConnection::connect(url).await?;
            let rows: Vec<(i64,)> = sqlx::query_as(SQL).bind(since_ms).fetch_all(&mut db).await?;
            rows.into_iter().map(|(l,)| l).collect()
        }
    };
    lags.sort_unstable();
    Ok(lags)
}

/// K sends scheduled for one instant, spread over the numbers: how fast each number hands its
/// share to Meta.
async fn drain(http: &reqwest::Client, key: &str, server: &Server, plan: &Plan) -> anyhow::Result<()> {
    let at = Timestamp::now().plus(Duration::from_secs(2 + plan.drain / 10_000 * 2));
    let send_at = at.to_string();
    eprintln!("drain: scheduling {} sends for {send_at}", plan.drain);
    let queued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..64u64 {
        let (http, base, key, numbers, send_at, queued, total) = (
            http.clone(),
            plan.bases[worker as usize % plan.bases.len()].clone(),
            key.to_owned(),
            plan.numbers.clone(),
            send_at.clone(),
            queued.clone(),
            plan.drain,
        );
        tasks.spawn(async move {
            let mut i = worker;
            while i < total {
                let body = json!({"from": numbers[(i % numbers.len() as u64) as usize], "to": format!("+1{}", 3_000_000_000 + i),
                    "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}, "send_at": send_at});
                let r = http.post(format!("{base}/v1/messages")).bearer_auth(&key).json(&body).send().await?;
                ensure!(r.status().as_u16() == 202, "a drain send answered {}", r.status());
                queued.fetch_add(1, Ordering::Relaxed);
                i += 64;
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a drain sender panicked")??;
    }
    let before = server.counts(&plan.numbers).await?;
    ensure!(Timestamp::now() < at, "queuing {} sends took longer than the time they were scheduled for", plan.drain);
    let share: Vec<u64> = (0..plan.numbers.len() as u64)
        .map(|i| (plan.drain + plan.numbers.len() as u64 - 1 - i) / plan.numbers.len() as u64)
        .collect();
    // Polled until every number has handed over its share; each is timed from the instant
    // the sends were scheduled for.
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut done: Vec<Option<Duration>> = vec![None; plan.numbers.len()];
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    while done.iter().any(Option::is_none) {
        poll.tick().await;
        ensure!(Instant::now() < deadline, "the drain did not finish within an hour");
        let now = server.counts(&plan.numbers).await?;
        let since = Duration::from_millis((Timestamp::now().as_millis() - at.as_millis()).max(0) as u64);
        for (i, d) in done.iter_mut().enumerate() {
            if d.is_none() && now.to_meta[i] - before.to_meta[i] >= share[i] {
                *d = Some(since);
            }
        }
    }
    for (i, n) in plan.numbers.iter().enumerate() {
        let took = done[i].expect("every number finished");
        let rate = share[i] as f64 / took.as_secs_f64();
        println!(
            "drain: number {n}: {} queued sends handed to Meta in {:.1} s: {rate:.0}/s against {} ({:+.1} %)",
            share[i],
            took.as_secs_f64(),
            plan.rate,
            (rate / f64::from(plan.rate) - 1.0) * 100.0
        );
    }
    Ok(())
}
