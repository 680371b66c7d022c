//! The connections: one batch writer that every write goes through, and read-only connections
//! for the reads.
//!
//! SQLite takes one writer at a time, and each commit is a flush to disk (`synchronous=FULL`),
//! so writes are queued to one thread of their own, which commits whatever is queued (up to
//! [`MAX_BATCH`] jobs) in one transaction: one flush for all of them. A write is answered only
//! once its batch has committed (a 202 means on disk). The queue is bounded: a writer that
//! falls behind slows requests down instead of piling them up.
//!
//! Reads run on read-only connections (WAL lets them run beside the writer). A read that takes
//! microseconds runs on the caller's thread ([`Readers::read`]): on two cores handing it to
//! another thread costs more than the read. A read that scans runs on a blocking thread
//! ([`Readers::scan`]), so it never holds a runtime worker for long.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::shared::MAX_BATCH;
use crate::{Result, StorageError};

/// How long a statement waits for a lock another process holds (the CLI writing, a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages after which a commit copies them back into the database file (SQLite's default is
/// 1,000). A larger checkpoint copies a page once for all the commits that dirtied it: where
/// sends dirty scattered index leaves, 1,000 made checkpoints a fifth of the writer's time
/// (`wagate-bench`: 9,600–12,100 sends/s at 4,000 against 7,500–8,600). Sends now write only the
/// last leaves of append-only B-trees, and measure the same at either; statuses and inbound
/// messages still dirty scattered pages.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 4_000;

/// Statements the writer keeps prepared: every statement of the hot paths stays (claims take one
/// per number of ids).
const WRITER_STATEMENTS: usize = 64;

/// Idle read connections kept for the next read; more are opened while more reads run at once.
const IDLE_READERS: usize = 8;

/// Opens the database's write connection, creating the file, in WAL mode.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
    // FULL: a commit is on disk when it returns, so a 202 survives a power cut. Foreign keys:
    // rows keep their references.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
    Ok(conn)
}

fn open(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    // NO_MUTEX: each connection is used by one thread at a time, which SQLite need not check.
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// A write queued for the batch writer: run in a batch's transaction, answered once that commits.
trait Job: Send {
    fn write(&mut self, tx: &Transaction<'_>) -> Result<()>;
    /// Answers the caller: with what the job wrote when its batch committed (`Ok`), with the
    /// error otherwise.
    fn answer(self: Box<Self>, outcome: Result<()>);
}

/// A write and where its answer goes.
struct Pending<T, F> {
    write: F,
    /// What the last run of `write` returned; set whenever a batch holding the job committed.
    written: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&Transaction<'_>) -> Result<T> + Send,
{
    fn write(&mut self, tx: &Transaction<'_>) -> Result<()> {
        self.written = Some((self.write)(tx)?);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<()>) {
        let Pending { written, reply, .. } = *self;
        // The caller may be gone (its request was dropped): what it wrote stays written.
        let _ = reply.send(outcome.and_then(|()| written.ok_or(StorageError::Closed)));
    }
}

/// The batch writer's queue.
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    closing: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the thread that writes with `conn`.
    pub(super) fn start(conn: Connection) -> Result<Self> {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, &stop))
            .map_err(|e| StorageError::Setup(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs, closing, thread: Mutex::new(Some(thread)) })
    }

    /// Runs `write` in the writer's next transaction, and answers once that is committed.
    /// `write` may run more than once (its batch failed, and each job is retried alone): only
    /// the run that is committed counts.
    pub(super) async fn write<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { write, written: None, reply });
        self.jobs.send(job).await.map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// True once the writer has stopped (closed, or its thread is gone).
    pub(super) fn is_closed(&self) -> bool {
        self.jobs.is_closed()
    }

    /// Writes what is queued, refuses what comes after, and waits for the writer to close its
    /// connection.
    pub(super) async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        // Wakes the writer if it waits for work; it closes the queue after this batch.
        let _ = self.write(|_| Ok(())).await;
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The writer's thread: everything queued while the previous batch was being committed goes
/// into the next, one commit for all. Ends when the store is closed or dropped.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Box<dyn Job>>, closing: &AtomicBool) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        write_batch(&mut conn, batch);
        if closing.load(Ordering::Acquire) {
            // What is queued still gets written; then `blocking_recv` ends the loop.
            queue.close();
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer failed");
    }
}

/// Writes a batch in one transaction; when that fails, each job alone, so one bad job fails
/// alone.
fn write_batch(conn: &mut Connection, mut jobs: Vec<Box<dyn Job>>) {
    let started = Instant::now();
    let outcome = write_jobs(conn, &mut jobs);
    tracing::trace!(batch = jobs.len(), elapsed_us = started.elapsed().as_micros() as u64, "batch written");
    match outcome {
        Ok(()) => jobs.into_iter().for_each(|job| job.answer(Ok(()))),
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.pop() {
                job.answer(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = jobs.len(), "a batch failed to write; writing its jobs one by one");
            jobs.into_iter().for_each(|job| write_batch(conn, vec![job]));
        }
    }
}

/// IMMEDIATE takes the write lock up front, so a transaction that reads before it writes
/// cannot fail half-way because another process (the CLI) wrote in between.
fn write_jobs(conn: &mut Connection, jobs: &mut [Box<dyn Job>]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.write(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// Read-only connections, opened as needed and kept for the next read.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Arc<Self> {
        Arc::new(Self { path: path.to_owned(), idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) })
    }

    /// Runs a read that takes microseconds (index seeks, a bounded handful of rows) on the
    /// caller's thread.
    pub(super) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    /// Runs a read that scans (a list, a count, the outbox) on a blocking thread.
    pub(super) async fn scan<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(self);
        match tokio::task::spawn_blocking(move || readers.read(read)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StorageError::Closed),
        }
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs queued together share a transaction; one that fails fails alone, and the others are
    /// written all the same.
    #[tokio::test]
    async fn one_bad_job_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("w.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)").unwrap();
        let writer = Writer::start(conn).unwrap();
        let insert =
            |v: i64| writer.write(move |tx| Ok(tx.prepare_cached("INSERT INTO t (v) VALUES (?1)")?.execute([v])?));
        let (a, b, c, d) = tokio::join!(insert(1), insert(2), insert(1), insert(3));
        assert_eq!((a.unwrap(), b.unwrap(), d.unwrap()), (1, 1, 1));
        assert!(matches!(c, Err(StorageError::Sqlite(_))), "{c:?}");
        let count = writer.write(|tx| Ok(tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(count.await.unwrap(), 3);
        writer.close().await;
        assert!(writer.is_closed());
        assert!(matches!(insert(4).await, Err(StorageError::Closed)));
    }
}
