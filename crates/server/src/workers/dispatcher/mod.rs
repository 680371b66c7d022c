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

use crate::metrics::NumberLabels;
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
    let mut leases = Leases { holder: holder.clone(), held: HashMap::new(), handing_over: HashMap::new() };
    tracing::info!(%holder, "dispatcher started");
    loop {
        state.health.beat(Worker::Dispatcher);
        leases.renew(&state, &cancel).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(round) => {}
        }
    }
    let pending = leases.held.len();
    for h in leases.held.values() {
        h.stop.cancel();
    }
    for (id, h) in leases.held.drain() {
        let _ = h.task.await;
        dispatching(&state, &id, false);
    }
    for (_, t) in leases.handing_over.drain() {
        let _ = t.await;
    }
    if let Err(e) = state.store.retire_dispatcher(&holder).await {
        tracing::warn!(error = %e, "releasing number leases failed; they lapse on their own");
    }
    tracing::info!(numbers = pending, "dispatcher stopped");
}

/// The numbers this instance dispatches. Every live instance takes an equal share (rounded
/// up): one holding more than its share hands the rest over, so two instances on two numbers
/// send one each, and a survivor takes every number once the others' leases lapse.
struct Leases {
    holder: String,
    held: HashMap<String, Held>,
    /// Numbers whose worker is finishing its sends in flight before the lease is released;
    /// not taken again meanwhile.
    handing_over: HashMap<String, JoinHandle<()>>,
}

impl Leases {
    /// Announces this instance, then renews its share of the numbers' leases, starting a worker
    /// for each number newly held and stopping the workers of numbers lost, gone or beyond its
    /// share.
    async fn renew(&mut self, state: &AppState, cancel: &CancellationToken) {
        self.handing_over.retain(|_, t| !t.is_finished());
        let numbers = match state.store.list_phone_numbers().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "listing phone numbers failed; leases not renewed");
                return;
            }
        };
        let lease = state.config.dispatcher.number_lease();
        let now = Timestamp::now();
        let live = match state.store.announce_dispatcher(&self.holder, now, now.plus(lease)).await {
            Ok(live) => live as usize,
            Err(e) => {
                tracing::error!(error = %e, "announcing this dispatcher failed; leases not renewed");
                return;
            }
        };
        // At least one: this instance has just announced itself.
        let share = numbers.len().div_ceil(live);
        self.held.retain(|id, h| {
            let keep = numbers.iter().any(|n| &n.id == id);
            if !keep {
                h.stop.cancel();
                dispatching(state, id, false);
            }
            keep
        });
        // Those held first, so a share that shrank keeps the numbers already running.
        let (mine, others): (Vec<_>, Vec<_>) = numbers.iter().partition(|n| self.held.contains_key(&n.id));
        let mut kept = 0;
        for n in mine.into_iter().chain(others) {
            if kept >= share {
                if let Some(h) = self.held.remove(&n.id) {
                    tracing::info!(phone_number_id = %n.id, live, "handing this number over to another instance");
                    self.hand_over(state, n.id.clone(), h);
                }
                continue;
            }
            if self.handing_over.contains_key(&n.id) {
                continue;
            }
            let now = Timestamp::now();
            let until = now.plus(lease);
            match state.store.acquire_number_lease(&n.id, &self.holder, now, until).await {
                Ok(true) => {
                    kept += 1;
                    match self.held.get(&n.id) {
                        Some(h) if !h.task.is_finished() => h.lease_until.store(until.as_millis(), Ordering::Relaxed),
                        _ => {
                            let stop = cancel.child_token();
                            let lease_until = Arc::new(AtomicI64::new(until.as_millis()));
                            let worker = number::NumberWorker::new(
                                state.clone(),
                                n.id.clone(),
                                stop.clone(),
                                lease_until.clone(),
                            );
                            tracing::info!(phone_number_id = %n.id, "dispatching this number's messages");
                            dispatching(state, &n.id, true);
                            self.held
                                .insert(n.id.clone(), Held { stop, task: tokio::spawn(worker.run()), lease_until });
                        }
                    }
                }
                Ok(false) => {
                    if let Some(h) = self.held.remove(&n.id) {
                        tracing::warn!(phone_number_id = %n.id, "another instance holds this number now");
                        h.stop.cancel();
                        dispatching(state, &n.id, false);
                    }
                }
                Err(e) => tracing::error!(phone_number_id = %n.id, error = %e, "renewing a number lease failed"),
            }
        }
    }

    /// Stops a number's worker and, once its sends in flight are recorded, releases the lease
    /// for another instance to take at once.
    fn hand_over(&mut self, state: &AppState, id: String, held: Held) {
        held.stop.cancel();
        dispatching(state, &id, false);
        let (store, holder, number) = (state.store.clone(), self.holder.clone(), id.clone());
        let task = tokio::spawn(async move {
            let _ = held.task.await;
            if let Err(e) = store.release_number_lease(&number, &holder).await {
                tracing::warn!(phone_number_id = %number, error = %e, "releasing a number lease failed; it lapses");
            }
        });
        self.handing_over.insert(id, task);
    }
}

fn dispatching(state: &AppState, phone_number_id: &str, on: bool) {
    let labels = NumberLabels { phone_number_id: phone_number_id.to_owned() };
    state.metrics.dispatching.get_or_create(&labels).set(i64::from(on));
}
