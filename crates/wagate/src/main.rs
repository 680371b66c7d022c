//! The `wagate` command: `serve`, `keys`, `secrets`, `sandbox`. Parses flags, then hands over to
//! the server crate.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use wagate_domain::network::Cidr;
use wagate_domain::sealed::SecretKey;
use wagate_domain::secret::Secret;
use wagate_sandbox::{Sandbox, SandboxConfig, Seed, StatusDelays};
use wagate_server::config::LogFormat;
use wagate_server::secret_key::{self, KeySource};
use wagate_server::services::api_keys;
use wagate_server::{Application, Config, telemetry};

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "A self-hosted WhatsApp Business gateway in front of Meta's WhatsApp Cloud API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no configuration: SQLite under ./wagate-data and the built-in
    /// Cloud API sandbox mounted at /sandbox with a seeded sandbox account.
    Serve(ServeArgs),
    /// Manage API keys directly in the database (the server may be running).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Manage the key that seals the accounts' secrets (access tokens, app secrets, verify
    /// tokens) in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run the Cloud API sandbox alone: a Meta stand-in for developing and testing bots offline.
    Sandbox(SandboxArgs),
}

/// Where the configuration and the data are.
#[derive(Args, Clone)]
struct CommonArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "WAGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and media [default: ./wagate-data].
    #[arg(long, env = "WAGATE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data directory].
    #[arg(long, env = "WAGATE_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WAGATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "WAGATE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    /// An API key made with every right (admin) at the first start that names it; once revoked,
    /// it stays revoked.
    #[arg(long = "bootstrap-api-key", env = "WAGATE_BOOTSTRAP_API_KEY", hide_env_values = true)]
    bootstrap_api_key: Option<String>,
    /// The seeded sandbox account's app secret (otherwise generated once and stored).
    #[arg(long, env = "WAGATE_SANDBOX_APP_SECRET", hide_env_values = true)]
    sandbox_app_secret: Option<String>,
    /// The seeded sandbox account's webhook verify token (otherwise generated once and stored).
    #[arg(long, env = "WAGATE_SANDBOX_VERIFY_TOKEN", hide_env_values = true)]
    sandbox_verify_token: Option<String>,
    /// Non-public address ranges outbound requests may go to, comma-separated, such as
    /// 127.0.0.0/8,::1/128 for a standalone sandbox on this machine [default: none].
    #[arg(long, env = "WAGATE_ALLOW_PRIVATE", value_name = "CIDRS")]
    allow_private: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the key itself is the last line printed.
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// What it may do: admin (the default; implies the others), send, read. Repeat the flag
        /// or separate with commas.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List keys: id, prefix, scopes, name, created, last used, revoked.
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-seal every stored secret with a new key, in one transaction; stop wagate first. With
    /// the key file, a new key replaces it and the old one is kept as `secret.key.old`. With
    /// WAGATE_SECRET_KEY, give the new key with --new-key-env or --new-key-file (never on the
    /// command line), then set it on every instance.
    Rotate {
        /// The environment variable that holds the new key (base64 of 32 bytes).
        #[arg(long, value_name = "VAR", conflicts_with = "new_key_file")]
        new_key_env: Option<String>,
        /// The file that holds the new key (base64 of 32 bytes).
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
    },
    /// Print a new random key (base64 of 32 bytes), for WAGATE_SECRET_KEY.
    GenerateKey,
}

#[derive(Args)]
struct SandboxArgs {
    /// Address to listen on; paths are served under /sandbox.
    #[arg(long, env = "WAGATE_SANDBOX_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where to post webhooks (signed like Meta's), e.g. http://127.0.0.1:8080/webhooks/meta.
    #[arg(long, env = "WAGATE_SANDBOX_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// App secret that signs webhooks [default: generated].
    #[arg(long, env = "WAGATE_SANDBOX_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// Verify token of the webhook handshake [default: generated].
    #[arg(long, env = "WAGATE_SANDBOX_VERIFY_TOKEN", hide_env_values = true)]
    verify_token: Option<String>,
    /// Access token Graph requests must carry [default: generated].
    #[arg(long, env = "WAGATE_SANDBOX_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// Milliseconds from accepting a message to its `sent` webhook.
    #[arg(long, default_value_t = 300)]
    sent_delay_ms: u64,
    /// Milliseconds from accepting a message to its `delivered` webhook.
    #[arg(long, default_value_t = 800)]
    delivered_delay_ms: u64,
    /// Milliseconds from accepting a message to its `read` webhook.
    #[arg(long, default_value_t = 1500)]
    read_delay_ms: u64,
    /// Keep the sandbox's business, templates, media, groups, windows and settings here across
    /// restarts [default: in memory only].
    #[arg(long, env = "WAGATE_SANDBOX_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &common.database_url {
        config.database_url = Some(url.clone());
    }
    // Read here rather than as a flag: a key on the command line would land in shell history.
    if let Some(key) = std::env::var_os(secret_key::ENV_VAR) {
        let key = key.into_string().map_err(|_| anyhow::anyhow!("{} is not base64", secret_key::ENV_VAR))?;
        config.secret_key = Some(Secret::new(key));
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Keys { command, common } => keys(command, &common).await,
        Command::Secrets { command, common } => secrets(command, &common).await,
        Command::Sandbox(args) => sandbox(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.common)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(f) = args.log_format {
        config.log_format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if let Some(k) = args.bootstrap_api_key.filter(|k| !k.is_empty()) {
        config.bootstrap_api_key = Some(Secret::new(k));
    }
    if let Some(s) = args.sandbox_app_secret.filter(|s| !s.is_empty()) {
        config.sandbox.app_secret = Some(Secret::new(s));
    }
    if let Some(t) = args.sandbox_verify_token.filter(|t| !t.is_empty()) {
        config.sandbox.verify_token = Some(Secret::new(t));
    }
    if let Some(ranges) = args.allow_private.filter(|r| !r.trim().is_empty()) {
        config.network.allow_private = ranges
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(str::parse::<Cidr>)
            .collect::<Result<_, _>>()
            .context("--allow-private (WAGATE_ALLOW_PRIVATE)")?;
    }
    telemetry::init(config.log_format, &config.log_level);
    let app = Application::build(config).await?;
    // Scripts and tests read the bound address (useful with port 0) from this line.
    println!("wagate listening on http://{}", app.local_addr());
    stop_on_signal(app.shutdown_token());
    app.run().await
}

/// SIGTERM or Ctrl-C cancels `token`; a second one exits at once.
fn stop_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        token.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn keys(command: KeysCommand, common: &CommonArgs) -> anyhow::Result<()> {
    let config = load_config(common)?;
    let store = wagate_server::database::open(&config).await?;
    match command {
        KeysCommand::Create { name, scopes } => {
            let scopes = (!scopes.is_empty()).then_some(scopes.as_slice());
            let created = api_keys::create(store.as_ref(), &name, scopes).await?;
            println!(
                "created API key {} ({}) named {:?} with scopes {}",
                created.record.id, created.record.prefix, created.record.name, created.record.scopes
            );
            println!("it is shown once; only its hash is stored:");
            println!("{}", created.key.expose());
        }
        KeysCommand::List => {
            println!(
                "{:<32} {:<12} {:<19} {:<26} {:<26} {:<26} NAME",
                "ID", "PREFIX", "SCOPES", "CREATED", "LAST USED", "REVOKED"
            );
            let show = |t: Option<wagate_domain::time::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
            for k in api_keys::list(store.as_ref()).await? {
                println!(
                    "{:<32} {:<12} {:<19} {:<26} {:<26} {:<26} {}",
                    k.id,
                    k.prefix,
                    k.scopes.to_stored(),
                    k.created_at.to_string(),
                    show(k.last_used_at),
                    show(k.revoked_at),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            api_keys::revoke(store.as_ref(), None, &id).await?;
            println!("revoked {id}");
        }
    }
    store.close().await;
    Ok(())
}

async fn secrets(command: SecretsCommand, common: &CommonArgs) -> anyhow::Result<()> {
    let (new_key_env, new_key_file) = match command {
        SecretsCommand::GenerateKey => {
            println!("{}", SecretKey::generate().to_base64().expose());
            return Ok(());
        }
        SecretsCommand::Rotate { new_key_env, new_key_file } => (new_key_env, new_key_file),
    };
    let config = load_config(common)?;
    let new = match (new_key_env, new_key_file) {
        (Some(var), _) => {
            let text = std::env::var(&var).with_context(|| format!("--new-key-env {var}: the variable is not set"))?;
            Some(SecretKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{var} {e}"))?)
        }
        (None, Some(path)) => Some(
            secret_key::read_key_file(&path)?
                .with_context(|| format!("--new-key-file {}: there is no such file", path.display()))?,
        ),
        (None, None) => None,
    };
    let done = secret_key::rotate(&config, new).await?;
    let accounts = if done.accounts == 1 { "1 account".to_owned() } else { format!("{} accounts", done.accounts) };
    println!("re-sealed the secrets of {accounts}: key {} replaced by key {}", done.from, done.to);
    match done.source {
        KeySource::File(path) => {
            println!("the new key is in {}, the old one in {}.old; start wagate again", path.display(), path.display())
        }
        KeySource::Environment => println!(
            "set {} to the new key (key {}) on every instance, then restart them: until then they cannot read the \
             accounts' secrets",
            secret_key::ENV_VAR,
            done.to
        ),
    }
    Ok(())
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "info");
    let seed = match &args.data_dir {
        Some(dir) => Seed::load_or_generate(dir, args.app_secret, args.verify_token, args.access_token)
            .with_context(|| format!("cannot keep the sandbox's state in {}", dir.display()))?,
        None => Seed::generate(args.app_secret, args.verify_token, args.access_token),
    };
    let sandbox = Sandbox::new(SandboxConfig {
        seed,
        webhook_url: args.webhook_url,
        delays: StatusDelays {
            sent: Duration::from_millis(args.sent_delay_ms),
            delivered: Duration::from_millis(args.delivered_delay_ms),
            read: Duration::from_millis(args.read_delay_ms),
        },
        state_dir: args.data_dir,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new().nest("/sandbox", sandbox.router());
    println!("wagate sandbox listening on http://{addr}/sandbox");
    let seed = sandbox.seed();
    tracing::info!(
        waba_id = %seed.waba_id,
        phone_numbers = ?seed.phone_numbers.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        "sandbox ready; GET /sandbox/control/accounts shows its tokens"
    );
    let token = CancellationToken::new();
    stop_on_signal(token.clone());
    axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await?;
    sandbox.shutdown();
    Ok(())
}
