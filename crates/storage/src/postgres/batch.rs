//! Group commit for the writes that answer a request (new sends, webhook deliveries): the
//! request waits until its write is committed, so each write costs a commit, and commits are
//! what PostgreSQL does slowest. A few writer tasks take what is queued and store it with one
//! commit, one statement for the whole batch where it can; everything that arrives while one
//! batch commits goes into the next.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::shared::MAX_BATCH;
use crate::{Result, StorageError};

/// A kind of write the batch writers store.
pub(super) trait Batched: Send + Sync + Sized + 'static {
    /// What the request is answered with once its write is committed.
    type Written: Send + 'static;

    /// Writes and commits `jobs`, all or none, with what each wrote, in their order. What is
    /// written by one statement needs no transaction (it is atomic alone, and BEGIN and COMMIT
    /// are two round trips more); what takes several begins one on `conn`.
    fn write_all(conn: &mut PgConnection, jobs: &[Self]) -> impl Future<Output = Result<Vec<Self::Written>>> + Send;
}

type Queued<J> = (J, oneshot::Sender<Result<<J as Batched>::Written>>);

/// The queue in front of the writers of one kind of write.
pub(super) struct BatchWriter<J: Batched> {
    queue: mpsc::Sender<Queued<J>>,
}

impl<J: Batched> BatchWriter<J> {
    /// Starts `writers` tasks writing on `pool`; they stop when this is dropped. Several, so
    /// one batch's commit overlaps the next one's statements.
    pub(super) fn spawn(pool: PgPool, writers: usize) -> Self {
        // Bounded: writers that fall behind slow the requests down instead of piling them up.
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            let (pool, rx) = (pool.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        fill(first, &mut rx)
                    };
                    store(&pool, batch).await;
                }
            });
        }
        Self { queue }
    }

    /// Queues `job` and waits until it is committed.
    pub(super) async fn write(&self, job: J) -> Result<J::Written> {
        let gone = || StorageError::Database(sqlx::Error::PoolClosed);
        let (reply, answer) = oneshot::channel();
        self.queue.send((job, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The first job and whatever else is queued behind it, up to a batch.
fn fill<J: Batched>(first: Queued<J>, rx: &mut mpsc::Receiver<Queued<J>>) -> Vec<Queued<J>> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Stores a batch in one transaction and answers its jobs. When that fails, each job is
/// written alone, so that one bad job fails alone.
async fn store<J: Batched>(pool: &PgPool, batch: Vec<Queued<J>>) {
    let started = Instant::now();
    let (jobs, replies): (Vec<J>, Vec<_>) = batch.into_iter().unzip();
    let outcome = write(pool, &jobs).await;
    tracing::trace!(batch = jobs.len(), elapsed_us = started.elapsed().as_micros() as u64, "batch stored");
    match outcome {
        Ok(written) => {
            for (reply, w) in replies.into_iter().zip(written) {
                let _ = reply.send(Ok(w));
            }
        }
        Err(e) if jobs.len() == 1 => {
            let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = jobs.len(), "a batch failed to store; storing its jobs one by one");
            for (job, reply) in jobs.iter().zip(replies) {
                let written = write(pool, std::slice::from_ref(job)).await;
                let _ = reply.send(written.map(|mut w| w.pop().expect("one result for one job")));
            }
        }
    }
}

async fn write<J: Batched>(pool: &PgPool, jobs: &[J]) -> Result<Vec<J::Written>> {
    let written = J::write_all(&mut *pool.acquire().await?, jobs).await?;
    debug_assert_eq!(written.len(), jobs.len(), "a batch answers each of its jobs");
    Ok(written)
}
