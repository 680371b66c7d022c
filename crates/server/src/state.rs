//! What every handler and worker shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::sync::Notify;
use wagate_domain::id::MessageId;
use wagate_domain::time::Timestamp;
use wagate_storage::Store;

use crate::config::Config;
use crate::graph::GraphClient;
use crate::metrics::Metrics;

/// What every handler and worker shares: one pointer, cloned per request and task.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub graph: GraphClient,
    pub metrics: Arc<Metrics>,
    /// Wakes a number's dispatcher when a message is queued for it.
    pub wakeups: Arc<Wakeups>,
    /// Messages waiting to be sent, as last counted plus those accepted since: what
    /// backpressure compares with `dispatcher.max_backlog`.
    pub backlog: Arc<AtomicI64>,
    /// Bumped when a number's or an account's sending settings change through the API, so this
    /// instance's number workers reread them at once (other instances do within a second).
    pub settings_epoch: Arc<AtomicU64>,
    /// Wakes the inbound processor when a webhook delivery is stored.
    pub inbound_wakeup: Arc<Notify>,
    pub health: Arc<WorkerHealth>,
    /// Ids of messages whose send result was just recorded, for callers waiting on one.
    pub completions: tokio::sync::broadcast::Sender<MessageId>,
    /// Numbers already known to have their webhooks seen (saves a write per delivery).
    pub webhooks_noted: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// API keys recently authenticated, dropped when one is revoked here.
    pub api_keys: crate::services::api_keys::KeyCache,
    /// Each key's request rate; None when `[api] rate_limit_per_second` is 0.
    pub key_rates: Option<crate::auth::KeyRates>,
    /// Phone numbers recently read for sends, dropped when `settings_epoch` moves.
    pub senders: crate::services::messages::SenderCache,
    /// Connected accounts as the webhook receiver last read them.
    pub signers: crate::services::webhooks::SignerCache,
    /// Wakes the media downloader when the processor records new media.
    pub media_wakeup: Arc<Notify>,
    /// Wamids of inbound messages just written (or applied, for system messages), for callers
    /// waiting on one; sent only while someone listens.
    pub inbound_applied: tokio::sync::broadcast::Sender<String>,
}

/// One `Notify` per business number, made on first use.
#[derive(Default)]
pub struct Wakeups {
    numbers: std::sync::Mutex<std::collections::HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    pub fn of(&self, phone_number_id: &str) -> Arc<Notify> {
        let mut numbers = self.numbers.lock().unwrap_or_else(|e| e.into_inner());
        numbers.entry(phone_number_id.to_owned()).or_default().clone()
    }

    /// Wakes the number's dispatcher, now or when it next waits.
    pub fn wake(&self, phone_number_id: &str) {
        self.of(phone_number_id).notify_one();
    }
}

/// Heartbeats of the background workers, for `/readyz`: when each last went round its loop,
/// and how many rounds it made.
#[derive(Default)]
pub struct WorkerHealth {
    dispatcher: AtomicI64,
    inbound: AtomicI64,
    media: AtomicI64,
    dispatcher_rounds: AtomicU64,
    inbound_rounds: AtomicU64,
    media_rounds: AtomicU64,
}

#[derive(Clone, Copy)]
pub enum Worker {
    Dispatcher,
    Inbound,
    Media,
}

impl WorkerHealth {
    fn slot(&self, w: Worker) -> (&AtomicI64, &AtomicU64) {
        match w {
            Worker::Dispatcher => (&self.dispatcher, &self.dispatcher_rounds),
            Worker::Inbound => (&self.inbound, &self.inbound_rounds),
            Worker::Media => (&self.media, &self.media_rounds),
        }
    }

    pub fn beat(&self, w: Worker) {
        let (last, rounds) = self.slot(w);
        last.store(Timestamp::now().as_millis(), Ordering::Relaxed);
        rounds.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rounds(&self, w: Worker) -> u64 {
        self.slot(w).1.load(Ordering::Relaxed)
    }

    /// Alive when it beat within `max_age_ms`.
    pub fn alive(&self, w: Worker, max_age_ms: i64) -> bool {
        let last = self.slot(w).0.load(Ordering::Relaxed);
        last > 0 && Timestamp::now().as_millis() - last <= max_age_ms
    }
}
