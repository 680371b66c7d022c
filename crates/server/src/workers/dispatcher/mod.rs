//! The dispatcher: each business number's messages are sent by the one instance holding that
//! number's lease (so the number's limits hold across instances), by a worker of its own that
//! respects Meta's throughput and pair rate, sends each recipient's messages in order, retries
//! what failed for now and pauses an account Meta refuses.
//!
//! This module keeps the leases, starts and stops the number workers, and does the chores:
//! expiring messages past their `expires_at`, sweeping old idempotency keys, and counting the
//! queues for `/metrics` and backpressure.

pub(crate) mod limiter;
mod number;
mod send;

pub use number::messages_per_second;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagate_domain::time::Timestamp;
use wagate_domain::window;

use crate::metrics::{AccountLabels, NumberLabels};
use crate::state::{AppState, Worker};

/// A running number worker and the lease it works under.
struct Held {
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// When the lease lapses (ms); the worker stops claiming past it.
    lease_until: Arc<AtomicI64>,
}

pub async fn run(state: AppState, cancel: CancellationToken) {
    let holder = wagate_domain::id::new_id("dispatcher");
    let settings = state.config.dispatcher.clone();
    // Leases are renewed every third of their length; chores want a second or less.
    let round = (settings.number_lease() / 3).min(settings.poll_interval() * 4).min(Duration::from_secs(1));
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut chores = Chores::default();
    tracing::info!(%holder, "dispatcher started");
    loop {
        state.health.beat(Worker::Dispatcher);
        renew_leases(&state, &holder, &mut held, &cancel).await;
        chores.run(&state).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(round) => {}
        }
    }
    let pending = held.len();
    for h in held.values() {
        h.stop.cancel();
    }
    for (_, h) in held.drain() {
        let _ = h.task.await;
    }
    if let Err(e) = state.store.release_number_leases(&holder).await {
        tracing::warn!(error = %e, "releasing number leases failed; they lapse on their own");
    }
    tracing::info!(numbers = pending, "dispatcher stopped");
}

/// Takes or renews the lease of every number, starting a worker for each number newly held and
/// stopping the workers of numbers lost or gone.
async fn renew_leases(state: &AppState, holder: &str, held: &mut HashMap<String, Held>, cancel: &CancellationToken) {
    let numbers = match state.store.list_phone_numbers().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "listing phone numbers failed; leases not renewed");
            return;
        }
    };
    let lease = state.config.dispatcher.number_lease();
    for n in &numbers {
        let now = Timestamp::now();
        let until = now.plus(lease);
        match state.store.acquire_number_lease(&n.id, holder, now, until).await {
            Ok(true) => match held.get(&n.id) {
                Some(h) if !h.task.is_finished() => h.lease_until.store(until.as_millis(), Ordering::Relaxed),
                _ => {
                    let stop = cancel.child_token();
                    let lease_until = Arc::new(AtomicI64::new(until.as_millis()));
                    let worker =
                        number::NumberWorker::new(state.clone(), n.id.clone(), stop.clone(), lease_until.clone());
                    tracing::info!(phone_number_id = %n.id, "dispatching this number's messages");
                    held.insert(n.id.clone(), Held { stop, task: tokio::spawn(worker.run()), lease_until });
                }
            },
            Ok(false) => {
                if let Some(h) = held.remove(&n.id) {
                    tracing::warn!(phone_number_id = %n.id, "another instance holds this number now");
                    h.stop.cancel();
                }
            }
            Err(e) => tracing::error!(phone_number_id = %n.id, error = %e, "renewing a number lease failed"),
        }
    }
    held.retain(|id, h| {
        let keep = numbers.iter().any(|n| &n.id == id);
        if !keep {
            h.stop.cancel();
        }
        keep
    });
}

/// Periodic work: each at its own interval.
#[derive(Default)]
struct Chores {
    last_expiry: Option<Instant>,
    last_counts: Option<Instant>,
    /// How long the last count took: counting reads the whole outbox, so a deep backlog spaces
    /// the counts out.
    counting_took: Duration,
    last_sweep: Option<Instant>,
}

/// Queue depths are counted every 2 seconds, or less often when counting takes longer than a
/// twentieth of that: the count reads every queued row (a backlog of millions takes seconds),
/// and its cost stays a twentieth of one core's time whatever the depth. Between counts the
/// backlog is kept by this instance's own sends and completions.
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

impl Chores {
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
        }
    }
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
                    let _ = state.completions.send(id.clone());
                }
                state.backlog.fetch_sub(ids.len() as i64, Ordering::Relaxed);
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
    match state.store.outbox_depth_by_number().await {
        Ok(depths) => {
            metrics.queue_depth.clear();
            let total: i64 = depths.iter().map(|(_, d)| d).sum();
            for (phone_number_id, depth) in depths {
                metrics.queue_depth.get_or_create(&NumberLabels { phone_number_id }).set(depth);
            }
            metrics.outbox_depth.set(total);
            state.backlog.store(total, Ordering::Relaxed);
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
