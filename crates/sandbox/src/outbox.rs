//! The webhooks the sandbox owes: changes queued with a delay for the sender (`webhook::run`) to
//! group into POSTs, and what became of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What became of webhook payloads, for `GET /control/webhook`: a lost, refused or discarded
/// attempt is otherwise invisible to whoever waits for the payload.
#[derive(Debug, Default)]
pub struct Stats {
    /// POSTs made, retries included.
    pub posted: AtomicU64,
    /// Payloads the receiver acknowledged with a 2xx.
    pub delivered: AtomicU64,
    /// POSTs answered with another status, or that found no one.
    pub refused: AtomicU64,
    /// First attempts lost on purpose (`drop_first_attempt`).
    pub dropped: AtomicU64,
    /// Payloads abandoned after the last retry.
    pub given_up: AtomicU64,
    /// Payloads not sent because no webhook URL was set.
    pub discarded: AtomicU64,
}

impl Stats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "posted": get(&self.posted),
            "delivered": get(&self.delivered),
            "refused": get(&self.refused),
            "dropped": get(&self.dropped),
            "given_up": get(&self.given_up),
            "discarded": get(&self.discarded),
        })
    }

    pub fn clear(&self) {
        for c in [&self.posted, &self.delivered, &self.refused, &self.dropped, &self.given_up, &self.discarded] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// One change owed to the webhook URL.
#[derive(Debug)]
pub struct Change {
    pub waba_id: String,
    pub field: String,
    pub value: Value,
}

/// A change owed after a delay, tagged with the outbox generation it was owed in.
pub type Owed = (Duration, u64, Change);

/// The queue of changes owed, drained by one task that groups them into POSTs.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Owed>,
    generation: Arc<AtomicU64>,
}

impl Outbox {
    /// The queue and its receiving end, to start with `webhook::run` once the state exists.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Owed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, generation: Arc::default() }, rx)
    }

    /// Owes `change` to the webhook URL after `delay`.
    pub fn push(&self, delay: Duration, change: Change) {
        let _ = self.tx.send((delay, self.generation(), change));
    }

    /// Forgets every change owed so far, retries included: after a reset, statuses of
    /// forgotten messages would only confuse the next test.
    pub fn forget_owed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}
