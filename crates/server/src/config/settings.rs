//! The settings: every section, its defaults, and the rules they must keep together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wagate_domain::limits::MessagingTier;
use wagate_domain::network::{AddressPolicy, Cidr};
use wagate_domain::retry::RetryPolicy;
use wagate_domain::secret::Secret;

// No `Debug`: the database URL may carry a password.
#[derive(Clone, Deserialize, Serialize)]
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
    /// A key made with every right (`admin`) at the first start that names it; once revoked, it
    /// stays revoked.
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub bootstrap_api_key: Option<Secret>,
    /// The key that seals accounts' secrets in the database (base64 of 32 bytes). Taken from
    /// `WAGATE_SECRET_KEY` only, never from the file (which would keep it beside the database it
    /// protects); when absent, the key file is used.
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub secret_key: Option<Secret>,
    /// Where the key is kept when `WAGATE_SECRET_KEY` is not set; created (0600) on first start.
    /// `secret.key` in `data_dir` when absent.
    pub secret_key_file: Option<PathBuf>,
    pub sandbox: SandboxSettings,
    pub dispatcher: DispatcherSettings,
    pub inbound: InboundSettings,
    pub graph_surface: GraphSurfaceSettings,
    pub window: WindowSettings,
    pub messaging: MessagingSettings,
    /// Inbound media downloads.
    pub media: MediaSettings,
    /// Events to the business's own endpoints, and their log.
    pub events: EventsSettings,
    /// Message templates read from Meta.
    pub templates: TemplatesSettings,
    /// Campaigns: how far ahead of the dispatcher they feed, and what counts as a reply.
    pub campaigns: CampaignSettings,
    /// Background jobs: imports and exports.
    pub jobs: JobsSettings,
    pub http: HttpSettings,
    pub metrics: MetricsSettings,
    pub api: ApiSettings,
    pub network: NetworkSettings,
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
            secret_key: None,
            secret_key_file: None,
            sandbox: SandboxSettings::default(),
            dispatcher: DispatcherSettings::default(),
            inbound: InboundSettings::default(),
            graph_surface: GraphSurfaceSettings::default(),
            window: WindowSettings::default(),
            messaging: MessagingSettings::default(),
            media: MediaSettings::default(),
            events: EventsSettings::default(),
            templates: TemplatesSettings::default(),
            campaigns: CampaignSettings::default(),
            jobs: JobsSettings::default(),
            http: HttpSettings::default(),
            metrics: MetricsSettings::default(),
            api: ApiSettings::default(),
            network: NetworkSettings::default(),
            shutdown_grace_secs: 45,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Mount the in-process sandbox at `/sandbox` and keep its seeded account.
    pub enabled: bool,
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub app_secret: Option<Secret>,
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
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

/// Limits on slow clients: the listener faces the internet (Meta's webhooks come to it).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A connection that has not sent a whole request head this long after it opened, or after
    /// its previous response, is closed (idle keep-alive connections too).
    pub header_timeout_ms: u64,
    /// A request body not received whole within this is answered 408.
    pub body_timeout_ms: u64,
    /// Client connections open at once, at most (fewer if the open-file limit is lower). At the
    /// cap, the connection idle longest is closed to make room for a new one.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { header_timeout_ms: 30_000, body_timeout_ms: 60_000, max_connections: 10_000 }
    }
}

impl HttpSettings {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// `/metrics`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` only to requests with a valid API key (it shows traffic volumes per
    /// number and route); off by default, as Prometheus scrapes it from inside the network.
    pub require_key: bool,
}

/// Requests per API key, on every surface a key opens. Counted in each instance's memory: N
/// instances sharing a database let a key make N times the rate.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Requests a key may make per second, on average; beyond it, 429 with `Retry-After`.
    /// 0 (the default): no limit.
    pub rate_limit_per_second: u32,
    /// Requests a key may make at once after a quiet spell; 0: one second's worth.
    pub rate_limit_burst: u32,
}

/// Where outbound requests (Graph API, media downloads) may go.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// Non-public ranges (loopback, private, link-local, …) wagate may connect to anyway, such
    /// as `["127.0.0.0/8", "::1/128"]` for a standalone sandbox on this machine. Public
    /// addresses are always allowed; the in-process sandbox needs no entry.
    #[serde(serialize_with = "as_text")]
    pub allow_private: Vec<Cidr>,
}

impl NetworkSettings {
    pub fn policy(&self) -> AddressPolicy {
        AddressPolicy::new(self.allow_private.clone())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherSettings {
    /// Send queued messages from this instance; `false` makes an instance that only takes
    /// requests, leaving the sending to others sharing its database.
    pub enabled: bool,
    /// Timeout of one Graph API request.
    pub graph_timeout_ms: u64,
    /// Added to the Graph timeout to make a message's lease: a claimed message is never claimed
    /// again while its request can still be running.
    pub lease_margin_ms: u64,
    /// How long an instance holds a number (only the holder sends its messages, so the number's
    /// limits hold across instances); renewed every third of it.
    pub number_lease_ms: u64,
    /// Sends in flight at once, per number.
    pub concurrency: usize,
    /// How often due messages (scheduled, retried, or left by a dead process) are looked for
    /// when nothing wakes the dispatcher sooner.
    pub poll_interval_ms: u64,
    /// Messages per second for a number Meta reports no known throughput level for.
    pub default_messages_per_second: u32,
    /// The throughput limiter's burst, as a fraction of a second's worth of messages.
    pub burst_fraction: f64,
    /// Meta's pair rate: bursts of this many messages to one user…
    pub pair_rate_capacity: u32,
    /// …then one every this many milliseconds.
    pub pair_rate_refill_ms: u64,
    /// Attempts before a transient failure becomes permanent.
    pub max_attempts: u32,
    /// Retries stop this long after the message was accepted.
    pub retry_deadline_ms: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// After a 131056 (pair rate), the next try waits `base · 4^attempt`, as Meta advises.
    pub pair_retry_base_ms: u64,
    /// A request that timed out after it was sent may have reached Meta: `retry` it (it may
    /// arrive twice; counted in `wagate_possible_duplicates`) or `fail` it.
    pub unknown_outcome: UnknownOutcome,
    /// Messages waiting to be sent, all numbers together, beyond which new sends get 429.
    pub max_backlog: u64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownOutcome {
    #[default]
    Retry,
    Fail,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            graph_timeout_ms: 30_000,
            lease_margin_ms: 15_000,
            number_lease_ms: 15_000,
            concurrency: 64,
            poll_interval_ms: 250,
            default_messages_per_second: 80,
            burst_fraction: 0.1,
            pair_rate_capacity: 45,
            pair_rate_refill_ms: 6_000,
            max_attempts: 10,
            retry_deadline_ms: 24 * 60 * 60 * 1000,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            pair_retry_base_ms: 1_000,
            unknown_outcome: UnknownOutcome::Retry,
            max_backlog: 5_000_000,
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

    pub fn number_lease(&self) -> Duration {
        Duration::from_millis(self.number_lease_ms)
    }

    /// How a send that failed for a passing reason is tried again.
    pub fn retry_policy(&self) -> RetryPolicy {
        let (base, max) = (Duration::from_millis(self.retry_base_ms), Duration::from_millis(self.retry_max_ms));
        RetryPolicy::exponential(base, max, self.max_attempts)
            .with_deadline(Duration::from_millis(self.retry_deadline_ms))
    }

    /// After Meta's 131056 (pair rate): the same attempts and deadline, with Meta's waits.
    pub fn pair_retry_policy(&self) -> RetryPolicy {
        self.retry_policy().pair_rate(Duration::from_millis(self.pair_retry_base_ms))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundSettings {
    /// Largest webhook body accepted (Meta batches up to 1000 changes in one POST).
    pub max_body_bytes: usize,
    pub poll_interval_ms: u64,
    /// How long a processor holds a delivery before another may take it.
    pub lease_ms: u64,
    /// Attempts before a delivery that keeps failing is set aside with its error.
    pub max_attempts: i64,
    /// How long the processor, woken by a new delivery, waits for more before taking them: a
    /// few batches a second instead of one per delivery, each of which takes SQLite's one
    /// writer from the sends for a moment.
    pub linger_ms: u64,
    /// How long a processed (or set-aside) delivery is kept, for diagnosis, before it is
    /// deleted. What it carried is stored on its own; a delivery holds up to 4 MiB.
    pub keep_processed_secs: u64,
    /// How often deliveries past `keep_processed_secs` are looked for.
    pub sweep_interval_ms: u64,
}

impl InboundSettings {
    /// A delivery that failed on storage is tried again soon: the fault was not the delivery's.
    pub fn retry_policy(&self) -> RetryPolicy {
        let attempts = self.max_attempts.clamp(0, u32::MAX.into()) as u32;
        RetryPolicy::exponential(Duration::from_millis(200), Duration::from_secs(60), attempts)
    }
}

impl Default for InboundSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            poll_interval_ms: 250,
            lease_ms: 60_000,
            max_attempts: 20,
            linger_ms: 50,
            keep_processed_secs: 7 * 24 * 60 * 60,
            sweep_interval_ms: 60_000,
        }
    }
}

/// The Meta-compatible surface (`/graph/…`).
#[derive(Clone, Debug, Deserialize, Serialize)]
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
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSettings {
    /// What to do with a non-template send outside the window.
    pub outside: OutsideWindow,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutsideWindow {
    /// Refuse it at once (Meta would accept it, then fail it by webhook with 131047).
    #[default]
    Refuse,
    /// Send it and let Meta decide.
    Pass,
}

/// Sending: Meta's messaging limits, and how long idempotency keys are remembered.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingSettings {
    /// The tier assumed for an account Meta reports none for (new portfolios start at 250).
    pub default_tier: MessagingTier,
    /// How long a send's idempotency key answers a repeat with the original response.
    pub idempotency_key_ttl_secs: u64,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        Self { default_tier: MessagingTier::Tier250, idempotency_key_ttl_secs: 24 * 60 * 60 }
    }
}

/// Events to the business's own endpoints (`/v1/webhook-endpoints`) and their log (`/v1/events`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// How long events, and the log of their deliveries, are kept.
    pub keep_days: u64,
    /// How long an endpoint has to answer a delivery; a slower answer is a failed attempt.
    pub timeout_ms: u64,
    /// Deliveries in flight at once to one endpoint, per instance.
    pub endpoint_concurrency: usize,
    /// An endpoint whose every attempt has failed for this long is disabled, with an
    /// `endpoint.disabled` event.
    pub disable_after_hours: u64,
    /// How often new events and due retries are looked for.
    pub poll_interval_ms: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            keep_days: 30,
            timeout_ms: 15_000,
            endpoint_concurrency: 64,
            disable_after_hours: 5 * 24,
            poll_interval_ms: 100,
        }
    }
}

impl EventsSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn kept(&self) -> Duration {
        Duration::from_secs(self.keep_days.saturating_mul(24 * 3600))
    }

    pub fn disable_after(&self) -> Duration {
        Duration::from_secs(self.disable_after_hours.saturating_mul(3600))
    }
}

/// Message templates: read in full from Meta at start and then on a schedule (webhooks keep
/// them current between reads).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesSettings {
    /// Seconds between reads of every account's templates, the first at start (an account
    /// connected since is read within 15 seconds); 0: only on request (`POST
    /// /v1/templates/sync`). Until a WABA's templates have been read, its template sends go to
    /// Meta unchecked.
    pub sync_interval_secs: u64,
}

impl Default for TemplatesSettings {
    fn default() -> Self {
        Self { sync_interval_secs: 3600 }
    }
}

/// Campaigns: fed into their number's queue a little at a time, so a send of the number's own
/// (a one-time code) waits behind at most `lookahead_ms` of campaign messages.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    /// How much of its rate a running campaign keeps queued ahead of the dispatcher, in
    /// milliseconds (at least one message). Pausing stops within about this long.
    pub lookahead_ms: u64,
    /// A recipient who writes back within this many hours of their campaign message counts as
    /// `replied`.
    pub replied_within_hours: u64,
    /// The share of failed sends (0–1) above which a campaign pauses itself, unless the campaign
    /// sets its own `max_failure_share`; judged once 20 sends have settled.
    pub max_failure_share: f64,
    /// How long an instance's hold on feeding a campaign lasts unrenewed: after a crash another
    /// instance takes the campaign over after this long.
    pub lease_ms: u64,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self { lookahead_ms: 500, replied_within_hours: 72, max_failure_share: 0.25, lease_ms: 10_000 }
    }
}

/// Background jobs (imports, exports): one at a time per instance, held through a lease.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    /// How long an instance's hold on a job lasts unrenewed (it is renewed every batch): after a
    /// crash the job goes on, from its last batch, this long after.
    pub lease_ms: u64,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self { lease_ms: 15_000 }
    }
}

/// Downloading the media customers send: through the Graph media API into `<data_dir>/media/`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Attempts before a download that keeps failing is marked `failed`. Meta keeps an inbound
    /// media file for 7 days.
    pub max_attempts: i64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Timeout of each request (the media URL, then the download).
    pub timeout_ms: u64,
    /// Largest file accepted (Meta allows documents of up to 100 MB).
    pub max_bytes: u64,
    /// Downloads in flight at once, per instance.
    pub concurrency: usize,
    /// How often due downloads (retries, or left by a dead process) are looked for when nothing
    /// wakes the worker sooner.
    pub poll_interval_ms: u64,
    /// Where media bytes live: `local` (`<data_dir>/media`) or `s3` (a bucket every instance
    /// shares).
    pub store: MediaStoreKind,
    pub s3_bucket: Option<String>,
    pub s3_region: String,
    /// An S3-compatible server's URL (MinIO, R2, …); AWS's when absent.
    pub s3_endpoint: Option<String>,
    /// Without these, the usual AWS sources (environment, instance role).
    pub s3_access_key_id: Option<String>,
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub s3_secret_access_key: Option<Secret>,
}

/// Where media bytes live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaStoreKind {
    #[default]
    Local,
    S3,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            retry_base_ms: 2_000,
            retry_max_ms: 600_000,
            timeout_ms: 120_000,
            max_bytes: 100 * 1024 * 1024,
            concurrency: 4,
            poll_interval_ms: 1_000,
            store: MediaStoreKind::Local,
            s3_bucket: None,
            s3_region: "us-east-1".into(),
            s3_endpoint: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
        }
    }
}

impl MediaSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        let (base, max) = (Duration::from_millis(self.retry_base_ms), Duration::from_millis(self.retry_max_ms));
        RetryPolicy::exponential(base, max, self.max_attempts.clamp(0, u32::MAX.into()) as u32)
    }

    /// A download's lease: both of its requests may take their whole timeout, plus a margin
    /// for writing the file.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(2 * self.timeout_ms + 10_000)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts < 1 || self.concurrency == 0 || self.max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "media.max_attempts, media.concurrency and media.max_bytes must be at least 1".into(),
            ));
        }
        if self.timeout_ms == 0 || self.poll_interval_ms == 0 || self.retry_base_ms == 0 {
            return Err(ConfigError::Invalid(
                "media.timeout_ms, media.poll_interval_ms and media.retry_base_ms must be positive".into(),
            ));
        }
        Ok(())
    }
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(Secret::new))
}

/// A secret is serialised as whether it is set, never as its value.
fn redacted<S: serde::Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|_| "<redacted>").serialize(s)
}

fn as_text<S: serde::Serializer>(ranges: &[Cidr], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ranges.iter().map(ToString::to_string))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    /// A variable or flag whose value its setting cannot take; never shows the value, which may
    /// be a secret.
    #[error("{given_by} ({key}): {rule}")]
    Setting { given_by: String, key: String, rule: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Rejects settings that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.dispatcher;
        if d.lease_margin_ms < 1_000 {
            return Err(ConfigError::Invalid(
                "dispatcher.lease_margin_ms must be at least 1000: a lease must outlast its Graph request".into(),
            ));
        }
        if d.concurrency == 0 || d.max_attempts == 0 || d.default_messages_per_second == 0 {
            return Err(ConfigError::Invalid(
                "dispatcher.concurrency, max_attempts and default_messages_per_second must be at least 1".into(),
            ));
        }
        if d.number_lease_ms < 1_000 || d.pair_rate_capacity == 0 || d.pair_rate_refill_ms == 0 {
            return Err(ConfigError::Invalid(
                "dispatcher.number_lease_ms must be at least 1000, pair_rate_capacity and pair_rate_refill_ms \
                 at least 1"
                    .into(),
            ));
        }
        if !(0.0..=10.0).contains(&d.burst_fraction) {
            return Err(ConfigError::Invalid("dispatcher.burst_fraction must be between 0 and 10".into()));
        }
        if d.graph_timeout_ms == 0
            || d.poll_interval_ms == 0
            || self.inbound.poll_interval_ms == 0
            || self.inbound.sweep_interval_ms == 0
            || self.http.header_timeout_ms == 0
            || self.http.body_timeout_ms == 0
        {
            return Err(ConfigError::Invalid("timeouts and poll intervals must be positive".into()));
        }
        if self.shutdown_grace_secs * 1_000 < d.graph_timeout_ms + 5_000 {
            return Err(ConfigError::Invalid(format!(
                "shutdown_grace_secs must be at least the Graph timeout plus 5 s ({} s), so sends in flight \
                 finish and are recorded before exit",
                (d.graph_timeout_ms + 5_000).div_ceil(1_000)
            )));
        }
        if self.messaging.idempotency_key_ttl_secs == 0 {
            return Err(ConfigError::Invalid("messaging.idempotency_key_ttl_secs must be at least 1".into()));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::Invalid("http.max_connections must be at least 1".into()));
        }
        if self.inbound.max_body_bytes < 3 * 1024 * 1024 {
            return Err(ConfigError::Invalid("inbound.max_body_bytes must be at least 3 MiB".into()));
        }
        self.media.validate()?;
        let c = &self.campaigns;
        if c.lookahead_ms == 0 || c.replied_within_hours == 0 || c.lease_ms < 1_000 {
            return Err(ConfigError::Invalid(
                "campaigns.lookahead_ms and replied_within_hours must be at least 1, campaigns.lease_ms at least 1000"
                    .into(),
            ));
        }
        if self.jobs.lease_ms < 1_000 {
            return Err(ConfigError::Invalid("jobs.lease_ms must be at least 1000".into()));
        }
        if !(0.0..=1.0).contains(&c.max_failure_share) {
            return Err(ConfigError::Invalid("campaigns.max_failure_share must be between 0 and 1".into()));
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
    fn allow_private_takes_cidr_ranges_and_names_a_bad_one() {
        let c: Config = toml::from_str("[network]\nallow_private = [\"127.0.0.0/8\", \"::1/128\"]\n").unwrap();
        let policy = c.network.policy();
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(Config::default().network.policy().check("127.0.0.1".parse().unwrap()).is_err());
        let Err(e) = toml::from_str::<Config>("[network]\nallow_private = [\"127.0.0.0/33\"]\n") else {
            panic!("a bad range was taken")
        };
        let e = e.to_string();
        assert!(e.contains("'127.0.0.0/33'") && e.contains("allow_private") && e.contains("0 to 32"), "{e}");
    }

    #[test]
    fn the_default_tier_is_one_of_metas_and_a_wrong_one_names_them() {
        let c: Config = toml::from_str("[messaging]\ndefault_tier = \"TIER_10K\"\n").unwrap();
        assert_eq!(c.messaging.default_tier, MessagingTier::Tier10K);
        assert_eq!(Config::default().messaging.default_tier, MessagingTier::Tier250);
        let Err(e) = toml::from_str::<Config>("[messaging]\ndefault_tier = \"TIER_5K\"\n") else {
            panic!("an unknown tier was taken")
        };
        let e = e.to_string();
        assert!(e.contains("default_tier") && e.contains("must be one of TIER_50, TIER_250, TIER_1K"), "{e}");
    }

    /// The policies keep the settings' meaning: `base · 2^(attempt-1)` up to the cap, the
    /// attempts and the deadline; after 131056, `pair_retry_base_ms · 4^attempt`.
    #[test]
    fn retry_policies_are_built_from_the_settings() {
        use wagate_domain::retry::{GiveUp, Retry};
        let c = Config::default();
        let d = c.dispatcher.retry_policy();
        let ms = Duration::from_millis;
        assert_eq!((d.delay(1, u32::MAX), d.delay(20, u32::MAX)), (ms(1_000), ms(300_000)));
        let t0 = wagate_domain::time::Timestamp::from_millis(0);
        assert_eq!(d.after(10, t0, t0, 0), Retry::GiveUp(GiveUp::Attempts));
        assert_eq!(d.after(1, t0, t0.plus(ms(c.dispatcher.retry_deadline_ms)), 0), Retry::GiveUp(GiveUp::Deadline));
        assert_eq!(c.dispatcher.pair_retry_policy().delay(2, 0), ms(16_000));
        let inbound = c.inbound.retry_policy();
        assert_eq!(
            (inbound.delay(1, u32::MAX), inbound.delay(30, u32::MAX), inbound.max_attempts),
            (ms(200), ms(60_000), 20)
        );
        let media = c.media.retry_policy();
        assert_eq!(
            (media.delay(1, u32::MAX), media.delay(30, u32::MAX), media.max_attempts),
            (ms(2_000), ms(600_000), 10)
        );
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
