//! The `wagate` command: `serve`, `keys`, `secrets`, `sandbox`, which hand over to the server
//! crate once the flags are parsed; `campaign` and `contacts`, clients of a running wagate
//! (see `client`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use wagate_domain::sealed::SecretKey;
use wagate_sandbox::{Sandbox, SandboxConfig, Seed, StatusDelays};
use wagate_server::config::{Flag, LogFormat};
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
    /// Manage the users of the team inbox directly in the database: the first admin, before
    /// anyone can sign in.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run the Cloud API sandbox alone: a Meta stand-in for developing and testing bots offline.
    Sandbox(SandboxArgs),
    /// Create, fill, check, start and follow campaigns on a running wagate (through its API).
    Campaign {
        #[command(subcommand)]
        command: client::campaign::CampaignCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Import contacts into a running wagate (through its API).
    Contacts {
        #[command(subcommand)]
        command: client::contacts::ContactsCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
}

/// Where the configuration and the data are. Each flag overrides its environment variable,
/// which overrides the file; docs/configuration.md lists every setting and its variable.
#[derive(Args, Clone)]
struct CommonArgs {
    /// TOML configuration file [env: WAGATE_CONFIG].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and media [env: WAGATE_DATA_DIR] [default: ./wagate-data].
    #[arg(long, global = true)]
    data_dir: Option<String>,
    /// sqlite://PATH or postgres://USER@HOST/DB [env: WAGATE_DATABASE_URL] [default: SQLite in
    /// the data directory].
    #[arg(long, global = true)]
    database_url: Option<String>,
}

impl CommonArgs {
    fn flags(&self) -> Vec<Flag> {
        given([
            ("--data-dir", "data_dir", self.data_dir.clone()),
            ("--database-url", "database_url", self.database_url.clone()),
        ])
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on [env: WAGATE_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Log format [env: WAGATE_LOG_FORMAT] [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// An API key made with every right (admin) at the first start that names it; once revoked,
    /// it stays revoked [env: WAGATE_BOOTSTRAP_API_KEY].
    #[arg(long = "bootstrap-api-key")]
    bootstrap_api_key: Option<String>,
    /// The seeded sandbox account's app secret (otherwise generated once and stored) [env:
    /// WAGATE_SANDBOX_APP_SECRET].
    #[arg(long)]
    sandbox_app_secret: Option<String>,
    /// The seeded sandbox account's webhook verify token (otherwise generated once and stored)
    /// [env: WAGATE_SANDBOX_VERIFY_TOKEN].
    #[arg(long)]
    sandbox_verify_token: Option<String>,
    /// Non-public address ranges outbound requests may go to, comma-separated, such as
    /// 127.0.0.0/8,::1/128 for a standalone sandbox on this machine [env: WAGATE_ALLOW_PRIVATE]
    /// [default: none].
    #[arg(long, value_name = "CIDRS")]
    allow_private: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> Vec<Flag> {
        let log_format = self.log_format.and_then(|f| f.to_possible_value()).map(|v| v.get_name().to_owned());
        let mut flags = self.common.flags();
        flags.extend(given([
            ("--listen", "listen", self.listen.map(|a| a.to_string())),
            ("--log-format", "log_format", log_format),
            ("--bootstrap-api-key", "bootstrap_api_key", self.bootstrap_api_key.clone()),
            ("--sandbox-app-secret", "sandbox.app_secret", self.sandbox_app_secret.clone()),
            ("--sandbox-verify-token", "sandbox.verify_token", self.sandbox_verify_token.clone()),
            ("--allow-private", "network.allow_private", self.allow_private.clone()),
        ]));
        flags
    }
}

/// The flags given, each with the setting it overrides.
fn given<const N: usize>(flags: [(&'static str, &'static str, Option<String>); N]) -> Vec<Flag> {
    flags.into_iter().filter_map(|(name, key, value)| Some(Flag { name, key, value: value? })).collect()
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
enum UsersCommand {
    /// Create a user. The password is read from the environment variable WAGATE_USER_PASSWORD,
    /// or the first line of standard input: never from the command line, where others could
    /// read it.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// An admin (manages users and teams, sees every conversation); an agent otherwise.
        #[arg(long)]
        admin: bool,
    },
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

/// The configuration, loaded the same way by every command: the defaults, the file, the
/// `WAGATE_` variables, the flags. Logging is set up from it (at `log_level` when given), then
/// the variables that name no setting are warned about.
fn load_config(common: &CommonArgs, flags: &[Flag], log_level: Option<&str>) -> anyhow::Result<Config> {
    let loaded = Config::load(common.config.as_deref(), std::env::vars_os(), flags)?;
    let config = loaded.config;
    telemetry::init(config.log_format, log_level.unwrap_or(&config.log_level));
    for unknown in loaded.unknown_variables {
        tracing::warn!(
            variable = %unknown.name,
            did_you_mean = unknown.did_you_mean.as_deref().map(tracing::field::display),
            "no setting has this name (docs/configuration.md lists them); it is ignored"
        );
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Keys { command, common } => keys(command, &common).await,
        Command::Secrets { command, common } => secrets(command, &common).await,
        Command::Users { command, common } => users(command, &common).await,
        Command::Sandbox(args) => sandbox(args).await,
        Command::Campaign { command, client } => client::exit_on_error(client::campaign::run(command, &client).await),
        Command::Contacts { command, client } => client::exit_on_error(client::contacts::run(command, &client).await),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common, &args.flags(), None)?;
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

async fn users(command: UsersCommand, common: &CommonArgs) -> anyhow::Result<()> {
    let config = load_config(common, &common.flags(), Some("warn"))?;
    let store = wagate_server::database::open(&config).await?;
    match command {
        UsersCommand::Create { email, name, admin } => {
            let password = match std::env::var("WAGATE_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let role = Some(if admin { "admin" } else { "agent" }.to_owned());
            let req = wagate_server::services::users::CreateUser {
                email,
                name,
                password: wagate_domain::secret::Secret::new(password),
                role,
                team_ids: Vec::new(),
            };
            let user = wagate_server::services::users::create_user(store.as_ref(), req)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {} {} ({}) {}", user.role.as_str(), user.id, user.email, user.name);
        }
    }
    store.close().await;
    Ok(())
}

async fn keys(command: KeysCommand, common: &CommonArgs) -> anyhow::Result<()> {
    // Warnings only: the output is the command's own.
    let config = load_config(common, &common.flags(), Some("warn"))?;
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
    let config = load_config(common, &common.flags(), Some("warn"))?;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use wagate_domain::secret::Secret;

    use super::*;

    fn loaded(flags: &[Flag]) -> Config {
        Config::load(None, std::iter::empty(), flags).expect("the flags' values are valid").config
    }

    #[test]
    fn every_flag_sets_its_setting() {
        Cli::command().debug_assert();
        let args = [
            "wagate",
            "serve",
            "--listen=127.0.0.1:1",
            "--data-dir=/srv/wagate",
            "--database-url=sqlite:///srv/wagate/x.db",
            "--log-format=json",
            "--bootstrap-api-key=boot",
            "--sandbox-app-secret=app",
            "--sandbox-verify-token=verify",
            "--allow-private=::1/128",
        ];
        let Command::Serve(serve) = Cli::parse_from(args).command else { unreachable!() };
        let c = loaded(&serve.flags());
        let secret = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.data_dir, PathBuf::from("/srv/wagate"));
        assert_eq!(c.database_url.as_deref(), Some("sqlite:///srv/wagate/x.db"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(secret(&c.bootstrap_api_key).as_deref(), Some("boot"));
        assert_eq!(secret(&c.sandbox.app_secret).as_deref(), Some("app"));
        assert_eq!(secret(&c.sandbox.verify_token).as_deref(), Some("verify"));
        assert!(c.network.policy().check("::1".parse().unwrap()).is_ok());

        let Command::Keys { common, .. } = Cli::parse_from(["wagate", "keys", "list", "--data-dir", "/k"]).command
        else {
            unreachable!()
        };
        assert_eq!(loaded(&common.flags()).data_dir, PathBuf::from("/k"));
    }
}
