//! The Cloud API sandbox: an offline emulator of Meta's WhatsApp Cloud API.
//!
//! It answers the Graph paths wagate and its users call, in Meta's shapes and with Meta's error
//! codes, and plays Meta's part in the other direction: it posts signed status webhooks for what
//! it accepted and simulated inbound messages to a configured webhook URL.
//!
//! This crate deliberately shares no code with wagate's domain crate: it is the check on
//! wagate's validation and parsing, so a mistake in one must not hide in the other.

mod body;
mod control;
mod errors;
mod graph;
mod ids;
mod limits;
mod settings;
mod simulate;
mod state;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};

pub use settings::Settings;
pub use state::Received;
pub use webhook::{encode as encode_webhook, sign as sign_webhook};

/// A sandbox business: one WABA, its phone numbers and the app credentials that go with it.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Seed {
    pub waba_id: String,
    pub business_name: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    pub phone_numbers: Vec<SeedNumber>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedNumber {
    pub id: String,
    /// As Meta formats it in phone-number lists: `+1 555-010-4471`.
    pub display_phone_number: String,
    pub verified_name: String,
}

/// Credentials stay out of logs, even a test tool's.
impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("waba_id", &self.waba_id)
            .field("business_name", &self.business_name)
            .field("phone_numbers", &self.phone_numbers)
            .finish_non_exhaustive()
    }
}

impl Seed {
    /// A new business with two phone numbers. Ids are drawn at random, as Meta's are globally
    /// unique: two sandboxes never share one. Credentials not given are generated.
    pub fn generate(app_secret: Option<String>, verify_token: Option<String>, access_token: Option<String>) -> Self {
        let phone_numbers = (0..2)
            .map(|i| SeedNumber {
                id: ids::numeric_id(),
                display_phone_number: ids::display_number(),
                verified_name: if i == 0 { "Sandbox Shop".into() } else { "Sandbox Support".into() },
            })
            .collect();
        Self {
            waba_id: ids::numeric_id(),
            business_name: "Sandbox Business".into(),
            access_token: access_token.unwrap_or_else(ids::access_token),
            app_secret: app_secret.unwrap_or_else(|| ids::hex_token(16)),
            verify_token: verify_token.unwrap_or_else(|| ids::alnum(24)),
            phone_numbers,
        }
    }
}

impl Seed {
    /// The business kept in `dir` (`seed.json`), or a new one saved there, so a sandbox with a
    /// state directory keeps its ids and credentials across restarts. Credentials given replace
    /// the kept ones.
    pub fn load_or_generate(
        dir: &std::path::Path,
        app_secret: Option<String>,
        verify_token: Option<String>,
        access_token: Option<String>,
    ) -> std::io::Result<Self> {
        let path = dir.join("seed.json");
        let mut seed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Seed>(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seed::generate(None, None, None),
            Err(e) => return Err(e),
        };
        seed.app_secret = app_secret.unwrap_or(seed.app_secret);
        seed.verify_token = verify_token.unwrap_or(seed.verify_token);
        seed.access_token = access_token.unwrap_or(seed.access_token);
        create_private_dir(dir)?;
        write_private(&path, &serde_json::to_vec_pretty(&seed).expect("seed serialises"))?;
        Ok(seed)
    }
}

/// Creates a directory (and missing parents) only its owner may enter: a state directory holds
/// the app's secrets.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file only its owner may read (0600), also when it exists with a wider mode.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)
}

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

/// A running sandbox. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<state::State>,
}

impl Sandbox {
    /// Starts the sandbox and its webhook sender; needs a Tokio runtime.
    pub fn new(config: SandboxConfig) -> Self {
        let (outbox, queue) = webhook::Outbox::new();
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
