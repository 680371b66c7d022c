//! How a sandbox is started: its business, where its webhooks go, how long statuses take, and
//! where its state is kept.

use std::path::PathBuf;
use std::time::Duration;

use crate::seed::Seed;

/// How long after accepting a message each status webhook is sent.
#[derive(Clone, Copy, Debug)]
pub struct StatusDelays {
    pub sent: Duration,
    pub delivered: Duration,
    pub read: Duration,
}

impl Default for StatusDelays {
    fn default() -> Self {
        Self {
            sent: Duration::from_millis(300),
            delivered: Duration::from_millis(800),
            read: Duration::from_millis(1500),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub seed: Seed,
    /// Where webhooks go; without one, nothing is posted.
    pub webhook_url: Option<String>,
    /// With a state directory, these replace the kept delays on a first start and when they
    /// differ from the last start's; otherwise the kept ones (perhaps set at run time) stay.
    pub delays: StatusDelays,
    /// Where templates, media, groups, windows and settings are kept across restarts; in memory
    /// only without one.
    pub state_dir: Option<PathBuf>,
}
