//! The sustained phase on two `wagate serve` processes sharing one PostgreSQL database
//! (`--sustained --instances 2`): a standalone `wagate sandbox` is Meta, both instances dispatch
//! (the in-process sandbox off), sends are posted to them in turn (to the next when one does not
//! answer, as a load balancer would) and the sandbox's status webhooks go to the first. Each number is sent by one instance at a time. With
//! `--kill-after-secs`, the second instance is killed (`SIGKILL`) then, and the time until the
//! first dispatches its number too is reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use serde_json::{Value, json};
use sqlx::postgres::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::sustained::Counts;

/// The running processes: the sandbox, then the instances.
pub struct Instances {
    http: reqwest::Client,
    pub urls: Vec<String>,
    pub sandbox: String,
    children: Mutex<Vec<Child>>,
    pids: Vec<u32>,
    db: PgPool,
    /// Each instance's last counters, kept when it is gone.
    last: Mutex<Vec<Option<Scrape>>>,
    /// Each process's last CPU time, kept when it is gone.
    cpu: Mutex<HashMap<u32, Duration>>,
}

/// What one instance's `/metrics` said.
#[derive(Clone, Default)]
struct Scrape {
    to_meta: HashMap<String, u64>,
    dispatching: Vec<String>,
    webhooks_in: u64,
    statuses: u64,
}

/// Starts `wagate` with `args`; the process and the URL it prints on its first line.
pub async fn start(wagate: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(Child, String)> {
    let mut cmd = Command::new(wagate);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    cmd.env_remove("WAGATE_DATABASE_URL").env_remove("WAGATE_CONFIG").env_remove("WAGATE_SECRET_KEY");
    cmd.env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", wagate.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("wagate did not print its address within a minute")??
        .context("wagate exited before printing its address")?;
    let url = line.split_whitespace().last().context("an address")?.to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

impl Instances {
    /// The sandbox and `count` instances on `database_url`, with the sandbox's account connected
    /// and its numbers shared out; the numbers.
    pub async fn start(
        wagate: &Path,
        dir: &Path,
        database_url: &str,
        key: &str,
        count: usize,
    ) -> anyhow::Result<(Arc<Self>, Vec<String>)> {
        let http = reqwest::Client::new();
        let (sandbox_child, sandbox) = start(wagate, &["sandbox", "--listen", "127.0.0.1:0"], &[]).await?;
        let config = dir.join("wagate.toml");
        std::fs::write(&config, "[sandbox]\nenabled = false\n[network]\nallow_private = [\"127.0.0.0/8\"]\n")?;
        let mut children = vec![sandbox_child];
        let mut urls = Vec::new();
        // Every instance on one database needs the key that seals its secrets.
        let secret_key = wagate_domain::sealed::SecretKey::generate().to_base64();
        for i in 0..count {
            let data = dir.join(format!("instance-{i}"));
            let args = [
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().context("a UTF-8 path")?,
                "--database-url",
                database_url,
                "--config",
                config.to_str().context("a UTF-8 path")?,
            ];
            let env = [("WAGATE_BOOTSTRAP_API_KEY", key), ("WAGATE_SECRET_KEY", secret_key.expose())];
            let (child, url) = start(wagate, &args, &env).await?;
            children.push(child);
            urls.push(url);
        }
        let pids = children.iter().filter_map(Child::id).collect();
        let db = PgPool::connect(database_url).await?;
        let instances = Arc::new(Self {
            http,
            urls,
            sandbox,
            children: Mutex::new(children),
            pids,
            db,
            last: Mutex::new(vec![None; count]),
            cpu: Mutex::default(),
        });
        let numbers = instances.connect(key).await?;
        instances.wait_for_share(count.min(numbers.len())).await?;
        Ok((instances, numbers))
    }

    /// Connects the sandbox's account through the first instance and points the sandbox's
    /// webhooks at it; the account's numbers.
    async fn connect(&self, key: &str) -> anyhow::Result<Vec<String>> {
        let accounts: Value = self.http.get(format!("{}/control/accounts", self.sandbox)).send().await?.json().await?;
        let a = &accounts["data"][0];
        let body = json!({"name": "bench", "graph_base_url": self.sandbox, "access_token": a["access_token"],
            "waba_id": a["waba_id"], "app_secret": a["app_secret"], "verify_token": a["verify_token"]});
        let r = self.http.post(format!("{}/v1/accounts", self.urls[0])).bearer_auth(key).json(&body).send().await?;
        ensure!(r.status().as_u16() == 201, "connecting the sandbox account answered {}", r.status());
        let account: Value = r.json().await?;
        let webhook = json!({"url": format!("{}/webhooks/meta", self.urls[0])});
        let r = self.http.put(format!("{}/control/webhook", self.sandbox)).json(&webhook).send().await?;
        ensure!(r.status().is_success(), "setting the sandbox's webhook answered {}", r.status());
        let numbers = account["phone_numbers"].as_array().context("the account's numbers")?;
        Ok(numbers.iter().filter_map(|n| n["id"].as_str().map(str::to_owned)).collect())
    }

    /// Waits until `instances` instances each dispatch a number of their own.
    async fn wait_for_share(&self, instances: usize) -> anyhow::Result<()> {
        poll_until("the numbers to be shared out among the instances", Duration::from_secs(30), || async {
            let mut holding = 0;
            for i in 0..self.urls.len() {
                holding += usize::from(self.scrape(i).await.is_some_and(|s| !s.dispatching.is_empty()));
            }
            (holding >= instances).then_some(())
        })
        .await
    }

    /// Instance `i`'s metrics, or its last ones when it does not answer.
    async fn scrape(&self, i: usize) -> Option<Scrape> {
        let text = async { self.http.get(format!("{}/metrics", self.urls[i])).send().await?.text().await };
        let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(2), text).await else {
            return self.last.lock().expect("not poisoned")[i].clone();
        };
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let label =
                |key: &str| labels.split(',').find_map(|l| l.strip_prefix(key)?.strip_prefix("=\"")?.split('"').next());
            match (name, label("outcome"), label("phone_number_id")) {
                ("wagate_dispatch_total", Some("accepted"), Some(n)) => {
                    scrape.to_meta.insert(n.to_owned(), value as u64);
                }
                ("wagate_dispatching", _, Some(n)) if value == 1.0 => scrape.dispatching.push(n.to_owned()),
                ("wagate_webhook_requests_total", Some("stored"), _) => scrape.webhooks_in += value as u64,
                ("wagate_statuses_total", Some("applied" | "pending" | "duplicate"), _) => {
                    scrape.statuses += value as u64;
                }
                _ => {}
            }
        }
        self.last.lock().expect("not poisoned")[i] = Some(scrape.clone());
        Some(scrape)
    }

    pub async fn counts(&self, numbers: &[String]) -> anyhow::Result<Counts> {
        let mut counts = Counts { to_meta: vec![0; numbers.len()], ..Counts::default() };
        for i in 0..self.urls.len() {
            let Some(s) = self.scrape(i).await else { continue };
            for (n, c) in numbers.iter().zip(&mut counts.to_meta) {
                *c += s.to_meta.get(n).copied().unwrap_or(0);
            }
            counts.webhooks_in += s.webhooks_in;
            counts.statuses += s.statuses;
        }
        Ok(counts)
    }

    pub async fn depths(&self) -> anyhow::Result<(i64, i64)> {
        let (outbox,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(&self.db).await?;
        let (backlog,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM webhook_deliveries WHERE available_at IS NOT NULL")
                .fetch_one(&self.db)
                .await?;
        Ok((outbox, backlog))
    }

    /// CPU time of the sandbox and every instance so far (a killed one's up to its end).
    pub fn cpu(&self) -> Duration {
        let mut known = self.cpu.lock().expect("not poisoned");
        for pid in &self.pids {
            if let Some(t) = process_cpu(*pid) {
                known.insert(*pid, t);
            }
        }
        known.values().sum()
    }

    /// Kills instance `i` with `SIGKILL`.
    fn kill(&self, i: usize) -> anyhow::Result<()> {
        let mut children = self.children.lock().expect("not poisoned");
        children[i + 1].start_kill().map_err(|e| anyhow!("cannot kill instance {i}: {e}"))
    }

    /// After `after`, kills the last instance and reports how long until the first dispatches
    /// every number.
    pub async fn kill_later(self: Arc<Self>, after: Duration, numbers: usize) -> anyhow::Result<()> {
        // The kill is scheduled, not waited for: nothing to poll.
        tokio::time::sleep(after).await;
        let victim = self.urls.len() - 1;
        self.cpu(); // its CPU up to now; nothing is read after the kill
        self.kill(victim)?;
        let killed = Instant::now();
        eprintln!("killed instance {victim} (kill -9)");
        let took = poll_until("instance 0 to take every number over", Duration::from_secs(120), || async {
            self.scrape(0).await.is_some_and(|s| s.dispatching.len() == numbers).then(|| killed.elapsed())
        })
        .await?;
        println!(
            "  take-over: instance 0 dispatched every number {:.1} s after instance {victim}'s kill -9",
            took.as_secs_f64()
        );
        Ok(())
    }

    /// Every accepted send has reached Meta: how many the sandbox accepted, and how many of
    /// wagate's messages have no wamid.
    pub async fn check_nothing_lost(&self) -> anyhow::Result<()> {
        let (unsent,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE direction = 'outbound' AND wamid IS NULL AND status <> 'failed'",
        )
        .fetch_one(&self.db)
        .await?;
        let (sent,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM messages WHERE direction = 'outbound' AND wamid IS NOT NULL")
                .fetch_one(&self.db)
                .await?;
        let received: Value = self.http.get(format!("{}/control/messages", self.sandbox)).send().await?.json().await?;
        let at_meta = received["data"].as_array().map_or(0, |d| d.iter().filter(|r| r["wamid"].is_string()).count());
        println!(
            "  {sent} messages with a wamid, {unsent} accepted but not sent; the sandbox accepted {at_meta} ({} sent twice)",
            at_meta as i64 - sent
        );
        self.cpu();
        let known = self.cpu.lock().expect("not poisoned").clone();
        let of = |pids: &[u32]| pids.iter().filter_map(|p| known.get(p)).sum::<Duration>().as_secs_f64() * 1e6;
        println!(
            "  CPU per message since start: wagate instances {:.0} µs, the sandbox (Meta) {:.0} µs",
            of(&self.pids[1..]) / sent.max(1) as f64,
            of(&self.pids[..1]) / sent.max(1) as f64
        );
        Ok(())
    }

    pub async fn stop(&self) {
        let children = std::mem::take(&mut *self.children.lock().expect("not poisoned"));
        for mut c in children {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// Checks every 100 ms until `check` answers, for at most `patience`.
pub async fn poll_until<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        if let Some(done) = check().await {
            return Ok(done);
        }
        ensure!(Instant::now() < deadline, "waited {} s for {what}", patience.as_secs());
    }
}

/// A process's user and system CPU time, from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// The `wagate` binary next to this one (`cargo build --release -p wagate -p wagate-bench`).
pub fn sibling_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let wagate = me.with_file_name("wagate");
    ensure!(
        wagate.exists(),
        "{} not found: build it beside wagate-bench (cargo build --release -p wagate -p wagate-bench)",
        wagate.display()
    );
    Ok(wagate)
}

/// What `--sustained --instances N` runs.
pub struct ScaleOut {
    pub admin_url: String,
    pub instances: usize,
    pub rate: u32,
    pub duration: Duration,
    pub drain: u64,
    pub kill_after: Option<Duration>,
}

/// The sustained phase on `instances` processes sharing a fresh PostgreSQL database.
pub async fn measure(plan: ScaleOut) -> anyhow::Result<()> {
    let wagate = sibling_binary()?;
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let database = crate::scratch_database::ScratchDatabase::create(&plan.admin_url).await?;
    let key = wagate_domain::id::new_id("bench-key");
    let run = async {
        let (instances, numbers) = Instances::start(&wagate, dir.path(), &database.url, &key, plan.instances).await?;
        eprintln!(
            "{} instances at {:?}, Meta at {}, numbers {numbers:?}",
            instances.urls.len(),
            instances.urls,
            instances.sandbox
        );
        let killer = plan.kill_after.map(|after| tokio::spawn(instances.clone().kill_later(after, numbers.len())));
        let sustained = crate::sustained::Plan {
            bases: instances.urls.clone(),
            sandbox: instances.sandbox.clone(),
            numbers,
            rate: plan.rate,
            duration: plan.duration,
            drain: plan.drain,
            database: crate::sustained::Database::Postgres(database.url.clone()),
        };
        let measured =
            crate::sustained::run(&key, crate::sustained::Server::Instances(instances.clone()), sustained).await;
        if let Some(k) = killer {
            k.await.context("the killer panicked")??;
        }
        measured?;
        instances.check_nothing_lost().await?;
        instances.stop().await;
        anyhow::Ok(())
    };
    let outcome = run.await;
    database.drop_database().await;
    outcome
}
