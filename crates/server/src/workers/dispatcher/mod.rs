//! The dispatcher: each business number's messages are sent by the one instance holding that
//! number's lease (so the number's limits hold across instances), by a worker of its own that
//! respects Meta's throughput and pair rate, sends each recipient's messages in order, retries
//! what failed for now and pauses an account Meta refuses.
//!
//! This module keeps the leases and starts and stops the number workers; the janitor does the
//! periodic work that is not sending.

pub(crate) mod limiter;
mod number;
mod send;

pub use number::messages_per_second;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagate_domain::time::Timestamp;

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
    // Leases are renewed every third of their length, and a number gained or lost is noticed
    // within a second.
    let round = (settings.number_lease() / 3).min(settings.poll_interval() * 4).min(Duration::from_secs(1));
    let mut held: HashMap<String, Held> = HashMap::new();
    tracing::info!(%holder, "dispatcher started");
    loop {
        state.health.beat(Worker::Dispatcher);
        renew_leases(&state, &holder, &mut held, &cancel).await;
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
