//! The throw-away PostgreSQL database of a run.

use anyhow::Context;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use wagate_domain::id::new_id;

/// A fresh PostgreSQL database for one run, created through the server URL given.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let shown = wagate_storage::redact_url(admin_url);
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown} (--database-url)"))?;
        let name = new_id("wagate_bench").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create database {name} at {shown}"))?;
        let _ = admin.close().await;
        Ok(Self { url: wagate_storage::with_database(admin_url, &name), admin_url: admin_url.to_owned(), name })
    }

    pub async fn drop_database(self) {
        let dropped = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut admin)
                .await?;
            admin.close().await
        }
        .await;
        if let Err(e) = dropped {
            eprintln!("warning: could not drop the bench database {}: {e}", self.name);
        }
    }
}
