//! What every handler and worker shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use wagate_domain::time::Timestamp;
use wagate_storage::Store;

use crate::caches::Caches;
use crate::config::Config;
use crate::graph::GraphClient;
use crate::key_rates::KeyRates;
use crate::media_store::MediaStore;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::signals::Signals;

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
    /// The backlog, the numbers' wake-ups, send results as they are recorded, the settings epoch.
    pub outbox: Outbox,
    pub caches: Caches,
    /// Where media bytes live: customers' files and uploads.
    pub media: MediaStore,
    /// Signs public links to uploads (derived from the secret key, so every instance has it).
    pub media_link_key: [u8; 32],
    /// Each key's request rate; None when `[api] rate_limit_per_second` is 0.
    pub key_rates: Option<KeyRates>,
    /// The inbound flow's wake-ups, and the news of inbound messages applied.
    pub signals: Signals,
    pub health: WorkerHealth,
    /// Fires when the server starts to stop: what never ends by itself (live event streams)
    /// ends then, so that serving can finish.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Heartbeats of the background workers, for `/readyz`: when each last went round its loop,
/// and how many rounds it made.
#[derive(Default)]
pub struct WorkerHealth {
    dispatcher: AtomicI64,
    inbound: AtomicI64,
    media: AtomicI64,
    janitor: AtomicI64,
    events: AtomicI64,
    campaigns: AtomicI64,
    jobs: AtomicI64,
    dispatcher_rounds: AtomicU64,
    inbound_rounds: AtomicU64,
    media_rounds: AtomicU64,
    janitor_rounds: AtomicU64,
    events_rounds: AtomicU64,
    campaigns_rounds: AtomicU64,
    jobs_rounds: AtomicU64,
}

#[derive(Clone, Copy)]
pub enum Worker {
    Dispatcher,
    Inbound,
    Media,
    Janitor,
    Events,
    Campaigns,
    Jobs,
}

impl WorkerHealth {
    fn slot(&self, w: Worker) -> (&AtomicI64, &AtomicU64) {
        match w {
            Worker::Dispatcher => (&self.dispatcher, &self.dispatcher_rounds),
            Worker::Inbound => (&self.inbound, &self.inbound_rounds),
            Worker::Media => (&self.media, &self.media_rounds),
            Worker::Janitor => (&self.janitor, &self.janitor_rounds),
            Worker::Events => (&self.events, &self.events_rounds),
            Worker::Campaigns => (&self.campaigns, &self.campaigns_rounds),
            Worker::Jobs => (&self.jobs, &self.jobs_rounds),
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
