//! Background jobs: CSV imports (contacts, a campaign's recipients) and exports, worked through
//! by `workers::jobs` a batch at a time. An upload is streamed into the media store as it
//! arrives (never whole in memory), its header checked, and queued as a job; the job's view,
//! its entries (each row's outcome) and its result are read here.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use wagate_domain::id::JobId;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{EntryFilter, EntryOutcome, Job, JobCursor, JobEntry, JobFilter, JobKind, JobProgress, JobState};

use super::ServiceError;
use super::imports::{self, Columns};
use crate::media_store::StoredFile;
use crate::state::AppState;

/// An upload's bytes, at most.
pub const UPLOAD_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// A job as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// `contacts.import`, `campaign.recipients.import` or `campaign.recipients.export`.
    pub kind: String,
    /// `queued`, `running`, `completed`, `failed` or `canceled`.
    pub state: String,
    /// What it works on: the campaign of a recipients import or export.
    pub subject: Option<String>,
    pub progress: ProgressView,
    /// Where an export's file is, once it is written.
    pub result_url: Option<String>,
    /// Why it failed (a row's failure is its entry's, not the job's).
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Rows: in all (counted as the file was stored, exact once done), processed, and by outcome.
#[derive(Serialize, ToSchema)]
pub struct ProgressView {
    pub total: Option<i64>,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub invalid: i64,
}

impl From<JobProgress> for ProgressView {
    fn from(p: JobProgress) -> Self {
        Self { total: p.total, processed: p.processed, succeeded: p.succeeded, failed: p.failed, invalid: p.invalid }
    }
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        let result_url = j.result.as_ref().map(|_| format!("/v1/jobs/{}/result", j.id));
        Self {
            id: j.id.to_string(),
            kind: j.kind.as_str().to_owned(),
            state: j.state.as_str().to_owned(),
            subject: j.subject,
            progress: j.progress.into(),
            result_url,
            error: j.error,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
        }
    }
}

/// A row's outcome as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    /// The row's line in the file (the header is line 1).
    pub line: i64,
    /// `succeeded`, `failed` or `invalid`.
    pub outcome: String,
    /// The number the row was about.
    pub key: Option<String>,
    /// The rule it broke (`e164`, `duplicate`, `max_size`, …).
    pub code: Option<String>,
    pub message: Option<String>,
}

impl From<JobEntry> for EntryView {
    fn from(e: JobEntry) -> Self {
        Self { line: e.line, outcome: e.outcome.as_str().to_owned(), key: e.key, code: e.code, message: e.message }
    }
}

/// Where a job's input is kept: in the media store, which every instance reads.
pub fn input_key(id: &JobId) -> String {
    format!("jobs/{id}.csv")
}

pub fn result_key(id: &JobId) -> String {
    format!("jobs/{id}-result.csv")
}

fn parse_id(id: &str) -> Result<JobId, ServiceError> {
    JobId::parse(id).ok_or_else(|| ServiceError::not_found("job", id))
}

pub async fn get(state: &AppState, id: &str) -> Result<Job, ServiceError> {
    let parsed = parse_id(id)?;
    state.store.get_job(&parsed).await?.ok_or_else(|| ServiceError::not_found("job", id))
}

pub async fn list(state: &AppState, filter: &JobFilter, limit: usize) -> Result<(Vec<Job>, bool), ServiceError> {
    let mut page = state.store.list_jobs(filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

pub async fn entries(
    state: &AppState,
    id: &str,
    outcome: Option<&str>,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<JobEntry>, bool), ServiceError> {
    let job = get(state, id).await?;
    let outcome = outcome
        .map(|o| {
            EntryOutcome::parse(o)
                .ok_or_else(|| FieldError::new("outcome", "one_of", "must be one of succeeded, failed, invalid"))
        })
        .transpose()?;
    let filter = EntryFilter { outcome, after };
    let mut page = state.store.list_job_entries(&job.id, &filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// `POST /v1/jobs/{id}/cancel`: the job stops after the batch it is in; what was done stays.
pub async fn cancel(state: &AppState, id: &str) -> Result<Job, ServiceError> {
    let job = get(state, id).await?;
    if !state.store.cancel_job(&job.id, Timestamp::now()).await? {
        return Err(ServiceError::Conflict(format!(
            "job {} is {} and can no longer be canceled",
            job.id,
            job.state.as_str()
        )));
    }
    get(state, id).await
}

/// An export's file, once written.
pub async fn result(state: &AppState, id: &str) -> Result<StoredFile, ServiceError> {
    let job = get(state, id).await?;
    let not_ready = || ServiceError::not_found("result of job", id);
    let key = job.result.as_deref().ok_or_else(not_ready)?;
    state.media.get(key).await.map_err(|e| ServiceError::GraphUnavailable(e.to_string()))?.ok_or_else(not_ready)
}

/// Stores an upload in the media store as it arrives, counting its lines, then checks its header
/// row for `kind` and queues the job. A file over [`UPLOAD_MAX_BYTES`], or whose header does not
/// fit, is removed and refused.
pub async fn upload<S, E>(
    state: &AppState,
    kind: JobKind,
    subject: Option<String>,
    mut body: S,
) -> Result<Job, ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let id = JobId::generate();
    let key = input_key(&id);
    let store_error = |e: crate::media_store::MediaStoreError| {
        tracing::error!(job = %id, error = %e, "storing an upload failed");
        ServiceError::GraphUnavailable(format!("the upload could not be stored: {e}"))
    };
    let mut writer = state.media.writer(&key).await.map_err(store_error)?;
    let (mut size, mut newlines, mut last) = (0u64, 0i64, b'\n');
    let mut head: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(
                    FieldError::new("body", "incomplete", format!("the upload did not arrive whole: {e}")).into()
                );
            }
        };
        size += chunk.len() as u64;
        if size > UPLOAD_MAX_BYTES {
            writer.abort().await;
            return Err(FieldError::new("body", "too_large", "an upload may have at most 1 GiB").into());
        }
        newlines += count_newlines(&chunk);
        if let Some(&b) = chunk.last() {
            last = b;
        }
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 * 1024 - head.len())]);
        }
        if let Err(e) = writer.write(&chunk).await {
            writer.abort().await;
            return Err(store_error(e));
        }
    }
    if size == 0 {
        writer.abort().await;
        return Err(FieldError::new("body", "empty", "the file is empty: send a CSV file with a header row").into());
    }
    writer.finish().await.map_err(store_error)?;
    let refuse = |e: FieldError| async {
        let _ = state.media.delete(&key).await;
        Err(ServiceError::from(e))
    };
    let (header, header_end) = match imports::read_header(&head) {
        Ok(h) => h,
        Err(e) => return refuse(e).await,
    };
    if let Err(e) = Columns::for_kind(kind, &header) {
        return refuse(e).await;
    }
    let lines = newlines + i64::from(last != b'\n');
    let now = Timestamp::now();
    let job = Job {
        id: id.clone(),
        kind,
        state: JobState::Queued,
        subject,
        input: Some(key),
        params: json!({"header": header}),
        progress: JobProgress { total: Some((lines - 1).max(0)), ..JobProgress::default() },
        cursor: JobCursor { offset: header_end as i64, line: 2 },
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    state.store.insert_job(&job).await?;
    state.signals.job_queued();
    Ok(job)
}

fn count_newlines(bytes: &[u8]) -> i64 {
    bytes.iter().filter(|b| **b == b'\n').count() as i64
}

/// Queues an export of a campaign's recipients (of one status, or all) to a CSV file.
pub async fn export_recipients(state: &AppState, campaign_id: &str, status: Option<&str>) -> Result<Job, ServiceError> {
    let c = super::campaigns::get(state, campaign_id).await?;
    if let Some(s) = status {
        super::campaigns::parse_status(s)?;
    }
    let now = Timestamp::now();
    let job = Job {
        id: JobId::generate(),
        kind: JobKind::RecipientsExport,
        state: JobState::Queued,
        subject: Some(c.id.to_string()),
        input: None,
        params: json!({"status": status}),
        progress: JobProgress::default(),
        cursor: JobCursor::default(),
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    state.store.insert_job(&job).await?;
    state.signals.job_queued();
    Ok(job)
}

/// The header row of an upload, as stored in the job's params.
pub fn header_of(job: &Job) -> Vec<String> {
    job.params
        .get("header")
        .and_then(Value::as_array)
        .map(|h| h.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}
