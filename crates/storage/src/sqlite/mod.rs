//! SQLite: the embedded default. WAL mode; one sqlx writer connection behind a lock (SQLite
//! takes one writer at a time anyway, and queueing in-process avoids busy retries), a small pool
//! of readers, and the direct paths of [`direct`] for what every send and delivery does.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous, SqliteTransactionManager,
};
use sqlx::{ConnectOptions, Connection};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{Mutex, OwnedMutexGuard};

mod direct;

pub(crate) use direct::Direct;

use wagate_domain::sealed::Cipher;

use crate::migrate;
use crate::{Backend, Result, StorageError};

/// WAL pages after which a commit copies them back into the database file (SQLite's default is
/// 1,000). Chosen when every send dirtied an index leaf of its own: at 1,000 a checkpoint copied
/// mostly distinct pages and took a fifth of the batch writer's time (`wagate-bench`, alternate
/// runs: 9,600–12,100 sends/s at 4,000 against 7,500–8,600). Since sends write only the last
/// leaves of append-only B-trees, 1,000 and 4,000 measure the same (three pairs).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 4_000;

/// The one write connection, passed from task to task by a lock. Not a pool: a pool pings its
/// connection on every acquire and release, each a round trip to SQLite's thread, and the
/// writer is what every write waits for.
#[derive(Clone)]
pub(crate) struct Writer {
    conn: Arc<Mutex<Option<SqliteConnection>>>,
    /// Taken before `conn` by the writes made through sqlx, so that at most one of them waits
    /// for `conn` beside the batch writer: new sends wait for one write, not for a queue.
    lane: Arc<Mutex<()>>,
}

/// The writer, held. `None` inside once the store is closed.
pub(crate) struct WriteConn(OwnedMutexGuard<Option<SqliteConnection>>);

impl Writer {
    async fn lock(&self) -> Result<WriteConn> {
        let _lane = self.lane.lock().await;
        let guard = self.conn.clone().lock_owned().await;
        if guard.is_none() {
            return Err(StorageError::Database(sqlx::Error::PoolClosed));
        }
        Ok(WriteConn(guard))
    }

    /// IMMEDIATE takes the write lock up front, so a transaction that reads before it writes
    /// cannot fail half-way because another process (the CLI) wrote in between.
    async fn begin(&self) -> Result<WriteTx> {
        let mut conn = self.lock().await?;
        SqliteTransactionManager::begin(&mut conn, Some(sqlx::SqlStr::from_static("BEGIN IMMEDIATE"))).await?;
        Ok(WriteTx { conn, open: true })
    }

    async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take()
            && let Err(e) = conn.close().await
        {
            tracing::warn!(error = %e, "closing the SQLite writer failed");
        }
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.0.as_ref().expect("checked when locked")
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("checked when locked")
    }
}

/// A write transaction on the writer; rolled back if dropped uncommitted (the rollback runs
/// before the connection's next statement, whoever holds it next).
pub(crate) struct WriteTx {
    conn: WriteConn,
    open: bool,
}

impl WriteTx {
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            SqliteTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    direct: Direct,
    enqueuer: crate::sql::Enqueuer,
    cipher: Cipher,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, readable by this user only,
    /// migrates it, and seals its secrets with `cipher`: those stored in clear are sealed, those
    /// a previous key of the cipher sealed are re-sealed, and a secret no key of the cipher opens
    /// is an error.
    pub async fn open(path: &Path, cipher: Cipher) -> Result<Self> {
        make_private(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a 202 means the message is on disk, even across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .busy_timeout(Duration::from_secs(10));
        let mut writer = options.connect().await?;
        migrate(&mut writer).await?;
        let writer = Writer { conn: Arc::new(Mutex::new(Some(writer))), lane: Arc::new(Mutex::new(())) };
        // A local file does not go away: no ping before each read.
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let enqueuer = direct::spawn_batch_writer(path, writer.clone())?;
        let store = Self { writer, reader, direct: Direct::new(path), enqueuer, cipher };
        store.seal_stored_secrets().await?;
        Ok(store)
    }

    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    fn enqueuer(&self) -> &crate::sql::Enqueuer {
        &self.enqueuer
    }

    fn direct(&self) -> Option<&Direct> {
        Some(&self.direct)
    }

    fn writer(&self) -> &Writer {
        &self.writer
    }

    async fn write(&self) -> Result<WriteConn> {
        self.writer.lock().await
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    async fn begin_write(&self) -> Result<WriteTx> {
        self.writer.begin().await
    }

    /// The single writer already serialises every write transaction.
    async fn lock_wamid(_tx: &mut WriteTx, _wamid: &str) -> Result<()> {
        Ok(())
    }

    const CLAIM_DELIVERIES: &'static str = "UPDATE webhook_deliveries SET lease = $1, available_at = $2, \
        attempts = attempts + 1 WHERE id IN (SELECT id FROM webhook_deliveries \
        WHERE available_at IS NOT NULL AND available_at <= $3 ORDER BY available_at, id LIMIT $4) \
        RETURNING id, account_id, body, received_at, attempts";

    /// The write transaction (BEGIN IMMEDIATE) already keeps other processes out.
    const SELECT_SECRETS: &'static str = "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id";
}

/// Creates the database's directory (0700, when it is created here) and the database file
/// (0600), and narrows an existing database and its WAL and shared-memory files to 0600: they
/// hold every message and contact, and SQLite gives the WAL and shm files it creates the
/// database file's mode.
fn make_private(path: &Path) -> Result<()> {
    let failed = |what: &str, p: &Path, e: std::io::Error| {
        StorageError::Database(sqlx::Error::Configuration(format!("cannot {what} {}: {e}", p.display()).into()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| failed("create", dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| failed("create", path, e))?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        let Ok(meta) = std::fs::metadata(file) else { continue };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| failed("make private (mode 0600)", file, e))?;
        }
    }
    Ok(())
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query(migrate::CREATE_TABLE).execute(&mut *conn).await?;
    for m in migrate::SQLITE {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM wagate_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
        if applied.is_none() {
            sqlx::raw_sql(m.script()).execute(&mut *tx).await.map_err(|e| m.failed(e))?;
            tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
        }
        tx.commit().await?;
    }
    Ok(())
}

mod store {
    use super::*;
    crate::sql::impl_store!(SqliteStore, SqliteRow, WriteTx, sqlx::Sqlite, Backend::Sqlite);
    crate::contacts::impl_contacts!(SqliteStore, SqliteRow, WriteTx, sqlx::Sqlite);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use wagate_domain::time::Timestamp;

    /// The database holds every message and contact: only its owner may read it, whatever the
    /// umask, also when an older version left it readable to others.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let db = crate::testing::TestDatabase::sqlite();
        let dir = db.dir().join("made-here");
        let path = dir.join("wagate.db");
        let beside = |suffix: &str| dir.join(format!("wagate.db{suffix}"));
        let store = SqliteStore::open(&path, db.cipher()).await.unwrap();
        assert_eq!(store.outbox_depth().await.unwrap(), 0);
        assert_eq!(mode(&dir), 0o700);
        for file in [path.clone(), beside("-wal"), beside("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path, db.cipher()).await.unwrap();
        assert_eq!(store.outbox_depth().await.unwrap(), 0);
        for file in [path.clone(), beside("-wal"), beside("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;
    }

    /// Migration 9 rebuilds the outbox: a queue stored before it is the same queue after, with
    /// its order, attempts and leases, and new rows still come after it.
    #[tokio::test]
    async fn the_outbox_rebuild_keeps_the_queue() {
        let db = crate::testing::TestDatabase::sqlite();
        let path = db.dir().join("wagate.db");
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(false)
            .connect()
            .await
            .unwrap();
        sqlx::query(migrate::CREATE_TABLE).execute(&mut conn).await.unwrap();
        for m in migrate::SQLITE.iter().filter(|m| m.version < 9) {
            sqlx::raw_sql(m.script()).execute(&mut conn).await.unwrap();
        }
        // Foreign keys are off on this connection: the messages need no account here.
        let seed = "INSERT INTO messages (id, direction, account_id, phone_number_id, counterpart, kind, content, \
            status, created_at, updated_at) VALUES ('msg_a', 'outbound', 'acc', '100', '+1555', 'text', '{}', 'queued', 1, 1), \
            ('msg_b', 'outbound', 'acc', '100', '+1555', 'text', '{}', 'sending', 1, 1), \
            ('msg_c', 'outbound', 'acc', '100', '+1666', 'text', '{}', 'queued', 1, 1); \
            INSERT INTO outbox (seq, message_id, phone_number_id, recipient, due_at, available_at, attempts, lease, created_at) \
            VALUES (7, 'msg_b', '100', '+1555', 5, 99999999999999, 2, 'lease_x', 1), \
            (9, 'msg_a', '100', '+1555', 5, 5, 0, NULL, 1), (12, 'msg_c', '100', '+1666', 5, 5, 0, NULL, 1);";
        sqlx::raw_sql(seed).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();

        let store = SqliteStore::open(&path, db.cipher()).await.unwrap();
        let rows: Vec<(i64, String, i64, Option<String>)> =
            sqlx::query_as("SELECT seq, message_id, attempts, lease FROM outbox ORDER BY seq")
                .fetch_all(store.reader())
                .await
                .unwrap();
        assert_eq!(
            rows,
            [
                (7, "msg_b".into(), 2, Some("lease_x".into())),
                (9, "msg_a".into(), 0, None),
                (12, "msg_c".into(), 0, None)
            ]
        );
        // msg_b is in flight, so +1555's queue waits behind it; +1666's head goes.
        let heads = store.outbox_heads("100", Timestamp::from_millis(10), 10).await.unwrap();
        assert_eq!(heads.iter().map(|h| h.message_id.as_str()).collect::<Vec<_>>(), ["msg_c"]);
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'outbox' ORDER BY name",
        )
        .fetch_all(store.reader())
        .await
        .unwrap();
        assert_eq!(indexes, ["outbox_expiring", "outbox_leased", "outbox_number_due", "sqlite_autoindex_outbox_1"]);
        let mut w = store.write().await.unwrap();
        sqlx::raw_sql(
            "PRAGMA foreign_keys = OFF; INSERT INTO messages (id, direction, account_id, phone_number_id, counterpart, kind, content, status, \
             created_at, updated_at) SELECT 'msg_d', direction, account_id, phone_number_id, counterpart, kind, content, \
             status, created_at, updated_at FROM messages WHERE id = 'msg_a'; \
             DELETE FROM outbox WHERE seq = 12; \
             INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, created_at) \
             VALUES ('msg_d', '100', '+1555', 6, 6, 2); PRAGMA foreign_keys = ON;",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        drop(w);
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM outbox WHERE message_id = 'msg_d'")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert!(seq > 9, "a new row comes after every queued one: {seq}");
    }
}
