//! `--import-contacts N`: a CSV file of N contacts imported through `POST /v1/contacts/import`
//! into a `wagate serve` process of its own (the `wagate` binary built beside this one), so that
//! its memory and CPU are the server's alone, read from `/proc`. The file is written to disk and
//! uploaded from there as a stream, as a client with a large file would; then the job is followed
//! until it ends. What is measured is whether an upload and an import stay flat in memory
//! whatever the file's size, and how fast rows are applied; the rows refused are checked against
//! the bad rows the file was given, by line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::process::Child;
use wagate_domain::time::Timestamp;

use crate::Backend;
use crate::scale_out::{poll_until, process_cpu, sibling_binary, start};
use crate::scratch_database::ScratchDatabase;

/// A bad row every this many rows at most (every tenth of a smaller file): few enough not to
/// change the rate, enough to check that refused rows are reported by their line.
const INVALID_EVERY: u64 = 100_000;
/// How often the job is looked at, and the server's memory sampled while it runs.
const POLL: Duration = Duration::from_millis(500);
/// How often the server's memory is sampled during the upload, which may take a second only.
const UPLOAD_SAMPLE: Duration = Duration::from_millis(100);

/// One backend's import, measured.
pub struct ImportReport {
    pub backend: Backend,
    pub rows: u64,
    pub file_bytes: u64,
    /// From the request's first byte to the `202`: the file stored and its lines counted.
    pub upload: Duration,
    /// The job's `started_at` to its `finished_at`.
    pub import: Duration,
    /// The request's first byte to the job's `finished_at`.
    pub total: Duration,
    /// Rows a second over the first and the second half of the rows: flat, or slowing as the
    /// tables grow.
    pub halves: Option<(f64, f64)>,
    /// The server's resident memory (bytes): before the upload, the highest sampled during the
    /// upload and during the import, after, and the kernel's high-water mark (`VmHWM`).
    pub rss_before: u64,
    pub rss_upload: u64,
    pub rss_import: u64,
    pub rss_after: u64,
    pub rss_peak: u64,
    /// The server's CPU time during the upload, and from the `202` to the job's end.
    pub cpu_upload: Duration,
    pub cpu_import: Duration,
    /// The job as its last `GET /v1/jobs/{id}` showed it.
    pub job: Value,
    /// Contacts in the database afterwards, counted there.
    pub contacts: i64,
    /// The refused rows as `GET /v1/jobs/{id}/entries?outcome=invalid` lists them: line, rule.
    pub invalid: Vec<(i64, String)>,
    /// The lines the file's bad rows are on.
    pub expected_invalid: Vec<i64>,
}

impl ImportReport {
    /// What is not as the file says it should be: empty when the import is right.
    pub fn problems(&self) -> Vec<String> {
        let bad = self.expected_invalid.len() as i64;
        let good = self.rows as i64 - bad;
        let progress = &self.job["progress"];
        let mut problems = Vec::new();
        if self.job["state"] != "completed" {
            problems.push(format!("the job ended {} ({})", self.job["state"], self.job["error"]));
        }
        for (what, want) in [("total", self.rows as i64), ("succeeded", good), ("invalid", bad), ("failed", 0)] {
            if progress[what].as_i64() != Some(want) {
                problems.push(format!("progress.{what} is {}, not {want}", progress[what]));
            }
        }
        if self.contacts != good {
            problems.push(format!("the database holds {} contacts, not {good}", self.contacts));
        }
        let lines: Vec<i64> = self.invalid.iter().map(|(line, _)| *line).collect();
        if lines != self.expected_invalid {
            problems.push(format!("invalid rows listed at lines {lines:?}, not {:?}", self.expected_invalid));
        }
        if let Some((line, code)) = self.invalid.iter().find(|(_, code)| code != "e164") {
            problems.push(format!("line {line} refused for {code}, not e164"));
        }
        problems
    }

    fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.import.as_secs_f64()
    }

    fn upload_mb_per_sec(&self) -> f64 {
        self.file_bytes as f64 / 1e6 / self.upload.as_secs_f64()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "backend": self.backend.name(),
            "rows": self.rows,
            "file_bytes": self.file_bytes,
            "upload_secs": self.upload.as_secs_f64(),
            "upload_mb_per_sec": self.upload_mb_per_sec(),
            "import_secs": self.import.as_secs_f64(),
            "total_secs": self.total.as_secs_f64(),
            "rows_per_sec": self.rows_per_sec(),
            "rows_per_sec_first_half": self.halves.map(|h| h.0),
            "rows_per_sec_second_half": self.halves.map(|h| h.1),
            "rss_before_bytes": self.rss_before,
            "rss_upload_max_bytes": self.rss_upload,
            "rss_import_max_bytes": self.rss_import,
            "rss_after_bytes": self.rss_after,
            "rss_peak_bytes": self.rss_peak,
            "cpu_upload_secs": self.cpu_upload.as_secs_f64(),
            "cpu_import_secs": self.cpu_import.as_secs_f64(),
            "job": self.job,
            "contacts": self.contacts,
            "invalid": self.invalid.iter().map(|(line, code)| json!({"line": line, "code": code})).collect::<Vec<_>>(),
            "expected_invalid_lines": self.expected_invalid,
            "problems": self.problems(),
        })
    }
}

/// A row of the table: its label, and how a report shows it.
type Figure = (&'static str, fn(&ImportReport) -> String);

/// The figures of each backend side by side.
pub fn print_table(reports: &[ImportReport]) {
    let figures: [Figure; 12] = [
        ("rows (file)", |r| format!("{} ({:.1} MB)", r.rows, r.file_bytes as f64 / 1e6)),
        ("upload (POST → 202)", |r| format!("{:.2} s, {:.0} MB/s", r.upload.as_secs_f64(), r.upload_mb_per_sec())),
        ("import (started → completed)", |r| format!("{:.1} s", r.import.as_secs_f64())),
        ("total (POST → completed)", |r| format!("{:.1} s", r.total.as_secs_f64())),
        ("rows/s", |r| format!("{:.0}", r.rows_per_sec())),
        ("rows/s, first half / second half", |r| {
            r.halves.map_or_else(|| "-".to_owned(), |(a, b)| format!("{a:.0} / {b:.0}"))
        }),
        ("RSS before upload", |r| format!("{:.0} MiB", mib(r.rss_before))),
        ("RSS max: upload / import / after", |r| {
            format!("{:.0} / {:.0} / {:.0} MiB", mib(r.rss_upload), mib(r.rss_import), mib(r.rss_after))
        }),
        ("peak RSS (VmHWM)", |r| format!("{:.0} MiB", mib(r.rss_peak))),
        ("server CPU: upload / import", |r| {
            format!("{:.1} s / {:.1} s", r.cpu_upload.as_secs_f64(), r.cpu_import.as_secs_f64())
        }),
        ("server CPU per row", |r| format!("{:.0} µs", r.cpu_import.as_secs_f64() * 1e6 / r.rows as f64)),
        ("contacts in the database", |r| r.contacts.to_string()),
    ];
    let mut rows: Vec<Vec<String>> =
        vec![std::iter::once("".to_owned()).chain(reports.iter().map(|r| r.backend.name().to_owned())).collect()];
    for (label, figure) in figures {
        rows.push(std::iter::once(label.to_owned()).chain(reports.iter().map(figure)).collect());
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let padded: Vec<String> = row.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    }
    for r in reports {
        let listed: Vec<String> = r.invalid.iter().map(|(line, code)| format!("{line} ({code})")).collect();
        println!("{}: invalid rows listed at lines {}", r.backend.name(), listed.join(", "));
        match r.problems().as_slice() {
            [] => println!(
                "{}: every row as expected: {} contacts, the {} bad rows refused at their lines",
                r.backend.name(),
                r.contacts,
                r.expected_invalid.len()
            ),
            problems => println!("{}: NOT AS EXPECTED: {}", r.backend.name(), problems.join("; ")),
        }
    }
    println!(
        "The server is a `wagate serve` process of its own; its CPU is read from /proc (PostgreSQL's own \
         processes are not in it), its memory (VmRSS) sampled every {} ms during the upload and {} ms during \
         the import.",
        UPLOAD_SAMPLE.as_millis(),
        POLL.as_millis()
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Imports `rows` contacts on `backend`: the file, the server, the upload, the job, clean-up.
pub async fn measure(backend: Backend, rows: u64, admin_url: &str) -> anyhow::Result<ImportReport> {
    let wagate = sibling_binary()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let started = Instant::now();
    let csv = CsvFile::write(dir.path().join("contacts.csv"), rows).context("cannot write the CSV file")?;
    eprintln!(
        "{}: wrote {rows} rows ({} bad) in {:.1} s",
        backend.name(),
        csv.invalid_lines.len(),
        started.elapsed().as_secs_f64()
    );
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ScratchDatabase::create(admin_url).await?),
    };
    let database_url = match &database {
        Some(d) => d.url.clone(),
        None => format!("sqlite://{}", dir.path().join("wagate.sqlite").display()),
    };
    // Interrupted, the server is killed (its handle dropped) and the database dropped all the same.
    let report = tokio::select! {
        r = run(backend, &wagate, dir.path(), &database_url, csv) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(database) = database {
        database.drop_database().await;
    }
    report
}

/// The file to import: on disk, not in memory, as a client with a large file has it.
struct CsvFile {
    path: PathBuf,
    rows: u64,
    /// The lines of its bad rows (the header is line 1).
    invalid_lines: Vec<i64>,
}

impl CsvFile {
    /// `rows` contacts, a distinct number each, with a bad number every [`INVALID_EVERY`] rows.
    fn write(path: PathBuf, rows: u64) -> anyhow::Result<Self> {
        const PLANS: [&str; 3] = ["free", "pro", "team"];
        let every = (rows / 10).clamp(1, INVALID_EVERY);
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        writeln!(out, "phone,first_name,plan,tags")?;
        let mut invalid_lines = Vec::new();
        for i in 1..=rows {
            let plan = PLANS[(i % 3) as usize];
            if i % every == 0 {
                // Five digits: too short for E.164.
                writeln!(out, "+12345,Name {i},{plan},bench;cohort-{}", i % 10)?;
                invalid_lines.push(i as i64 + 1);
            } else {
                writeln!(out, "+1{},Name {i},{plan},bench;cohort-{}", 2_000_000_000 + i, i % 10)?;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(Self { path, rows, invalid_lines })
    }
}

/// The server started, the import measured, the server stopped.
async fn run(
    backend: Backend,
    wagate: &Path,
    dir: &Path,
    database_url: &str,
    csv: CsvFile,
) -> anyhow::Result<ImportReport> {
    let key = wagate_domain::id::new_id("bench-key");
    let data = dir.join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().context("a UTF-8 path")?,
        "--database-url",
        database_url,
    ];
    let (mut child, base) = start(wagate, &args, &[("WAGATE_BOOTSTRAP_API_KEY", &key)]).await?;
    let measured = import(backend, &mut child, &base, &key, database_url, csv).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    measured
}

/// The upload and the job, with the server's memory and CPU around them; then the checks'
/// material: the refused rows listed and the contacts counted.
async fn import(
    backend: Backend,
    child: &mut Child,
    base: &str,
    key: &str,
    database_url: &str,
    csv: CsvFile,
) -> anyhow::Result<ImportReport> {
    let name = backend.name();
    let rows = csv.rows;
    let pid = child.id().context("the server has exited")?;
    let http = reqwest::Client::new();
    poll_until("the server's /healthz", Duration::from_secs(30), || async {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await?;
    // What the server holds at rest, its start-up done.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = memory(pid, "VmRSS")?;
    let cpu_before = process_cpu(pid).context("the server's CPU time")?;

    let body = tokio::fs::File::open(&csv.path).await?;
    let file_bytes = body.metadata().await?.len();
    let posted_at = Timestamp::now();
    let posted = Instant::now();
    let upload = http
        .post(format!("{base}/v1/contacts/import"))
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .header(reqwest::header::CONTENT_LENGTH, file_bytes)
        .body(reqwest::Body::from(body))
        .send();
    tokio::pin!(upload);
    let mut rss_upload = 0;
    let mut sample = tokio::time::interval(UPLOAD_SAMPLE);
    let response = loop {
        tokio::select! {
            r = &mut upload => break r.context("POST /v1/contacts/import")?,
            _ = sample.tick() => rss_upload = rss_upload.max(memory(pid, "VmRSS")?),
        }
    };
    let upload = posted.elapsed();
    let cpu_uploaded = process_cpu(pid).context("the server's CPU time")?;
    rss_upload = rss_upload.max(memory(pid, "VmRSS")?);
    let status = response.status();
    let job: Value = response.json().await.context("POST /v1/contacts/import did not answer JSON")?;
    ensure!(status.as_u16() == 202, "POST /v1/contacts/import answered {status}: {job}");
    let id = job["id"].as_str().with_context(|| format!("a job without an id: {job}"))?.to_owned();
    eprintln!(
        "{name}: uploaded {:.1} MB in {:.2} s; job {id}, {} rows counted",
        file_bytes as f64 / 1e6,
        upload.as_secs_f64(),
        job["progress"]["total"]
    );

    // At least 100 rows a second, or something is wrong.
    let patience = Duration::from_secs(60) + Duration::from_millis(10 * rows);
    let mut rss_import = 0;
    let mut progress: Vec<(Timestamp, i64)> = Vec::new();
    let mut told = Instant::now();
    let job = loop {
        ensure!(posted.elapsed() < patience, "the import had not ended after {} s", patience.as_secs());
        if let Some(exit) = child.try_wait()? {
            anyhow::bail!("the server exited ({exit}) during the import");
        }
        rss_import = rss_import.max(memory(pid, "VmRSS")?);
        let job: Value = http.get(format!("{base}/v1/jobs/{id}")).bearer_auth(key).send().await?.json().await?;
        let processed = job["progress"]["processed"].as_i64().unwrap_or(0);
        progress.push((Timestamp::now(), processed));
        if matches!(job["state"].as_str(), Some("completed" | "failed" | "canceled")) {
            break job;
        }
        if told.elapsed() >= Duration::from_secs(10) {
            told = Instant::now();
            eprintln!("{name}: {processed} of {rows} rows, server RSS at most {:.0} MiB", mib(rss_import));
        }
        tokio::time::sleep(POLL).await;
    };
    let cpu_after = process_cpu(pid).context("the server's CPU time")?;
    let rss_after = memory(pid, "VmRSS")?;
    let rss_peak = memory(pid, "VmHWM")?;
    let at = |field: &str| {
        serde_json::from_value::<Timestamp>(job[field].clone()).with_context(|| format!("the job's {field}: {job}"))
    };
    let (started_at, finished_at) = (at("started_at")?, at("finished_at")?);
    let between = |a: Timestamp, b: Timestamp| Duration::from_millis((b.as_millis() - a.as_millis()).max(0) as u64);
    // The first look past half way, if the job was still running then.
    let halves = progress.iter().find(|(_, n)| (rows / 2..rows).contains(&(*n as u64))).map(|&(mid_at, mid)| {
        let first = between(started_at, mid_at).as_secs_f64();
        let second = between(mid_at, finished_at).as_secs_f64();
        (mid as f64 / first, (rows as i64 - mid) as f64 / second)
    });
    Ok(ImportReport {
        backend,
        rows,
        file_bytes,
        upload,
        import: between(started_at, finished_at),
        total: between(posted_at, finished_at),
        halves,
        rss_before,
        rss_upload,
        rss_import,
        rss_after,
        rss_peak,
        cpu_upload: cpu_uploaded.saturating_sub(cpu_before),
        cpu_import: cpu_after.saturating_sub(cpu_uploaded),
        invalid: invalid_entries(&http, base, key, &id).await?,
        contacts: count_contacts(database_url).await?,
        job,
        expected_invalid: csv.invalid_lines,
    })
}

/// Every refused row of the job, following the list's pages: line and rule.
async fn invalid_entries(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
) -> anyhow::Result<Vec<(i64, String)>> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("outcome", "invalid".to_owned()), ("limit", "100".to_owned())];
        query.extend(cursor.map(|c| ("cursor", c)));
        let url = format!("{base}/v1/jobs/{id}/entries");
        let page: Value = http.get(url).bearer_auth(key).query(&query).send().await?.json().await?;
        let data = page["data"].as_array().with_context(|| format!("entries without data: {page}"))?;
        for e in data {
            let line = e["line"].as_i64().with_context(|| format!("an entry without a line: {e}"))?;
            entries.push((line, e["code"].as_str().unwrap_or_default().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(entries),
        }
    }
}

/// The contacts the database holds, counted there rather than taken from the job's word.
async fn count_contacts(database_url: &str) -> anyhow::Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM contacts";
    match database_url.strip_prefix("sqlite://") {
        Some(path) => {
            let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            Ok(db.query_row(SQL, [], |r| r.get(0))?)
        }
        None => {
            use sqlx::Connection as _;
            let mut db = sqlx::postgres::PgConnection::connect(database_url).await?;
            let (n,): (i64,) = sqlx::query_as(SQL).fetch_one(&mut db).await?;
            let _ = db.close().await;
            Ok(n)
        }
    }
}

/// A memory figure of a process from `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
fn memory(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("the server's /proc status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}
