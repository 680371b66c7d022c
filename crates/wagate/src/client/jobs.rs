//! A CSV file streamed to an import endpoint (never read whole: a million lines are fine) with
//! a bar of the bytes sent, then the background job it started followed to its end with a bar
//! of the rows, then what it did and the first rows it refused.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::progress::{Bar, Unit, counted, thousands};
use super::{Client, parse, print_json};

/// Bytes read from the file and sent at a time.
const CHUNK: usize = 256 * 1024;
/// How often the job is asked how far it is.
const POLL: Duration = Duration::from_millis(250);
/// Refused rows printed at the end.
const SHOWN: usize = 20;

/// A job as `GET /v1/jobs/{id}` shows it (what is printed of it).
#[derive(Deserialize)]
struct Job {
    id: String,
    #[serde(default)]
    kind: String,
    state: String,
    #[serde(default)]
    progress: Progress,
    #[serde(default)]
    result_url: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Progress {
    total: Option<u64>,
    processed: u64,
    succeeded: u64,
    failed: u64,
    invalid: u64,
}

impl Job {
    fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "canceled")
    }
}

/// A row of the input and what became of it.
#[derive(Deserialize)]
struct Entry {
    line: Option<u64>,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Streams `file` to `path` as `text/csv` and follows the job it answers with to its end. An
/// error when the job failed or was canceled.
pub async fn import(client: &Client, path: &str, file: &Path) -> anyhow::Result<()> {
    let opened = tokio::fs::File::open(file).await.with_context(|| format!("cannot open {}", file.display()))?;
    let len = opened.metadata().await.with_context(|| format!("cannot read {}", file.display()))?.len();
    let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let bar = Arc::new(Mutex::new(Bar::new(Unit::Bytes, Some(len))));
    let detail = format!("uploading {name}");
    bar.lock().expect("the bar is not poisoned").set(0, Some(len), detail.clone());
    let counting = bar.clone();
    let chunks = futures_util::stream::try_unfold((opened, 0u64), move |(mut f, mut sent)| {
        let (counting, detail) = (counting.clone(), detail.clone());
        async move {
            let mut buf = vec![0u8; CHUNK];
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buf.truncate(n);
            sent += n as u64;
            counting.lock().expect("the bar is not poisoned").set(sent, Some(len), detail);
            Ok(Some((buf, (f, sent))))
        }
    });
    let req = client
        .request(Method::POST, path)
        .header(CONTENT_TYPE, "text/csv")
        .header(CONTENT_LENGTH, len)
        .body(Body::wrap_stream(chunks));
    let answered = client.send(req, path).await;
    {
        let mut bar = bar.lock().expect("the bar is not poisoned");
        if answered.is_ok() {
            bar.finish();
        }
    }
    drop(bar);
    let (_, answer) = answered?;
    follow(client, parse("a job", &answer)?, answer).await
}

/// Polls the job until it ends, with a bar of its rows; then its summary.
async fn follow(client: &Client, mut job: Job, mut raw: Value) -> anyhow::Result<()> {
    let mut bar = Bar::new(Unit::Count, job.progress.total);
    loop {
        let p = &job.progress;
        let detail = format!(
            "{}: {} succeeded, {} failed, {} invalid",
            job.state,
            thousands(p.succeeded),
            thousands(p.failed),
            thousands(p.invalid)
        );
        bar.set(p.processed, p.total, detail);
        if job.is_final() {
            break;
        }
        tokio::time::sleep(POLL).await;
        raw = client.get(&format!("/v1/jobs/{}", job.id)).await?;
        job = parse("a job", &raw)?;
    }
    bar.finish();
    drop(bar);
    if client.json {
        print_json(&raw);
    } else {
        summary(client, &job).await?;
    }
    match job.state.as_str() {
        "failed" => {
            Err(anyhow::anyhow!("job {} failed: {}", job.id, job.error.as_deref().unwrap_or("no reason was given")))
        }
        "canceled" => Err(anyhow::anyhow!("job {} was canceled before it finished", job.id)),
        _ => Ok(()),
    }
}

async fn summary(client: &Client, job: &Job) -> anyhow::Result<()> {
    let p = &job.progress;
    println!(
        "job {} ({}) {}: {}, {} succeeded, {} failed, {} invalid",
        job.id,
        job.kind,
        job.state,
        counted(p.processed, "row"),
        thousands(p.succeeded),
        thousands(p.failed),
        thousands(p.invalid)
    );
    let mut refused = Vec::new();
    for (outcome, n) in [("failed", p.failed), ("invalid", p.invalid)] {
        if n > 0 {
            let page = client.get(&format!("/v1/jobs/{}/entries?outcome={outcome}&limit={SHOWN}", job.id)).await?;
            refused.extend(parse::<Vec<Entry>>("a list of job entries", &page["data"])?);
        }
    }
    refused.sort_by_key(|e| e.line);
    for e in refused.iter().take(SHOWN) {
        let line = e.line.map_or_else(|| "-".to_owned(), |l| l.to_string());
        let key = e.key.as_deref().filter(|k| !k.is_empty()).map(|k| format!("  {k:?}")).unwrap_or_default();
        println!(
            "  line {line}  {}  {}{key}  {}",
            e.outcome,
            e.code.as_deref().unwrap_or("-"),
            e.message.as_deref().unwrap_or("")
        );
    }
    let more = (p.failed + p.invalid).saturating_sub(refused.len().min(SHOWN) as u64);
    if more > 0 {
        println!(
            "  … and {} more: GET /v1/jobs/{}/entries?outcome=invalid (or =failed) lists every one",
            thousands(more),
            job.id
        );
    }
    if let Some(url) = &job.result_url {
        println!("result: {}", client.url(url));
    }
    Ok(())
}
