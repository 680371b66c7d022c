//! Background jobs. The one writer serialises claims, so the oldest claimable job is taken by
//! one statement; a batch is one of the writer's transactions, its rows written a statement
//! each, each statement prepared once.

use async_trait::async_trait;
use rusqlite::{Transaction, params, params_from_iter};
use wagate_domain::id::JobId;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{all, execute, first};
use super::{campaigns, contacts};
use crate::shared::{self, JobColumns, recipient_columns};
use crate::*;

const INSERT_ENTRY: &str = "INSERT INTO job_entries (job_id, line, outcome, key, code, message) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job_id, line) DO NOTHING";

#[async_trait]
impl Jobs for SqliteStore {
    async fn insert_job(&self, job: &Job) -> Result<()> {
        let (columns, id) = (JobColumns::new(job), job.id.clone());
        let inserted = self
            .writer
            .write(move |tx| execute(tx, shared::INSERT_JOB, params_from_iter(columns.insert_values())))
            .await?;
        if inserted == 0 {
            return Err(StorageError::Conflict(format!("job {id} exists already")));
        }
        Ok(())
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.readers.read(|c| first(c, shared::SELECT_JOB, [id.as_str()], |r| shared::job(r)))
    }

    async fn list_jobs(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        let values = shared::job_filter_values(filter, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_JOBS, values, |r| shared::job(r))).await
    }

    async fn claim_job(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<Option<Job>> {
        let values = (holder.to_owned(), until.as_millis(), now.as_millis());
        self.writer.write(move |tx| first(tx, shared::CLAIM_JOB, values.clone(), |r| shared::job(r))).await
    }

    async fn renew_job(&self, id: &JobId, holder: &str, until: Timestamp) -> Result<bool> {
        let values = (until.as_millis(), id.as_str().to_owned(), holder.to_owned());
        Ok(self.execute(shared::RENEW_JOB, values).await? == 1)
    }

    async fn apply_job_batch(&self, id: &JobId, holder: &str, batch: &JobBatch, at: Timestamp) -> Result<bool> {
        let (id, holder, batch, views) = (id.clone(), holder.to_owned(), batch.clone(), self.views.clone());
        self.writer
            .write(move |tx| {
                if execute(tx, shared::TOUCH_HELD_JOB, params![at.as_millis(), id.as_str(), holder])? == 0 {
                    return Ok(false);
                }
                let work = match &batch.work {
                    JobWork::Contacts(rows) => contacts::import_contacts(tx, views.as_ref(), rows, at)?,
                    JobWork::Recipients { campaign_id, rows } => {
                        let columns: Vec<_> = rows.iter().map(|(_, r)| recipient_columns(r)).collect();
                        let added = campaigns::add_recipients(tx, campaign_id.as_str(), &columns, at)?;
                        shared::recipient_entries(campaign_id, rows, added.as_deref())
                    }
                    JobWork::Counted { .. } => Vec::new(),
                };
                execute(tx, shared::NOTE_PROGRESS, shared::progress_values(&id, &work, &batch, at))?;
                insert_entries(tx, &id, &shared::batch_entries(work, &batch))?;
                Ok(true)
            })
            .await
    }

    async fn finish_job(
        &self,
        id: &JobId,
        holder: &str,
        state: JobState,
        result: Option<&str>,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        if !matches!(state, JobState::Completed | JobState::Failed) {
            return Err(StorageError::Conflict(format!("a job ends completed or failed, not {}", state.as_str())));
        }
        let values = (
            state.as_str(),
            result.map(str::to_owned),
            error.map(str::to_owned),
            at.as_millis(),
            id.as_str().to_owned(),
            holder.to_owned(),
        );
        Ok(self.execute(shared::FINISH_JOB, values).await? == 1)
    }

    async fn cancel_job(&self, id: &JobId, at: Timestamp) -> Result<bool> {
        Ok(self.execute(shared::CANCEL_JOB, (at.as_millis(), id.as_str().to_owned())).await? == 1)
    }

    async fn list_job_entries(&self, id: &JobId, filter: &EntryFilter, limit: u32) -> Result<Vec<JobEntry>> {
        let (sql, values) = (shared::select_entries(filter.outcome), shared::entry_page_values(id, filter, limit));
        self.readers.scan(move |c| all(c, sql, values, |r| shared::entry(r))).await
    }
}

/// A batch's entries; a line written already keeps its entry.
fn insert_entries(tx: &Transaction<'_>, id: &JobId, entries: &[JobEntry]) -> Result<()> {
    let mut insert = tx.prepare_cached(INSERT_ENTRY)?;
    for e in entries {
        insert.execute(params![id.as_str(), e.line, e.outcome.as_str(), e.key, e.code, e.message])?;
    }
    Ok(())
}
