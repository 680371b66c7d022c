//! One send attempt: the Graph call, its failure classified (by Meta's code when the body
//! parses, by HTTP status when it does not), and its result recorded.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wagate_domain::error_class::ErrorClass;
use wagate_domain::message::{MessageError, graph_body};
use wagate_domain::retry::{GiveUp, Retry};
use wagate_domain::time::Timestamp;
use wagate_storage::{Account, Dispatch, Leased, Pause, StorageError};

use super::limiter::{self, Limits};
use crate::config::UnknownOutcome;
use crate::graph::{GraphFailure, Target};
use crate::metrics::FailureLabels;
use crate::services::uploads::{self, Unresolved};
use crate::state::AppState;

/// What a send's result means for its number's limits and account.
pub enum Signal {
    None,
    /// Meta's throughput limit (130429): slow the number down.
    Throughput,
    /// Meta's pair rate (131056) for this recipient.
    PairRate(String),
    /// The account was paused.
    Paused,
}

/// Sends `d` for `account`, as the number's worker last read it: no read per send, so a send
/// leaves when its throughput token is taken, not after a database round trip of varying length.
pub async fn send(state: &AppState, limits: &Mutex<Limits>, account: Account, d: Leased<Dispatch>) -> Signal {
    limiter::leave(limits, &d.recipient).await;
    let Value::Object(fields) = &d.content else {
        let error = MessageError::gateway("corrupt_message", "stored content is not a JSON object");
        record(state, &d, Outcome::Failed(error, None)).await;
        return Signal::None;
    };
    let mut body = graph_body(&d.recipient, &d.kind, fields);
    // Files uploaded to wagate go to Meta for this number first (once, until Meta's copy ages).
    let (outcome, signal) = match uploads::resolve(state, &account, &d.phone_number_id, &mut body).await {
        Err(Unresolved::Gone(id)) => {
            let error =
                MessageError::gateway("media_deleted", format!("the upload {id} was deleted before it was sent"));
            (Outcome::Failed(error, None), Signal::None)
        }
        Err(Unresolved::Storage(why)) => {
            classify(state, &d, GraphFailure::Connect(format!("reading the upload failed: {why}")))
        }
        // Meta's refusal of the upload is the account's or the file's, as a send's would be.
        Err(Unresolved::Graph(failure)) => classify(state, &d, *failure),
        Ok(()) => {
            let started = Instant::now();
            let result = state.graph.send_message(&Target::from(&account), &d.phone_number_id, &body).await;
            state.metrics.graph_duration.observe(started.elapsed().as_secs_f64());
            match result {
                Ok((wamid, response)) => (Outcome::Accepted(wamid, response), Signal::None),
                Err(failure) => classify(state, &d, failure),
            }
        }
    };
    if let Outcome::Pause(error) = &outcome {
        let pause = Pause { since: Timestamp::now(), error: error.clone() };
        match state.store.pause_account(&account.id, account.updated_at, &pause).await {
            Ok(true) => tracing::error!(
                account_id = %account.id, code = ?error.code, message = %error.message,
                "Meta refused the account: its sending is paused until it is fixed (PATCH /v1/accounts/{{id}})"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(account_id = %account.id, error = %e, "pausing the account failed"),
        }
    }
    record(state, &d, outcome).await;
    signal
}

enum Outcome {
    /// The wamid, and Meta's answer.
    Accepted(String, Value),
    /// When to try again, and why it failed.
    Retry(Timestamp, MessageError),
    /// Why, and Meta's answer as it came (`{"status", "body"}`) when there was one.
    Failed(MessageError, Option<Value>),
    /// The account is refused: pause it; the message goes back to the queue uncounted.
    Pause(MessageError),
}

fn classify(state: &AppState, d: &Leased<Dispatch>, failure: GraphFailure) -> (Outcome, Signal) {
    let settings = &state.config.dispatcher;
    let (class, retry_after, error) = match &failure {
        GraphFailure::Meta { error, .. } => (ErrorClass::of(error.code), None, MessageError::from_graph(error)),
        GraphFailure::Http { status, retry_after, .. } => (
            ErrorClass::of_http_status(*status),
            *retry_after,
            MessageError::gateway("http_error", failure.to_string()),
        ),
        GraphFailure::Connect(_) => {
            (ErrorClass::Transient, None, MessageError::gateway("network_error", failure.to_string()))
        }
        GraphFailure::Unknown(_) => {
            let class = match settings.unknown_outcome {
                UnknownOutcome::Retry => ErrorClass::Transient,
                UnknownOutcome::Fail => ErrorClass::Permanent,
            };
            (class, None, MessageError::gateway("unknown_outcome", failure.to_string()))
        }
        // Only a change of configuration and a restart would let it through.
        GraphFailure::Refused(_) => {
            (ErrorClass::Permanent, None, MessageError::gateway("private_address", failure.to_string()))
        }
    };
    tracing::warn!(message_id = %d.message_id, attempt = d.attempts, error = %failure, "send failed");
    let signal = match class {
        ErrorClass::AccountBlocked => return (Outcome::Pause(error), Signal::Paused),
        ErrorClass::Throttled => Signal::Throughput,
        ErrorClass::PairRate => Signal::PairRate(d.recipient.clone()),
        ErrorClass::Transient | ErrorClass::Permanent => Signal::None,
    };
    let policy = if class == ErrorClass::PairRate { settings.pair_retry_policy() } else { settings.retry_policy() };
    let now = Timestamp::now();
    let retry = class.is_retried().then(|| super::super::retry(&policy, d.attempts, d.created_at, now));
    let error = match retry {
        Some(Retry::At(due)) => {
            if !failure.not_applied() {
                // Meta may have the message already; resending may deliver it twice.
                state.metrics.possible_duplicates.inc();
            }
            let due = retry_after.map_or(due, |after| now.plus(after));
            return (Outcome::Retry(due, error), signal);
        }
        Some(Retry::GiveUp(GiveUp::Deadline)) => MessageError { reason: Some("retry_deadline".into()), ..error },
        Some(Retry::GiveUp(GiveUp::Attempts)) | None => error,
    };
    let answer = match failure {
        GraphFailure::Meta { status, body, .. } => Some(json!({ "status": status, "body": body })),
        _ => None,
    };
    (Outcome::Failed(error, answer), signal)
}

/// Records an outcome. If storage fails it keeps trying until the lease is about to lapse: an
/// acceptance left unrecorded would be sent again by whoever claims the message next.
async fn record(state: &AppState, d: &Leased<Dispatch>, outcome: Outcome) {
    let mut wait = Duration::from_millis(100);
    loop {
        let e = match record_once(state, d, &outcome).await {
            Ok(left_queue) => {
                if left_queue {
                    state.outbox.left(&d.message_id);
                } else {
                    state.outbox.recorded(&d.message_id);
                }
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

/// Whether the message left the queue for good (accepted or failed, and not already by another
/// attempt).
async fn record_once(state: &AppState, d: &Leased<Dispatch>, outcome: &Outcome) -> Result<bool, StorageError> {
    let mut left = false;
    let now = Timestamp::now();
    let metrics = &state.metrics;
    let number = &d.phone_number_id;
    match outcome {
        Outcome::Accepted(wamid, response) => {
            if state.store.record_accepted(d, wamid, response, now).await? {
                let waited = (now.as_millis() - d.created_at.as_millis()).max(0) as f64 / 1000.0;
                metrics.send_latency.observe(waited);
                left = true;
            } else {
                metrics.possible_duplicates.inc();
                tracing::warn!(message_id = %d.message_id, %wamid, "another attempt recorded its result first");
            }
            metrics.dispatched(number, "accepted");
        }
        Outcome::Retry(due, error) => {
            state.store.outbox().retry(d, *due, error, now).await?;
            metrics.dispatched(number, "retried");
        }
        Outcome::Pause(error) => {
            state.store.give_back(d, now, error).await?;
            metrics.dispatched(number, "paused");
        }
        Outcome::Failed(error, answer) => {
            if state.store.record_failed(d, error, answer.as_ref(), now).await? {
                let code = error.code.map_or_else(|| error.reason.clone().unwrap_or_default(), |c| c.to_string());
                metrics.dispatch_failures.get_or_create(&FailureLabels { code }).inc();
                left = true;
            }
            metrics.dispatched(number, "failed");
        }
    }
    Ok(left)
}
