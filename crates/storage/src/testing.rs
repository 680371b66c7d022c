//! Throw-away databases for tests: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created under `WAGATE_TEST_DATABASE_URL` and dropped afterwards, each
//! with a secret key of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wagate_domain::id::{AccountId, MessageId};
use wagate_domain::sealed::{Cipher, SecretKey};
use wagate_domain::secret::Secret;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;

use crate::{
    Account, AccountMode, Backend, Leased, LeasedQueue, NewInbound, NewOutbound, PhoneNumber, StatusOutcome,
    StatusUpdate, Store,
};

pub const DATABASE_URL_VAR: &str = "WAGATE_TEST_DATABASE_URL";

/// A database that exists for as long as this value.
pub struct TestDatabase {
    backend: Backend,
    url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
    key: SecretKey,
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
        Self { backend: Backend::Sqlite, url, dir, postgres: None, key: SecretKey::generate() }
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
        Some(Self {
            backend: Backend::Postgres,
            url,
            dir,
            postgres: Some((admin_url, name)),
            key: SecretKey::generate(),
        })
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

    /// The key this database's secrets are sealed with when a test opens it directly.
    pub fn secret_key(&self) -> &SecretKey {
        &self.key
    }

    pub fn cipher(&self) -> Cipher {
        Cipher::new(&self.key)
    }

    /// Each account's id and secret columns (access token, app secret, verify token) as the
    /// database holds them, read behind the store's back.
    pub async fn stored_secrets(&self) -> Vec<(String, [String; 3])> {
        const SQL: &str = "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id";
        let rows: Vec<(String, String, String, String)> = match self.backend {
            Backend::Sqlite => {
                let conn = self.sqlite_connection();
                let mut statement = conn.prepare(SQL).expect("read accounts");
                let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)));
                rows.expect("read accounts").collect::<Result<_, _>>().expect("read accounts")
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.expect("connect to PostgreSQL");
                sqlx::query_as(SQL).fetch_all(&mut conn).await.expect("read accounts")
            }
        };
        rows.into_iter().map(|(id, a, b, c)| (id, [a, b, c])).collect()
    }

    /// Writes an account's secret columns behind the store's back (as a version that stored
    /// them in clear did, or damaged).
    pub async fn write_stored_secrets(&self, account_id: &str, values: [&str; 3]) {
        let [a, b, c] = values;
        let written = match self.backend {
            Backend::Sqlite => {
                let conn = self.sqlite_connection();
                conn.execute(crate::shared::UPDATE_SECRETS, [a, b, c, account_id]).expect("write accounts") as u64
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.expect("connect to PostgreSQL");
                let query = sqlx::query(crate::shared::UPDATE_SECRETS).bind(a).bind(b).bind(c).bind(account_id);
                query.execute(&mut conn).await.expect("write accounts").rows_affected()
            }
        };
        assert_eq!(written, 1, "no account {account_id}");
    }

    /// The SQLite file, opened behind the store's back.
    pub fn sqlite_connection(&self) -> rusqlite::Connection {
        let path = self.url.strip_prefix("sqlite://").expect("a SQLite database");
        let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
        conn.busy_timeout(std::time::Duration::from_secs(10)).expect("a busy timeout");
        conn
    }
}

/// A live account of WABA `waba`, made at `at`, with the credentials tests expect.
pub fn account(waba: &str, at: Timestamp) -> Account {
    Account {
        id: AccountId::generate(),
        name: "Shop".into(),
        mode: AccountMode::Live,
        graph_base_url: "http://graph.test".into(),
        api_version: "v23.0".into(),
        waba_id: waba.into(),
        access_token: Secret::new("token-1"),
        app_secret: Secret::new("secret-1"),
        verify_token: Secret::new("verify-1"),
        paused: None,
        messaging_tier: None,
        created_at: at,
        updated_at: at,
    }
}

/// Phone number `id` of `account`, made at `at`.
pub fn phone_number(account: &Account, id: &str, is_default: bool, at: Timestamp) -> PhoneNumber {
    PhoneNumber {
        id: id.into(),
        account_id: account.id.clone(),
        waba_id: account.waba_id.clone(),
        display_phone_number: format!("+1 555-{id}"),
        verified_name: Some(account.name.clone()),
        quality_rating: Some("GREEN".into()),
        is_default,
        mode: account.mode,
        webhooks_since: None,
        throughput_level: None,
        messages_per_second: None,
        created_at: at,
        updated_at: at,
    }
}

/// Meta's report that the message `wamid` of `account` reached status `s`, `at_s` seconds into
/// the tests' epoch; a failure carries Meta's 131026.
pub fn status_update(account: &AccountId, wamid: &str, s: DeliveryStatus, at_s: i64) -> StatusUpdate {
    StatusUpdate {
        participant: None,
        account_id: account.clone(),
        wamid: wamid.into(),
        status: s,
        occurred_at: Timestamp::from_unix_seconds(1_800_000_000 + at_s),
        error: (s == DeliveryStatus::Failed).then(|| wagate_domain::message::MessageError {
            code: Some(131026),
            title: Some("Message undeliverable".into()),
            message: "Message undeliverable".into(),
            details: None,
            fbtrace_id: None,
            reason: None,
        }),
        detail: serde_json::json!({"id": wamid, "status": "x"}),
    }
}

/// A send from `number` to `recipient`, accepted and due now, with nothing optional: no
/// metadata, schedule, expiry, window to judge or idempotency key.
pub fn send_now(number: &PhoneNumber, recipient: &str, kind: &str, content: Value) -> NewOutbound {
    let now = Timestamp::now();
    NewOutbound {
        id: MessageId::generate(),
        account_id: number.account_id.clone(),
        phone_number_id: number.id.clone(),
        recipient: recipient.into(),
        kind: kind.into(),
        content,
        metadata: None,
        created_at: now,
        due_at: now,
        send_at: None,
        expires_at: None,
        window: None,
        idempotency: None,
        rendered: None,
    }
}

/// Claims from one of `store`'s queues (`queue` picks it) in four tasks at once, `limit` at a
/// time, until it is empty: everything the tasks claimed.
pub async fn claim_concurrently<T, E>(
    store: &Arc<dyn Store>,
    queue: fn(&dyn Store) -> &dyn LeasedQueue<T, E>,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Vec<Leased<T>>
where
    T: Send + Sync + 'static,
    E: ?Sized + Sync + 'static,
{
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = queue(store.as_ref()).claim(now, lease_until, limit).await.expect("a claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a claiming task"));
    }
    all
}

/// What tests say in one call, over the batch methods the server uses.
#[async_trait::async_trait]
pub trait StoreExt {
    /// Applies one status (see `Messages::apply_statuses`).
    async fn apply_status(&self, update: &StatusUpdate, at: Timestamp) -> crate::Result<StatusOutcome>;
    /// Stores one inbound message (see `Inbound::record_inbounds`).
    async fn record_inbound(&self, message: &NewInbound) -> crate::Result<bool>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> StoreExt for S {
    async fn apply_status(&self, update: &StatusUpdate, at: Timestamp) -> crate::Result<StatusOutcome> {
        let mut outcomes = self.apply_statuses(std::slice::from_ref(update), at).await?;
        Ok(outcomes.pop().unwrap_or(StatusOutcome::Duplicate))
    }

    async fn record_inbound(&self, message: &NewInbound) -> crate::Result<bool> {
        Ok(self.record_inbounds(std::slice::from_ref(message)).await?.pop().unwrap_or(false))
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
