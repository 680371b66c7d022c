//! The inbound processor: works through stored webhook deliveries. A delivery is acknowledged
//! to Meta only once stored, and processed here even if the process died in between.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wagate_domain::time::Timestamp;

use crate::services::webhooks::{ProcessError, process};
use crate::state::{AppState, Worker};

const BATCH: u32 = 32;

pub async fn run(state: AppState, cancel: CancellationToken) {
    let settings = state.config.inbound.clone();
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let lease = Duration::from_millis(settings.lease_ms);
    loop {
        state.health.beat(Worker::Inbound);
        let now = Timestamp::now();
        let batch = match state.store.claim_deliveries(now, now.plus(lease), BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            }
        };
        let full = batch.len() == BATCH as usize;
        // Finish the batch even when stopping: each delivery takes milliseconds. Processed
        // deliveries are marked in one transaction at the end (processing is idempotent, so a
        // crash before that only repeats work).
        let mut finished = Vec::with_capacity(batch.len());
        for d in &batch {
            match process(&state, d).await {
                Ok(()) => finished.push((d, None)),
                Err(ProcessError::Unprocessable(why)) => {
                    tracing::warn!(delivery = d.id, error = %why, "webhook delivery set aside");
                    finished.push((d, Some(why)));
                }
                Err(ProcessError::Storage(e)) if d.attempts >= settings.max_attempts => {
                    tracing::error!(delivery = d.id, error = %e, "webhook delivery failed too often; set aside");
                    finished.push((d, Some(e.to_string())));
                }
                Err(ProcessError::Storage(e)) => {
                    tracing::warn!(delivery = d.id, error = %e, "webhook delivery failed; will retry");
                    let delay = super::backoff(d.attempts, 200, 60_000);
                    if let Err(e) = state.store.retry_delivery(d, Timestamp::now().plus(delay), &e.to_string()).await {
                        tracing::error!(delivery = d.id, error = %e, "recording webhook processing failed; the lease will lapse");
                    }
                }
            }
        }
        if let Err(e) = state.store.finish_deliveries(&finished, Timestamp::now()).await {
            tracing::error!(error = %e, deliveries = finished.len(), "recording webhook processing failed; the leases will lapse");
        }
        if full && !cancel.is_cancelled() {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.inbound_wakeup.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    tracing::info!("inbound processor stopped");
}
