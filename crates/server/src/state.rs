//! What every handler and worker shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;
use wagate_domain::time::Timestamp;
use wagate_storage::Store;

use crate::config::Config;
use crate::graph::GraphClient;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub graph: GraphClient,
    pub metrics: Arc<Metrics>,
    /// Wakes the dispatcher when a message is queued.
    pub dispatch_wakeup: Arc<Notify>,
    /// Wakes the inbound processor when a webhook delivery is stored.
    pub inbound_wakeup: Arc<Notify>,
    pub health: Arc<WorkerHealth>,
}

/// Heartbeats of the background workers, for `/readyz`.
#[derive(Default)]
pub struct WorkerHealth {
    dispatcher: AtomicI64,
    inbound: AtomicI64,
}

#[derive(Clone, Copy)]
pub enum Worker {
    Dispatcher,
    Inbound,
}

impl WorkerHealth {
    fn slot(&self, w: Worker) -> &AtomicI64 {
        match w {
            Worker::Dispatcher => &self.dispatcher,
            Worker::Inbound => &self.inbound,
        }
    }

    pub fn beat(&self, w: Worker) {
        self.slot(w).store(Timestamp::now().as_millis(), Ordering::Relaxed);
    }

    /// Alive when it beat within `max_age_ms`.
    pub fn alive(&self, w: Worker, max_age_ms: i64) -> bool {
        let last = self.slot(w).load(Ordering::Relaxed);
        last > 0 && Timestamp::now().as_millis() - last <= max_age_ms
    }
}
