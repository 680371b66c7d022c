//! End-to-end tests: the real application (in-process on port 0, or the `wagate` binary) with
//! the real sandbox and a real database, on SQLite and on PostgreSQL.

mod accounts;
mod api_keys;
mod flow;
mod lease;
mod ops;
mod sandbox_mode;
mod standalone;
mod support;
mod validation;
mod webhooks;
