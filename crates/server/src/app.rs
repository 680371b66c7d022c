//! `Application::build` binds the listener, opens storage, seeds the sandbox and wires the
//! surfaces; `run` serves until the cancellation token fires, then stops the workers gracefully.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wagate_sandbox::Sandbox;

use crate::auth::require_api_key;
use crate::caches::Caches;
use crate::config::Config;
use crate::graph::GraphClient;
use crate::key_rates::KeyRates;
use crate::media_store::MediaStore;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::secret_key;
use crate::services::api_keys;
use crate::signals::Signals;
use crate::state::{AppState, Shared, WorkerHealth};
use crate::{api, database, http, sandbox_mode, workers};

pub struct Application {
    listener: TcpListener,
    /// Client connections open at once, at most: the configured cap, lowered to fit the
    /// open-file limit.
    max_connections: usize,
    router: Router,
    state: AppState,
    sandbox: Option<Sandbox>,
    cancel: CancellationToken,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        // Before anything opens files: the listener, the database, the sandbox's state.
        let max_connections = http::connection_cap(config.http.max_connections);
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let store = database::open(&config).await?;
        if let Some(key) = &config.bootstrap_api_key {
            api_keys::ensure_bootstrap(store.as_ref(), key).await.context("cannot create the bootstrap API key")?;
        }
        let self_url = self_url(addr);
        let sandbox =
            sandbox_mode::prepare(store.as_ref(), &config, &self_url).await.context("cannot prepare the sandbox")?;
        let cancel = CancellationToken::new();
        let media = MediaStore::open(&config)?;
        // The key file exists now: the database was opened with it.
        let media_link_key = secret_key::load_or_create(&config)?.key.derive("wagate media links");
        let state = AppState::new(Shared {
            media,
            media_link_key,
            shutdown: cancel.clone(),
            store,
            graph: GraphClient::new(config.dispatcher.graph_timeout(), config.network.policy(), sandbox.is_some()),
            outbox: Outbox::new(config.dispatcher.max_backlog),
            key_rates: KeyRates::new(&config.api),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            caches: Caches::default(),
            signals: Signals::default(),
            health: WorkerHealth::default(),
        });
        let (mut router, _) = api::router(state.clone());
        if let Some(sandbox) = &sandbox {
            let control = sandbox
                .control_router()
                .layer(middleware::from_fn_with_state(state.clone(), sandbox_mode::answer_once_applied))
                .layer(middleware::from_fn_with_state(state.clone(), require_api_key));
            router = router.nest("/sandbox", sandbox.graph_router().merge(control));
        }
        let router = http::with_layers(router, state.clone());
        tracing::info!(%addr, sandbox = sandbox.is_some(), backend = ?state.store.backend(), "wagate ready to serve");
        Ok(Self { listener, max_connections, router, state, sandbox, cancel })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling it stops the listener and the workers.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let Self { listener, max_connections, router, state, sandbox, cancel } = self;
        let dispatcher = state
            .config
            .dispatcher
            .enabled
            .then(|| tokio::spawn(workers::dispatcher::run(state.clone(), cancel.clone())));
        // Campaigns are fed where messages are dispatched: an instance that only serves the API
        // leaves them to the others.
        let campaigns = state
            .config
            .dispatcher
            .enabled
            .then(|| tokio::spawn(workers::campaigns::run(state.clone(), cancel.clone())));
        let inbound = tokio::spawn(workers::inbound::run(state.clone(), cancel.clone()));
        let media = tokio::spawn(workers::media::run(state.clone(), cancel.clone()));
        let janitor = tokio::spawn(workers::janitor::run(state.clone(), cancel.clone()));
        let events = tokio::spawn(workers::events::run(state.clone(), cancel.clone()));
        let templates = tokio::spawn(workers::templates::run(state.clone(), cancel.clone()));
        let jobs = tokio::spawn(workers::jobs::run(state.clone(), cancel.clone()));
        let header_timeout = state.config.http.header_timeout();
        http::serve(listener, router, header_timeout, max_connections, cancel.clone().cancelled_owned()).await;
        // Serving has stopped (in-flight requests answered): the workers stop too.
        cancel.cancel();
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        if tokio::time::timeout(grace, async {
            if let Some(campaigns) = campaigns {
                let _ = campaigns.await;
            }
            if let Some(dispatcher) = dispatcher {
                let _ = dispatcher.await;
            }
            let _ = inbound.await;
            let _ = media.await;
            let _ = events.await;
            let _ = janitor.await;
            let _ = templates.await;
            let _ = jobs.await;
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "workers did not stop within the grace period; their leases will lapse and the work be re-claimed"
            );
        }
        if let Some(sandbox) = sandbox {
            sandbox.shutdown();
        }
        state.store.close().await;
        tracing::info!("wagate stopped");
        Ok(())
    }
}

/// How this process reaches itself: the bound address, with a wildcard replaced by loopback.
fn self_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
