//! The storage side of a send alone: 64 tasks storing new messages as `POST /v1/messages` does
//! (`Store::enqueue_message`), for a few seconds, on SQLite and (with
//! `WAGATE_TEST_DATABASE_URL`) PostgreSQL. `cargo bench -p wagate-storage --bench enqueue`.
//! Without HTTP in the way, this is the ceiling the send path's storage puts on `wagate-bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wagate_domain::id::{AccountId, MessageId};
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_storage::testing::TestDatabase;
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
    let account = Account {
        id: AccountId::generate(),
        name: "Bench".into(),
        mode: AccountMode::Live,
        graph_base_url: "http://graph.test".into(),
        api_version: "v23.0".into(),
        waba_id: "waba-bench".into(),
        access_token: Secret::new("token"),
        app_secret: Secret::new("secret"),
        verify_token: Secret::new("verify"),
        paused: None,
        messaging_tier: None,
        created_at: now,
        updated_at: now,
    };
    let number = PhoneNumber {
        id: "100100".into(),
        account_id: account.id.clone(),
        waba_id: account.waba_id.clone(),
        display_phone_number: "+1 555-0100".into(),
        verified_name: Some("Bench".into()),
        quality_rating: Some("GREEN".into()),
        is_default: true,
        mode: account.mode,
        webhooks_since: None,
        throughput_level: None,
        messages_per_second: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_account(&account, std::slice::from_ref(&number)).await.expect("seed the account");
    let (account, number) = (Arc::new(account), Arc::new(number));
    let stored = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS as u64 {
        let (store, account, number, stored) = (store.clone(), account.clone(), number.clone(), stored.clone());
        tasks.spawn(async move {
            let mut n = task;
            while Instant::now() < end {
                let now = Timestamp::now();
                let message = NewOutbound {
                    id: MessageId::generate(),
                    account_id: account.id.clone(),
                    phone_number_id: number.id.clone(),
                    recipient: format!("+155501{:05}", n % RECIPIENTS),
                    kind: "template".into(),
                    content: json!({"name": "hello_world", "language": {"code": "en_US"}}),
                    metadata: None,
                    created_at: now,
                    due_at: now,
                    send_at: None,
                    expires_at: None,
                    window: None,
                    idempotency: None,
                };
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
