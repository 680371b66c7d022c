//! The inbound processor: works through stored webhook deliveries. A delivery is acknowledged
//! to Meta only once stored, and processed here even if the process died in between.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wagate_domain::retry::{Retry, RetryPolicy};
use wagate_domain::time::Timestamp;
use wagate_storage::{Backend, Delivery, Leased, StorageError};

use crate::services::webhooks::{Pending, ProcessError, process, write_pending};
use crate::state::{AppState, Worker};

/// Deliveries claimed per batch when there is no backlog. A batch costs three commits whatever
/// its size, and the processor runs them one after another: on PostgreSQL each commit waits for
/// its own flush, so batches are larger there; SQLite's writer flushes for every task at once,
/// and the shorter its transactions, the sooner it acknowledges the webhooks arriving meanwhile.
fn batch_size(backend: Backend) -> u32 {
    match backend {
        Backend::Sqlite => 32,
        Backend::Postgres => 256,
    }
}

/// The most deliveries a batch claims while a backlog lasts. Each full batch doubles the next
/// one up to this: three commits a batch otherwise cap the rate at three commit cycles per
/// small batch, which a number's top rate (three status webhooks per message, 3,000 a second)
/// outruns when sends share the writer (`wagate-bench --sustained`: 500–900 statuses a second
/// applied at 32 a batch against 3,000 arriving).
const MAX_BATCH: u32 = 256;

pub async fn run(state: AppState, cancel: CancellationToken) {
    let settings = state.config.inbound.clone();
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let lease = Duration::from_millis(settings.lease_ms);
    let linger = Duration::from_millis(settings.linger_ms);
    let retry_policy = settings.retry_policy();
    let base_size = batch_size(state.store.backend());
    let mut batch_size = base_size;
    loop {
        state.health.beat(Worker::Inbound);
        let now = Timestamp::now();
        let batch = match state.store.deliveries().claim(now, now.plus(lease), batch_size).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            }
        };
        let full = batch.len() == batch_size as usize;
        batch_size = if full { (batch_size * 2).min(MAX_BATCH) } else { base_size };
        // Finish the batch even when stopping: each delivery takes milliseconds. The batch's
        // inbound messages and statuses are written together after it (see `write_pending`),
        // then its deliveries are marked done in one transaction; processing is idempotent, so
        // a crash before that only repeats work.
        let mut finished = Vec::with_capacity(batch.len());
        // Each finished delivery's part of `pending`.
        let mut spans = Vec::with_capacity(batch.len());
        let mut pending = Pending::default();
        for d in &batch {
            let before = pending.mark();
            let outcome = match process(&state, d, &mut pending).await {
                Ok(()) => None,
                Err(ProcessError::Unprocessable(why)) => {
                    tracing::warn!(delivery = d.id, error = %why, "webhook delivery set aside");
                    Some(why)
                }
                Err(ProcessError::Storage(e)) => {
                    pending.truncate(before);
                    let set_aside = finished.len();
                    give_back(&state, d, &e, &retry_policy, &mut finished).await;
                    if finished.len() > set_aside {
                        spans.push((before, before));
                    }
                    continue;
                }
            };
            finished.push((d, outcome));
            spans.push((before, pending.mark()));
        }
        if let Err(e) = write_pending(&state, &pending, None).await {
            // One bad message or status must not hold back the others: delivery by delivery,
            // each is either written or tried again (set aside once it has failed too often).
            tracing::warn!(error = %e, "writing a batch of deliveries failed; writing them one by one");
            let mut written = Vec::with_capacity(finished.len());
            for ((d, outcome), span) in std::mem::take(&mut finished).into_iter().zip(spans) {
                match write_pending(&state, &pending, Some(span)).await {
                    Ok(()) => written.push((d, outcome)),
                    Err(e) => give_back(&state, d, &e, &retry_policy, &mut written).await,
                }
            }
            finished = written;
        }
        if let Err(e) = state.store.finish_deliveries(&finished, Timestamp::now()).await {
            tracing::error!(error = %e, deliveries = finished.len(), "recording webhook processing failed; the leases will lapse");
        }
        if full && !cancel.is_cancelled() {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.signals.next_delivery_stored() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(linger) => {}
        }
    }
    tracing::info!("inbound processor stopped");
}

/// A delivery storage failed on: tried again later, or set aside (into `finished`) once it has
/// failed too often.
async fn give_back<'a>(
    state: &AppState,
    d: &'a Leased<Delivery>,
    e: &StorageError,
    policy: &RetryPolicy,
    finished: &mut Vec<(&'a Leased<Delivery>, Option<String>)>,
) {
    let Retry::At(due) = super::retry(policy, d.attempts, d.received_at, Timestamp::now()) else {
        tracing::error!(delivery = d.id, error = %e, "webhook delivery failed too often; set aside");
        finished.push((d, Some(e.to_string())));
        return;
    };
    tracing::warn!(delivery = d.id, error = %e, "webhook delivery failed; will retry");
    if let Err(e) = state.store.deliveries().retry(d, due, &e.to_string(), Timestamp::now()).await {
        tracing::error!(delivery = d.id, error = %e, "recording webhook processing failed; the lease will lapse");
    }
}
