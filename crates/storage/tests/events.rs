//! The events part of the storage suite, run against SQLite always and PostgreSQL when
//! `WAGATE_TEST_DATABASE_URL` is set, like `conformance.rs`: each change's events stored once
//! with it, fan-out to endpoints, the deliveries' leased queue and its log.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use wagate_domain::event::EventPattern;
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::secret::Secret;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, TestDatabase, claim_concurrently};
use wagate_storage::*;

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

struct Fixture {
    store: Arc<dyn Store>,
    account: Account,
    number: PhoneNumber,
    _db: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDatabase::new(backend).await?;
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    let account = testing::account("waba-1", t(0));
    let number = testing::phone_number(&account, "1001", true, t(0));
    store.insert_account(&account, std::slice::from_ref(&number)).await.unwrap();
    Some(Fixture { store, account, number, _db: db })
}

fn all_events() -> EventFilter {
    EventFilter { order: EventOrder::After(0), ..EventFilter::default() }
}

/// Every event committed, in order.
async fn listed(store: &dyn Store) -> Vec<Event> {
    store.list_events(&all_events(), 100).await.unwrap()
}

async fn event_types(store: &dyn Store) -> Vec<String> {
    listed(store).await.into_iter().map(|e| e.kind).collect()
}

/// A message queued to `recipient` and claimed.
async fn claimed(f: &Fixture, recipient: &str) -> (MessageId, Leased<Dispatch>) {
    let m = testing::send_now(&f.number, recipient, "text", json!({"body": "hi"}));
    let id = m.id.clone();
    assert_eq!(f.store.enqueue_message(m).await.unwrap(), Enqueued::Stored);
    let d = f.store.claim_messages(std::slice::from_ref(&id), Timestamp::now(), t(1_000_000_000)).await.unwrap();
    (id, d.into_iter().next().expect("claimed"))
}

async fn each_status_makes_one_event(f: Fixture) {
    let store = f.store.as_ref();
    let (id, d) = claimed(&f, "+15550100001").await;
    assert!(event_types(store).await.is_empty(), "queued and sending make no event");
    assert!(store.record_accepted(&d, "wamid.A", &json!({"messages": [{"id": "wamid.A"}]}), t(2)).await.unwrap());
    let s = |st, at| testing::status_update(&f.account.id, "wamid.A", st, at);
    store.apply_statuses(&[s(DeliveryStatus::Sent, 3)], t(3)).await.unwrap();
    // Read before delivered (Meta skips it): both, once; then repeats and the late delivered: none.
    store.apply_statuses(&[s(DeliveryStatus::Read, 5), s(DeliveryStatus::Read, 5)], t(5)).await.unwrap();
    store.apply_statuses(&[s(DeliveryStatus::Read, 5), s(DeliveryStatus::Delivered, 4)], t(6)).await.unwrap();
    store.apply_statuses(&[s(DeliveryStatus::Sent, 3)], t(7)).await.unwrap();
    assert_eq!(event_types(store).await, ["message.accepted", "message.sent", "message.delivered", "message.read"]);
    let events = listed(store).await;
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "in commit order");
    assert!(events.iter().all(|e| e.phone_number_id.as_deref() == Some("1001") && e.id.starts_with("evt_")));
    assert_eq!(events[0].data["id"], id.as_str(), "the data is the message");
    assert_eq!(events[3].data["status"], "read", "as it was then");
    assert_eq!(events[0].data["status"], "accepted");
    assert_eq!(store.get_event(&events[1].id).await.unwrap().as_ref(), Some(&events[1]));

    // A failure that comes after `sent` is only recorded: no event says the message failed.
    store.apply_statuses(&[s(DeliveryStatus::Failed, 8)], t(8)).await.unwrap();
    assert_eq!(event_types(store).await.len(), 4);

    // A send that fails, one canceled, one that expires.
    let (_, failed) = claimed(&f, "+15550100002").await;
    let error = MessageError::gateway("network_error", "gave up");
    assert!(store.record_failed(&failed, &error, None, t(9)).await.unwrap());
    let queued = testing::send_now(&f.number, "+15550100003", "text", json!({"body": "later"}));
    let queued_id = queued.id.clone();
    store.enqueue_message(queued).await.unwrap();
    assert!(store.cancel_unclaimed(&queued_id, &MessageError::gateway("canceled", "by the API"), t(10)).await.unwrap());
    let mut expiring = testing::send_now(&f.number, "+15550100004", "text", json!({"body": "soon"}));
    expiring.expires_at = Some(Timestamp::now().minus(std::time::Duration::from_secs(1)));
    store.enqueue_message(expiring).await.unwrap();
    assert_eq!(store.expire_outbox(Timestamp::now(), 10).await.unwrap().len(), 1);
    let types = event_types(store).await;
    assert_eq!(&types[4..], ["message.failed", "message.canceled", "message.expired"]);

    // A customer's message, once however often it is delivered.
    let inbound = NewInbound {
        id: MessageId::generate(),
        account_id: f.account.id.clone(),
        phone_number_id: "1001".into(),
        wamid: "wamid.IN1".into(),
        from: "+15551234567".into(),
        wa_id: Some("15551234567".into()),
        user_id: None,
        profile_name: Some("Zoë \u{202e}".into()),
        kind: "text".into(),
        content: json!({"text": {"body": "hé \u{1F600}"}}),
        reply_to_wamid: None,
        error: None,
        sent_at: t(11),
        received_at: t(12),
    };
    let again = NewInbound { id: MessageId::generate(), ..inbound.clone() };
    assert_eq!(store.record_inbounds(&[inbound.clone(), again]).await.unwrap(), [true, false]);
    let received = of_type(store, "message.received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data["id"], inbound.id.as_str());

    // Newest first, filtered by pattern and number, a page at a time. The customer's contact
    // was made with their first message, in the same transaction.
    let newest = store.list_events(&EventFilter::default(), 2).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["message.received", "contact.created"]);
    assert_eq!(newest[1].data["wa_id"], "15551234567");
    let before = EventFilter { order: EventOrder::Newest { before: Some(newest[1].seq) }, ..EventFilter::default() };
    assert_eq!(store.list_events(&before, 1).await.unwrap()[0].kind, "message.expired");
    let other_number = EventFilter { phone_number_id: Some("9999".into()), ..all_events() };
    assert!(store.list_events(&other_number, 10).await.unwrap().is_empty());
}

async fn of_type(store: &dyn Store, p: &str) -> Vec<Event> {
    let filter = EventFilter { types: vec![pattern(p)], ..all_events() };
    store.list_events(&filter, 100).await.unwrap()
}

/// Contacts, media, accounts and Meta's other webhook changes each make their events, once.
async fn other_changes_make_their_events(f: Fixture) {
    let store = f.store.as_ref();
    let phone = ContactIds { wa_id: Some("15550001111".into()), user_id: None };
    let user = ContactIds { wa_id: None, user_id: Some("US.1234567890".into()) };
    let first = store.upsert_contact(&phone, Some("Ana"), t(1)).await.unwrap();
    assert_eq!(store.upsert_contact(&phone, Some("Ana"), t(2)).await.unwrap(), first, "known: no event");
    let second = store.upsert_contact(&user, None, t(3)).await.unwrap();
    // Both ids in one message: the two contacts become one (an update of the older).
    let both = ContactIds { wa_id: phone.wa_id.clone(), user_id: user.user_id.clone() };
    assert_eq!(store.upsert_contact(&both, None, t(4)).await.unwrap(), first);
    assert!(store.set_marketing_preference(&first, true, t(5)).await.unwrap());
    let update = ContactUpdate { attributes: None, tags: Some(vec!["vip".into()]), marketing_opt_out: None, at: t(6) };
    assert!(matches!(store.update_contact(&first, &update).await.unwrap(), ContactUpdated::Updated));
    let contacts = of_type(store, "contact.*").await;
    let seen: Vec<(&str, &str)> = contacts.iter().map(|e| (e.kind.as_str(), e.data["id"].as_str().unwrap())).collect();
    let (a, b) = (first.as_str(), second.as_str());
    assert_eq!(
        seen,
        [
            ("contact.created", a),
            ("contact.created", b),
            ("contact.updated", a),
            ("contact.updated", a),
            ("contact.updated", a)
        ]
    );

    // A media file stored, another given up on.
    let message = MessageId::generate();
    let inbound = NewInbound {
        id: message.clone(),
        account_id: f.account.id.clone(),
        phone_number_id: "1001".into(),
        wamid: "wamid.IMG".into(),
        from: "+15550001111".into(),
        wa_id: Some("15550001111".into()),
        user_id: None,
        profile_name: None,
        kind: "image".into(),
        content: json!({"image": {"id": "9001"}}),
        reply_to_wamid: None,
        error: None,
        sent_at: t(7),
        received_at: t(7),
    };
    store.record_inbounds(&[inbound]).await.unwrap();
    for meta_id in ["9001", "9002"] {
        let media = NewMedia {
            id: wagate_domain::id::MediaId::generate(),
            account_id: f.account.id.clone(),
            phone_number_id: "1001".into(),
            message_id: message.clone(),
            meta_media_id: meta_id.into(),
            kind: "image".into(),
            mime_type: "image/jpeg".into(),
            sha256: None,
            filename: None,
            caption: None,
            created_at: t(8),
        };
        assert!(store.insert_media(&media).await.unwrap());
    }
    let jobs = store.media_downloads().claim(t(9), t(100_000), 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let stored = StoredMedia { file_size: 3, sha256: "AAAA".into(), at: t(10) };
    assert!(store.media_stored(&jobs[0], &stored).await.unwrap());
    assert!(store.media_downloads().give_up(&jobs[1], "too large", t(11)).await.unwrap());
    assert!(!store.media_downloads().give_up(&jobs[1], "again", t(12)).await.unwrap());
    let media: Vec<(String, String)> = of_type(store, "media.*")
        .await
        .into_iter()
        .map(|e| (e.kind, e.data["id"].as_str().unwrap().to_owned()))
        .collect();
    let ids = (jobs[0].item.id.as_str().to_owned(), jobs[1].item.id.as_str().to_owned());
    assert_eq!(media, [("media.stored".to_owned(), ids.0), ("media.failed".to_owned(), ids.1)]);

    // An account paused and resumed, each once.
    let pause = Pause { since: t(13), error: MessageError::gateway("account_locked", "locked") };
    assert!(store.pause_account(&f.account.id, f.account.updated_at, &pause).await.unwrap());
    assert!(!store.pause_account(&f.account.id, f.account.updated_at, &pause).await.unwrap());
    assert!(store.resume_account(&f.account.id).await.unwrap());
    assert!(!store.resume_account(&f.account.id).await.unwrap());
    let accounts: Vec<String> = of_type(store, "account.*").await.into_iter().map(|e| e.kind).collect();
    assert_eq!(accounts, ["account.paused", "account.resumed"]);

    // Meta's other changes: once, however often Meta delivers them.
    let change = |delivery| NewWebhookEvent {
        account_id: f.account.id.clone(),
        delivery_id: delivery,
        dedup_key: "template-42-APPROVED".into(),
        field: "message_template_status_update".into(),
        kind: "APPROVED".into(),
        subject: Some("42".into()),
        payload: json!({"event": "APPROVED", "message_template_id": 42}),
        occurred_at: t(14),
        recorded_at: t(15),
    };
    assert!(store.record_webhook_event(&change(1)).await.unwrap());
    assert!(!store.record_webhook_event(&change(2)).await.unwrap());
    let changes = of_type(store, "account.event").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].data["field"].as_str(), changes[0].data["kind"].as_str()),
        (Some("message_template_status_update"), Some("APPROVED"))
    );
}

fn pattern(p: &str) -> EventPattern {
    EventPattern::parse(p).unwrap()
}

fn endpoint(id: &str, patterns: &[&str], numbers: Option<Vec<String>>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        url: format!("https://example.com/{id}"),
        description: Some("ünïcode ✓".into()),
        events: patterns.iter().map(|p| pattern(p)).collect(),
        phone_number_ids: numbers,
        headers: BTreeMap::from([("authorization".to_owned(), Secret::new("Bearer x"))]),
        format: EndpointFormat::Standard,
        app_secret: None,
        include_echoes: false,
        enabled: true,
        disabled_reason: None,
        secret: Secret::new("whsec_c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3ODkwMTI="),
        previous_secret: None,
        failing_since: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn attempt(status: Option<u16>, at: Timestamp) -> Attempt {
    Attempt {
        at,
        status,
        latency_ms: 12,
        response: Some("ok\u{FFFD}".into()),
        error: status.filter(|s| !(200..300).contains(s)).map(|s| format!("the endpoint answered {s}")),
    }
}

async fn endpoints_get_what_they_subscribe_to(f: Fixture) {
    let store = f.store.as_ref();
    let all = endpoint("wep_all", &["*"], None);
    let reads = endpoint("wep_reads", &["message.read", "contact.*"], None);
    let elsewhere = endpoint("wep_elsewhere", &["message.*"], Some(vec!["2002".into()]));
    for e in [&all, &reads, &elsewhere] {
        store.insert_endpoint(e).await.unwrap();
    }
    assert_eq!(store.get_endpoint("wep_reads").await.unwrap().as_ref(), Some(&reads), "secrets and headers round-trip");
    assert_eq!(store.list_endpoints().await.unwrap().len(), 3);

    let (_, d) = claimed(&f, "+15550100009").await;
    store.record_accepted(&d, "wamid.F", &json!({}), t(2)).await.unwrap();
    let read = testing::status_update(&f.account.id, "wamid.F", DeliveryStatus::Read, 3);
    store.apply_statuses(&[read], t(3)).await.unwrap();
    // accepted, delivered (implied) and read: all three to `*`, read alone to `message.read`.
    assert_eq!(store.fan_out_events(1000, t(4)).await.unwrap(), 3);
    assert_eq!(store.fan_out_events(1000, t(4)).await.unwrap(), 0, "each event is fanned out once");
    let pending: BTreeMap<String, i64> = store.pending_event_deliveries().await.unwrap().into_iter().collect();
    assert_eq!(pending, BTreeMap::from([("wep_all".to_owned(), 3), ("wep_reads".to_owned(), 1)]));

    // Claimed per endpoint, each once while leased.
    let now = t(1_000);
    assert_eq!(
        store.due_endpoints(now).await.unwrap().into_iter().collect::<HashSet<_>>(),
        HashSet::from(["wep_all".to_owned(), "wep_reads".to_owned()])
    );
    assert!(store.due_endpoints(t(3)).await.unwrap().is_empty(), "not due before they were made");
    let claimed = store.claim_event_deliveries("wep_all", now, now.plus(MINUTE), 2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.event.kind.as_str()).collect::<Vec<_>>(),
        ["message.accepted", "message.delivered"]
    );
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(store.claim_event_deliveries("wep_all", now, now.plus(MINUTE), 5).await.unwrap().len(), 1);
    assert!(store.claim_event_deliveries("wep_all", now, now.plus(MINUTE), 5).await.unwrap().is_empty());

    // One delivered, one retried (its endpoint failing since then), its attempts logged.
    let queue = store.event_deliveries();
    assert!(
        queue
            .retry(&claimed[1], now.minus(std::time::Duration::from_millis(1)), &attempt(Some(503), t(5)), t(5))
            .await
            .unwrap()
    );
    assert!(!queue.retry(&claimed[1], now, &attempt(Some(503), t(5)), t(5)).await.unwrap(), "the lease was given back");
    assert_eq!(store.get_endpoint("wep_all").await.unwrap().unwrap().failing_since, Some(t(5)));
    store.complete_event_deliveries(&[(&claimed[0], attempt(Some(204), t(6)))]).await.unwrap();
    let again = store.claim_event_deliveries("wep_all", now, now.plus(MINUTE), 5).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, claimed[1].id, 2));
    store.complete_event_deliveries(&[(&again[0], attempt(Some(200), t(7)))]).await.unwrap();
    assert_eq!(store.get_endpoint("wep_all").await.unwrap().unwrap().failing_since, None, "a success clears it");
    let log = store.list_attempts("wep_all", None, 10).await.unwrap();
    assert_eq!(log.iter().map(|a| a.attempt.status).collect::<Vec<_>>(), [Some(200), Some(204), Some(503)]);
    assert_eq!(log[2].attempt.error.as_deref(), Some("the endpoint answered 503"));
    assert_eq!(log[0].event_id, claimed[1].event.id);
    assert_eq!(store.list_attempts("wep_all", Some(log[1].id), 10).await.unwrap().len(), 1);

    // Given up: done, failed.
    let reads_one = store.claim_event_deliveries("wep_reads", now, now.plus(MINUTE), 5).await.unwrap().remove(0);
    assert!(queue.give_up(&reads_one, &attempt(None, t(8)), t(8)).await.unwrap());
    assert_eq!(queue.pending().await.unwrap(), 1, "the third of wep_all's three, still leased");

    // Disabled: an event says so, and its deliveries wait.
    assert!(store.disable_endpoint("wep_reads", "the endpoint answered 410 Gone", t(9)).await.unwrap());
    assert!(!store.disable_endpoint("wep_reads", "again", t(9)).await.unwrap());
    let disabled = of_type(store, "endpoint.*").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].data["id"], "wep_reads");
    let got = store.get_endpoint("wep_reads").await.unwrap().unwrap();
    assert_eq!((got.enabled, got.disabled_reason.as_deref()), (false, Some("the endpoint answered 410 Gone")));

    // Replays: named events whatever the subscription, or those since a time it subscribes to.
    let events = store.list_events(&all_events(), 100).await.unwrap();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(store.replay_events("wep_reads", &Replay::Ids(ids[..2].to_vec()), t(10)).await.unwrap(), 2);
    assert_eq!(store.replay_events("wep_reads", &Replay::Since(t(0)), t(10)).await.unwrap(), 1, "message.read");
    assert_eq!(store.replay_events("wep_missing", &Replay::Since(t(0)), t(10)).await.unwrap(), 0);

    // A ping goes to its endpoint alone, and fan-out passes it by.
    let ping = store.ping_endpoint("wep_elsewhere", t(11)).await.unwrap();
    assert_eq!(ping.kind, "ping");
    assert_eq!(store.fan_out_events(1000, t(11)).await.unwrap(), 2, "endpoint.disabled and the ping");
    let pinged = store.claim_event_deliveries("wep_elsewhere", now, now.plus(MINUTE), 5).await.unwrap();
    assert_eq!(pinged.iter().map(|d| d.event.id.as_str()).collect::<Vec<_>>(), [ping.id.as_str()]);

    // Deleting an endpoint takes its deliveries and log with it.
    assert!(store.delete_endpoint("wep_all").await.unwrap());
    assert!(!store.delete_endpoint("wep_all").await.unwrap());
    assert!(store.list_attempts("wep_all", None, 10).await.unwrap().is_empty());
}

fn meta_endpoint(id: &str, numbers: Option<Vec<String>>, echoes: bool) -> WebhookEndpoint {
    WebhookEndpoint {
        events: Vec::new(),
        format: EndpointFormat::Meta,
        app_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
        include_echoes: echoes,
        ..endpoint(id, &[], numbers)
    }
}

/// Finishes a delivery of `body` as the processor does.
async fn processed(f: &Fixture, body: &[u8]) {
    let store = f.store.as_ref();
    let delivery = NewDelivery { account_id: Some(f.account.id.clone()), body: body.to_vec(), received_at: t(0) };
    store.insert_delivery(delivery).await.unwrap();
    let claimed = store.deliveries().claim(t(10), t(1_000_000_000), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let finished: Vec<(&Leased<Delivery>, Option<String>)> = claimed.iter().map(|d| (d, None)).collect();
    store.finish_deliveries(&finished, t(1)).await.unwrap();
}

async fn meta_bodies_are_kept_for_meta_endpoints_alone(f: Fixture) {
    let store = f.store.as_ref();
    let body = |number: &str| {
        format!(
            "{{\"object\":\"whatsapp_business_account\",  \"entry\":[{{\"id\":\"waba-1\",\"changes\":[{{\"value\":\
             {{\"metadata\":{{\"phone_number_id\":\"{number}\"}},\"note\":\"caf\\u00e9 ✓\"}},\"field\":\"messages\"}}]}}]}}\n"
        )
        .into_bytes()
    };
    processed(&f, &body("1001")).await;
    assert!(event_types(store).await.is_empty(), "no endpoint of Meta's format: Meta's bodies are not kept");

    let echoes = meta_endpoint("wep_meta", None, true);
    store.insert_endpoint(&echoes).await.unwrap();
    store.insert_endpoint(&meta_endpoint("wep_meta_2002", Some(vec!["2002".into()]), false)).await.unwrap();
    store.insert_endpoint(&endpoint("wep_all", &["*"], None)).await.unwrap();
    assert_eq!(
        store.get_endpoint("wep_meta").await.unwrap().as_ref(),
        Some(&echoes),
        "app secret and echoes round-trip"
    );

    processed(&f, &body("1001")).await;
    let not_json = b"\xff\x00 not JSON".to_vec();
    processed(&f, &not_json).await;
    let (_, d) = claimed(&f, "+15550100010").await;
    store.record_accepted(&d, "wamid.M", &json!({}), t(2)).await.unwrap();

    // The log shows wagate's own events; Meta's bodies are there only to be forwarded.
    assert_eq!(event_types(store).await, ["message.accepted"]);
    let fanned = store.fan_out_events(1000, t(3)).await.unwrap();
    assert_eq!(fanned, 3, "two bodies and the message accepted");
    let pending: BTreeMap<String, i64> = store.pending_event_deliveries().await.unwrap().into_iter().collect();
    let expected = [("wep_all", 1), ("wep_meta", 3), ("wep_meta_2002", 1)];
    assert_eq!(
        pending,
        expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        "the 2002 one: the body of no number"
    );

    let now = t(1_000);
    let got = store.claim_event_deliveries("wep_meta", now, now.plus(MINUTE), 10).await.unwrap();
    let kinds: Vec<&str> = got.iter().map(|d| d.event.kind.as_str()).collect();
    assert_eq!(kinds, ["meta.webhook", "meta.webhook", "message.accepted"]);
    let forwarded: Vec<MetaWebhook> = got.iter().filter_map(|d| MetaWebhook::of(&d.event)).collect();
    assert_eq!(forwarded[0].body, body("1001"), "byte for byte");
    assert_eq!(forwarded[1].body, not_json, "even bytes that are not JSON");
    assert_eq!(forwarded[0].account_id.as_deref(), Some(f.account.id.as_str()));
    assert_eq!(got[0].event.phone_number_id.as_deref(), Some("1001"));
    assert_eq!(got[1].event.phone_number_id, None);
    assert!(store.get_event(&got[0].event.id).await.unwrap().is_some(), "a replay can name it");
}

async fn old_events_go_but_the_newest_stays(f: Fixture) {
    let store = f.store.as_ref();
    store.insert_endpoint(&endpoint("wep_1", &["*"], None)).await.unwrap();
    for i in 0..3 {
        store.ping_endpoint("wep_1", t(i)).await.unwrap();
    }
    // Everything is old: all but the newest event go, with their deliveries once done.
    let removed = store.delete_old_events(t(100), 1000).await.unwrap();
    assert_eq!(removed, 2);
    let left = store.list_events(&all_events(), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    // A delivery whose event is gone fails when claimed instead of going out empty.
    let now = t(100);
    let claimed = store.claim_event_deliveries("wep_1", now, now.plus(MINUTE), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.event.id.clone()).collect::<Vec<_>>(), [left[0].id.clone()]);
    assert_eq!(store.event_deliveries().pending().await.unwrap(), 1);
    // A new event still comes after the one kept.
    let next = store.ping_endpoint("wep_1", t(10)).await.unwrap();
    assert!(next.seq > left[0].seq);
}

async fn concurrent_event_claims_never_overlap(f: Fixture) {
    let store = f.store.clone();
    store.insert_endpoint(&endpoint("wep_1", &["*"], None)).await.unwrap();
    store.insert_endpoint(&endpoint("wep_2", &["*"], None)).await.unwrap();
    for i in 0..20 {
        store.ping_endpoint(if i % 2 == 0 { "wep_1" } else { "wep_2" }, t(i)).await.unwrap();
    }
    let now = t(100);
    let mut seen = HashSet::new();
    for d in claim_concurrently(&store, |s| s.event_deliveries(), now, now.plus(MINUTE), 3).await {
        assert!(seen.insert(d.id), "delivery {} claimed twice", d.id);
    }
    assert_eq!(seen.len(), 20);
}

/// Writers committing events in parallel, and a reader following them as the live stream does
/// (reading after the last it saw): it sees every event, once, in `seq` order, whichever
/// transaction committed first.
async fn a_reader_following_parallel_writers_misses_nothing(f: Fixture) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, account) = (f.store.clone(), f.account.id.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let change = NewWebhookEvent {
                    account_id: account.clone(),
                    delivery_id: (w * EACH + i) as i64,
                    dedup_key: format!("change-{w}-{i}"),
                    field: "account_update".into(),
                    kind: "UPDATED".into(),
                    subject: None,
                    payload: json!({"writer": w, "i": i}),
                    occurred_at: t(1),
                    recorded_at: t(1),
                };
                assert!(store.record_webhook_event(&change).await.unwrap());
            }
        }));
    }
    let (mut seen, mut after) = (Vec::new(), 0);
    let follow = |after: i64| EventFilter { order: EventOrder::After(after), ..EventFilter::default() };
    // Until the writers are done, then once more for what they committed last.
    let mut last_round = false;
    while !last_round {
        last_round = writers.iter().all(|w| w.is_finished());
        let page = f.store.list_events(&follow(after), 1000).await.unwrap();
        if let Some(last) = page.last() {
            after = last.seq;
        }
        seen.extend(page);
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq), "in seq order, each once");
    let ids: HashSet<&str> = seen.iter().map(|e| e.id.as_str()).collect();
    assert_eq!((seen.len(), ids.len()), (WRITERS * EACH, WRITERS * EACH));
    let committed = f.store.list_events(&follow(0), 1000).await.unwrap().len();
    assert_eq!(committed, WRITERS * EACH, "and none committed that it did not see");
}

macro_rules! suite {
    ($backend:ident, $b:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn each_status_makes_one_event() {
                if let Some(f) = fixture($b).await {
                    super::each_status_makes_one_event(f).await;
                }
            }

            #[tokio::test]
            async fn endpoints_get_what_they_subscribe_to() {
                if let Some(f) = fixture($b).await {
                    super::endpoints_get_what_they_subscribe_to(f).await;
                }
            }

            #[tokio::test]
            async fn other_changes_make_their_events() {
                if let Some(f) = fixture($b).await {
                    super::other_changes_make_their_events(f).await;
                }
            }

            #[tokio::test]
            async fn meta_bodies_are_kept_for_meta_endpoints_alone() {
                if let Some(f) = fixture($b).await {
                    super::meta_bodies_are_kept_for_meta_endpoints_alone(f).await;
                }
            }

            #[tokio::test]
            async fn old_events_go_but_the_newest_stays() {
                if let Some(f) = fixture($b).await {
                    super::old_events_go_but_the_newest_stays(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_reader_following_parallel_writers_misses_nothing() {
                if let Some(f) = fixture($b).await {
                    super::a_reader_following_parallel_writers_misses_nothing(f).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_event_claims_never_overlap() {
                if let Some(f) = fixture($b).await {
                    super::concurrent_event_claims_never_overlap(f).await;
                }
            }
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
