//! The janitor: the periodic work that is not sending, once per instance. It fails messages
//! past their `expires_at`, counts the queues (for `/metrics`, and the backlog that backpressure
//! compares), and removes what is kept no longer: expired idempotency keys, statuses that never
//! found their message, processed webhook deliveries, events (with their deliveries and
//! attempts) past `[events] keep_days`.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wagate_domain::time::Timestamp;
use wagate_domain::window;

use crate::metrics::{AccountLabels, NumberLabels};
use crate::state::{AppState, Worker};

/// How often the janitor looks for due chores: a fraction of the shortest chore's interval.
pub const ROUND: Duration = Duration::from_millis(250);

pub async fn run(state: AppState, cancel: CancellationToken) {
    let mut chores = Chores::new(&state);
    tracing::info!("janitor started");
    loop {
        state.health.beat(Worker::Janitor);
        chores.run(&state).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(ROUND) => {}
        }
    }
    tracing::info!("janitor stopped");
}

/// Periodic work: each at its own interval.
struct Chores {
    last_expiry: Option<Instant>,
    last_counts: Option<Instant>,
    /// How long the last count took: counting reads the whole outbox, so a deep backlog spaces
    /// the counts out.
    counting_took: Duration,
    last_sweep: Option<Instant>,
    last_deliveries_sweep: Option<Instant>,
    /// `inbound.sweep_interval_ms`.
    deliveries_every: Duration,
    /// `inbound.keep_processed_secs`.
    deliveries_kept: Duration,
}

impl Chores {
    fn new(state: &AppState) -> Self {
        let inbound = &state.config.inbound;
        Self {
            last_expiry: None,
            last_counts: None,
            counting_took: Duration::ZERO,
            last_sweep: None,
            // Processed deliveries are kept for days: the first sweep can wait its interval.
            last_deliveries_sweep: Some(Instant::now()),
            deliveries_every: Duration::from_millis(inbound.sweep_interval_ms),
            deliveries_kept: Duration::from_secs(inbound.keep_processed_secs),
        }
    }

    async fn run(&mut self, state: &AppState) {
        if due(&mut self.last_expiry, Duration::from_millis(500)) {
            expire(state).await;
        }
        if due(&mut self.last_counts, counting_interval(self.counting_took)) {
            let started = Instant::now();
            count(state).await;
            self.counting_took = started.elapsed();
        }
        if due(&mut self.last_sweep, Duration::from_secs(60)) {
            match state.store.delete_expired_idempotency_keys(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired idempotency keys removed"),
                Err(e) => tracing::warn!(error = %e, "removing expired idempotency keys failed"),
            }
            remove_orphan_statuses(state).await;
            delete_old_events(state).await;
            match state.store.delete_expired_sessions(Timestamp::now(), 1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired sign-in sessions removed"),
                Err(e) => tracing::warn!(error = %e, "removing expired sign-in sessions failed"),
            }
        }
        if due(&mut self.last_deliveries_sweep, self.deliveries_every) {
            delete_old_deliveries(state, self.deliveries_kept).await;
        }
    }
}

/// Queue depths are counted every 2 seconds, or less often when counting takes longer than a
/// twentieth of that: the count reads every queued row (a backlog of millions takes seconds),
/// and its cost stays a twentieth of one core's time whatever the depth. Between counts the
/// outbox keeps the backlog by what this instance queues and sees leave the queue.
fn counting_interval(took: Duration) -> Duration {
    (took * 20).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

fn due(last: &mut Option<Instant>, every: Duration) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < every) {
        return false;
    }
    *last = Some(now);
    true
}

/// How long a status waits for a message with its wamid. One that arrives before its send's
/// result is recorded is adopted within seconds; past a week it belongs to a message sent by
/// other software from the same number (or one whose result was lost), and would stay forever.
const ORPHAN_STATUSES_KEPT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Removes the statuses past waiting, a thousand per write so that sends are not held up.
async fn remove_orphan_statuses(state: &AppState) {
    const BATCH: u32 = 1_000;
    let before = Timestamp::now().minus(ORPHAN_STATUSES_KEPT);
    loop {
        match state.store.delete_orphan_statuses(before, BATCH).await {
            Ok(n) if n < u64::from(BATCH) => {
                if n > 0 {
                    tracing::debug!(removed = n, "statuses of unknown messages removed");
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "removing statuses of unknown messages failed");
                return;
            }
        }
    }
}

/// Fails the queued messages whose `expires_at` has passed, rather than sending them late.
async fn expire(state: &AppState) {
    loop {
        match state.store.expire_outbox(Timestamp::now(), 500).await {
            Ok(ids) => {
                for id in &ids {
                    state.outbox.left(id);
                }
                if ids.len() < 500 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "expiring messages failed");
                return;
            }
        }
    }
}

/// Queue depths per number (for `/metrics` and backpressure) and each account's unique users
/// reached outside the 24-hour window (against its messaging tier).
async fn count(state: &AppState) {
    let metrics = &state.metrics;
    let started = state.outbox.count_started();
    match state.store.outbox_depth_by_number().await {
        Ok(depths) => {
            metrics.queue_depth.clear();
            let total: i64 = depths.iter().map(|(_, d)| d).sum();
            for (phone_number_id, depth) in depths {
                metrics.queue_depth.get_or_create(&NumberLabels { phone_number_id }).set(depth);
            }
            metrics.outbox_depth.set(total);
            state.outbox.counted(total, started);
        }
        Err(e) => tracing::warn!(error = %e, "counting the outbox failed"),
    }
    let accounts = match state.store.list_accounts().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "listing accounts failed");
            return;
        }
    };
    let since = window::messaging_limit_since(Timestamp::now());
    for a in accounts {
        let labels = AccountLabels { account_id: a.id.as_str().to_owned() };
        metrics.account_paused.get_or_create(&labels).set(i64::from(a.paused.is_some()));
        if let Ok(n) = state.store.count_conversations_opened(&a.id, since).await {
            metrics.conversations_opened.get_or_create(&labels).set(n);
        }
        let limit = crate::services::accounts::tier_limit(a.messaging_tier, &state.config);
        metrics.messaging_limit.get_or_create(&labels).set(limit.map_or(-1, |l| l as i64));
    }
}

/// Deletes deliveries processed longer ago than `keep`, a batch at a time so no statement holds
/// the writer for long.
async fn delete_old_deliveries(state: &AppState, keep: Duration) {
    const BATCH: u32 = 1_000;
    let before = Timestamp::now().minus(keep);
    loop {
        match state.store.delete_processed_deliveries(before, BATCH).await {
            Ok(n) if n == u64::from(BATCH) => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(deleted = n, "old webhook deliveries deleted");
                }
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "deleting old webhook deliveries failed; will try again");
                break;
            }
        }
    }
}

/// Removes events past `[events] keep_days` with their finished deliveries and attempts, a
/// thousand rows of each per write so that sends are not held up.
async fn delete_old_events(state: &AppState) {
    const BATCH: u32 = 1_000;
    let before = Timestamp::now().minus(state.config.events.kept());
    loop {
        match state.store.delete_old_events(before, BATCH).await {
            Ok(0) => break,
            Ok(n) => tracing::debug!(deleted = n, "old events, deliveries and attempts deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "deleting old events failed; will try again");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_spaced_out_as_they_grow_slow() {
        assert_eq!(counting_interval(Duration::ZERO), Duration::from_secs(2));
        assert_eq!(counting_interval(Duration::from_millis(40)), Duration::from_secs(2));
        assert_eq!(counting_interval(Duration::from_millis(500)), Duration::from_secs(10));
        assert_eq!(counting_interval(Duration::from_secs(30)), Duration::from_secs(60));
    }
}
