//! Configuration: defaults, then the TOML file, then flags and environment variables (the
//! binary applies those last). Every duration is configurable so tests run in seconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wagate_domain::secret::Secret;

// No `Debug`: the database URL may carry a password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the one HTTP listener binds.
    pub listen: SocketAddr,
    /// SQLite database and media live here.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; SQLite under `data_dir` when absent.
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    /// `tracing` filter, such as `info` or `wagate=debug,info`.
    pub log_level: String,
    /// A key that must exist, with full rights, after start-up.
    #[serde(deserialize_with = "secret_opt")]
    pub bootstrap_api_key: Option<Secret>,
    pub sandbox: SandboxSettings,
    pub dispatcher: DispatcherSettings,
    pub inbound: InboundSettings,
    pub graph_surface: GraphSurfaceSettings,
    pub window: WindowSettings,
    /// How long shutdown waits for in-flight work before leaving it to be re-claimed. At least
    /// the Graph timeout plus 5 s, so a send in flight can finish and be recorded.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./wagate-data"),
            database_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            bootstrap_api_key: None,
            sandbox: SandboxSettings::default(),
            dispatcher: DispatcherSettings::default(),
            inbound: InboundSettings::default(),
            graph_surface: GraphSurfaceSettings::default(),
            window: WindowSettings::default(),
            shutdown_grace_secs: 45,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Mount the in-process sandbox at `/sandbox` and keep its seeded account.
    pub enabled: bool,
    #[serde(deserialize_with = "secret_opt")]
    pub app_secret: Option<Secret>,
    #[serde(deserialize_with = "secret_opt")]
    pub verify_token: Option<Secret>,
    pub sent_delay_ms: u64,
    pub delivered_delay_ms: u64,
    pub read_delay_ms: u64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            app_secret: None,
            verify_token: None,
            sent_delay_ms: 300,
            delivered_delay_ms: 800,
            read_delay_ms: 1500,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherSettings {
    /// Send queued messages from this instance; `false` makes an instance that only takes
    /// requests, leaving the sending to others sharing its database.
    pub enabled: bool,
    /// Timeout of one Graph API request.
    pub graph_timeout_ms: u64,
    /// Added to the Graph timeout to make the lease: a claimed row is never claimed again while
    /// its request can still be running.
    pub lease_margin_ms: u64,
    /// Rows claimed per round trip.
    pub batch_size: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How often due rows (scheduled, retried, or left by a dead process) are looked for.
    pub poll_interval_ms: u64,
    /// Attempts before a transient failure becomes permanent.
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            graph_timeout_ms: 30_000,
            lease_margin_ms: 15_000,
            batch_size: 64,
            concurrency: 64,
            poll_interval_ms: 250,
            max_attempts: 10,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
        }
    }
}

impl DispatcherSettings {
    pub fn graph_timeout(&self) -> Duration {
        Duration::from_millis(self.graph_timeout_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.graph_timeout_ms + self.lease_margin_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundSettings {
    /// Largest webhook body accepted (Meta batches up to 1000 changes in one POST).
    pub max_body_bytes: usize,
    pub poll_interval_ms: u64,
    /// How long a processor holds a delivery before another may take it.
    pub lease_ms: u64,
    /// Attempts before a delivery that keeps failing is set aside with its error.
    pub max_attempts: i64,
}

impl Default for InboundSettings {
    fn default() -> Self {
        Self { max_body_bytes: 4 * 1024 * 1024, poll_interval_ms: 250, lease_ms: 60_000, max_attempts: 20 }
    }
}

/// The Meta-compatible surface (`/graph/…`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSurfaceSettings {
    /// How long a send waits to be handed to Meta before it is cancelled and answered 130429.
    /// Under 5 s: SDK HTTP clients time out around there.
    pub wait_ms: u64,
}

impl Default for GraphSurfaceSettings {
    fn default() -> Self {
        Self { wait_ms: 4_500 }
    }
}

/// Meta's 24-hour customer-service window: outside it only templates may be sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSettings {
    /// What to do with a non-template send outside the window.
    pub outside: OutsideWindow,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutsideWindow {
    /// Refuse it at once (Meta would accept it, then fail it by webhook with 131047).
    #[default]
    Refuse,
    /// Send it and let Meta decide.
    Pass,
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(Secret::new))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The defaults overlaid with the TOML file at `path`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }

    /// Rejects settings that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.dispatcher;
        if d.lease_margin_ms < 1_000 {
            return Err(ConfigError::Invalid(
                "dispatcher.lease_margin_ms must be at least 1000: a lease must outlast its Graph request".into(),
            ));
        }
        if d.batch_size == 0 || d.concurrency == 0 || d.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "dispatcher.batch_size, concurrency and max_attempts must be at least 1".into(),
            ));
        }
        if d.graph_timeout_ms == 0 || d.poll_interval_ms == 0 || self.inbound.poll_interval_ms == 0 {
            return Err(ConfigError::Invalid("timeouts and poll intervals must be positive".into()));
        }
        if self.shutdown_grace_secs * 1_000 < d.graph_timeout_ms + 5_000 {
            return Err(ConfigError::Invalid(format!(
                "shutdown_grace_secs must be at least the Graph timeout plus 5 s ({} s), so sends in flight \
                 finish and are recorded before exit",
                (d.graph_timeout_ms + 5_000).div_ceil(1_000)
            )));
        }
        if self.inbound.max_body_bytes < 3 * 1024 * 1024 {
            return Err(ConfigError::Invalid("inbound.max_body_bytes must be at least 3 MiB".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\n[dispatcher]\ngraph_timeout_ms = 500\n")
                .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.dispatcher.lease(), Duration::from_millis(15_500));
        assert!(c.sandbox.enabled);
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_lease_must_outlast_the_request() {
        let mut c = Config::default();
        c.dispatcher.lease_margin_ms = 10;
        assert!(c.validate().is_err());
    }

    #[test]
    fn shutdown_waits_for_a_whole_request() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.shutdown_grace_secs = 30;
        assert!(c.validate().is_err(), "30 s grace with a 30 s Graph timeout could cut a send short");
    }
}
