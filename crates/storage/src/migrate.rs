//! Per-backend schema migrations, embedded in the binary and applied in order at start-up.

use wagate_domain::time::Timestamp;

use crate::StorageError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The migration and the row recording it, as one script to run in one transaction.
    /// Version, name and time are the binary's own constants and a number: nothing to escape.
    pub fn script(&self) -> String {
        format!(
            "{}\n;INSERT INTO wagate_migrations (version, name, applied_at) VALUES ({}, '{}', {});",
            self.sql,
            self.version,
            self.name,
            Timestamp::now().as_millis()
        )
    }

    pub fn failed(&self, source: impl std::fmt::Display) -> StorageError {
        StorageError::Migration { version: self.version, name: self.name, reason: source.to_string() }
    }
}

// `SQLITE` and `POSTGRES`, listed by build.rs from the files under migrations/.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS wagate_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
