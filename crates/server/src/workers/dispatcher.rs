//! The dispatcher: claims due outbox rows with a lease, calls the Graph API, records the wamid
//! or the error. A lease always outlasts the Graph request timeout, so a slow request is never
//! claimed twice; a lease left by a process that died expires and the row is claimed again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wagate_domain::message::{MessageError, graph_body};
use wagate_domain::meta::is_transient_code;
use wagate_domain::time::Timestamp;
use wagate_storage::{Dispatch, StorageError};

use crate::graph::{GraphFailure, Target, is_transient_status};
use crate::metrics::{FailureLabels, Metrics};
use crate::state::{AppState, Worker};

pub async fn run(state: AppState, cancel: CancellationToken) {
    let settings = state.config.dispatcher.clone();
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut in_flight = JoinSet::new();
    tracing::info!(lease_ms = settings.lease().as_millis() as u64, "dispatcher started");
    loop {
        state.health.beat(Worker::Dispatcher);
        let free = slots.available_permits().min(settings.batch_size as usize);
        let mut full_batch = false;
        if free > 0 {
            let now = Timestamp::now();
            match state.store.claim_outbox(now, now.plus(settings.lease()), free as u32).await {
                Ok(batch) => {
                    full_batch = batch.len() == free;
                    for d in batch {
                        let permit = slots.clone().acquire_owned().await.expect("semaphore never closes");
                        let state = state.clone();
                        in_flight.spawn(async move {
                            send(&state, d).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming outbox rows failed"),
            }
        }
        if full_batch && !cancel.is_cancelled() {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.dispatch_wakeup.notified() => {}
            _ = tokio::time::sleep(settings.poll_interval()) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    let pending = in_flight.len();
    if pending > 0 {
        tracing::info!(pending, "dispatcher finishing sends in flight");
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("dispatcher stopped");
}

/// One send attempt, and its result recorded.
async fn send(state: &AppState, d: Dispatch) {
    let account = match state.store.get_account(&d.account_id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            let error = MessageError::gateway("account_missing", format!("account {} no longer exists", d.account_id));
            record(state, &d, Outcome::Failed(error, None)).await;
            return;
        }
        Err(e) => {
            // The lease will lapse and the row be claimed again.
            tracing::error!(message_id = %d.message_id, error = %e, "loading the sending account failed");
            return;
        }
    };
    let serde_json::Value::Object(fields) = &d.content else {
        let error = MessageError::gateway("corrupt_message", "stored content is not a JSON object");
        record(state, &d, Outcome::Failed(error, None)).await;
        return;
    };
    let body = graph_body(&d.recipient, &d.kind, fields);
    let started = Instant::now();
    let result = state.graph.send_message(&Target::from(&account), &d.phone_number_id, &body).await;
    state.metrics.graph_duration.observe(started.elapsed().as_secs_f64());
    let outcome = match result {
        Ok((wamid, response)) => Outcome::Accepted(wamid, response),
        Err(failure) => classify(state, &d, failure),
    };
    record(state, &d, outcome).await;
}

enum Outcome {
    /// The wamid, and Meta's answer.
    Accepted(String, Value),
    Retry(Duration, MessageError),
    /// Why, and Meta's answer as it came (`{"status", "body"}`) when there was one.
    Failed(MessageError, Option<Value>),
}

fn classify(state: &AppState, d: &Dispatch, failure: GraphFailure) -> Outcome {
    let settings = &state.config.dispatcher;
    let (transient, retry_after, error) = match &failure {
        GraphFailure::Meta { error, .. } => (is_transient_code(error.code), None, MessageError::from_graph(error)),
        GraphFailure::Http { status, retry_after, .. } => {
            (is_transient_status(*status), *retry_after, MessageError::gateway("http_error", failure.to_string()))
        }
        GraphFailure::Connect(_) => (true, None, MessageError::gateway("network_error", failure.to_string())),
        GraphFailure::Unknown(_) => (true, None, MessageError::gateway("unknown_outcome", failure.to_string())),
    };
    tracing::warn!(message_id = %d.message_id, attempt = d.attempts, transient, error = %failure, "send failed");
    if transient && d.attempts < i64::from(settings.max_attempts) {
        if !failure.not_applied() {
            // Meta may have the message already; resending may deliver it twice.
            state.metrics.possible_duplicates.inc();
        }
        let delay =
            retry_after.unwrap_or_else(|| super::backoff(d.attempts, settings.retry_base_ms, settings.retry_max_ms));
        Outcome::Retry(delay, error)
    } else {
        let answer = match failure {
            GraphFailure::Meta { status, body, .. } => Some(json!({ "status": status, "body": body })),
            _ => None,
        };
        Outcome::Failed(error, answer)
    }
}

/// Records an outcome. If storage fails it keeps trying until the lease is about to lapse: an
/// acceptance left unrecorded would be sent again by whoever claims the row next.
async fn record(state: &AppState, d: &Dispatch, outcome: Outcome) {
    let mut wait = Duration::from_millis(100);
    loop {
        let e = match record_once(state, d, &outcome).await {
            Ok(()) => {
                // Nobody waiting is fine: the send is recorded either way.
                let _ = state.completions.send(d.message_id.clone());
                return;
            }
            Err(e) => e,
        };
        let deadline = d.lease_until.as_millis() - 1_000;
        if Timestamp::now().plus(wait).as_millis() >= deadline {
            if matches!(outcome, Outcome::Accepted(..)) {
                state.metrics.possible_duplicates.inc();
            }
            tracing::error!(message_id = %d.message_id, error = %e, "recording a send result failed until the lease ran out");
            return;
        }
        tracing::warn!(message_id = %d.message_id, error = %e, "recording a send result failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn record_once(state: &AppState, d: &Dispatch, outcome: &Outcome) -> Result<(), StorageError> {
    let now = Timestamp::now();
    let metrics = &state.metrics;
    match outcome {
        Outcome::Accepted(wamid, response) => {
            if !state.store.record_accepted(d, wamid, response, now).await? {
                metrics.possible_duplicates.inc();
                tracing::warn!(message_id = %d.message_id, %wamid, "another attempt recorded its result first");
            }
            Metrics::outcome(&metrics.dispatch, "accepted");
        }
        Outcome::Retry(delay, error) => {
            state.store.reschedule(d, now.plus(*delay), error).await?;
            Metrics::outcome(&metrics.dispatch, "retried");
        }
        Outcome::Failed(error, answer) => {
            if state.store.record_failed(d, error, answer.as_ref(), now).await? {
                let code = error.code.map_or_else(|| error.reason.clone().unwrap_or_default(), |c| c.to_string());
                metrics.dispatch_failures.get_or_create(&FailureLabels { code }).inc();
            }
            Metrics::outcome(&metrics.dispatch, "failed");
        }
    }
    Ok(())
}
