//! The job worker: takes one job at a time (any instance may: the job's lease says which holds
//! it) and works through it a batch at a time. An import reads its file from the media store a
//! slice at a time from the job's cursor, so a file of a million rows is never in memory and a
//! job taken up again after a crash goes on from the last batch written; an export writes its
//! file a page of recipients at a time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wagate_domain::campaign::RecipientStatus;
use wagate_domain::id::{CampaignId, new_id};
use wagate_domain::time::Timestamp;
use wagate_storage::{Job, JobBatch, JobCursor, JobKind, JobState, JobWork, RecipientFilter};

use crate::services::campaign_recipients::{EXPORT_HEADER, export_line};
use crate::services::imports::{self, Columns};
use crate::services::jobs::{header_of, result_key};
use crate::state::{AppState, Worker};

/// Rows a batch takes, at most: one transaction each.
const BATCH_ROWS: usize = 1_000;
/// Bytes of the file read for a batch at first; doubled for rows longer than that.
const SLICE: u64 = 1024 * 1024;
const SLICE_MAX: u64 = 64 * 1024 * 1024;
/// How often the worker looks for a job when nothing woke it.
const POLL: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, cancel: CancellationToken) {
    let holder = new_id("jobs");
    let lease = Duration::from_millis(state.config.jobs.lease_ms);
    loop {
        state.health.beat(Worker::Jobs);
        let now = Timestamp::now();
        match state.store.claim_job(&holder, now, now.plus(lease)).await {
            Ok(Some(job)) => {
                work(&state, &holder, job, &cancel).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "looking for a job failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.signals.next_job_queued() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// How a job's run ended.
enum Ended {
    /// Done; an export's file.
    Completed(Option<String>),
    /// Canceled, or its lease lost: another holds it now, or nobody should.
    Let,
    /// The server is stopping: its lease lapses and the job goes on after.
    Stopping,
}

async fn work(state: &AppState, holder: &str, job: Job, cancel: &CancellationToken) {
    tracing::info!(job = %job.id, kind = job.kind.as_str(), line = job.cursor.line, "job taken up");
    let ended = match job.kind {
        JobKind::ContactsImport | JobKind::RecipientsImport => import(state, holder, &job, cancel).await,
        JobKind::RecipientsExport => export(state, holder, &job, cancel).await,
    };
    let now = Timestamp::now();
    let finished = match ended {
        Ok(Ended::Completed(result)) => {
            state.store.finish_job(&job.id, holder, JobState::Completed, result.as_deref(), None, now).await
        }
        Err(why) => {
            tracing::warn!(job = %job.id, error = %why, "job failed");
            state.store.finish_job(&job.id, holder, JobState::Failed, None, Some(&why), now).await
        }
        Ok(Ended::Let | Ended::Stopping) => return,
    };
    match finished {
        Ok(true) => tracing::info!(job = %job.id, "job ended"),
        Ok(false) => {}
        Err(e) => tracing::warn!(job = %job.id, error = %e, "recording a job's end failed; it is taken up again"),
    }
}

/// Writes a batch under the job's lease, renewing it; false when the job is no longer ours.
async fn apply(state: &AppState, holder: &str, job: &Job, batch: &JobBatch) -> Result<bool, String> {
    let lease = Duration::from_millis(state.config.jobs.lease_ms);
    let now = Timestamp::now();
    if !state.store.renew_job(&job.id, holder, now.plus(lease)).await.map_err(|e| e.to_string())? {
        return Ok(false);
    }
    state.store.apply_job_batch(&job.id, holder, batch, now).await.map_err(|e| e.to_string())
}

async fn import(state: &AppState, holder: &str, job: &Job, cancel: &CancellationToken) -> Result<Ended, String> {
    let key = job.input.clone().ok_or("the job has no file to import")?;
    let size = state
        .media
        .size(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the uploaded file {key} is gone from the media store"))?;
    let columns = Columns::for_kind(job.kind, &header_of(job)).map_err(|e| e.message)?;
    let campaign = match job.kind {
        JobKind::RecipientsImport => {
            Some(job.subject.as_deref().and_then(CampaignId::parse).ok_or("the job names no campaign")?)
        }
        _ => None,
    };
    let mut cursor = job.cursor;
    let mut slice = SLICE;
    loop {
        if cancel.is_cancelled() {
            return Ok(Ended::Stopping);
        }
        let offset = u64::try_from(cursor.offset).unwrap_or(0);
        if offset >= size {
            return Ok(Ended::Completed(None));
        }
        if let Some(id) = &campaign {
            let c = state.store.get_campaign(id).await.map_err(|e| e.to_string())?;
            match c {
                None => return Err(format!("campaign {id} no longer exists")),
                Some(c) if c.state.is_final() => {
                    return Err(format!("campaign {id} is {}: it takes no more recipients", c.state));
                }
                Some(_) => {}
            }
        }
        let end = size.min(offset + slice);
        let bytes = state.media.read_range(&key, offset, end).await.map_err(|e| e.to_string())?;
        let at_end = end == size;
        let parsed = imports::parse_records(&bytes, cursor.line, at_end, BATCH_ROWS);
        if parsed.records.is_empty() {
            if at_end {
                return Ok(Ended::Completed(None));
            }
            slice *= 2;
            if slice > SLICE_MAX {
                return Err(format!("the row at line {} is longer than 64 MiB", cursor.line));
            }
            continue;
        }
        let next = JobCursor { offset: cursor.offset + parsed.consumed as i64, line: parsed.next_line };
        let batch = batch_of(&columns, campaign.as_ref(), parsed.records, next);
        if !apply(state, holder, job, &batch).await? {
            return Ok(Ended::Let);
        }
        cursor = next;
        slice = SLICE;
        tokio::task::yield_now().await;
    }
}

/// A batch of an import: its rows read into their kind's work, or refused as invalid.
fn batch_of(
    columns: &Columns,
    campaign: Option<&CampaignId>,
    records: Vec<(i64, Result<csv::StringRecord, String>)>,
    cursor: JobCursor,
) -> JobBatch {
    let mut invalid = Vec::new();
    let mut recipients = Vec::new();
    let mut contacts = Vec::new();
    for (line, record) in records {
        let record = match record {
            Ok(r) => r,
            Err(why) => {
                let e = wagate_domain::validation::FieldError::new("csv", "csv", why);
                invalid.push(imports::invalid(line, None, &e));
                continue;
            }
        };
        match columns {
            Columns::Recipients(c) => match imports::recipient(c, &record) {
                Ok(r) => recipients.push((line, r)),
                Err((key, e)) => invalid.push(imports::invalid(line, key, &e)),
            },
            Columns::Contacts(c) => match c.row(line, &record) {
                Ok(r) => contacts.push(r),
                Err((key, e)) => invalid.push(imports::invalid(line, key, &e)),
            },
        }
    }
    let work = match (columns, campaign) {
        (Columns::Recipients(_), Some(id)) => JobWork::Recipients { campaign_id: id.clone(), rows: recipients },
        _ => JobWork::Contacts(contacts),
    };
    JobBatch { work, invalid, cursor, total: None }
}

/// Writes the campaign's recipients to a file a page at a time. Taken up again, it writes the
/// file anew (an object store cannot append) and counts only the rows past its cursor.
async fn export(state: &AppState, holder: &str, job: &Job, cancel: &CancellationToken) -> Result<Ended, String> {
    let id = job.subject.as_deref().and_then(CampaignId::parse).ok_or("the job names no campaign")?;
    let status = match job.params.get("status").and_then(|s| s.as_str()) {
        Some(s) => Some(RecipientStatus::parse(s).ok_or_else(|| format!("'{s}' is not a recipient status"))?),
        None => None,
    };
    let counts = state.store.count_recipients(&id, 0).await.map_err(|e| e.to_string())?;
    let total = status.map_or_else(|| counts.total(), |s| counts.of(s));
    let key = result_key(&job.id);
    let mut writer = state.media.writer(&key).await.map_err(|e| e.to_string())?;
    let mut written = EXPORT_HEADER.len() as i64;
    if let Err(e) = writer.write(EXPORT_HEADER.as_bytes()).await {
        writer.abort().await;
        return Err(e.to_string());
    }
    let mut after = None;
    let mut first = true;
    loop {
        if cancel.is_cancelled() {
            writer.abort().await;
            return Ok(Ended::Stopping);
        }
        let filter = RecipientFilter { status, after };
        let page = match state.store.list_recipients(&id, &filter, BATCH_ROWS as u32).await {
            Ok(p) => p,
            Err(e) => {
                writer.abort().await;
                return Err(e.to_string());
            }
        };
        let Some(last) = page.last().map(|r| r.position) else { break };
        let text: String = page.iter().map(export_line).collect();
        if let Err(e) = writer.write(text.as_bytes()).await {
            writer.abort().await;
            return Err(e.to_string());
        }
        written += text.len() as i64;
        after = Some(last);
        let new = page.iter().filter(|r| r.position > job.cursor.line).count() as i64;
        let batch = JobBatch {
            work: JobWork::Counted { succeeded: new },
            invalid: Vec::new(),
            cursor: JobCursor { offset: written, line: last.max(job.cursor.line) },
            total: first.then_some(total),
        };
        first = false;
        if !apply(state, holder, job, &batch).await? {
            writer.abort().await;
            return Ok(Ended::Let);
        }
    }
    writer.finish().await.map_err(|e| e.to_string())?;
    Ok(Ended::Completed(Some(key)))
}
