//! Events to the business's endpoints, checked as a receiver would: every delivery verified with
//! an independent Standard Webhooks implementation (the `standardwebhooks` crate), each change
//! delivered once, outages ridden out, `410 Gone` obeyed, secrets rotated without a gap,
//! replays and tests, and the live stream resumed without a miss.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

/// One delivery as the receiver got it.
#[derive(Clone)]
pub(crate) struct Delivery {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// What the receiver answered.
    answered: u16,
}

impl Delivery {
    fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver on loopback: answers each delivery with the status set (200 at first) and keeps
/// what it got.
pub(crate) struct Receiver {
    pub(crate) url: String,
    answer: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let answer = Arc::new(AtomicU16::new(200));
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let (a, g) = (answer.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (a, g) = (a.clone(), g.clone());
                async move {
                    let answered = a.load(Ordering::SeqCst);
                    g.lock().unwrap().push(Delivery { headers, body, answered });
                    (AxumStatus::from_u16(answered).unwrap(), "thanks")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, answer, got }
    }

    fn answer_with(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    /// The deliveries it took (answered 2xx).
    pub(crate) fn taken(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().iter().filter(|d| (200..300).contains(&d.answered)).cloned().collect()
    }

    pub(crate) fn all(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// Verifies a delivery as a receiver using the Standard Webhooks library would.
fn verify(secret: &str, d: &Delivery) {
    let wh = standardwebhooks::Webhook::new(secret).expect("a Standard Webhooks secret");
    wh.verify(&d.body, &d.headers).unwrap_or_else(|e| panic!("delivery {} does not verify: {e:?}", d.id()));
}

async fn create_endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let (status, created) = app.post("/v1/webhook-endpoints", json!({"url": url, "events": events})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_str().unwrap().to_owned(), secret)
}

/// A text to `customer`, who wrote first; its message id.
async fn send_text(app: &TestApp, from: &str, customer: &str) -> String {
    let body = json!({"from": from, "to": customer, "type": "text", "text": {"body": "Your order shipped"}});
    let (status, sent) = app.post("/v1/messages", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    sent["id"].as_str().unwrap().to_owned()
}

/// The (type, resource id) of each delivery taken, with how many distinct `webhook-id`s each had.
fn changes(deliveries: &[Delivery]) -> BTreeMap<(String, String), HashSet<String>> {
    let mut out: BTreeMap<(String, String), HashSet<String>> = BTreeMap::new();
    for d in deliveries {
        let body = d.json();
        let key = (body["type"].as_str().unwrap().to_owned(), body["data"]["id"].as_str().unwrap_or("").to_owned());
        out.entry(key).or_default().insert(d.id());
    }
    out
}

async fn events_arrive_signed_once_per_change(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let receiver = Receiver::start().await;
    let (_, secret) = create_endpoint(&app, &receiver.url, json!(["message.*"])).await;
    let numbers = app.sandbox_numbers().await;
    let customer = customer();
    app.customer_writes(&numbers[0], &customer, "Where is my order?").await;
    let sent = send_text(&app, &numbers[0], &customer).await;
    // A send Meta fails (to someone it cannot deliver to) and one canceled before it goes.
    let unreachable = crate::support::customer();
    let url = format!("/sandbox/control/failures/{}", unreachable.trim_start_matches('+'));
    let (status, body) = app.request(reqwest::Method::PUT, &url, Some(json!({"code": 131026}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refused = json!({"from": numbers[0], "to": unreachable, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (status, failed) = app.post("/v1/messages", refused).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{failed}");
    let tomorrow = wagate_domain::time::Timestamp::now().plus(std::time::Duration::from_secs(86_400));
    let later = json!({"from": numbers[0], "to": customer, "type": "text", "text": {"body": "tomorrow"},
        "send_at": tomorrow});
    let (_, scheduled) = app.post("/v1/messages", later).await;
    let scheduled = scheduled["id"].as_str().unwrap().to_owned();
    let (status, _) = app.post(&format!("/v1/messages/{scheduled}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let failed = failed["id"].as_str().unwrap().to_owned();

    let want: Vec<(&str, &str)> = vec![
        ("message.accepted", &sent),
        ("message.sent", &sent),
        ("message.delivered", &sent),
        ("message.read", &sent),
        ("message.failed", &failed),
        ("message.canceled", &scheduled),
    ];
    let got = eventually("every change to be delivered", || async {
        let got = changes(&receiver.taken());
        want.iter().all(|(t, id)| got.contains_key(&((*t).to_owned(), (*id).to_owned()))).then_some(got)
    })
    .await;
    for d in receiver.all() {
        verify(&secret, &d);
        let body = d.json();
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
        assert!(d.id().starts_with("evt_"));
    }
    // Once each: no change delivered under two ids, and the customer's message is not a
    // `message.*` send of ours but does arrive as `message.received`.
    for (change, ids) in &got {
        assert_eq!(ids.len(), 1, "{change:?} delivered as {ids:?}");
    }
    assert!(got.keys().any(|(t, _)| t == "message.received"), "{got:?}");
    let (status, listed) = app.get("/v1/events?type=message.read,message.failed&limit=10").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let types: HashSet<&str> = listed["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, HashSet::from(["message.read", "message.failed"]));
    // The data is the message as GET /v1/messages/{id} shows it, as it was then.
    let read = receiver.taken().into_iter().map(|d| d.json()).find(|b| b["type"] == "message.read").unwrap();
    assert_eq!((read["data"]["id"].as_str(), read["data"]["status"].as_str()), (Some(sent.as_str()), Some("read")));
    assert!(read["data"]["wamid"].as_str().is_some_and(|w| w.starts_with("wamid.")), "{read}");
    // The customer became a contact with their first message: one event, the contact as
    // GET /v1/contacts/{id} shows it.
    let (_, created) = app.get("/v1/events?type=contact.*").await;
    let created = created["data"].as_array().unwrap().clone();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["type"], "contact.created");
    let (_, contact) = app.get(&format!("/v1/contacts/{}", created[0]["data"]["id"].as_str().unwrap())).await;
    assert_eq!(contact["wa_id"], customer.trim_start_matches('+'), "{contact}");
    assert_eq!(created[0]["data"]["wa_id"], contact["wa_id"]);
    app.stop().await;
}

async fn outages_are_ridden_out_and_gone_disables(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let receiver = Receiver::start().await;
    receiver.answer_with(503);
    let (endpoint, secret) = create_endpoint(&app, &receiver.url, json!(["message.received"])).await;
    let numbers = app.sandbox_numbers().await;
    let customers: Vec<String> = (0..3).map(|_| customer()).collect();
    for c in &customers {
        app.customer_writes(&numbers[0], c, "hello").await;
    }
    eventually("the first attempts to fail", || async { (receiver.all().len() >= 3).then_some(()) }).await;
    receiver.answer_with(200);
    let taken = eventually("every event after the outage", || async {
        let taken = receiver.taken();
        (changes(&taken).len() == 3).then_some(taken)
    })
    .await;
    for d in receiver.all() {
        verify(&secret, &d);
    }
    // A retry carries the event's own id again.
    let failed_ids: HashSet<String> = receiver.all().iter().filter(|d| d.answered == 503).map(Delivery::id).collect();
    let taken_ids: HashSet<String> = taken.iter().map(Delivery::id).collect();
    assert!(failed_ids.is_subset(&taken_ids), "{failed_ids:?} vs {taken_ids:?}");
    let (_, attempts) = app.get(&format!("/v1/webhook-endpoints/{endpoint}/attempts")).await;
    let codes: Vec<i64> =
        attempts["data"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
    assert!(codes.contains(&503) && codes.contains(&200), "{attempts}");
    let failed = attempts["data"].as_array().unwrap().iter().find(|a| a["status_code"] == 503).unwrap();
    assert_eq!(failed["response"], "thanks", "the start of the answer is logged: {failed}");
    assert_eq!(failed["error"], "the endpoint answered 503");

    // 410: disabled at once, with an event saying so.
    receiver.answer_with(410);
    app.customer_writes(&numbers[0], &customer(), "one more").await;
    let endpoint_now = eventually("the endpoint to be disabled", || async {
        let (_, e) = app.get(&format!("/v1/webhook-endpoints/{endpoint}")).await;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert_eq!(endpoint_now["disabled_reason"], "the endpoint answered 410 Gone");
    let (_, listed) = app.get("/v1/events?type=endpoint.disabled").await;
    assert_eq!(listed["data"][0]["data"]["id"], endpoint.as_str(), "{listed}");
    app.stop().await;
}

async fn rotation_replay_and_test(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let receiver = Receiver::start().await;
    let (endpoint, old_secret) = create_endpoint(&app, &receiver.url, json!(["*"])).await;
    let (status, rotated) = app.post(&format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");

    let (status, test) = app.post(&format!("/v1/webhook-endpoints/{endpoint}/test"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{test}");
    let ping_id = test["event_id"].as_str().unwrap().to_owned();
    let ping = eventually("the ping", || async { receiver.taken().into_iter().find(|d| d.id() == ping_id) }).await;
    assert_eq!(ping.json()["type"], "ping");
    // Two signatures while both secrets sign: either secret verifies.
    assert_eq!(ping.headers["webhook-signature"].to_str().unwrap().split(' ').count(), 2);
    verify(&old_secret, &ping);
    verify(&new_secret, &ping);

    // Replay by id: the same event again, under its own id.
    let (status, replayed) =
        app.post(&format!("/v1/webhook-endpoints/{endpoint}/replay"), json!({"event_ids": [ping_id]})).await;
    assert_eq!((status, replayed["queued"].as_i64()), (StatusCode::ACCEPTED, Some(1)), "{replayed}");
    eventually("the replayed ping", || async {
        (receiver.taken().iter().filter(|d| d.id() == ping_id).count() == 2).then_some(())
    })
    .await;
    // Bad requests name the field.
    let (status, refused) = app.post(&format!("/v1/webhook-endpoints/{endpoint}/replay"), json!({})).await;
    assert_eq!((status, refused["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("since")));
    let (status, refused) =
        app.post(&format!("/v1/webhook-endpoints/{endpoint}/replay"), json!({"event_ids": ["evt_nope"]})).await;
    assert_eq!((status, refused["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("event_ids[0]")));
    app.stop().await;
}

async fn endpoints_are_checked_before_they_are_stored(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.network.allow_private.clear()).await else { return };
    for (body, path, rule) in [
        (json!({"events": ["*"]}), "url", "required"),
        (json!({"url": "ftp://example.com/x", "events": ["*"]}), "url", "url"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["*"]}), "url", "private_address"),
        (json!({"url": "http://169.254.169.254/latest", "events": ["*"]}), "url", "private_address"),
        (json!({"url": "https://u:p@example.com/x", "events": ["*"]}), "url", "url"),
        (json!({"url": "https://example.com/\u{0}", "events": ["*"]}), "url", "nul_character"),
        (json!({"url": "https://example.com/x", "events": []}), "events", "length"),
        (json!({"url": "https://example.com/x", "events": ["message.reads"]}), "events[0]", "event_type"),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "phone_number_ids": ["123"]}),
            "phone_number_ids[0]",
            "not_found",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "headers": {"webhook-id": "x"}}),
            "headers.webhook-id",
            "reserved",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "headers": {"x-a": "a\nb"}}),
            "headers.x-a",
            "header_value",
        ),
        (json!({"url": "https://example.com/x", "events": ["*"], "format": "xml"}), "format", "invalid_value"),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "description": "x".repeat(501)}),
            "description",
            "max_length",
        ),
    ] {
        let (status, refused) = app.post("/v1/webhook-endpoints", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {refused}");
        assert_eq!(
            (refused["error"]["path"].as_str(), refused["error"]["code"].as_str()),
            (Some(path), Some(rule)),
            "{body}: {refused}"
        );
    }
    let (status, list) = app.get("/v1/webhook-endpoints").await;
    assert_eq!(
        (status, list["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "nothing was stored: {list}"
    );
    // A good one, its headers listed by name only, changed and deleted.
    let body = json!({"url": "https://example.com/hooks", "events": ["message.*"], "headers": {"Authorization": "Bearer s3cr3t"},
        "description": "orders ✓", "phone_number_ids": null});
    let (status, created) = app.post("/v1/webhook-endpoints", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["headers"], json!(["authorization"]));
    assert!(!created.to_string().contains("s3cr3t"), "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, changed) = app
        .request(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(json!({"enabled": false, "description": null})),
        )
        .await;
    assert_eq!(
        (status, changed["enabled"].as_bool(), &changed["description"]),
        (StatusCode::OK, Some(false), &Value::Null),
        "{changed}"
    );
    let (status, _) = app.request(Method::DELETE, &format!("/v1/webhook-endpoints/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/v1/webhook-endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Reads a Server-Sent Events stream until `n` events came; their ids and types.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("{n} events within {PATIENCE:?}; got {out:?}")).unwrap();
        buffer.push_str(std::str::from_utf8(&chunk.expect("the stream is open")).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(str::to_owned));
            if let (Some(id), Some(kind)) = (field("id:"), field("event:")) {
                out.push((id.trim().to_owned(), kind.trim().to_owned()));
            }
        }
    }
    out
}

async fn the_stream_resumes_without_a_miss(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let numbers = app.sandbox_numbers().await;
    let stream = |last: Option<String>| {
        let mut req =
            app.http.get(format!("{}/v1/events/stream?type=message.received", app.url)).bearer_auth(&app.api_key);
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last);
        }
        req.send()
    };
    let mut first = stream(None).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    app.customer_writes(&numbers[0], &customer(), "one").await;
    app.customer_writes(&numbers[0], &customer(), "two").await;
    let seen = read_events(&mut first, 2).await;
    drop(first);
    // While disconnected, three more.
    for text in ["three", "four", "five"] {
        app.customer_writes(&numbers[0], &customer(), text).await;
    }
    let mut resumed = stream(Some(seen[1].0.clone())).await.unwrap();
    let rest = read_events(&mut resumed, 3).await;
    let (_, listed) = app.get("/v1/events?type=message.received&limit=10").await;
    let mut all: Vec<String> =
        listed["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    all.reverse();
    let streamed: Vec<String> = seen.iter().chain(&rest).map(|(id, _)| id.clone()).collect();
    assert_eq!(streamed, all, "every event once, in order");
    assert!(rest.iter().all(|(_, kind)| kind == "message.received"));
    // `after` resumes as Last-Event-ID does; a bad one names the field.
    let (status, refused) = app.get("/v1/events/stream?after=evt_nope").await;
    assert_eq!((status, refused["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("after")));
    app.stop().await;
}

/// `wagate serve` (the binary) on this database, events timing out quickly.
async fn serve(db: &wagate_storage::testing::TestDatabase, key: &str) -> Process {
    let config = db.dir().join("events.toml");
    std::fs::write(&config, "[events]\ntimeout_ms = 2000\n[network]\nallow_private = [\"127.0.0.0/8\"]\n").unwrap();
    serve_binary(db, &config, &[("WAGATE_BOOTSTRAP_API_KEY", key)]).await
}

async fn deliveries_pending_at_a_kill_9_all_arrive(backend: Backend) {
    let Some(db) = wagate_storage::testing::TestDatabase::new(backend).await else { return };
    let key = "events-kill-key-0123456789abcdef";
    let first = serve(&db, key).await;
    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    receiver.answer_with(503);
    let body = json!({"url": receiver.url, "events": ["message.received"]});
    let (status, created) =
        request(&http, Method::POST, &format!("{}/v1/webhook-endpoints", first.url), Some(key), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (_, numbers) = request(&http, Method::GET, &format!("{}/v1/phone-numbers", first.url), Some(key), None).await;
    let number = numbers["data"][0]["id"].as_str().unwrap().to_owned();
    let sandbox = format!("{}/sandbox", first.url);
    const CUSTOMERS: usize = 20;
    for i in 0..CUSTOMERS {
        simulate_inbound(&http, &sandbox, Some(key), &number, &customer(), &format!("message {i}")).await;
    }
    eventually("attempts, all refused", || async { (receiver.all().len() >= 5).then_some(()) }).await;
    first.kill().await;
    receiver.answer_with(200);
    let second = serve(&db, key).await;
    let taken = eventually("every event after the restart", || async {
        let taken = receiver.taken();
        (changes(&taken).len() == CUSTOMERS).then_some(taken)
    })
    .await;
    for d in &taken {
        verify(&secret, d);
    }
    let ids: HashSet<String> = taken.iter().map(Delivery::id).collect();
    assert_eq!(ids.len(), CUSTOMERS, "each event under its own id");
    second.kill().await;
}

on_each_backend!(
    deliveries_pending_at_a_kill_9_all_arrive,
    events_arrive_signed_once_per_change,
    outages_are_ridden_out_and_gone_disables,
    rotation_replay_and_test,
    endpoints_are_checked_before_they_are_stored,
    the_stream_resumes_without_a_miss,
);
