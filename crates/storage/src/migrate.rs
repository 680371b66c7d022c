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
    pub fn script(&self) -> sqlx::AssertSqlSafe<String> {
        // Version, name and time are the binary's own constants and a number: nothing to escape.
        sqlx::AssertSqlSafe(format!(
            "{}\n;INSERT INTO wagate_migrations (version, name, applied_at) VALUES ({}, '{}', {});",
            self.sql,
            self.version,
            self.name,
            Timestamp::now().as_millis()
        ))
    }

    pub fn failed(&self, source: sqlx::Error) -> StorageError {
        StorageError::Migration { version: self.version, name: self.name, source }
    }
}

pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "conversations", sql: include_str!("../migrations/sqlite/0002_conversations.sql") },
    Migration {
        version: 3,
        name: "outbound_engine",
        sql: include_str!("../migrations/sqlite/0003_outbound_engine.sql"),
    },
    Migration { version: 4, name: "outbox_lease", sql: include_str!("../migrations/sqlite/0004_outbox_lease.sql") },
    Migration { version: 5, name: "inbound", sql: include_str!("../migrations/sqlite/0005_inbound.sql") },
    Migration { version: 6, name: "media", sql: include_str!("../migrations/sqlite/0006_media.sql") },
    Migration { version: 7, name: "contacts", sql: include_str!("../migrations/sqlite/0007_contacts.sql") },
    Migration {
        version: 8,
        name: "orphan_statuses",
        sql: include_str!("../migrations/sqlite/0008_orphan_statuses.sql"),
    },
    Migration { version: 9, name: "queue_scan", sql: include_str!("../migrations/sqlite/0009_queue_scan.sql") },
    Migration {
        version: 10,
        name: "conversation_index",
        sql: include_str!("../migrations/sqlite/0010_conversation_index.sql"),
    },
    Migration {
        version: 11,
        name: "api_key_scopes",
        sql: include_str!("../migrations/sqlite/0011_api_key_scopes.sql"),
    },
    Migration {
        version: 13,
        name: "tags_and_retention",
        sql: include_str!("../migrations/sqlite/0013_tags_and_retention.sql"),
    },
];

pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "conversations", sql: include_str!("../migrations/postgres/0002_conversations.sql") },
    Migration {
        version: 3,
        name: "outbound_engine",
        sql: include_str!("../migrations/postgres/0003_outbound_engine.sql"),
    },
    Migration { version: 4, name: "outbox_lease", sql: include_str!("../migrations/postgres/0004_outbox_lease.sql") },
    Migration { version: 5, name: "inbound", sql: include_str!("../migrations/postgres/0005_inbound.sql") },
    Migration { version: 6, name: "media", sql: include_str!("../migrations/postgres/0006_media.sql") },
    Migration { version: 7, name: "contacts", sql: include_str!("../migrations/postgres/0007_contacts.sql") },
    Migration {
        version: 8,
        name: "orphan_statuses",
        sql: include_str!("../migrations/postgres/0008_orphan_statuses.sql"),
    },
    Migration { version: 9, name: "queue_scan", sql: include_str!("../migrations/postgres/0009_queue_scan.sql") },
    Migration {
        version: 10,
        name: "conversation_index",
        sql: include_str!("../migrations/postgres/0010_conversation_index.sql"),
    },
    Migration {
        version: 11,
        name: "api_key_scopes",
        sql: include_str!("../migrations/postgres/0011_api_key_scopes.sql"),
    },
    Migration {
        version: 13,
        name: "tags_and_retention",
        sql: include_str!("../migrations/postgres/0013_tags_and_retention.sql"),
    },
];

pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS wagate_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
