//! End-to-end tests: the real application (in-process on port 0, or the `wagate` binary) with
//! the real sandbox and a real database, on SQLite and on PostgreSQL.

mod accounts;
mod api_keys;
mod chakra;
mod chirp;
mod client_libraries;
mod configuration;
mod contacts;
mod crash;
mod events;
mod fairness;
mod flow;
mod fuzz;
mod graph_surface;
mod groups;
mod hardening;
mod inbound;
mod lease;
mod media;
mod message_types;
mod meta_format;
mod ops;
mod outbound;
mod sandbox_mode;
mod secrets;
mod ssrf;
mod standalone;
mod support;
mod templates;
mod uploads;
mod validation;
mod webhooks;
mod whatomate;
mod window;
