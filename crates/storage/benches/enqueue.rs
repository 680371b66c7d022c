//! The storage side of a send alone: 64 tasks storing new messages as `POST /v1/messages` does
//! (`Store::enqueue_message`), for a few seconds, on SQLite and (with
//! `WAGATE_TEST_DATABASE_URL`) PostgreSQL. `cargo bench -p wagate-storage --bench enqueue`.
//! Without HTTP in the way, this is the ceiling the send path's storage puts on `wagate-bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, TestDatabase};
use wagate_storage::*;

const TASKS: usize = 64;
const RECIPIENTS: u64 = 10_000;

fn main() {
    let seconds = std::env::var("ENQUEUE_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Some(db) = TestDatabase::new(backend).await {
                run(&db, Duration::from_secs(seconds)).await;
            }
        }
    });
}

async fn run(db: &TestDatabase, duration: Duration) {
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    let now = Timestamp::now();
    let account = testing::account("waba-bench", now);
    let number = testing::phone_number(&account, "100100", true, now);
    store.insert_account(&account, std::slice::from_ref(&number)).await.expect("seed the account");
    let number = Arc::new(number);
    let stored = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS as u64 {
        let (store, number, stored) = (store.clone(), number.clone(), stored.clone());
        tasks.spawn(async move {
            let mut n = task;
            while Instant::now() < end {
                let recipient = format!("+155501{:05}", n % RECIPIENTS);
                let content = json!({"name": "hello_world", "language": {"code": "en_US"}});
                let message = testing::send_now(&number, &recipient, "template", content);
                assert_eq!(store.enqueue_message(message).await.expect("stored"), Enqueued::Stored);
                stored.fetch_add(1, Ordering::Relaxed);
                n += TASKS as u64;
            }
        });
    }
    let started = Instant::now();
    while let Some(done) = tasks.join_next().await {
        done.expect("a task panicked");
    }
    let total = stored.load(Ordering::Relaxed);
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("{:?}: {total} messages stored by {TASKS} tasks in {duration:?}: {rate:.0}/s", db.backend());
    store.close().await;
}
