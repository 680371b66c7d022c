//! Throw-away databases for tests: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created under `WAGATE_TEST_DATABASE_URL` and dropped afterwards.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::Backend;

pub const DATABASE_URL_VAR: &str = "WAGATE_TEST_DATABASE_URL";

/// A database that exists for as long as this value.
pub struct TestDatabase {
    backend: Backend,
    url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("wagate.db").display());
        Self { backend: Backend::Sqlite, url, dir, postgres: None }
    }

    /// A fresh database on the server `WAGATE_TEST_DATABASE_URL` names. `None` (the test is
    /// skipped) when the variable is unset, or when the server is unreachable outside CI; with
    /// `CI=true` an unreachable server is a failure, so CI can never pass by skipping.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
            eprintln!("skipping PostgreSQL: {DATABASE_URL_VAR} is not set");
            return None;
        };
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true and PostgreSQL at {DATABASE_URL_VAR} is unreachable: {e}")
            }
            Err(e) => {
                eprintln!("skipping PostgreSQL: cannot connect ({e})");
                return None;
            }
        };
        let name = wagate_domain::id::new_id("wagate_test").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = crate::with_database(&admin_url, &name);
        let dir = tempfile::tempdir().expect("temporary directory");
        Some(Self { backend: Backend::Postgres, url, dir, postgres: Some((admin_url, name)) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A directory that lives as long as the database (wagate's data dir in tests).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime; a thread of its own can block on a fresh one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
