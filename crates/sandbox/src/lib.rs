//! The Cloud API sandbox: an offline emulator of Meta's WhatsApp Cloud API.
//!
//! It answers the Graph paths wagate and its users call, in Meta's shapes and with Meta's error
//! codes, and plays Meta's part in the other direction: it posts signed status webhooks for what
//! it accepted and simulated inbound messages to a configured webhook URL.
//!
//! This crate deliberately shares no code with wagate's domain crate: it is the check on
//! wagate's validation and parsing, so a mistake in one must not hide in the other.

mod body;
mod config;
mod control;
mod errors;
mod files;
mod graph;
mod ids;
mod limits;
mod outbox;
mod received;
mod seed;
mod settings;
mod simulate;
mod state;
mod test_tool;
mod webhook;

use std::sync::Arc;

use axum::Router;

pub use config::{SandboxConfig, StatusDelays};
pub use received::Received;
pub use seed::{Seed, SeedNumber};
pub use settings::Settings;
pub use webhook::{encode as encode_webhook, sign as sign_webhook};

/// A running sandbox. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<state::State>,
}

impl Sandbox {
    /// Starts the sandbox and its webhook sender; needs a Tokio runtime.
    pub fn new(config: SandboxConfig) -> Self {
        let (outbox, queue) = outbox::Outbox::new();
        let state = Arc::new(state::State::new(config, outbox));
        tokio::spawn(webhook::run(Arc::downgrade(&state), queue));
        tokio::spawn(state::State::persist(Arc::downgrade(&state)));
        Self { state }
    }

    /// The Graph API paths (`/{version}/…`), authenticated with the seed's access token.
    pub fn graph_router(&self) -> Router {
        graph::router(self.state.clone())
    }

    /// `/control/…` and `/simulate/…`: the test tool's own API. Open here; the caller adds
    /// authentication where it needs one.
    pub fn control_router(&self) -> Router {
        control::router(self.state.clone()).merge(simulate::router(self.state.clone()))
    }

    /// Both, as the standalone `wagate sandbox` serves them (under `/sandbox`).
    pub fn router(&self) -> Router {
        self.graph_router().merge(self.control_router())
    }

    pub fn seed(&self) -> Seed {
        self.state.seed.clone()
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        *self.state.webhook_url.write().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// Every request body the messages endpoint received, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.state.received()
    }

    pub fn settings(&self) -> Settings {
        self.state.settings()
    }

    /// Changes the fields of the settings `patch` names, as `PATCH /control/settings` does.
    pub fn patch_settings(&self, patch: &serde_json::Value) -> Result<Settings, String> {
        self.state.patch_settings(patch).map_err(|e| e.to_string())
    }

    /// Stops pending webhook deliveries and writes the state, when it is kept in a directory.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
        self.state.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_sandbox_dropped_without_shutdown_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(SandboxConfig {
            seed: Seed::generate(None, None, None),
            webhook_url: None,
            delays: StatusDelays::default(),
            state_dir: Some(dir.path().into()),
        });
        let state = Arc::downgrade(&sandbox.state);
        // Its tasks are running, and one change is being written.
        sandbox.patch_settings(&serde_json::json!({"throughput_mps": 5})).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(sandbox);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while state.strong_count() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "a task still holds the dropped sandbox");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
