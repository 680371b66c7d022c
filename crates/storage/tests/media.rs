//! The media part of the storage suite, run against SQLite always and
//! PostgreSQL when `WAGATE_TEST_DATABASE_URL` is set, like `conformance.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use wagate_domain::id::{AccountId, MediaId, MessageId};
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, StoreExt, TestDatabase, claim_concurrently};
use wagate_storage::*;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

/// A store with one account, one number and one inbound image message.
async fn fixture(backend: Backend) -> Option<(Arc<dyn Store>, TestDatabase, AccountId, MessageId)> {
    let db = TestDatabase::new(backend).await?;
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    let account = testing::account("waba-1", t(0));
    let number = testing::phone_number(&account, "1001", true, t(0));
    store.insert_account(&account, std::slice::from_ref(&number)).await.unwrap();
    let message_id = inbound(store.as_ref(), &account.id, "wamid.MEDIA1").await;
    Some((store, db, account.id, message_id))
}

async fn inbound(store: &dyn Store, account_id: &AccountId, wamid: &str) -> MessageId {
    let id = MessageId::generate();
    let stored = store
        .record_inbound(&NewInbound {
            id: id.clone(),
            account_id: account_id.clone(),
            phone_number_id: "1001".into(),
            wamid: wamid.into(),
            from: "+15551234567".into(),
            wa_id: Some("15551234567".into()),
            user_id: None,
            profile_name: None,
            kind: "image".into(),
            content: json!({"image": {"id": "9001", "mime_type": "image/jpeg"}}),
            reply_to_wamid: None,
            error: None,
            sent_at: t(0),
            received_at: t(1),
        })
        .await
        .unwrap();
    assert!(stored);
    id
}

fn new_media(account_id: &AccountId, message_id: &MessageId, meta_id: &str) -> NewMedia {
    NewMedia {
        id: MediaId::generate(),
        account_id: account_id.clone(),
        phone_number_id: "1001".into(),
        message_id: message_id.clone(),
        meta_media_id: meta_id.into(),
        kind: "image".into(),
        mime_type: "image/jpeg".into(),
        sha256: Some("SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=".into()),
        filename: None,
        caption: Some("Taj Mahal".into()),
        created_at: t(10),
    }
}

async fn media_rows_are_recorded_once_per_meta_id(store: &dyn Store, account_id: AccountId, message_id: MessageId) {
    let first = new_media(&account_id, &message_id, "9001");
    assert!(store.insert_media(&first).await.unwrap());
    // The same Meta media id again (a redelivered webhook): nothing new, the first row stays.
    assert!(!store.insert_media(&new_media(&account_id, &message_id, "9001")).await.unwrap());
    let m = store.get_media(&first.id).await.unwrap().expect("stored");
    assert_eq!(
        (m.state, m.attempts, m.available_at, m.message_id.clone(), m.caption.as_deref()),
        (MediaState::Pending, 0, Some(t(10)), message_id.clone(), Some("Taj Mahal"))
    );
    assert_eq!((m.file_size, m.downloaded_at, m.last_error), (None, None, None));
    assert_eq!(store.get_media(&MediaId::generate()).await.unwrap(), None);

    // Listing: newest first, by message, with a cursor.
    let other_message = inbound(store, &account_id, "wamid.MEDIA2").await;
    let second = new_media(&account_id, &other_message, "9002");
    assert!(store.insert_media(&second).await.unwrap());
    let ids = |list: Vec<Media>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let all = MediaFilter::default();
    assert_eq!(ids(store.list_media(&all, 10).await.unwrap()), [second.id.clone(), first.id.clone()]);
    assert_eq!(ids(store.list_media(&all, 1).await.unwrap()), vec![second.id.clone()]);
    let after_second = MediaFilter { before: Some(second.id.clone()), ..Default::default() };
    assert_eq!(ids(store.list_media(&after_second, 10).await.unwrap()), vec![first.id.clone()]);
    let of_first = MediaFilter { message_id: Some(message_id), ..Default::default() };
    assert_eq!(ids(store.list_media(&of_first, 10).await.unwrap()), vec![first.id.clone()]);
    let of_none = MediaFilter { message_id: Some(MessageId::generate()), ..Default::default() };
    assert!(store.list_media(&of_none, 10).await.unwrap().is_empty());
}

async fn downloads_are_leased_retried_stored_and_failed(
    store: &dyn Store,
    account_id: AccountId,
    message_id: MessageId,
) {
    let a = new_media(&account_id, &message_id, "9101");
    let b = new_media(&account_id, &message_id, "9102");
    for m in [&a, &b] {
        assert!(store.insert_media(m).await.unwrap());
    }
    // Not due before it was recorded; both due after.
    assert!(store.media_downloads().claim(t(9), t(1_000), 10).await.unwrap().is_empty());
    let claimed = store.media_downloads().claim(t(20), t(1_000), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [a.id.clone(), b.id.clone()]);
    assert!(claimed.iter().all(|j| j.attempts == 1));
    // Leased: nobody else gets them until the lease runs out.
    assert!(store.media_downloads().claim(t(999), t(2_000), 10).await.unwrap().is_empty());

    // `a` fails for now, comes back when due, and is then stored.
    assert!(
        store.media_downloads().retry(&claimed[0], t(1_500), "HTTP 404 from the download URL", t(30)).await.unwrap()
    );
    let waiting = store.get_media(&a.id).await.unwrap().unwrap();
    assert_eq!(waiting.last_error.as_deref(), Some("HTTP 404 from the download URL"));
    assert_eq!((waiting.state, waiting.available_at), (MediaState::Pending, Some(t(1_500))));

    // `b`'s lease lapsed at 1000: another worker takes it; the first holder can record nothing.
    let b_again = store.media_downloads().claim(t(1_000), t(5_000), 1).await.unwrap();
    assert_eq!((b_again[0].id.clone(), b_again[0].attempts), (b.id.clone(), 2));
    assert!(store.media_downloads().claim(t(1_499), t(3_000), 10).await.unwrap().is_empty(), "a is not due yet");
    let stored = StoredMedia { file_size: 42, sha256: "c2hh".into(), at: t(1_100) };
    assert!(!store.media_stored(&claimed[1], &stored).await.unwrap(), "a lapsed lease records nothing");
    assert!(!store.media_downloads().give_up(&claimed[1], "late", t(1_100)).await.unwrap());
    assert!(store.media_downloads().give_up(&b_again[0], "sha256 mismatch", t(1_200)).await.unwrap());
    let failed = store.get_media(&b.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.available_at, failed.last_error.as_deref()),
        (MediaState::Failed, None, Some("sha256 mismatch"))
    );

    let a_again = store.media_downloads().claim(t(1_500), t(5_000), 10).await.unwrap();
    assert_eq!((a_again.len(), a_again[0].attempts), (1, 2));
    assert!(store.media_stored(&a_again[0], &stored).await.unwrap());
    assert!(!store.media_stored(&a_again[0], &stored).await.unwrap(), "stored once");
    let done = store.get_media(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.file_size, done.downloaded_at, done.last_error),
        (MediaState::Stored, Some(42), Some(t(1_100)), None)
    );
    // The webhook's digest is kept (it is what the file was checked against).
    assert_eq!(done.sha256, a.sha256);
    assert!(
        store.media_downloads().claim(t(100_000), t(200_000), 10).await.unwrap().is_empty(),
        "nothing left to download"
    );
}

async fn concurrent_media_claims_never_overlap(store: Arc<dyn Store>, account_id: AccountId, message_id: MessageId) {
    for i in 0..40 {
        assert!(store.insert_media(&new_media(&account_id, &message_id, &format!("92{i:02}"))).await.unwrap());
    }
    let mut seen = HashSet::new();
    for job in claim_concurrently(&store, |s| s.media_downloads(), t(20), t(100_000), 3).await {
        assert!(seen.insert(job.item.id.clone()), "{} claimed twice", job.id);
    }
    assert_eq!(seen.len(), 40);
}

macro_rules! suite {
    ($backend:ident, $b:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn media_rows_are_recorded_once_per_meta_id() {
                if let Some((store, _db, a, m)) = fixture($b).await {
                    super::media_rows_are_recorded_once_per_meta_id(store.as_ref(), a, m).await;
                }
            }

            #[tokio::test]
            async fn downloads_are_leased_retried_stored_and_failed() {
                if let Some((store, _db, a, m)) = fixture($b).await {
                    super::downloads_are_leased_retried_stored_and_failed(store.as_ref(), a, m).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_media_claims_never_overlap() {
                if let Some((store, _db, a, m)) = fixture($b).await {
                    super::concurrent_media_claims_never_overlap(store, a, m).await;
                }
            }
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
