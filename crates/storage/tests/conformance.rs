//! One storage suite, run against SQLite always and PostgreSQL when `WAGATE_TEST_DATABASE_URL`
//! is set. Every implementation of `Store` must pass all of it.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::secret::Secret;
use wagate_domain::status::{DeliveryStatus, MessageStatus};
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, StoreExt, TestDatabase, claim_concurrently};
use wagate_storage::*;

struct Fixture {
    store: Arc<dyn Store>,
    _db: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDatabase::new(backend).await?;
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    assert_eq!(store.backend(), backend);
    Some(Fixture { store, _db: db })
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn account(waba: &str) -> Account {
    testing::account(waba, t(0))
}

fn number(account: &Account, id: &str, default: bool) -> PhoneNumber {
    testing::phone_number(account, id, default, t(0))
}

async fn seeded(store: &dyn Store) -> (Account, PhoneNumber) {
    let a = account("waba-1");
    let n = number(&a, "1001", true);
    store.insert_account(&a, std::slice::from_ref(&n)).await.unwrap();
    (a, n)
}

/// A text to a recipient of its own, due at `due`.
async fn enqueue(store: &dyn Store, a: &Account, n: &PhoneNumber, due: Timestamp) -> MessageId {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let recipient = format!("+1555019{:04}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10_000);
    enqueue_to(store, a, n, due, &recipient).await
}

fn new_outbound(a: &Account, n: &PhoneNumber, due: Timestamp, recipient: &str) -> NewOutbound {
    NewOutbound {
        id: MessageId::generate(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        recipient: recipient.into(),
        kind: "text".into(),
        content: json!({"body": "hello"}),
        metadata: Some(json!({"order": 42}).as_object().unwrap().clone()),
        created_at: t(0),
        due_at: due,
        send_at: (due > t(0)).then_some(due),
        expires_at: None,
        window: None,
        idempotency: None,
        rendered: None,
    }
}

async fn enqueue_to(store: &dyn Store, a: &Account, n: &PhoneNumber, due: Timestamp, recipient: &str) -> MessageId {
    let m = new_outbound(a, n, due, recipient);
    let id = m.id.clone();
    assert_eq!(store.enqueue_message(m).await.unwrap(), Enqueued::Stored);
    id
}

/// A message Meta accepted as `wamid`, with a function making status updates of its account.
async fn sent_message(
    store: &dyn Store,
    wamid: &str,
) -> (MessageId, impl Fn(&str, DeliveryStatus, i64) -> StatusUpdate) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(0)).await;
    let d = store.outbox().claim(t(1), t(60_000), 10).await.unwrap().pop().unwrap();
    assert!(store.record_accepted(&d, wamid, &json!({"messages": [{"id": wamid}]}), t(2)).await.unwrap());
    let account = a.id.clone();
    (id, move |w: &str, s, at| testing::status_update(&account, w, s, at))
}

fn statuses(h: &[StatusEntry]) -> Vec<(MessageStatus, bool)> {
    h.iter().map(|e| (e.status, e.implied)).collect()
}

async fn accounts_and_numbers(store: &dyn Store) {
    let (mut a, n) = seeded(store).await;
    let got = store.get_account(&a.id).await.unwrap().unwrap();
    assert_eq!(got.access_token.expose(), "token-1");
    assert_eq!(got.mode, AccountMode::Live);
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);
    assert_eq!(store.accounts_by_waba("waba-1").await.unwrap().len(), 1);
    assert!(store.accounts_by_waba("other").await.unwrap().is_empty());
    assert_eq!(store.get_phone_number("1001").await.unwrap(), Some(n.clone()));

    // Rotating the token and re-reading the WABA: 1001 vanished, 1002 appeared.
    let last = a.updated_at;
    a.access_token = Secret::new("token-2");
    a.updated_at = t(5);
    let n2 = number(&a, "1002", false);
    assert!(store.update_account(&a, last, Some(std::slice::from_ref(&n2))).await.unwrap());
    // A writer that read the account before that update loses: nothing is overwritten.
    let mut stale = a.clone();
    stale.app_secret = Secret::new("stale");
    stale.updated_at = t(6);
    assert!(!store.update_account(&stale, last, None).await.unwrap());
    assert_eq!(store.get_account(&a.id).await.unwrap().unwrap().app_secret.expose(), "secret-1");
    assert_eq!(store.get_account(&a.id).await.unwrap().unwrap().access_token.expose(), "token-2");
    let numbers = store.list_phone_numbers().await.unwrap();
    assert_eq!(numbers.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["1002"]);
    assert_eq!(numbers[0].waba_id, "waba-1");
    assert!(store.get_phone_number("1001").await.unwrap().is_none());
    assert!(store.get_account(&AccountId::generate()).await.unwrap().is_none());

    // A number belongs to one account: another account cannot take it.
    let b = account("waba-2");
    let stolen = number(&b, "1002", false);
    let err = store.insert_account(&b, &[stolen]).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err}");
    assert!(store.get_account(&b.id).await.unwrap().is_none(), "nothing of the refused account is kept");
    assert_eq!(store.get_phone_number("1002").await.unwrap().unwrap().account_id, a.id);
}

async fn one_sandbox_account_and_defaults_per_mode(store: &dyn Store) {
    let (live, n1) = seeded(store).await;
    let n2 = number(&live, "1002", false);
    store.update_account(&live, live.updated_at, Some(&[n1.clone(), n2.clone()])).await.unwrap();
    let mut sandbox = account("waba-s");
    sandbox.mode = AccountMode::Sandbox;
    let s1 = number(&sandbox, "2001", true);
    store.insert_account(&sandbox, std::slice::from_ref(&s1)).await.unwrap();
    let mut second = account("waba-s2");
    second.mode = AccountMode::Sandbox;
    assert!(matches!(store.insert_account(&second, &[]).await, Err(StorageError::Conflict(_))));

    // Making 1002 the default moves the live default only; the sandbox keeps its own.
    assert!(store.set_default_phone_number("1002", t(9)).await.unwrap());
    let defaults: Vec<String> =
        store.list_phone_numbers().await.unwrap().into_iter().filter(|n| n.is_default).map(|n| n.id).collect();
    assert_eq!(defaults, ["1002", "2001"]);
    assert!(!store.set_default_phone_number("9999", t(9)).await.unwrap());
}

/// An active key named `name` whose hash is `hash_char` 64 times.
fn api_key(name: &str, hash_char: &str, scopes: Scopes) -> ApiKey {
    ApiKey {
        id: ApiKeyId::generate(),
        name: name.into(),
        prefix: "wgk_ab".into(),
        key_hash: hash_char.repeat(64),
        scopes,
        created_at: t(0),
        last_used_at: None,
        revoked_at: None,
    }
}

async fn api_keys(store: &dyn Store) {
    let key = api_key("ci", "f", Scopes::parse_list("scopes", &["send", "read"]).unwrap());
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(store.find_api_key_by_hash(&key.key_hash).await.unwrap(), Some(key.clone()));
    assert!(store.find_api_key_by_hash(&"e".repeat(64)).await.unwrap().is_none());
    store.touch_api_key(&key.id, t(7)).await.unwrap();
    assert_eq!(store.list_api_keys().await.unwrap()[0].last_used_at, Some(t(7)));
    assert_eq!(store.list_api_keys().await.unwrap()[0].scopes, key.scopes);
    assert!(store.revoke_api_key(&key.id, t(8)).await.unwrap());
    assert!(!store.revoke_api_key(&key.id, t(9)).await.unwrap());
    assert_eq!(store.find_api_key_by_hash(&key.key_hash).await.unwrap().unwrap().revoked_at, Some(t(8)));
}

/// The bootstrap key is inserted once: ensuring a known key changes nothing about it, and a
/// revoked one stays revoked.
async fn ensured_api_keys_are_inserted_once(store: &dyn Store) {
    let bootstrap = api_key("bootstrap", "a", Scopes::ADMIN);
    assert_eq!(store.ensure_api_key(&bootstrap).await.unwrap(), bootstrap);
    let again = ApiKey { id: ApiKeyId::generate(), created_at: t(5), ..bootstrap.clone() };
    assert_eq!(store.ensure_api_key(&again).await.unwrap(), bootstrap, "the first insert's key is kept");
    assert!(store.revoke_api_key(&bootstrap.id, t(8)).await.unwrap());
    let after_restart = store.ensure_api_key(&again).await.unwrap();
    assert_eq!((after_restart.id, after_restart.revoked_at), (bootstrap.id.clone(), Some(t(8))));
    assert_eq!(store.list_api_keys().await.unwrap().len(), 1);
    // Instances starting together: every one gets the same key, and there is one.
    let racer =
        |i| ApiKey { id: ApiKeyId::generate(), key_hash: "b".repeat(64), created_at: t(i), ..bootstrap.clone() };
    let (r1, r2, r3) = (racer(1), racer(2), racer(3));
    let ensured = tokio::join!(store.ensure_api_key(&r1), store.ensure_api_key(&r2), store.ensure_api_key(&r3));
    let ids: HashSet<ApiKeyId> = [ensured.0, ensured.1, ensured.2].into_iter().map(|k| k.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(store.list_api_keys().await.unwrap().len(), 2);
}

async fn enqueue_writes_message_history_and_outbox(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(0)).await;
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Queued);
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.content, json!({"body": "hello"}));
    assert_eq!(m.metadata.unwrap()["order"], 42);
    assert_eq!(statuses(&store.message_history(&id).await.unwrap()), [(MessageStatus::Queued, false)]);
    assert_eq!(store.outbox().pending().await.unwrap(), 1);
    assert_eq!(store.count_messages().await.unwrap(), 1);
}

async fn claims_are_exclusive_until_the_lease_expires(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(0)).await;
    let later = enqueue(store, &a, &n, t(10_000)).await;

    let first = store.outbox().claim(t(100), t(30_100), 10).await.unwrap();
    assert_eq!(first.len(), 1, "only the due row is claimed");
    assert_eq!(first[0].message_id, id);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Sending);
    assert!(store.outbox().claim(t(200), t(30_200), 10).await.unwrap().is_empty(), "leased row not claimed twice");

    // The holder died; after its lease the row is claimed again, and the dead lease is fenced off.
    let again = store.outbox().claim(t(30_101), t(60_000), 10).await.unwrap();
    let ids: Vec<_> = again.iter().map(|d| d.message_id.clone()).collect();
    assert_eq!(ids, [id.clone(), later]);
    assert_eq!(again[0].attempts, 2);
    let error = MessageError::gateway("network_error", "boom");
    assert!(!store.record_failed(&first[0], &error, None, t(30_102)).await.unwrap());
    assert!(!store.outbox().retry(&first[0], t(40_000), &error, t(40_000)).await.unwrap());
    assert!(
        store
            .record_accepted(&again[0], "wamid.A", &json!({"messages": [{"id": "wamid.A"}]}), t(30_103))
            .await
            .unwrap()
    );
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!((m.status, m.wamid.as_deref()), (MessageStatus::Accepted, Some("wamid.A")));
    // A late result from the dead holder changes nothing.
    assert!(
        !store
            .record_accepted(&first[0], "wamid.B", &json!({"messages": [{"id": "wamid.B"}]}), t(30_104))
            .await
            .unwrap()
    );
    assert_eq!(store.find_message_by_wamid("wamid.A").await.unwrap().unwrap().id, id);
    assert_eq!(store.outbox().pending().await.unwrap(), 1);
}

async fn concurrent_claims_never_overlap(store: Arc<dyn Store>) {
    let (a, n) = seeded(store.as_ref()).await;
    for _ in 0..60 {
        enqueue(store.as_ref(), &a, &n, t(0)).await;
    }
    let claimed = claim_concurrently(&store, |s| s.outbox(), t(1), t(60_000), 7).await;
    let unique: HashSet<_> = claimed.iter().map(|d| &d.message_id).collect();
    assert_eq!((claimed.len(), unique.len()), (60, 60));
}

/// A status webhook and the send's result, recorded at the same moment, must not miss each
/// other: whichever commits second sees the first.
async fn statuses_racing_the_send_result_are_never_lost(store: Arc<dyn Store>) {
    let (a, n) = seeded(store.as_ref()).await;
    for round in 0..25 {
        let id = enqueue(store.as_ref(), &a, &n, t(0)).await;
        let d = store.outbox().claim(t(1), t(60_000), 1).await.unwrap().pop().unwrap();
        let wamid = format!("wamid.RACE{round}");
        let update = testing::status_update(&a.id, &wamid, DeliveryStatus::Delivered, 5);
        let (s1, s2) = (store.clone(), store.clone());
        let w = wamid.clone();
        let accept =
            tokio::spawn(
                async move { s1.record_accepted(&d, &w, &json!({"messages": [{"id": &w}]}), t(2)).await.unwrap() },
            );
        let status = tokio::spawn(async move { s2.apply_status(&update, t(2)).await.unwrap() });
        assert!(accept.await.unwrap());
        status.await.unwrap();
        let m = store.get_message(&id).await.unwrap().unwrap();
        assert_eq!(m.status, MessageStatus::Delivered, "round {round}");
    }
}

async fn failure_and_retry(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(0)).await;
    let d = store.outbox().claim(t(1), t(60_000), 10).await.unwrap().pop().unwrap();
    let transient = MessageError::gateway("network_error", "connection refused");
    assert!(store.outbox().retry(&d, t(5_000), &transient, t(5_000)).await.unwrap());
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Queued);
    assert!(store.outbox().claim(t(4_999), t(60_000), 10).await.unwrap().is_empty());
    let d = store.outbox().claim(t(5_000), t(60_000), 10).await.unwrap().pop().unwrap();
    assert_eq!(d.attempts, 2);
    let meta = MessageError {
        code: Some(131008),
        title: Some("Required parameter is missing".into()),
        message: "(#131008) Required parameter is missing".into(),
        details: Some("text.body".into()),
        fbtrace_id: Some("Abc".into()),
        reason: None,
    };
    assert!(store.record_failed(&d, &meta, None, t(5_001)).await.unwrap());
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!((m.status, m.error), (MessageStatus::Failed, Some(meta)));
    assert_eq!(store.outbox().pending().await.unwrap(), 0);
    let h = statuses(&store.message_history(&id).await.unwrap());
    assert_eq!(h, [(MessageStatus::Queued, false), (MessageStatus::Failed, false)]);
}

async fn statuses_fold_by_rank_with_implied_delivered(store: &dyn Store) {
    use DeliveryStatus::*;
    let (id, status) = sent_message(store, "wamid.S").await;
    assert_eq!(store.apply_status(&status("wamid.S", Read, 3), t(3)).await.unwrap(), StatusOutcome::Applied);
    assert_eq!(store.apply_status(&status("wamid.S", Sent, 1), t(4)).await.unwrap(), StatusOutcome::Applied);
    assert_eq!(store.apply_status(&status("wamid.S", Sent, 1), t(5)).await.unwrap(), StatusOutcome::Duplicate);
    let h = store.message_history(&id).await.unwrap();
    assert_eq!(
        statuses(&h),
        [
            (MessageStatus::Queued, false),
            (MessageStatus::Accepted, false),
            (MessageStatus::Sent, false),
            (MessageStatus::Delivered, true),
            (MessageStatus::Read, false),
        ]
    );
    // The real `delivered` arrives late and replaces the implied one.
    assert_eq!(store.apply_status(&status("wamid.S", Delivered, 2), t(6)).await.unwrap(), StatusOutcome::Applied);
    assert_eq!(store.apply_status(&status("wamid.S", Delivered, 2), t(7)).await.unwrap(), StatusOutcome::Duplicate);
    let h = store.message_history(&id).await.unwrap();
    let delivered = h.iter().find(|e| e.status == MessageStatus::Delivered).unwrap();
    assert!(!delivered.implied);
    assert_eq!(delivered.occurred_at, Timestamp::from_unix_seconds(1_800_000_002));
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Read);
    // `failed` after `delivered` is history only.
    store.apply_status(&status("wamid.S", Failed, 9), t(8)).await.unwrap();
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!((m.status, m.error), (MessageStatus::Read, None));
}

/// A group message's delivered/read come once per participant; of repeated reports the
/// earliest is kept whatever order they came in.
async fn group_statuses_per_participant_and_earliest_reports(store: &dyn Store) {
    use DeliveryStatus::*;
    let (id, status) = sent_message(store, "wamid.G").await;
    let of = |s, p: &str, at| StatusUpdate { participant: Some(p.into()), ..status("wamid.G", s, at) };
    assert_eq!(store.apply_status(&status("wamid.G", Sent, 1), t(3)).await.unwrap(), StatusOutcome::Applied);
    for u in [of(Delivered, "111", 4), of(Delivered, "222", 3), of(Read, "111", 6)] {
        assert_eq!(store.apply_status(&u, t(4)).await.unwrap(), StatusOutcome::Applied);
    }
    // A later copy changes nothing; an earlier one is what happened first.
    assert_eq!(store.apply_status(&of(Delivered, "111", 5), t(5)).await.unwrap(), StatusOutcome::Duplicate);
    assert_eq!(store.apply_status(&of(Delivered, "111", 2), t(5)).await.unwrap(), StatusOutcome::Applied);
    let h = store.message_history(&id).await.unwrap();
    let entries: Vec<_> = h.iter().map(|e| (e.status, e.participant.as_deref(), e.occurred_at)).collect();
    let at = |s: i64| Timestamp::from_unix_seconds(1_800_000_000 + s);
    assert_eq!(
        entries[2..],
        [
            (MessageStatus::Sent, None, at(1)),
            (MessageStatus::Delivered, Some("111"), at(2)),
            (MessageStatus::Delivered, Some("222"), at(3)),
            (MessageStatus::Read, Some("111"), at(6)),
        ]
    );
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Read);
}

/// A batch of statuses for several messages, with repeats and one for a wamid not yet known,
/// applies in one go; outcomes come back in the batch's order.
async fn statuses_apply_in_batches(store: &dyn Store) {
    use DeliveryStatus::*;
    let (id, status) = sent_message(store, "wamid.B1").await;
    let batch = [
        status("wamid.B1", Read, 3),
        status("wamid.UNKNOWN", Sent, 1),
        status("wamid.B1", Sent, 1),
        status("wamid.B1", Read, 3),
        status("wamid.B1", Delivered, 2),
        // A copy earlier than one before it in the batch is what happened first.
        status("wamid.B1", Sent, 0),
    ];
    let outcomes = store.apply_statuses(&batch, t(5)).await.unwrap();
    use StatusOutcome::*;
    assert_eq!(outcomes, [Applied, Pending, Applied, Duplicate, Applied, Applied]);
    let sent = store.message_history(&id).await.unwrap().into_iter().find(|e| e.status == MessageStatus::Sent);
    assert_eq!(sent.map(|e| e.occurred_at), Some(Timestamp::from_unix_seconds(1_800_000_000)));
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Read);
    let h = statuses(&store.message_history(&id).await.unwrap());
    assert_eq!(h[2..], [(MessageStatus::Sent, false), (MessageStatus::Delivered, false), (MessageStatus::Read, false)]);
    assert!(store.apply_statuses(&[], t(6)).await.unwrap().is_empty());
}

/// Replies find the message they answer, echoes are outbound messages from the app, and other
/// webhook changes are kept once per place in their delivery.
async fn replies_echoes_and_webhook_events(store: &dyn Store) {
    let (ours, _) = sent_message(store, "wamid.OURS").await;
    let sent = store.get_message(&ours).await.unwrap().unwrap();
    let (account_id, number_id) = (sent.account_id, sent.phone_number_id);
    let reply = NewInbound {
        id: MessageId::generate(),
        account_id: account_id.clone(),
        phone_number_id: number_id.clone(),
        wamid: "wamid.REPLY".into(),
        from: "+15551234567".into(),
        wa_id: Some("15551234567".into()),
        user_id: None,
        profile_name: None,
        kind: "text".into(),
        content: json!({"text": {"body": "yes"}, "context": {"from": "15550001111", "id": "wamid.OURS"}}),
        reply_to_wamid: Some("wamid.OURS".into()),
        error: None,
        sent_at: t(10),
        received_at: t(11),
    };
    assert!(store.record_inbound(&reply).await.unwrap());
    let got = store.get_message(&reply.id).await.unwrap().unwrap();
    assert_eq!((got.reply_to_wamid.as_deref(), got.reply_to), (Some("wamid.OURS"), Some(ours)));

    let echo = NewEcho {
        id: MessageId::generate(),
        account_id: account_id.clone(),
        phone_number_id: number_id.clone(),
        wamid: "wamid.ECHO".into(),
        to: "+15551234567".into(),
        kind: "text".into(),
        content: json!({"text": {"body": "from the app"}}),
        sent_at: t(20),
        received_at: t(21),
    };
    assert!(store.record_echo(&echo).await.unwrap());
    assert!(!store.record_echo(&NewEcho { id: MessageId::generate(), ..echo.clone() }).await.unwrap());
    let m = store.find_message_by_wamid("wamid.ECHO").await.unwrap().unwrap();
    assert_eq!(
        (m.id, m.direction, m.status, m.from_app),
        (echo.id.clone(), Direction::Outbound, MessageStatus::Sent, true)
    );
    // A status that comes before its echo waits and is applied when the echo is stored.
    let early = testing::status_update(&account_id, "wamid.ECHO2", DeliveryStatus::Delivered, 40);
    assert_eq!(store.apply_status(&early, t(40)).await.unwrap(), StatusOutcome::Pending);
    let echo2 = NewEcho { id: MessageId::generate(), wamid: "wamid.ECHO2".into(), ..echo.clone() };
    assert!(store.record_echo(&echo2).await.unwrap());
    assert_eq!(store.get_message(&echo2.id).await.unwrap().unwrap().status, MessageStatus::Delivered);

    let event = |delivery_id, dedup_key: &str, field: &str| NewWebhookEvent {
        account_id: account_id.clone(),
        delivery_id,
        dedup_key: dedup_key.into(),
        field: field.into(),
        kind: "APPROVED".into(),
        subject: Some("1689556908129832".into()),
        payload: json!({"event": "APPROVED"}),
        occurred_at: t(30),
        recorded_at: t(31),
    };
    assert!(store.record_webhook_event(&event(1, "k1", "message_template_status_update")).await.unwrap());
    // Delivered again by Meta: the same event.
    assert!(!store.record_webhook_event(&event(2, "k1", "message_template_status_update")).await.unwrap());
    assert!(store.record_webhook_event(&event(1, "k2", "account_update")).await.unwrap());
    assert!(store.record_webhook_event(&event(2, "k3", "account_update")).await.unwrap());
    let every = WebhookEventFilter { account_id: account_id.clone(), field: None, before: None };
    let all = store.list_webhook_events(&every, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[2].payload, json!({"event": "APPROVED"}));
    let account_updates = WebhookEventFilter { field: Some("account_update".into()), ..every.clone() };
    let updates = store.list_webhook_events(&account_updates, 10).await.unwrap();
    assert_eq!(updates.len(), 2);
    let older = WebhookEventFilter { before: Some(updates[0].id), ..account_updates };
    assert_eq!(store.list_webhook_events(&older, 10).await.unwrap(), updates[1..]);
    let other = WebhookEventFilter { account_id: AccountId::generate(), ..every };
    assert!(store.list_webhook_events(&other, 10).await.unwrap().is_empty());

    assert!(store.set_messaging_tier(&account_id, MessagingTier::Tier10K).await.unwrap());
    assert!(!store.set_messaging_tier(&account_id, MessagingTier::Tier10K).await.unwrap());
    assert_eq!(store.get_account(&account_id).await.unwrap().unwrap().messaging_tier, Some(MessagingTier::Tier10K));
}

async fn failed_status_overrides_sent(store: &dyn Store) {
    let (id, status) = sent_message(store, "wamid.F").await;
    store.apply_status(&status("wamid.F", DeliveryStatus::Sent, 1), t(3)).await.unwrap();
    store.apply_status(&status("wamid.F", DeliveryStatus::Failed, 2), t(4)).await.unwrap();
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error.unwrap().code, Some(131026));
}

async fn statuses_before_the_wamid_are_kept_and_applied(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(0)).await;
    let d = store.outbox().claim(t(1), t(60_000), 10).await.unwrap().pop().unwrap();
    for (s, at) in [(DeliveryStatus::Delivered, 2), (DeliveryStatus::Sent, 1)] {
        assert_eq!(
            store.apply_status(&testing::status_update(&a.id, "wamid.E", s, at), t(2)).await.unwrap(),
            StatusOutcome::Pending
        );
    }
    // Another account reporting the same wamid is kept apart and never adopted.
    let other = AccountId::generate();
    let forged = testing::status_update(&other, "wamid.E", DeliveryStatus::Failed, 3);
    assert_eq!(store.apply_status(&forged, t(2)).await.unwrap(), StatusOutcome::Pending);
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Sending);
    assert!(store.record_accepted(&d, "wamid.E", &json!({"messages": [{"id": "wamid.E"}]}), t(3)).await.unwrap());
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Delivered);
    let h = statuses(&store.message_history(&id).await.unwrap());
    assert_eq!(h.len(), 4, "{h:?}");

    // The forged status never finds a message: removed once past waiting, with the ones
    // recorded later kept and the adopted ones untouched.
    let late = testing::status_update(&other, "wamid.F", DeliveryStatus::Delivered, 20);
    assert_eq!(store.apply_status(&late, t(20)).await.unwrap(), StatusOutcome::Pending);
    assert_eq!(store.delete_orphan_statuses(t(2), 100).await.unwrap(), 0, "recorded at t(2), not before");
    assert_eq!(store.delete_orphan_statuses(t(10), 100).await.unwrap(), 1);
    assert_eq!(store.delete_orphan_statuses(t(10), 100).await.unwrap(), 0);
    let later = testing::status_update(&other, "wamid.G", DeliveryStatus::Read, 21);
    assert_eq!(store.apply_status(&later, t(21)).await.unwrap(), StatusOutcome::Pending);
    for removed in [1, 1, 0] {
        assert_eq!(store.delete_orphan_statuses(t(30), 1).await.unwrap(), removed, "one at a time");
    }
    assert_eq!(statuses(&store.message_history(&id).await.unwrap()), h);
}

async fn unclaimed_messages_can_be_cancelled(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let reason = MessageError::gateway("timeout", "not sent in time");
    // Queued: cancelled.
    let queued = enqueue(store, &a, &n, t(0)).await;
    assert!(store.cancel_unclaimed(&queued, &reason, t(1)).await.unwrap());
    let m = store.get_message(&queued).await.unwrap().unwrap();
    assert_eq!((m.status, m.error.clone()), (MessageStatus::Canceled, Some(reason.clone())));
    assert_eq!(
        statuses(&store.message_history(&queued).await.unwrap()).last(),
        Some(&(MessageStatus::Canceled, false))
    );
    assert!(store.outbox().claim(t(2), t(60_000), 10).await.unwrap().is_empty(), "a cancelled message is never sent");
    // Being sent: not cancelled, and its result is still recorded.
    let sending = enqueue(store, &a, &n, t(0)).await;
    let d = store.outbox().claim(t(3), t(60_000), 10).await.unwrap().pop().unwrap();
    assert!(!store.cancel_unclaimed(&sending, &reason, t(4)).await.unwrap());
    assert!(store.record_accepted(&d, "wamid.C", &json!({"messages": [{"id": "wamid.C"}]}), t(5)).await.unwrap());
    let h = store.message_history(&sending).await.unwrap();
    assert_eq!(
        h.iter().find(|e| e.status == MessageStatus::Accepted).unwrap().detail,
        Some(json!({"messages": [{"id": "wamid.C"}]}))
    );
    // Done: not cancelled.
    assert!(!store.cancel_unclaimed(&sending, &reason, t(6)).await.unwrap());
    // A lease that lapsed (its holder died) no longer protects the row.
    let orphan = enqueue(store, &a, &n, t(0)).await;
    store.outbox().claim(t(7), t(100), 10).await.unwrap();
    assert!(store.cancel_unclaimed(&orphan, &reason, t(101)).await.unwrap());
}

async fn messages_are_listed_newest_first_with_filters(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let out1 = enqueue_to(store, &a, &n, t(0), "+15551234567").await;
    let out2 = enqueue_to(store, &a, &n, t(0), "+15551234567").await;
    let inbound = NewInbound {
        id: MessageId::generate(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        wamid: "wamid.L1".into(),
        from: "+15551234567".into(),
        wa_id: Some("15551234567".into()),
        user_id: None,
        profile_name: None,
        kind: "text".into(),
        content: json!({"text": {"body": "hi"}}),
        reply_to_wamid: None,
        error: None,
        sent_at: t(50),
        received_at: t(51),
    };
    store.record_inbound(&inbound).await.unwrap();
    let ids = |ms: Vec<Message>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let all = store.list_messages(&MessageFilter::default(), 10).await.unwrap();
    assert_eq!(ids(all), [inbound.id.clone(), out2.clone(), out1.clone()]);
    let f = |f: MessageFilter| async move { ids(store.list_messages(&f, 10).await.unwrap()) };
    assert_eq!(
        f(MessageFilter { direction: Some(Direction::Inbound), ..Default::default() }).await,
        vec![inbound.id.clone()]
    );
    assert_eq!(
        f(MessageFilter { status: Some(MessageStatus::Queued), ..Default::default() }).await,
        [out2.clone(), out1.clone()]
    );
    // `from` the customer is the inbound message; `to` the customer the outbound ones.
    let customer = Some("+15551234567".to_owned());
    assert_eq!(f(MessageFilter { from: customer.clone(), ..Default::default() }).await, vec![inbound.id.clone()]);
    assert_eq!(f(MessageFilter { to: customer, ..Default::default() }).await, [out2.clone(), out1.clone()]);
    assert_eq!(f(MessageFilter { from: Some(n.id.clone()), ..Default::default() }).await, [out2.clone(), out1.clone()]);
    assert_eq!(f(MessageFilter { since: Some(t(50)), ..Default::default() }).await, vec![inbound.id.clone()]);
    assert_eq!(f(MessageFilter { before: Some(out2.clone()), ..Default::default() }).await, vec![out1.clone()]);
    assert_eq!(ids(store.list_messages(&MessageFilter::default(), 1).await.unwrap()), [inbound.id]);
}

async fn inbound_messages_and_contacts(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let inbound = |wamid: &str, name: Option<&str>| NewInbound {
        id: MessageId::generate(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        wamid: wamid.into(),
        from: "+15551234567".into(),
        wa_id: Some("15551234567".into()),
        user_id: None,
        profile_name: name.map(Into::into),
        kind: "text".into(),
        content: json!({"body": "hi"}),
        reply_to_wamid: None,
        error: None,
        sent_at: Timestamp::from_unix_seconds(1_800_000_000),
        received_at: t(1),
    };
    let first = inbound("wamid.IN1", Some("Ana"));
    assert!(store.record_inbound(&first).await.unwrap());
    assert!(!store.record_inbound(&inbound("wamid.IN1", Some("Ana"))).await.unwrap(), "duplicate wamid");
    assert!(store.record_inbound(&inbound("wamid.IN2", None)).await.unwrap());
    let contact = store.get_contact_by_wa_id("15551234567").await.unwrap().unwrap();
    assert_eq!(contact.profile_name.as_deref(), Some("Ana"), "a missing name keeps the known one");
    let m = store.find_message_by_wamid("wamid.IN1").await.unwrap().unwrap();
    assert_eq!((m.id, m.direction, m.status), (first.id, Direction::Inbound, MessageStatus::Received));
    assert_eq!(m.contact_id, Some(contact.id));
    assert_eq!(m.created_at, Timestamp::from_unix_seconds(1_800_000_000));
    // The conversation's window starts at the customer's latest message, whatever the order.
    let mut older = inbound("wamid.IN3", None);
    older.sent_at = Timestamp::from_unix_seconds(1_700_000_000);
    store.record_inbound(&older).await.unwrap();
    assert_eq!(
        store.last_inbound(&n.id, "+15551234567").await.unwrap(),
        Some(Timestamp::from_unix_seconds(1_800_000_000))
    );
    assert_eq!(store.last_inbound(&n.id, "+15550000000").await.unwrap(), None);
    // Webhooks are first seen once.
    assert_eq!(store.get_phone_number(&n.id).await.unwrap().unwrap().webhooks_since, None);
    store.note_webhooks(&n.id, t(5)).await.unwrap();
    store.note_webhooks(&n.id, t(9)).await.unwrap();
    assert_eq!(store.get_phone_number(&n.id).await.unwrap().unwrap().webhooks_since, Some(t(5)));
    // A status for an inbound wamid is not an outbound status.
    let outcome =
        store.apply_status(&testing::status_update(&a.id, "wamid.IN1", DeliveryStatus::Read, 1), t(2)).await.unwrap();
    assert_eq!(outcome, StatusOutcome::Pending);
}

async fn webhook_deliveries(store: &dyn Store) {
    let (a, _) = seeded(store).await;
    let body = br#"{"object":"whatsapp_business_account"}"#.to_vec();
    let id1 = store
        .insert_delivery(NewDelivery { account_id: Some(a.id.clone()), body: body.clone(), received_at: t(0) })
        .await
        .unwrap();
    let id2 =
        store.insert_delivery(NewDelivery { account_id: None, body: vec![1, 2], received_at: t(1) }).await.unwrap();
    assert!(id2 > id1);
    assert_eq!(store.count_deliveries().await.unwrap(), 2);
    assert_eq!(store.deliveries().pending().await.unwrap(), 2);
    let claimed = store.deliveries().claim(t(5), t(1_000), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [id1, id2]);
    assert_eq!(claimed[0].body, body);
    assert_eq!(claimed[0].account_id, Some(a.id));
    assert!(store.deliveries().claim(t(6), t(1_000), 10).await.unwrap().is_empty());
    store.finish_deliveries(&[(&claimed[0], None)], t(7)).await.unwrap();
    store.deliveries().retry(&claimed[1], t(2_000), "database busy", t(2_000)).await.unwrap();
    assert!(store.deliveries().claim(t(1_999), t(3_000), 10).await.unwrap().is_empty());
    let again = store.deliveries().claim(t(2_000), t(3_000), 10).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, id2, 2));
    store.finish_deliveries(&[(&again[0], Some("unparseable".into()))], t(2_001)).await.unwrap();
    assert!(store.deliveries().claim(t(10_000), t(20_000), 10).await.unwrap().is_empty());
    assert_eq!(store.count_deliveries().await.unwrap(), 2);
    assert_eq!(store.deliveries().pending().await.unwrap(), 0);

    // Processed deliveries go once older than the retention; pending ones never do.
    let id3 = store.insert_delivery(NewDelivery { account_id: None, body: vec![3], received_at: t(0) }).await.unwrap();
    assert_eq!(store.delete_processed_deliveries(t(7), 10).await.unwrap(), 0, "processed at t(7), not before");
    assert_eq!(store.delete_processed_deliveries(t(8), 10).await.unwrap(), 1);
    assert_eq!(store.delete_processed_deliveries(t(100_000), 10).await.unwrap(), 1, "set aside, then kept as long");
    assert_eq!(store.delete_processed_deliveries(t(100_000), 10).await.unwrap(), 0);
    let left = store.deliveries().claim(t(100_000), t(200_000), 10).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), [id3], "the pending one is kept");
}

fn ids_of(ds: &[Leased<Dispatch>]) -> Vec<MessageId> {
    ds.iter().map(|d| d.message_id.clone()).collect()
}

async fn head_ids(store: &dyn Store, n: &PhoneNumber, now: Timestamp) -> Vec<MessageId> {
    store.outbox_heads(&n.id, now, 100).await.unwrap().into_iter().map(|h| h.message_id).collect()
}

async fn each_recipient_gets_its_messages_one_at_a_time_in_order(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let (ana, bo) = ("+15550190001", "+15550190002");
    let a1 = enqueue_to(store, &a, &n, t(0), ana).await;
    let scheduled = enqueue_to(store, &a, &n, t(5_000), ana).await;
    let a2 = enqueue_to(store, &a, &n, t(0), ana).await;
    let b1 = enqueue_to(store, &a, &n, t(0), bo).await;
    // One head per recipient; the scheduled message is not due and holds nobody up.
    assert_eq!(head_ids(store, &n, t(1)).await, [a1.clone(), b1.clone()]);
    let claimed = store.claim_messages(std::slice::from_ref(&a1), t(1), t(60_000)).await.unwrap();
    assert_eq!(ids_of(&claimed), std::slice::from_ref(&a1));
    // While Ana's first is in flight, her second waits; Bo's is unaffected.
    assert_eq!(head_ids(store, &n, t(2)).await, std::slice::from_ref(&b1));
    let error = MessageError::gateway("network_error", "boom");
    assert!(store.outbox().retry(&claimed[0], t(3_000), &error, t(3_000)).await.unwrap());
    assert_eq!(
        head_ids(store, &n, t(2_000)).await,
        std::slice::from_ref(&b1),
        "backing off still blocks the queue behind it"
    );
    let again = store.claim_messages(std::slice::from_ref(&a1), t(3_000), t(60_000)).await.unwrap();
    assert!(store.record_accepted(&again[0], "wamid.F1", &json!({}), t(3_001)).await.unwrap());
    assert_eq!(head_ids(store, &n, t(3_002)).await, [a2.clone(), b1.clone()]);
    // Once due, the scheduled message takes its place by due time: before a2 only if due earlier.
    let d = store.claim_messages(std::slice::from_ref(&a2), t(3_003), t(60_000)).await.unwrap();
    assert!(store.record_accepted(&d[0], "wamid.F2", &json!({}), t(3_004)).await.unwrap());
    assert_eq!(head_ids(store, &n, t(5_000)).await, [b1, scheduled]);
    // The same order holds for claim_outbox, across numbers.
    assert_eq!(store.outbox().claim(t(5_000), t(60_000), 10).await.unwrap().len(), 2);
}

/// Heads are found by reading the queue a page at a time: a recipient with more queued than a
/// page holds does not hide the recipients behind it.
async fn heads_are_found_past_a_long_queue(store: Arc<dyn Store>) {
    let (a, n) = seeded(store.as_ref()).await;
    let (ana, bo, cy) = ("+15550190001", "+15550190002", "+15550190003");
    let mut tasks = Vec::new();
    for _ in 0..600 {
        let (store, a, n) = (store.clone(), a.clone(), n.clone());
        tasks.push(tokio::spawn(async move { enqueue_to(store.as_ref(), &a, &n, t(0), ana).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let b1 = enqueue_to(store.as_ref(), &a, &n, t(0), bo).await;
    let c1 = enqueue_to(store.as_ref(), &a, &n, t(0), cy).await;
    let heads = store.outbox_heads(&n.id, t(1), 100).await.unwrap();
    let recipients: Vec<_> = heads.iter().map(|h| h.recipient.as_str()).collect();
    assert_eq!(recipients, [ana, bo, cy]);
    assert_eq!(heads[1..].iter().map(|h| h.message_id.clone()).collect::<Vec<_>>(), [b1.clone(), c1]);
    let first_two = store.outbox_heads(&n.id, t(1), 2).await.unwrap();
    assert_eq!(first_two.iter().map(|h| h.recipient.as_str()).collect::<Vec<_>>(), [ana, bo]);
    // Bo's in flight: Ana's and Cy's queues still have their heads; across numbers the same.
    let claimed = store.claim_messages(std::slice::from_ref(&b1), t(2), t(60_000)).await.unwrap();
    assert_eq!(ids_of(&claimed), [b1]);
    let claimed = store.outbox().claim(t(3), t(60_000), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.recipient.as_str()).collect::<Vec<_>>(), [ana, cy]);
    assert!(store.outbox_heads(&n.id, t(4), 100).await.unwrap().is_empty(), "each queue's head is in flight");
}

async fn batched_concurrent_sends_are_all_stored(store: Arc<dyn Store>) {
    let (a, n) = seeded(store.as_ref()).await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (store, a, n) = (store.clone(), a.clone(), n.clone());
        tasks.push(tokio::spawn(async move {
            let m = new_outbound(&a, &n, t(0), &format!("+1555019{:04}", 5_000 + i));
            let id = m.id.clone();
            assert_eq!(store.enqueue_message(m).await.unwrap(), Enqueued::Stored);
            id
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap());
    }
    assert_eq!(ids.len(), 300);
    assert_eq!(store.outbox().pending().await.unwrap(), 300);
    assert_eq!(store.count_messages().await.unwrap(), 300);
    for id in ids.iter().take(5) {
        assert_eq!(store.message_history(id).await.unwrap().len(), 1);
    }
}

async fn an_idempotency_key_is_used_once_until_it_expires(store: Arc<dyn Store>) {
    let (a, n) = seeded(store.as_ref()).await;
    let caller = ApiKeyId::generate();
    let keyed = |request_hash: &str, expires: i64| {
        let mut m = new_outbound(&a, &n, t(0), "+15550190003");
        m.idempotency = Some(NewIdempotencyKey {
            api_key_id: caller.clone(),
            key: "order-42".into(),
            request_hash: request_hash.into(),
            response: json!({"id": m.id.as_str()}),
            expires_at: t(expires),
        });
        m
    };
    // Two requests racing with one key: exactly one is stored, the other learns of it.
    let (first, second) = (keyed("h1", 1_000), keyed("h1", 1_000));
    let (first_id, second_id) = (first.id.clone(), second.id.clone());
    let (s1, s2) = (store.clone(), store.clone());
    let r1 = tokio::spawn(async move { s1.enqueue_message(first).await.unwrap() });
    let r2 = tokio::spawn(async move { s2.enqueue_message(second).await.unwrap() });
    let results = [r1.await.unwrap(), r2.await.unwrap()];
    let stored: Vec<_> = results.iter().filter(|r| **r == Enqueued::Stored).collect();
    assert_eq!(stored.len(), 1, "{results:?}");
    let used = results.iter().find_map(|r| match r {
        Enqueued::KeyUsed(rec) => Some(rec.clone()),
        Enqueued::Stored | Enqueued::OutsideWindow { .. } => None,
    });
    let used = used.expect("the other request found the key used");
    assert!(used.message_id == first_id || used.message_id == second_id);
    assert_eq!(used.response, json!({"id": used.message_id.as_str()}));
    assert_eq!(store.count_messages().await.unwrap(), 1, "only one message stored");
    let found = store.find_idempotency_key(&caller, "order-42", t(500)).await.unwrap().unwrap();
    assert_eq!((found.message_id, found.request_hash.as_str()), (used.message_id.clone(), "h1"));
    // Another caller's key of the same name is another key.
    assert!(store.find_idempotency_key(&ApiKeyId::generate(), "order-42", t(500)).await.unwrap().is_none());
    // Expired, the key is free again, and the sweep removes what is left.
    assert!(store.find_idempotency_key(&caller, "order-42", t(1_000)).await.unwrap().is_none());
    let mut late = keyed("h2", 5_000);
    late.created_at = t(2_000);
    assert_eq!(store.enqueue_message(late).await.unwrap(), Enqueued::Stored);
    assert_eq!(store.delete_expired_idempotency_keys(t(4_000)).await.unwrap(), 0);
    assert_eq!(store.delete_expired_idempotency_keys(t(5_000)).await.unwrap(), 1);
}

async fn expired_messages_fail_unless_being_sent(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let mut soon = new_outbound(&a, &n, t(0), "+15550190004");
    soon.expires_at = Some(t(1_000));
    let (soon_id, _) = (soon.id.clone(), store.enqueue_message(soon).await.unwrap());
    let mut sending = new_outbound(&a, &n, t(0), "+15550190005");
    sending.expires_at = Some(t(1_000));
    let sending_id = sending.id.clone();
    store.enqueue_message(sending).await.unwrap();
    let lasting = enqueue(store, &a, &n, t(0)).await;
    assert_eq!(store.outbox_heads(&n.id, t(1), 10).await.unwrap()[0].expires_at, Some(t(1_000)));
    store.claim_messages(std::slice::from_ref(&sending_id), t(1), t(60_000)).await.unwrap();
    assert!(store.expire_outbox(t(999), 10).await.unwrap().is_empty());
    assert_eq!(store.expire_outbox(t(1_000), 10).await.unwrap(), std::slice::from_ref(&soon_id));
    let m = store.get_message(&soon_id).await.unwrap().unwrap();
    assert_eq!((m.status, m.error.unwrap().reason.as_deref()), (MessageStatus::Failed, Some("expired")));
    assert_eq!(m.expires_at, Some(t(1_000)));
    assert_eq!(store.get_message(&sending_id).await.unwrap().unwrap().status, MessageStatus::Sending);
    assert_eq!(store.get_message(&lasting).await.unwrap().unwrap().status, MessageStatus::Queued);
    assert_eq!(store.outbox().pending().await.unwrap(), 2);
}

async fn scheduled_messages_wait_for_their_time(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let id = enqueue(store, &a, &n, t(10_000)).await;
    let m = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!((m.status, m.send_at), (MessageStatus::Scheduled, Some(t(10_000))));
    let h = store.message_history(&id).await.unwrap();
    assert_eq!((statuses(&h), h[0].occurred_at), (vec![(MessageStatus::Scheduled, false)], t(0)));
    assert!(store.outbox().claim(t(9_999), t(60_000), 10).await.unwrap().is_empty());
    assert_eq!(ids_of(&store.outbox().claim(t(10_000), t(60_000), 10).await.unwrap()), std::slice::from_ref(&id));
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Sending);
}

async fn a_number_is_dispatched_by_one_holder_at_a_time(store: &dyn Store) {
    assert!(store.acquire_number_lease("1001", "instance-a", t(0), t(10_000)).await.unwrap());
    assert!(!store.acquire_number_lease("1001", "instance-b", t(1), t(10_001)).await.unwrap());
    assert!(store.acquire_number_lease("1001", "instance-a", t(5_000), t(15_000)).await.unwrap(), "renewed");
    assert!(!store.acquire_number_lease("1001", "instance-b", t(14_999), t(20_000)).await.unwrap());
    assert!(store.acquire_number_lease("1001", "instance-b", t(15_000), t(25_000)).await.unwrap(), "lapsed");
    assert!(store.acquire_number_lease("1002", "instance-a", t(15_000), t(25_000)).await.unwrap());
    store.release_number_lease("1001", "instance-a").await.unwrap();
    assert!(!store.acquire_number_lease("1001", "instance-a", t(15_500), t(25_500)).await.unwrap(), "not its lease");
    store.retire_dispatcher("instance-b").await.unwrap();
    assert!(store.acquire_number_lease("1001", "instance-a", t(16_000), t(26_000)).await.unwrap(), "released");
    store.release_number_lease("1001", "instance-a").await.unwrap();
    assert!(store.acquire_number_lease("1001", "instance-b", t(16_500), t(26_500)).await.unwrap(), "handed over");
    assert!(store.acquire_number_lease("1002", "instance-a", t(17_000), t(27_000)).await.unwrap(), "still held");
}

async fn dispatchers_count_while_they_announce_themselves(store: &dyn Store) {
    assert_eq!(store.announce_dispatcher("instance-a", t(0), t(10_000)).await.unwrap(), 1);
    assert_eq!(store.announce_dispatcher("instance-b", t(1_000), t(11_000)).await.unwrap(), 2);
    assert_eq!(store.announce_dispatcher("instance-a", t(5_000), t(15_000)).await.unwrap(), 2, "renewed, not added");
    assert_eq!(store.announce_dispatcher("instance-a", t(11_000), t(21_000)).await.unwrap(), 1, "b lapsed");
    assert_eq!(store.announce_dispatcher("instance-b", t(12_000), t(22_000)).await.unwrap(), 2, "b is back");
    assert!(store.acquire_number_lease("1001", "instance-b", t(12_000), t(22_000)).await.unwrap());
    store.retire_dispatcher("instance-b").await.unwrap();
    assert_eq!(store.announce_dispatcher("instance-a", t(13_000), t(23_000)).await.unwrap(), 1, "b retired");
    assert!(store.acquire_number_lease("1001", "instance-a", t(13_000), t(23_000)).await.unwrap(), "b's leases gone");
}

async fn accounts_pause_and_resume_and_numbers_keep_their_limits(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let expired = MessageError {
        code: Some(190),
        title: Some("OAuthException".into()),
        message: "Error validating access token: Session has expired".into(),
        details: None,
        fbtrace_id: Some("AbC".into()),
        reason: None,
    };
    let as_of = store.get_account(&a.id).await.unwrap().unwrap().updated_at;
    let earlier = Timestamp::from_millis(as_of.as_millis() - 1);
    let pause = |at| Pause { since: t(at), error: expired.clone() };
    assert!(!store.pause_account(&a.id, earlier, &pause(5)).await.unwrap(), "changed since that send");
    assert!(store.pause_account(&a.id, as_of, &pause(5)).await.unwrap());
    assert!(!store.pause_account(&a.id, as_of, &pause(6)).await.unwrap(), "already paused");
    let paused = store.get_account(&a.id).await.unwrap().unwrap().paused.unwrap();
    assert_eq!((paused.since, paused.error), (t(5), expired));
    assert!(store.resume_account(&a.id).await.unwrap());
    assert!(!store.resume_account(&a.id).await.unwrap());
    assert!(store.get_account(&a.id).await.unwrap().unwrap().paused.is_none());

    assert!(store.set_throughput_level(&n.id, &ThroughputLevel::High, t(7)).await.unwrap());
    assert!(store.set_number_rate(&n.id, Some(50), t(8)).await.unwrap());
    let got = store.get_phone_number(&n.id).await.unwrap().unwrap();
    assert_eq!((got.throughput_level, got.messages_per_second), (Some(ThroughputLevel::High), Some(50)));
    assert!(store.set_number_rate(&n.id, None, t(9)).await.unwrap());
    assert_eq!(store.get_phone_number(&n.id).await.unwrap().unwrap().messages_per_second, None);
    assert!(!store.set_number_rate("nope", Some(1), t(9)).await.unwrap());
    // Refreshing the numbers from Meta keeps the limit set through the API.
    store.set_number_rate(&n.id, Some(50), t(10)).await.unwrap();
    let mut a2 = store.get_account(&a.id).await.unwrap().unwrap();
    let before = a2.updated_at;
    a2.updated_at = t(11);
    assert!(store.update_account(&a2, before, Some(std::slice::from_ref(&n))).await.unwrap());
    let got = store.get_phone_number(&n.id).await.unwrap().unwrap();
    assert_eq!((got.throughput_level, got.messages_per_second), (Some(ThroughputLevel::High), Some(50)));
}

async fn opt_outs_tiers_and_queue_depths(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    store.mark_marketing_opt_out("15550190006", t(3)).await.unwrap();
    store.mark_marketing_opt_out("15550190006", t(9)).await.unwrap();
    let c = store.get_contact_by_wa_id("15550190006").await.unwrap().unwrap();
    assert_eq!(c.marketing_opt_out_at, Some(t(9)), "the latest stop is kept");
    assert!(c.marketing_opted_out());
    for (recipient, opens) in
        [("+15550190007", true), ("+15550190007", true), ("+15550190008", true), ("+15550190009", false)]
    {
        let mut m = new_outbound(&a, &n, t(0), recipient);
        // No customer message: the window is closed, so a checked send opens a conversation.
        m.window = opens.then(|| WindowCheck { customer: recipient.into(), refuse_outside: false });
        store.enqueue_message(m).await.unwrap();
    }
    assert_eq!(store.count_conversations_opened(&a.id, t(0)).await.unwrap(), 2, "distinct users");
    assert_eq!(store.count_conversations_opened(&a.id, t(1)).await.unwrap(), 0, "outside the period");
    assert_eq!(store.outbox_depth_by_number().await.unwrap(), [(n.id.clone(), 4)]);
}

/// A send's window check is judged in the transaction that stores it: inside the window it
/// stores a message that opens nothing; outside, it opens a conversation (counted against the
/// tier) or, when refusing, stores nothing at all, its idempotency key included.
async fn the_window_is_judged_with_the_send(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let wrote_at = Timestamp::from_unix_seconds(1_800_000_000);
    let inbound = NewInbound {
        id: MessageId::generate(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        wamid: "wamid.WINDOW".into(),
        from: "+15551230001".into(),
        wa_id: Some("15551230001".into()),
        user_id: None,
        profile_name: None,
        kind: "text".into(),
        content: json!({"body": "hi"}),
        reply_to_wamid: None,
        error: None,
        sent_at: wrote_at,
        received_at: wrote_at,
    };
    assert!(store.record_inbound(&inbound).await.unwrap());
    let send = |customer: &str, at: Timestamp, refuse_outside: bool| {
        let mut m = new_outbound(&a, &n, at, customer);
        m.created_at = at;
        m.send_at = None;
        m.window = Some(WindowCheck { customer: customer.into(), refuse_outside });
        m.idempotency = Some(NewIdempotencyKey {
            api_key_id: ApiKeyId::generate(),
            key: format!("window-{customer}-{}", at.as_millis()),
            request_hash: "h".into(),
            response: json!({}),
            expires_at: at.plus(std::time::Duration::from_secs(60)),
        });
        m
    };
    let hour = std::time::Duration::from_secs(3600);
    let (inside, outside) = (wrote_at.plus(hour * 23), wrote_at.plus(hour * 25));
    // Inside the window: stored, opening nothing, even when outside sends are refused.
    let open = send("+15551230001", inside, true);
    assert_eq!(store.enqueue_message(open.clone()).await.unwrap(), Enqueued::Stored);
    assert_eq!(store.count_conversations_opened(&a.id, t(0)).await.unwrap(), 0);
    // Outside it, refused: nothing stored, and the key stays free.
    let refused = send("+15551230001", outside, true);
    assert_eq!(
        store.enqueue_message(refused.clone()).await.unwrap(),
        Enqueued::OutsideWindow { customer: "+15551230001".into(), last_inbound: Some(wrote_at) }
    );
    assert_eq!(store.get_message(&refused.id).await.unwrap(), None);
    let key = refused.idempotency.as_ref().unwrap();
    assert_eq!(store.find_idempotency_key(&key.api_key_id, &key.key, outside).await.unwrap(), None);
    // A customer who never wrote: refused with no last message, or stored as opening one.
    assert_eq!(
        store.enqueue_message(send("+15551230002", inside, true)).await.unwrap(),
        Enqueued::OutsideWindow { customer: "+15551230002".into(), last_inbound: None }
    );
    for customer in ["+15551230001", "+15551230002"] {
        assert_eq!(store.enqueue_message(send(customer, outside, false)).await.unwrap(), Enqueued::Stored);
    }
    assert_eq!(store.count_conversations_opened(&a.id, t(0)).await.unwrap(), 2);
    assert_eq!(store.outbox().pending().await.unwrap(), 3);
}

async fn reopening_keeps_everything(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let id = {
        let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
        let (a, n) = seeded(store.as_ref()).await;
        let id = enqueue(store.as_ref(), &a, &n, t(0)).await;
        store.close().await;
        id
    };
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("migrations are idempotent");
    assert_eq!(store.get_message(&id).await.unwrap().unwrap().status, MessageStatus::Queued);
    assert_eq!(store.outbox().pending().await.unwrap(), 1);
}

/// Sends stored before the first history entry was made from the message kept it as a row:
/// their history shows it once.
async fn a_first_entry_stored_as_a_row_shows_once(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    let (a, n) = seeded(store.as_ref()).await;
    let (old, new) = (enqueue(store.as_ref(), &a, &n, t(0)).await, enqueue(store.as_ref(), &a, &n, t(0)).await);
    store.close().await;
    const ROW: &str = "INSERT INTO message_statuses (account_id, message_id, status, occurred_at, recorded_at) \
        VALUES ($1, $2, 'queued', $3, $3)";
    let at = t(0).as_millis();
    match backend {
        Backend::Sqlite => {
            let params = rusqlite::params![a.id.as_str(), old.as_str(), at];
            db.sqlite_connection().execute(ROW, params).unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
            sqlx::query(ROW).bind(a.id.as_str()).bind(old.as_str()).bind(at).execute(&mut c).await.unwrap();
        }
    }
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    for id in [&old, &new] {
        let h = store.message_history(id).await.unwrap();
        assert_eq!((statuses(&h), h[0].occurred_at), (vec![(MessageStatus::Queued, false)], t(0)), "{id}");
    }
}

// Contacts and conversations.

/// A customer's text to `n`, with the ids Meta gave (`from` as the processor files it).
fn inbound_from(a: &Account, n: &PhoneNumber, wa_id: Option<&str>, user_id: Option<&str>, wamid: &str) -> NewInbound {
    let from = wa_id.map(wagate_domain::contact::counterpart).or(user_id.map(str::to_owned)).unwrap();
    NewInbound {
        id: MessageId::generate(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        wamid: wamid.into(),
        from,
        wa_id: wa_id.map(Into::into),
        user_id: user_id.map(Into::into),
        profile_name: Some(format!("name of {wamid}")),
        kind: "text".into(),
        content: json!({"text": {"body": wamid}}),
        reply_to_wamid: None,
        error: None,
        sent_at: Timestamp::now(),
        received_at: Timestamp::now(),
    }
}

async fn conversation_of(store: &dyn Store, contact: &ContactId) -> Conversation {
    let filter = ConversationFilter { contact_id: Some(contact.clone()), ..Default::default() };
    let mut found = store.list_conversations(&filter, 10).await.unwrap();
    assert_eq!(found.len(), 1, "one conversation per number and contact: {found:?}");
    found.pop().unwrap()
}

async fn contacts_are_linked_by_wa_id_and_user_id(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    // Phone and BSUID together; a username user with only a BSUID; a phone alone.
    assert!(
        store.record_inbound(&inbound_from(&a, &n, Some("15550001111"), Some("US.111"), "wamid.C1")).await.unwrap()
    );
    assert!(store.record_inbound(&inbound_from(&a, &n, None, Some("US.222"), "wamid.C2")).await.unwrap());
    assert!(store.record_inbound(&inbound_from(&a, &n, Some("15550002222"), None, "wamid.C3")).await.unwrap());
    let both = store.get_contact_by_wa_id("15550001111").await.unwrap().unwrap();
    assert_eq!(both.user_id.as_deref(), Some("US.111"));
    let by_user = store.find_message_by_wamid("wamid.C2").await.unwrap().unwrap();
    assert_eq!(by_user.counterpart, "US.222");
    let username_contact = store.get_contact(by_user.contact_id.as_ref().unwrap()).await.unwrap().unwrap();
    assert_eq!((username_contact.wa_id, username_contact.user_id.as_deref()), (None, Some("US.222")));
    let phone_contact = store.get_contact_by_wa_id("15550002222").await.unwrap().unwrap();
    assert_ne!(phone_contact.id, username_contact.id);
    // The two turn out to be one person: merged into the older contact, with both ids.
    assert!(
        store.record_inbound(&inbound_from(&a, &n, Some("15550002222"), Some("US.222"), "wamid.C4")).await.unwrap()
    );
    let merged = store.get_contact(&username_contact.id).await.unwrap().unwrap();
    assert_eq!((merged.wa_id.as_deref(), merged.user_id.as_deref()), (Some("15550002222"), Some("US.222")));
    assert_eq!(store.get_contact(&phone_contact.id).await.unwrap(), None, "the newer contact is gone");
    let m3 = store.find_message_by_wamid("wamid.C3").await.unwrap().unwrap();
    assert_eq!(m3.contact_id.as_ref(), Some(&merged.id), "its messages moved");
    let conversation = conversation_of(store, &merged.id).await;
    assert_eq!(conversation.unread_count, 3);
    let page = store.conversation_messages(&conversation.id, &ConversationPage::default(), 10).await.unwrap();
    let wamids: Vec<_> = page.iter().map(|m| m.wamid.clone().unwrap()).collect();
    assert_eq!(wamids, ["wamid.C4", "wamid.C3", "wamid.C2"], "both identities' messages, newest first");
    // A send to either id reads the same window.
    for customer in ["+15550002222", "US.222"] {
        assert!(store.last_inbound(&n.id, customer).await.unwrap().is_some(), "{customer}");
    }

    // The customer changes number: the contact, its conversation and history follow.
    let old = ContactIds { wa_id: Some("15550001111".into()), user_id: None };
    let new = ContactIds { wa_id: Some("15550003333".into()), user_id: None };
    assert_eq!(store.change_contact_ids(&old, &new, Timestamp::now()).await.unwrap(), Some(both.id.clone()));
    assert_eq!(
        store.change_contact_ids(&old, &new, Timestamp::now()).await.unwrap(),
        Some(both.id.clone()),
        "idempotent"
    );
    assert_eq!(store.get_contact_by_wa_id("15550001111").await.unwrap(), None);
    let moved = store.get_contact_by_wa_id("15550003333").await.unwrap().unwrap();
    assert_eq!((moved.id.clone(), moved.user_id.as_deref()), (both.id.clone(), Some("US.111")));
    assert!(
        store.record_inbound(&inbound_from(&a, &n, Some("15550003333"), Some("US.111"), "wamid.C5")).await.unwrap()
    );
    let conversation = conversation_of(store, &both.id).await;
    let page = store.conversation_messages(&conversation.id, &ConversationPage::default(), 10).await.unwrap();
    let wamids: Vec<_> = page.iter().map(|m| m.wamid.clone().unwrap()).collect();
    assert_eq!(wamids, ["wamid.C5", "wamid.C1"], "old and new number in one conversation");

    // A replay of a message from before the change changes nothing.
    let replay = inbound_from(&a, &n, Some("15550001111"), Some("US.111"), "wamid.C1");
    assert!(!store.record_inbound(&replay).await.unwrap());
    let replay = inbound_from(&a, &n, Some("15550001111"), None, "wamid.C1");
    assert!(!store.record_inbound(&replay).await.unwrap());
    assert_eq!(store.get_contact_by_wa_id("15550001111").await.unwrap(), None, "no contact for the old number");
    // Messages sent from the old number before the change, arriving after it (with and without
    // the user id): filed in the same conversation; the contact keeps its new number.
    for (user_id, wamid) in [(None, "wamid.C6"), (Some("US.111"), "wamid.C7")] {
        assert!(store.record_inbound(&inbound_from(&a, &n, Some("15550001111"), user_id, wamid)).await.unwrap());
        let late = store.find_message_by_wamid(wamid).await.unwrap().unwrap();
        assert_eq!(late.contact_id.as_ref(), Some(&both.id), "{wamid}");
    }
    assert_eq!(store.get_contact_by_wa_id("15550001111").await.unwrap(), None);
    let still = store.get_contact(&both.id).await.unwrap().unwrap();
    assert_eq!(still.wa_id.as_deref(), Some("15550003333"), "a late message does not undo the change");
    let conversation = conversation_of(store, &both.id).await;
    assert_eq!(conversation.unread_count, 4);
    let page = store.conversation_messages(&conversation.id, &ConversationPage::default(), 10).await.unwrap();
    let wamids: Vec<_> = page.iter().map(|m| m.wamid.clone().unwrap()).collect();
    assert_eq!(wamids, ["wamid.C7", "wamid.C6", "wamid.C5", "wamid.C1"]);
    // The customer changes back: the old number is theirs again.
    assert_eq!(store.change_contact_ids(&new, &old, Timestamp::now()).await.unwrap(), Some(both.id.clone()));
    assert_eq!(store.get_contact_by_wa_id("15550001111").await.unwrap().unwrap().id, both.id);

    // A change between ids nobody has had makes no contact.
    let strangers = |w: &str| ContactIds { wa_id: Some(w.into()), user_id: None };
    let changed = store.change_contact_ids(&strangers("15550008881"), &strangers("15550008882"), t(1)).await;
    assert_eq!(changed.unwrap(), None);
    assert_eq!(store.get_contact_by_wa_id("15550008882").await.unwrap(), None);
}

async fn conversations_list_page_and_read(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    for (wa, wamid) in [("15550004444", "wamid.D1"), ("15550005555", "wamid.D2"), ("15550004444", "wamid.D3")] {
        store.record_inbound(&inbound_from(&a, &n, Some(wa), None, wamid)).await.unwrap();
    }
    let d = store.get_contact_by_wa_id("15550004444").await.unwrap().unwrap();
    let e = store.get_contact_by_wa_id("15550005555").await.unwrap().unwrap();
    let order = |cs: &[Conversation]| cs.iter().map(|c| c.contact_id.clone()).collect::<Vec<_>>();
    let all = store.list_conversations(&ConversationFilter::default(), 10).await.unwrap();
    assert_eq!(order(&all), [d.id.clone(), e.id.clone()], "by last message, newest first");
    assert_eq!((all[0].unread_count, all[1].unread_count), (2, 1));
    // A reply to E (outbound, filed by recipient) makes E's the latest conversation.
    let reply = enqueue_to(store, &a, &n, t(0), "+15550005555").await;
    let all = store.list_conversations(&ConversationFilter::default(), 10).await.unwrap();
    assert_eq!(order(&all), [e.id.clone(), d.id.clone()]);
    assert_eq!(all[0].last_message_id.as_ref(), Some(&reply));
    assert_eq!(all[0].unread_count, 1, "replies are not unread");
    // The reply is found through the outbox while it waits, through the conversation index once
    // it has left, and through either while it is being sent: once, and the last, each time.
    let shows_reply_once_and_last = |stage: &'static str| {
        let (reply, conversation) = (reply.clone(), all[0].id.clone());
        async move {
            let listed = store.list_conversations(&ConversationFilter::default(), 10).await.unwrap();
            assert_eq!(listed[0].last_message_id.as_ref(), Some(&reply), "{stage}");
            let page = store.conversation_messages(&conversation, &ConversationPage::default(), 10).await.unwrap();
            let ids: Vec<_> = page.iter().map(|m| &m.id).collect();
            assert_eq!((ids.iter().filter(|id| **id == &reply).count(), ids[0]), (1, &reply), "{stage}");
        }
    };
    shows_reply_once_and_last("queued").await;
    let claimed = store.claim_messages(std::slice::from_ref(&reply), t(1), t(60_000)).await.unwrap();
    shows_reply_once_and_last("being sent").await;
    assert!(
        store.outbox().retry(&claimed[0], t(2), &MessageError::gateway("network_error", "boom"), t(2)).await.unwrap()
    );
    shows_reply_once_and_last("waiting to be retried").await;
    let claimed = store.claim_messages(std::slice::from_ref(&reply), t(3), t(60_000)).await.unwrap();
    assert!(store.record_accepted(&claimed[0], "wamid.D9", &json!({}), t(4)).await.unwrap());
    shows_reply_once_and_last("accepted").await;
    // Pages follow the last message, then the conversation id.
    let mut paged = Vec::new();
    let mut next = ConversationFilter::default();
    while let Some(c) = store.list_conversations(&next, 1).await.unwrap().pop() {
        next.before = Some(ConversationCursor { last_message_id: c.last_message_id.clone(), id: c.id.clone() });
        paged.push(c.contact_id);
        assert!(paged.len() <= 2, "{paged:?}");
    }
    assert_eq!(paged, [e.id.clone(), d.id.clone()]);
    let other = ConversationFilter { phone_number_id: Some("nope".into()), ..Default::default() };
    assert!(store.list_conversations(&other, 10).await.unwrap().is_empty());

    // Messages of E's conversation: both directions, paged both ways.
    let ce = all[0].clone();
    let inbound_e = store.find_message_by_wamid("wamid.D2").await.unwrap().unwrap();
    let late = inbound_from(&a, &n, Some("15550005555"), None, "wamid.D4");
    store.record_inbound(&late).await.unwrap();
    let ids = |ms: Vec<Message>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let page = |before: Option<&MessageId>, after: Option<&MessageId>| ConversationPage {
        before: before.cloned(),
        after: after.cloned(),
    };
    let all_e = ids(store.conversation_messages(&ce.id, &page(None, None), 10).await.unwrap());
    assert_eq!(all_e, [late.id.clone(), reply.clone(), inbound_e.id.clone()]);
    assert_eq!(ids(store.conversation_messages(&ce.id, &page(None, None), 2).await.unwrap()), all_e[..2]);
    assert_eq!(
        ids(store.conversation_messages(&ce.id, &page(Some(&reply), None), 10).await.unwrap()),
        vec![inbound_e.id.clone()]
    );
    assert_eq!(
        ids(store.conversation_messages(&ce.id, &page(None, Some(&inbound_e.id)), 1).await.unwrap()),
        vec![reply.clone()]
    );
    assert_eq!(
        ids(store.conversation_messages(&ce.id, &page(None, Some(&inbound_e.id)), 10).await.unwrap()),
        [late.id.clone(), reply.clone()],
        "after: the next ones, newest first"
    );

    // Read through the newest inbound: nothing unread, until the customer writes again.
    let newest = store.newest_inbound(&ce.id).await.unwrap().unwrap();
    assert_eq!(newest.id, late.id);
    assert!(store.mark_conversation_read(&ce.id, &newest.id, t(1)).await.unwrap());
    let read = store.get_conversation(&ce.id).await.unwrap().unwrap();
    assert_eq!((read.unread_count, read.read_through.as_ref()), (0, Some(&late.id)));
    store.record_inbound(&inbound_from(&a, &n, Some("15550005555"), None, "wamid.D5")).await.unwrap();
    assert_eq!(store.get_conversation(&ce.id).await.unwrap().unwrap().unread_count, 1);
    // Marking an older message read does not move the mark back.
    assert!(store.mark_conversation_read(&ce.id, &inbound_e.id, t(2)).await.unwrap());
    let still = store.get_conversation(&ce.id).await.unwrap().unwrap();
    assert_eq!((still.unread_count, still.read_through.as_ref()), (1, Some(&late.id)));
    let unknown = wagate_domain::id::ConversationId::generate();
    assert!(!store.mark_conversation_read(&unknown, &late.id, t(1)).await.unwrap());
    assert_eq!(store.get_conversation(&unknown).await.unwrap(), None);

    // A scheduled message is the conversation's newest, and on its first page.
    let later = enqueue_to(store, &a, &n, t(86_400_000), "+15550005555").await;
    let listed = store.list_conversations(&ConversationFilter::default(), 10).await.unwrap();
    assert_eq!(listed[0].last_message_id.as_ref(), Some(&later), "scheduled");
    let first = store.conversation_messages(&ce.id, &page(None, None), 1).await.unwrap();
    assert_eq!(ids(first), [later]);
}

async fn contacts_and_their_messages_are_paged_by_number_with_totals(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let second = number(&a, "1002", false);
    let b = account("waba-2");
    store.insert_account(&b, std::slice::from_ref(&second)).await.unwrap();
    for (wa, wamid) in [("15550007001", "wamid.N1"), ("15550007002", "wamid.N2"), ("15550007003", "wamid.N3")] {
        store.record_inbound(&inbound_from(&a, &n, Some(wa), None, wamid)).await.unwrap();
    }
    let ids = |cs: &[Contact]| cs.iter().map(|c| c.wa_id.clone().unwrap()).collect::<Vec<String>>();
    let all = store.contacts_numbered(&ContactFilter::default(), 0, 10).await.unwrap();
    assert_eq!(
        (ids(&all.items), all.total),
        (vec!["15550007003".to_owned(), "15550007002".into(), "15550007001".into()], 3)
    );
    let second_page = store.contacts_numbered(&ContactFilter::default(), 2, 2).await.unwrap();
    assert_eq!((ids(&second_page.items), second_page.total), (vec!["15550007001".to_owned()], 3));
    let search = ContactFilter { q: Some("7002".into()), ..Default::default() };
    let found = store.contacts_numbered(&search, 0, 10).await.unwrap();
    assert_eq!((ids(&found.items), found.total), (vec!["15550007002".to_owned()], 1));
    let beyond = store.contacts_numbered(&search, 5, 10).await.unwrap();
    assert_eq!((beyond.items.len(), beyond.total), (0, 1), "a page past the end is empty, the total stays");

    // One contact's messages with both numbers, both directions: queued, being sent and sent.
    let contact = store.get_contact_by_wa_id("15550007001").await.unwrap().unwrap();
    let first = store.find_message_by_wamid("wamid.N1").await.unwrap().unwrap();
    let queued = enqueue_to(store, &a, &n, t(0), "+15550007001").await;
    let sent = enqueue_to(store, &b, &second, t(0), "+15550007001").await;
    let claimed = store.claim_messages(std::slice::from_ref(&sent), t(1), t(60_000)).await.unwrap();
    let sending = enqueue_to(store, &a, &n, t(0), "+15550007001").await;
    store.claim_messages(std::slice::from_ref(&sending), t(1), t(60_000)).await.unwrap();
    assert!(store.record_accepted(&claimed[0], "wamid.N9", &json!({}), t(2)).await.unwrap());
    enqueue_to(store, &a, &n, t(0), "+15550007002").await;
    let late = inbound_from(&b, &second, Some("15550007001"), None, "wamid.N4");
    store.record_inbound(&late).await.unwrap();
    let page = |before: Option<&MessageId>, after: Option<&MessageId>| ConversationPage {
        before: before.cloned(),
        after: after.cloned(),
    };
    let messages = |p: Numbered<Message>| (p.items.into_iter().map(|m| m.id).collect::<Vec<_>>(), p.total);
    let everything = vec![late.id.clone(), sending.clone(), sent.clone(), queued.clone(), first.id.clone()];
    assert_eq!(
        messages(store.contact_messages(&contact.id, &page(None, None), 0, 10).await.unwrap()),
        (everything.clone(), 5),
        "each once, newest first"
    );
    assert_eq!(
        messages(store.contact_messages(&contact.id, &page(None, None), 2, 2).await.unwrap()),
        (everything[2..4].to_vec(), 5)
    );
    assert_eq!(
        messages(store.contact_messages(&contact.id, &page(Some(&sent), None), 0, 10).await.unwrap()),
        (vec![queued.clone(), first.id.clone()], 2)
    );
    assert_eq!(
        messages(store.contact_messages(&contact.id, &page(None, Some(&sent)), 0, 1).await.unwrap()),
        (vec![late.id.clone()], 2)
    );
    assert_eq!(
        messages(store.contact_messages(&contact.id, &page(Some(&late.id), Some(&queued)), 0, 10).await.unwrap()),
        (vec![sending, sent], 2)
    );
    let nobody = ContactId::generate();
    assert_eq!(messages(store.contact_messages(&nobody, &page(None, None), 0, 10).await.unwrap()), (vec![], 0));
}

async fn contact_fields_and_marketing_preferences(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    store.record_inbound(&inbound_from(&a, &n, Some("15550006666"), Some("US.666"), "wamid.F1")).await.unwrap();
    let c = store.get_contact_by_wa_id("15550006666").await.unwrap().unwrap();
    let update = |attributes: serde_json::Value, tags: Option<&[&str]>, opt: Option<bool>| ContactUpdate {
        attributes: attributes.as_object().cloned(),
        tags: tags.map(|t| t.iter().map(|s| s.to_string()).collect()),
        marketing_opt_out: opt,
        at: t(1),
    };
    let first = update(json!({"plan": "gold", "city": "Lima"}), Some(&["vip", "b2b"]), None);
    assert_eq!(store.update_contact(&c.id, &first).await.unwrap(), ContactUpdated::Updated);
    let second = update(json!({"city": null, "orders": 3}), Some(&["vip"]), None);
    assert_eq!(store.update_contact(&c.id, &second).await.unwrap(), ContactUpdated::Updated);
    let got = store.get_contact(&c.id).await.unwrap().unwrap();
    assert_eq!(serde_json::Value::Object(got.attributes.clone()), json!({"plan": "gold", "orders": 3}));
    assert_eq!(got.tags, ["vip"]);
    let too_big = json!({"blob": "x".repeat(wagate_domain::contact::MAX_ATTRIBUTES_BYTES)});
    let refused = store.update_contact(&c.id, &update(too_big, Some(&[]), None)).await.unwrap();
    assert!(matches!(refused, ContactUpdated::Invalid(ref e) if e.rule == "max_size"), "{refused:?}");
    assert_eq!(store.get_contact(&c.id).await.unwrap().unwrap().tags, ["vip"], "a refused update changes nothing");
    let unknown = ContactId::generate();
    assert_eq!(store.update_contact(&unknown, &update(json!({}), None, None)).await.unwrap(), ContactUpdated::NotFound);

    // Search by name, number, user id and tag; pages by id.
    store.record_inbound(&inbound_from(&a, &n, Some("15550007777"), None, "wamid.F2")).await.unwrap();
    let search = |q: &str| ContactFilter { q: Some(q.into()), ..Default::default() };
    let found = |f: ContactFilter| async move {
        store.list_contacts(&f, 10).await.unwrap().into_iter().map(|c| c.wa_id.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(found(search("NAME OF WAMID.F1")).await, ["15550006666"]);
    assert_eq!(found(search("+1 555 000 7777")).await, ["15550007777"]);
    assert_eq!(found(search("US.666")).await, ["15550006666"]);
    assert_eq!(found(search("VIP")).await, ["15550006666"]);
    assert_eq!(found(search("100%")).await, Vec::<String>::new(), "LIKE wildcards are literal");
    assert_eq!(found(ContactFilter { tag: Some("vip".into()), ..Default::default() }).await, ["15550006666"]);
    let newest = store.list_contacts(&ContactFilter::default(), 1).await.unwrap();
    assert_eq!(newest[0].wa_id.as_deref(), Some("15550007777"));
    let older = ContactFilter { before: Some(newest[0].id.clone()), ..Default::default() };
    assert_eq!(found(older).await, ["15550006666"]);

    // Case-folding is the same on both backends, beyond ASCII.
    let ids = ContactIds { wa_id: Some("15550007778".into()), user_id: None };
    let elodie = store.upsert_contact(&ids, Some("Élodie Ñandú"), t(1)).await.unwrap();
    let tags = ContactUpdate { attributes: None, tags: Some(vec!["Café".into()]), marketing_opt_out: None, at: t(1) };
    store.update_contact(&elodie, &tags).await.unwrap();
    assert_eq!(found(search("ÉLODIE ñANDÚ")).await, ["15550007778"]);
    assert_eq!(found(search("élodie")).await, ["15550007778"]);
    assert_eq!(found(search("CAFÉ")).await, ["15550007778"]);
    for spelling in ["café", "CAFÉ", "Café"] {
        let by_tag = ContactFilter { tag: Some(spelling.into()), ..Default::default() };
        assert_eq!(found(by_tag).await, ["15550007778"], "a tag is found in any case: {spelling}");
    }

    // Preferences apply by their own time, whatever the order they arrive in.
    let opted = |c: &Contact| c.marketing_opted_out();
    assert!(store.set_marketing_preference(&c.id, true, t(10)).await.unwrap());
    assert!(opted(&store.get_contact(&c.id).await.unwrap().unwrap()));
    store.set_marketing_preference(&c.id, false, t(5)).await.unwrap();
    assert!(opted(&store.get_contact(&c.id).await.unwrap().unwrap()), "an older resume");
    store.set_marketing_preference(&c.id, false, t(20)).await.unwrap();
    let resumed = store.get_contact(&c.id).await.unwrap().unwrap();
    assert_eq!((resumed.marketing_opt_out_at, resumed.marketing_opt_in_at), (Some(t(10)), Some(t(20))));
    assert!(!opted(&resumed));
    store.set_marketing_preference(&c.id, true, t(15)).await.unwrap();
    assert!(!opted(&store.get_contact(&c.id).await.unwrap().unwrap()), "an older stop");
    assert!(!store.set_marketing_preference(&unknown, true, t(1)).await.unwrap());
    // Contacts known only by a preference or a user id can be made and found.
    let ids = ContactIds { wa_id: None, user_id: Some("US.888".into()) };
    let made = store.upsert_contact(&ids, Some("Bo"), t(1)).await.unwrap();
    assert_eq!(store.upsert_contact(&ids, None, t(2)).await.unwrap(), made);
    assert_eq!(store.get_contact(&made).await.unwrap().unwrap().profile_name.as_deref(), Some("Bo"));
}

/// Every order of `items`.
fn orders<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in orders(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

async fn marketing_preferences_do_not_depend_on_order(store: &dyn Store) {
    // (stop?, time): the latest stop against the latest resume decides.
    let sets: [(&[(bool, i64)], bool); 3] = [
        (&[(true, 3), (true, 1), (false, 2)], true),
        (&[(true, 1), (true, 3), (false, 4), (false, 2)], false),
        (&[(false, 5), (true, 5)], false),
    ];
    let mut n = 0;
    for (events, opted_out) in sets {
        let mut outcomes = HashSet::new();
        for order in orders(events) {
            n += 1;
            let wa_id = format!("1555019{n:04}");
            let ids = ContactIds { wa_id: Some(wa_id.clone()), user_id: None };
            let c = store.upsert_contact(&ids, None, t(0)).await.unwrap();
            for (i, &(stop, at)) in order.iter().enumerate() {
                // Stops come from `user_preferences` and from 131050 failures alike.
                if stop && i % 2 == 1 {
                    store.mark_marketing_opt_out(&wa_id, t(at)).await.unwrap();
                } else {
                    store.set_marketing_preference(&c, stop, t(at)).await.unwrap();
                }
            }
            let got = store.get_contact(&c).await.unwrap().unwrap();
            assert_eq!(got.marketing_opted_out(), opted_out, "{order:?}");
            outcomes.insert((got.marketing_opt_out_at, got.marketing_opt_in_at));
        }
        assert_eq!(outcomes.len(), 1, "every order ends alike: {events:?} {outcomes:?}");
    }
    // The two orders of the review, spelled out.
    for (order, name) in [
        ([(true, 3), (true, 1), (false, 2)], "stop@3, stop@1, resume@2"),
        ([(true, 1), (false, 2), (true, 3)], "stop@1, resume@2, stop@3"),
    ] {
        let ids = ContactIds { wa_id: None, user_id: Some(format!("US.{name}")) };
        let c = store.upsert_contact(&ids, None, t(0)).await.unwrap();
        for (stop, at) in order {
            store.set_marketing_preference(&c, stop, t(at)).await.unwrap();
        }
        assert!(store.get_contact(&c).await.unwrap().unwrap().marketing_opted_out(), "{name}");
    }
    // A merge combines the same way: a stop@3 on one contact, stop@1 and resume@2 on the other.
    let phone = ContactIds { wa_id: Some("15550198888".into()), user_id: None };
    let user = ContactIds { wa_id: None, user_id: Some("US.8888".into()) };
    let older = store.upsert_contact(&phone, None, t(0)).await.unwrap();
    let newer = store.upsert_contact(&user, None, t(0)).await.unwrap();
    store.set_marketing_preference(&older, true, t(1)).await.unwrap();
    store.set_marketing_preference(&older, false, t(2)).await.unwrap();
    store.set_marketing_preference(&newer, true, t(3)).await.unwrap();
    let both = ContactIds { wa_id: phone.wa_id.clone(), user_id: user.user_id.clone() };
    assert_eq!(store.upsert_contact(&both, None, t(4)).await.unwrap(), older);
    let merged = store.get_contact(&older).await.unwrap().unwrap();
    assert_eq!((merged.marketing_opt_out_at, merged.marketing_opt_in_at), (Some(t(3)), Some(t(2))));
    assert!(merged.marketing_opted_out());
}

fn template(a: &Account, id: &str, name: &str, language: &str, status: &str) -> MessageTemplate {
    MessageTemplate {
        id: id.into(),
        account_id: a.id.clone(),
        waba_id: a.waba_id.clone(),
        name: name.into(),
        language: language.into(),
        category: "UTILITY".into(),
        status: status.into(),
        parameter_format: "POSITIONAL".into(),
        components: json!([{"type": "BODY", "text": "Order {{1}} \u{0} ships ü 🚚"}]),
        quality_score: None,
        rejected_reason: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

async fn template_events(store: &dyn Store) -> usize {
    let all = EventFilter { order: EventOrder::After(0), ..EventFilter::default() };
    store.list_events(&all, 1000).await.unwrap().iter().filter(|e| e.kind == "template.updated").count()
}

async fn templates_are_synced_changed_and_listed(store: &dyn Store) {
    let (a, _) = seeded(store).await;
    assert_eq!(store.templates_synced_at(&a.waba_id).await.unwrap(), None);
    let first = [
        template(&a, "11", "order_update", "en_US", "APPROVED"),
        template(&a, "12", "order_update", "pt_BR", "PENDING"),
        template(&a, "13", "welcome", "en_US", "APPROVED"),
    ];
    let changed = store.store_templates(&a.waba_id, &first, true, t(10)).await.unwrap();
    assert_eq!(changed.len(), 3);
    assert_eq!(store.templates_synced_at(&a.waba_id).await.unwrap(), Some(t(10)));
    assert_eq!(template_events(store).await, 3);
    // Stored as given, odd characters and all.
    assert_eq!(store.get_template("11").await.unwrap().as_ref(), Some(&first[0]));
    // The same list again changes nothing and tells of nothing.
    assert!(store.store_templates(&a.waba_id, &first, true, t(20)).await.unwrap().is_empty());
    assert_eq!(template_events(store).await, 3);
    // A status change is one change and one event; a name made anew at Meta replaces the old
    // row; a template missing from a complete list is gone.
    let mut approved = first[1].clone();
    approved.status = "APPROVED".into();
    let remade = template(&a, "99", "welcome", "en_US", "PENDING");
    let changed = store.store_templates(&a.waba_id, &[first[0].clone(), approved, remade], true, t(30)).await.unwrap();
    assert_eq!(changed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["12", "99"]);
    assert_eq!(template_events(store).await, 5);
    assert_eq!(store.get_template("13").await.unwrap(), None);
    let found = store.find_template(&a.waba_id, "welcome", "en_US").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.status.as_str()), ("99", "PENDING"));
    // Lists: by name, language and id, filtered, paged.
    let page = store.list_templates(&TemplateFilter::default(), 2).await.unwrap();
    assert_eq!(page.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["11", "12"]);
    let last = &page[1];
    let after = TemplateFilter {
        after: Some((last.name.clone(), last.language.clone(), last.id.clone())),
        ..TemplateFilter::default()
    };
    let rest = store.list_templates(&after, 10).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["99"]);
    let pending = TemplateFilter { status: Some("PENDING".into()), ..TemplateFilter::default() };
    assert_eq!(store.list_templates(&pending, 10).await.unwrap().len(), 1);
    let other = TemplateFilter { waba_id: Some("other".into()), ..TemplateFilter::default() };
    assert!(store.list_templates(&other, 10).await.unwrap().is_empty());
    // A partial store (one template from a webhook) removes nothing.
    let mut paused = first[0].clone();
    paused.status = "PAUSED".into();
    store.store_templates(&a.waba_id, &[paused], false, t(40)).await.unwrap();
    assert_eq!(store.list_templates(&TemplateFilter::default(), 10).await.unwrap().len(), 3);
    assert_eq!(store.templates_synced_at(&a.waba_id).await.unwrap(), Some(t(30)));
    assert_eq!(store.delete_templates(&["11".into(), "nope".into()]).await.unwrap(), 1);
    assert_eq!(store.get_template("11").await.unwrap(), None);
}

async fn groups_are_written_only_over_what_was_read(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let g = Group {
        id: "Z3JvdXAx".into(),
        account_id: a.id.clone(),
        phone_number_id: n.id.clone(),
        request_id: Some("REQ1".into()),
        // NUL is refused before storage (PostgreSQL cannot keep it); the rest of Unicode is kept.
        subject: "Ünïcode 🌿 \u{202e}club\u{fffd} 𝔘".into(),
        description: None,
        invite_link: Some("https://chat.whatsapp.com/abc".into()),
        join_approval_mode: Some("auto_approve".into()),
        participants: json!([]),
        join_requests: json!([]),
        created_at: t(0),
        updated_at: t(0),
    };
    assert!(store.save_group(&g, None).await.unwrap());
    assert!(!store.save_group(&g, None).await.unwrap(), "an id is taken once");
    assert_eq!(store.get_group(&g.id).await.unwrap().as_ref(), Some(&g));
    assert_eq!(store.find_group_by_request("REQ1").await.unwrap().map(|g| g.id), Some(g.id.clone()));
    // Two writers read it at t(0); the first write wins, the second must read again.
    let mut first = g.clone();
    first.participants = json!([{"wa_id": "15550001", "user_id": null}]);
    first.updated_at = t(1);
    let mut second = g.clone();
    second.subject = "renamed".into();
    second.updated_at = t(1);
    assert!(store.save_group(&first, Some(t(0))).await.unwrap());
    assert!(!store.save_group(&second, Some(t(0))).await.unwrap());
    let now = store.get_group(&g.id).await.unwrap().unwrap();
    assert_eq!((now.subject.as_str(), now.participants.clone()), (g.subject.as_str(), first.participants.clone()));
    let mut other = g.clone();
    other.id = "Z3JvdXAy".into();
    other.request_id = None;
    store.save_group(&other, None).await.unwrap();
    let page = store.list_groups(&GroupFilter { phone_number_id: Some(n.id.clone()), after: None }, 1).await.unwrap();
    assert_eq!(page.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["Z3JvdXAx"]);
    let rest = GroupFilter { phone_number_id: None, after: Some("Z3JvdXAx".into()) };
    assert_eq!(store.list_groups(&rest, 10).await.unwrap().len(), 1);
    assert!(store.delete_group(&g.id).await.unwrap());
    assert!(!store.delete_group(&g.id).await.unwrap());
    assert_eq!(store.get_group(&g.id).await.unwrap(), None);
}

macro_rules! suite {
    ($backend:ident, $b:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        if let Some(f) = fixture($b).await {
                            super::$name(f.store.as_ref()).await;
                        }
                    }
                };
            }

            case!(accounts_and_numbers);
            case!(one_sandbox_account_and_defaults_per_mode);
            case!(api_keys);
            case!(ensured_api_keys_are_inserted_once);
            case!(enqueue_writes_message_history_and_outbox);
            case!(claims_are_exclusive_until_the_lease_expires);
            case!(failure_and_retry);
            case!(statuses_fold_by_rank_with_implied_delivered);
            case!(failed_status_overrides_sent);
            case!(group_statuses_per_participant_and_earliest_reports);
            case!(replies_echoes_and_webhook_events);
            case!(statuses_apply_in_batches);
            case!(statuses_before_the_wamid_are_kept_and_applied);
            case!(inbound_messages_and_contacts);
            case!(unclaimed_messages_can_be_cancelled);
            case!(messages_are_listed_newest_first_with_filters);
            case!(webhook_deliveries);
            case!(each_recipient_gets_its_messages_one_at_a_time_in_order);
            case!(expired_messages_fail_unless_being_sent);
            case!(scheduled_messages_wait_for_their_time);
            case!(a_number_is_dispatched_by_one_holder_at_a_time);
            case!(dispatchers_count_while_they_announce_themselves);
            case!(accounts_pause_and_resume_and_numbers_keep_their_limits);
            case!(opt_outs_tiers_and_queue_depths);
            case!(the_window_is_judged_with_the_send);
            // Contacts and conversations.
            case!(contacts_are_linked_by_wa_id_and_user_id);
            case!(conversations_list_page_and_read);
            case!(contact_fields_and_marketing_preferences);
            case!(contacts_and_their_messages_are_paged_by_number_with_totals);
            case!(marketing_preferences_do_not_depend_on_order);
            // Templates.
            case!(templates_are_synced_changed_and_listed);
            case!(groups_are_written_only_over_what_was_read);

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn heads_are_found_past_a_long_queue() {
                if let Some(f) = fixture($b).await {
                    super::heads_are_found_past_a_long_queue(f.store.clone()).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn batched_concurrent_sends_are_all_stored() {
                if let Some(f) = fixture($b).await {
                    super::batched_concurrent_sends_are_all_stored(f.store.clone()).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn an_idempotency_key_is_used_once_until_it_expires() {
                if let Some(f) = fixture($b).await {
                    super::an_idempotency_key_is_used_once_until_it_expires(f.store.clone()).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_claims_never_overlap() {
                if let Some(f) = fixture($b).await {
                    super::concurrent_claims_never_overlap(f.store.clone()).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn statuses_racing_the_send_result_are_never_lost() {
                if let Some(f) = fixture($b).await {
                    super::statuses_racing_the_send_result_are_never_lost(f.store.clone()).await;
                }
            }

            #[tokio::test]
            async fn reopening_keeps_everything() {
                super::reopening_keeps_everything($b).await;
            }

            #[tokio::test]
            async fn a_first_entry_stored_as_a_row_shows_once() {
                super::a_first_entry_stored_as_a_row_shows_once($b).await;
            }
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
