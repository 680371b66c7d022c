//! wagate's server: the HTTP surfaces (native API, Meta webhook receiver, operations, the
//! mounted sandbox), the services they call, and the background workers.

pub mod api;
pub mod app;
pub mod auth;
pub mod caches;
pub mod config;
pub mod database;
pub mod error;
pub mod extract;
pub mod graph;
mod http;
pub mod key_rates;
pub mod media_store;
pub mod metrics;
pub mod outbound;
pub mod outbox;
pub mod sandbox_mode;
pub mod secret_key;
pub mod services;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod workers;

pub use app::Application;
pub use config::Config;
