//! SQLite: the embedded default, on rusqlite. WAL mode; every write goes through one batch
//! writer, which commits whatever is queued in one transaction, and reads run on read-only
//! connections (see `writer`). One file per aggregate, each with its own statements; those both
//! backends run as the same text are in `shared`.
//!
//! SQLite's own statements number their parameters `?N`, bound by number. The shared ones use
//! `$N`, which SQLite takes as names, bound in the order they first appear: they are numbered
//! in that order (checked by a test below).

mod accounts;
mod api_keys;
mod campaigns;
mod contacts;
mod events;
mod groups;
mod inbound;
mod jobs;
mod media;
mod messages;
mod outbox;
mod people;
mod rows;
mod templates;
mod uploads;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Params, TransactionBehavior};
use wagate_domain::sealed::Cipher;

use self::writer::{Readers, Writer};
use crate::migrate;
use crate::*;

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    cipher: Cipher,
    views: Arc<dyn EventViews>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, readable by this user only,
    /// migrates it, and seals its secrets with `cipher`: those stored in clear are sealed, those
    /// a previous key of the cipher sealed are re-sealed, and a secret no key of the cipher opens
    /// is an error. Its events show resources as `views` does.
    pub async fn open(path: &Path, cipher: Cipher, views: Arc<dyn EventViews>) -> Result<Self> {
        let file = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            make_private(&file)?;
            let mut conn = writer::open_writer(&file)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StorageError::Setup(format!("opening {} failed: {e}", path.display())))??;
        let store = Self { writer: Writer::start(conn)?, readers: Readers::new(path), cipher, views };
        store.seal_stored_secrets().await?;
        Ok(store)
    }

    /// Runs one statement on the writer; how many rows it changed.
    async fn execute<P>(&self, sql: &'static str, params: P) -> Result<usize>
    where
        P: Params + Clone + Send + 'static,
    {
        self.writer.write(move |tx| Ok(tx.prepare_cached(sql)?.execute(params.clone())?)).await
    }
}

/// Creates the database's directory (0700, when it is created here) and the database file
/// (0600), and narrows an existing database and its WAL and shared-memory files to 0600: they
/// hold every message and contact, and SQLite gives the WAL and shm files it creates the
/// database file's mode.
fn make_private(path: &Path) -> Result<()> {
    let failed =
        |what: &str, p: &Path, e: std::io::Error| StorageError::Setup(format!("cannot {what} {}: {e}", p.display()));
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

/// Applies the migrations not applied yet, each in a transaction of its own with the row that
/// records it. IMMEDIATE: instances starting together apply each once.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(migrate::CREATE_TABLE)?;
    for m in migrate::SQLITE {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = tx
            .query_row("SELECT version FROM wagate_migrations WHERE version = ?1", [m.version], |r| r.get::<_, i64>(0))
            .optional()?;
        if applied.is_none() {
            tx.execute_batch(&m.script()).map_err(|e| m.failed(e))?;
            tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
        }
        tx.commit()?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<()> {
        if self.writer.is_closed() {
            return Err(StorageError::Closed);
        }
        self.readers.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
    }
}

#[cfg(feature = "testing")]
#[async_trait]
impl crate::Testing for SqliteStore {
    async fn count_messages(&self) -> Result<i64> {
        self.readers.scan(|c| rows::value(c, "SELECT COUNT(*) FROM messages", [])).await
    }

    async fn count_deliveries(&self) -> Result<i64> {
        self.readers.scan(|c| rows::value(c, "SELECT COUNT(*) FROM webhook_deliveries", [])).await
    }

    async fn last_inbound(
        &self,
        phone_number_id: &str,
        customer: &str,
    ) -> Result<Option<wagate_domain::time::Timestamp>> {
        let last = self.readers.read(|c| {
            rows::first(c, crate::shared::SELECT_LAST_INBOUND, [phone_number_id, customer], |r| Ok(r.get(0)?))
        })?;
        Ok(last.map(crate::shared::ts))
    }
}

#[cfg(test)]
mod tests {
    use wagate_domain::time::Timestamp;

    use super::*;
    use crate::shared;

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
        let store = SqliteStore::open(&path, db.cipher(), Arc::new(PlainViews)).await.unwrap();
        assert_eq!(store.outbox().pending().await.unwrap(), 0);
        assert_eq!(mode(&dir), 0o700);
        for file in [path.clone(), beside("-wal"), beside("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path, db.cipher(), Arc::new(PlainViews)).await.unwrap();
        assert_eq!(store.outbox().pending().await.unwrap(), 0);
        for file in [path.clone(), beside("-wal"), beside("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;
    }

    /// After `close` nothing is read or written, and the writer has let go of the file.
    #[tokio::test]
    async fn a_closed_store_refuses_work() {
        let db = crate::testing::TestDatabase::sqlite();
        let store = SqliteStore::open(&db.dir().join("wagate.db"), db.cipher(), Arc::new(PlainViews)).await.unwrap();
        store.close().await;
        assert!(matches!(store.ping().await, Err(StorageError::Closed)));
        assert!(matches!(store.outbox().pending().await, Err(StorageError::Closed)));
        let at = Timestamp::from_millis(1);
        assert!(matches!(store.note_webhooks("1", at).await, Err(StorageError::Closed)));
    }

    /// Migration 9 rebuilds the outbox: a queue stored before it is the same queue after, with
    /// its order, attempts and leases, and new rows still come after it.
    #[tokio::test]
    async fn the_outbox_rebuild_keeps_the_queue() {
        let db = crate::testing::TestDatabase::sqlite();
        let path = db.dir().join("wagate.db");
        // Foreign keys off (the bundled SQLite turns them on by default): the messages need no
        // account here.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        conn.execute_batch(migrate::CREATE_TABLE).unwrap();
        for m in migrate::SQLITE.iter().filter(|m| m.version < 9) {
            conn.execute_batch(&m.script()).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO messages (id, direction, account_id, phone_number_id, counterpart, kind, content, \
             status, created_at, updated_at) VALUES \
             ('msg_a', 'outbound', 'acc', '100', '+1555', 'text', '{}', 'queued', 1, 1), \
             ('msg_b', 'outbound', 'acc', '100', '+1555', 'text', '{}', 'sending', 1, 1), \
             ('msg_c', 'outbound', 'acc', '100', '+1666', 'text', '{}', 'queued', 1, 1); \
             INSERT INTO outbox \
             (seq, message_id, phone_number_id, recipient, due_at, available_at, attempts, lease, created_at) \
             VALUES (7, 'msg_b', '100', '+1555', 5, 99999999999999, 2, 'lease_x', 1), \
             (9, 'msg_a', '100', '+1555', 5, 5, 0, NULL, 1), (12, 'msg_c', '100', '+1666', 5, 5, 0, NULL, 1);",
        )
        .unwrap();

        let store = SqliteStore::open(&path, db.cipher(), Arc::new(PlainViews)).await.unwrap();
        let read = |sql: &'static str| {
            store.readers.read(|c| rows::all(c, sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))).unwrap()
        };
        let rows: Vec<(i64, String, i64, Option<String>)> =
            read("SELECT seq, message_id, attempts, lease FROM outbox ORDER BY seq");
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
        let indexes: Vec<String> = store
            .readers
            .read(|c| {
                let sql = "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'outbox' ORDER BY name";
                rows::all(c, sql, [], |r| Ok(r.get(0)?))
            })
            .unwrap();
        assert_eq!(indexes, ["outbox_expiring", "outbox_leased", "outbox_number_due", "sqlite_autoindex_outbox_1"]);
        conn.execute_batch(
            "INSERT INTO messages (id, direction, account_id, phone_number_id, counterpart, kind, content, status, \
             created_at, updated_at) SELECT 'msg_d', direction, account_id, phone_number_id, counterpart, kind, \
             content, status, created_at, updated_at FROM messages WHERE id = 'msg_a'; \
             DELETE FROM outbox WHERE seq = 12; \
             INSERT INTO outbox (message_id, phone_number_id, recipient, due_at, available_at, created_at) \
             VALUES ('msg_d', '100', '+1555', 6, 6, 2);",
        )
        .unwrap();
        let seq: i64 =
            store.readers.read(|c| rows::value(c, "SELECT seq FROM outbox WHERE message_id = 'msg_d'", [])).unwrap();
        assert!(seq > 9, "a new row comes after every queued one: {seq}");
    }

    /// rusqlite binds `$N` parameters by position, numbered as they first appear: a statement
    /// whose `$2` came before its `$1` would bind each value to the other's place.
    #[test]
    fn shared_statements_number_their_parameters_in_order_of_appearance() {
        let statements = shared::statements();
        for statement in statements {
            let seen = numbers_in_order_of_appearance(&statement);
            let expected: Vec<u32> = (1..=seen.len() as u32).collect();
            assert_eq!(seen, expected, "parameters out of order in {statement}");
        }
        // The check can tell.
        assert_eq!(numbers_in_order_of_appearance("UPDATE t SET a = $2 WHERE b = $1 OR c = $2"), [2, 1]);
    }

    fn numbers_in_order_of_appearance(statement: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        for part in statement.split('$').skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: u32 = digits.parse().unwrap_or_else(|_| panic!("a `$` without a number in {statement}"));
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen
    }
}
