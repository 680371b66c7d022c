//! Background jobs. A claim locks the job it takes, skipping those another claim holds, so
//! instances claiming at once take different jobs; a batch is one transaction, which first
//! locks its job (while its holder holds it) and writes its rows a statement for each kind of
//! write, the rows in arrays (`UNNEST`).

use async_trait::async_trait;
use wagate_domain::id::JobId;
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, all, campaigns, contacts, execute, first};
use crate::shared::{self, JobColumns, bind_params, recipient_columns};
use crate::*;

/// A batch's entries; a line written already keeps its entry (the first of the arrays too).
const INSERT_ENTRIES: &str = "INSERT INTO job_entries (job_id, line, outcome, key, code, message) \
    SELECT $1, line, outcome, key, code, message \
    FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS e (line, outcome, key, code, message) \
    ON CONFLICT (job_id, line) DO NOTHING";

/// Times a batch is done again when a message made one of its new contacts meanwhile.
const ATTEMPTS: usize = 3;

#[async_trait]
impl Jobs for PgStore {
    async fn insert_job(&self, job: &Job) -> Result<()> {
        let columns = JobColumns::new(job);
        let query = bind_params(sqlx::query(shared::INSERT_JOB), &columns.insert_values());
        if query.execute(&self.pool).await?.rows_affected() == 0 {
            return Err(StorageError::Conflict(format!("job {} exists already", job.id)));
        }
        Ok(())
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        first(&self.pool, shared::SELECT_JOB, (id.as_str(),), shared::job).await
    }

    async fn list_jobs(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        all(&self.pool, shared::SELECT_JOBS, shared::job_filter_values(filter, limit), shared::job).await
    }

    async fn claim_job(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<Option<Job>> {
        let values = (holder, until.as_millis(), now.as_millis());
        first(&self.pool, shared::CLAIM_JOB_SKIP_LOCKED, values, shared::job).await
    }

    async fn renew_job(&self, id: &JobId, holder: &str, until: Timestamp) -> Result<bool> {
        Ok(execute(&self.pool, shared::RENEW_JOB, (until.as_millis(), id.as_str(), holder)).await? == 1)
    }

    async fn apply_job_batch(&self, id: &JobId, holder: &str, batch: &JobBatch, at: Timestamp) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.begin().await?;
            if execute(&mut *tx, shared::TOUCH_HELD_JOB, (at.as_millis(), id.as_str(), holder)).await? == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            let work = match &batch.work {
                JobWork::Contacts(rows) => {
                    match contacts::import_contacts(&mut tx, self.views.as_ref(), rows, at).await? {
                        Some(entries) => entries,
                        None => {
                            tx.rollback().await?;
                            continue;
                        }
                    }
                }
                JobWork::Recipients { campaign_id, rows } => {
                    let columns: Vec<_> = rows.iter().map(|(_, r)| recipient_columns(r)).collect();
                    let added = campaigns::add_recipients(&mut tx, campaign_id.as_str(), &columns, at).await?;
                    shared::recipient_entries(campaign_id, rows, added.as_deref())
                }
                JobWork::Counted { .. } => Vec::new(),
            };
            execute(&mut *tx, shared::NOTE_PROGRESS, shared::progress_values(id, &work, batch, at)).await?;
            insert_entries(&mut tx, id, &shared::batch_entries(work, batch)).await?;
            tx.commit().await?;
            return Ok(true);
        }
        Err(StorageError::Conflict(format!("job {id}: the batch's contacts kept being made by messages meanwhile")))
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
        let values = (state.as_str(), result, error, at.as_millis(), id.as_str(), holder);
        Ok(execute(&self.pool, shared::FINISH_JOB, values).await? == 1)
    }

    async fn cancel_job(&self, id: &JobId, at: Timestamp) -> Result<bool> {
        Ok(execute(&self.pool, shared::CANCEL_JOB, (at.as_millis(), id.as_str())).await? == 1)
    }

    async fn list_job_entries(&self, id: &JobId, filter: &EntryFilter, limit: u32) -> Result<Vec<JobEntry>> {
        let values = shared::entry_page_values(id, filter, limit);
        all(&self.pool, shared::select_entries(filter.outcome), values, shared::entry).await
    }
}

/// A batch's entries, in one statement.
async fn insert_entries(tx: &mut Tx, id: &JobId, entries: &[JobEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_ENTRIES)
        .bind(id.as_str())
        .bind(entries.iter().map(|e| e.line).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.key.as_deref()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.code.as_deref()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.message.as_deref()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
