//! One business number's sending, while this instance holds the number's lease: the first due
//! message of each recipient is claimed when the number's throughput and that recipient's pair
//! rate allow, and sent; each send's result reshapes the limits (Meta's 130429 and 131056 slow
//! the number down) or pauses the account.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wagate_domain::id::MessageId;
use wagate_domain::limits::ThroughputLevel;
use wagate_domain::time::Timestamp;
use wagate_storage::{Account, PhoneNumber};

use super::limiter::{Limits, PairRate, Throughput};
use super::send::{self, Signal};
use crate::state::AppState;

/// How often the worker rereads its number and account (limits set through the API, pauses).
const REFRESH: Duration = Duration::from_secs(1);

/// The number's limit: the one set through the API, else its Meta level's, else `default` (no
/// level read, or one wagate does not know).
pub fn messages_per_second(number: &PhoneNumber, default: u32) -> u32 {
    number
        .messages_per_second
        .or_else(|| number.throughput_level.as_ref().and_then(ThroughputLevel::messages_per_second))
        .unwrap_or(default)
}

pub struct NumberWorker {
    state: AppState,
    id: String,
    stop: CancellationToken,
    lease_until: Arc<AtomicI64>,
}

impl NumberWorker {
    pub fn new(state: AppState, id: String, stop: CancellationToken, lease_until: Arc<AtomicI64>) -> Self {
        Self { state, id, stop, lease_until }
    }

    pub async fn run(self) {
        let settings = self.state.config.dispatcher.clone();
        let wake = self.state.outbox.wakeup_of(&self.id);
        let now = Instant::now();
        let limits = Arc::new(Mutex::new(Limits::new(
            Throughput::new(settings.default_messages_per_second, settings.burst_fraction, now),
            PairRate::new(settings.pair_rate_capacity, Duration::from_millis(settings.pair_rate_refill_ms)),
        )));
        let mut in_flight: JoinSet<Signal> = JoinSet::new();
        let mut known: Option<(PhoneNumber, Account, Instant)> = None;
        let mut last_forget = now;
        let mut epoch = self.state.outbox.settings_epoch();
        loop {
            while let Some(done) = in_flight.try_join_next() {
                react(done, &limits, &mut known);
            }
            if self.stop.is_cancelled() {
                break;
            }
            let now = Instant::now();
            let current_epoch = self.state.outbox.settings_epoch();
            if current_epoch != epoch {
                epoch = current_epoch;
                known = None;
            }
            if known.as_ref().is_none_or(|(_, _, at)| now.duration_since(*at) >= REFRESH) {
                match self.load().await {
                    Ok(Some((n, a))) => {
                        let rate = messages_per_second(&n, settings.default_messages_per_second);
                        limits.lock().expect("limits lock").throughput.configure(rate, now);
                        known = Some((n, a, now));
                    }
                    Ok(None) => break,
                    Err(e) => tracing::warn!(phone_number_id = %self.id, error = %e, "reading the number failed"),
                }
            }
            if now.duration_since(last_forget) >= Duration::from_secs(60) {
                limits.lock().expect("limits lock").pairs.forget_full(now);
                last_forget = now;
            }
            let mut next = settings.poll_interval();
            // At the number's rate, a new message cannot leave before the next token either: a
            // wake-up per accepted send (a burst queues thousands a second) would only spin.
            let mut limited = false;
            let paused = known.as_ref().is_none_or(|(_, a, _)| a.paused.is_some());
            let leased = Timestamp::now().as_millis() < self.lease_until.load(Ordering::Relaxed);
            let free = settings.concurrency.saturating_sub(in_flight.len());
            if !paused && leased && free > 0 {
                // Reading the number may have taken a while: the limits want the time now.
                let now = Instant::now();
                let (available, wait) = {
                    let mut l = limits.lock().expect("limits lock");
                    (l.unpromised(now) as usize, l.throughput.wait(now))
                };
                if available == 0 {
                    limited = true;
                    next = next.min(wait.max(Duration::from_millis(1)));
                } else {
                    let want = available.min(free);
                    let (picked, pair_wait) = self.pick(want, &limits).await;
                    if let Some(w) = pair_wait {
                        next = next.min(w.max(Duration::from_millis(1)));
                    }
                    let claimed = self.claim(&picked).await;
                    let account = known.as_ref().map(|(_, a, _)| a.clone()).expect("not paused, so known");
                    for d in claimed {
                        limits.lock().expect("limits lock").promise();
                        let (state, account, limits) = (self.state.clone(), account.clone(), limits.clone());
                        in_flight.spawn(async move { send::send(&state, &limits, account, d).await });
                    }
                    if picked.len() == want && want > 0 {
                        // There may be more right away.
                        next = Duration::ZERO;
                    }
                }
            }
            if next.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = wake.notified(), if !limited => {}
                _ = tokio::time::sleep(next) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    react(done, &limits, &mut known);
                }
            }
        }
        // Sends in flight finish and are recorded; anything not started stays queued for
        // whoever holds the number next.
        while let Some(done) = in_flight.join_next().await {
            react(done, &limits, &mut known);
        }
    }

    async fn load(&self) -> Result<Option<(PhoneNumber, Account)>, wagate_storage::StorageError> {
        let Some(n) = self.state.store.get_phone_number(&self.id).await? else { return Ok(None) };
        let Some(a) = self.state.store.get_account(&n.account_id).await? else { return Ok(None) };
        Ok(Some((n, a)))
    }

    /// Up to `want` heads whose recipients' pair rate allows a message now (one head per
    /// recipient, so each needs one token); and, when a recipient was held back, how long until
    /// its next token.
    async fn pick(&self, want: usize, limits: &Mutex<Limits>) -> (Vec<MessageId>, Option<Duration>) {
        // Some heads may be held back by the pair rate or about to expire: look a little further.
        let limit = u32::try_from(want * 2 + 16).unwrap_or(u32::MAX);
        let heads = match self.state.store.outbox_heads(&self.id, Timestamp::now(), limit).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(phone_number_id = %self.id, error = %e, "reading the queue failed");
                return (Vec::new(), None);
            }
        };
        let stamp = Timestamp::now();
        let now = Instant::now();
        let mut limits = limits.lock().expect("limits lock");
        let mut picked = Vec::with_capacity(want);
        let mut pair_wait: Option<Duration> = None;
        for h in heads {
            if picked.len() == want {
                break;
            }
            // Past its expiry it fails instead (the janitor expires it).
            if h.expires_at.is_some_and(|e| e <= stamp) {
                continue;
            }
            let w = limits.pairs.wait(&h.recipient, now);
            if w.is_zero() {
                picked.push(h.message_id);
            } else {
                pair_wait = Some(pair_wait.map_or(w, |p| p.min(w)));
            }
        }
        (picked, pair_wait)
    }

    async fn claim(&self, picked: &[MessageId]) -> Vec<wagate_storage::Leased<wagate_storage::Dispatch>> {
        if picked.is_empty() {
            return Vec::new();
        }
        let now = Timestamp::now();
        let lease = self.state.config.dispatcher.lease();
        match self.state.store.claim_messages(picked, now, now.plus(lease)).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(phone_number_id = %self.id, error = %e, "claiming messages failed");
                Vec::new()
            }
        }
    }
}

/// What a finished send means for the number's limits and its account.
fn react(
    done: Result<Signal, tokio::task::JoinError>,
    limits: &Mutex<Limits>,
    known: &mut Option<(PhoneNumber, Account, Instant)>,
) {
    let now = Instant::now();
    match done {
        Ok(Signal::None) => {}
        Ok(Signal::Throughput) => limits.lock().expect("limits lock").throughput.slow_down(now),
        Ok(Signal::PairRate(recipient)) => {
            let mut l = limits.lock().expect("limits lock");
            l.pairs.drain(&recipient, now);
            l.throughput.slow_down(now);
        }
        // Reread the account at once: it is paused.
        Ok(Signal::Paused) => *known = None,
        Err(e) => tracing::error!(error = %e, "a send task failed"),
    }
}
