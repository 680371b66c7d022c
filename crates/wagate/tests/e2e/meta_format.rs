//! Endpoints of Meta's format, checked as software written for Meta's webhooks would: every
//! body the sandbox posted arrives byte for byte, verified by an HMAC computed here (not
//! wagate's code) with the account's app secret or the endpoint's own, with Meta-shaped echoes
//! of the messages sent through wagate when asked for.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wagate_storage::Backend;

use crate::events::{Delivery, Receiver};
use crate::support::*;

/// HMAC-SHA256 (RFC 2104) written out, as a receiver's own verifier would be.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Meta's check: `X-Hub-Signature-256: sha256=<hex HMAC of the raw body under the app secret>`.
fn meta_verifies(app_secret: &str, d: &Delivery) -> bool {
    let expected: String = hmac_sha256(app_secret.as_bytes(), &d.body).iter().map(|b| format!("{b:02x}")).collect();
    d.headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) == Some(&format!("sha256={expected}"))
}

/// Sits between the sandbox and wagate, as a proxy in front of wagate would: keeps each body the
/// sandbox posted and passes it on with its signature, answering as wagate answered.
struct Tee {
    url: String,
    posted: Arc<Mutex<Vec<Bytes>>>,
}

impl Tee {
    async fn start(wagate: &str) -> Self {
        let posted: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let (kept, target, http) = (posted.clone(), format!("{wagate}/webhooks/meta"), reqwest::Client::new());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (kept, target, http) = (kept.clone(), target.clone(), http.clone());
                async move {
                    kept.lock().unwrap().push(body.clone());
                    let mut forward = http.post(&target).header("content-type", "application/json").body(body);
                    if let Some(signature) = headers.get("x-hub-signature-256") {
                        forward = forward.header("x-hub-signature-256", signature.as_bytes());
                    }
                    let status = forward.send().await.map(|r| r.status().as_u16()).unwrap_or(502);
                    AxumStatus::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, posted }
    }

    fn posted(&self) -> Vec<Bytes> {
        self.posted.lock().unwrap().clone()
    }
}

async fn create_meta_endpoint(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/v1/webhook-endpoints", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["format"], "meta");
    assert!(created.get("secret").is_none(), "signed with an app secret, not a whsec_ one: {created}");
    created
}

async fn meta_bodies_arrive_byte_for_byte(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let tee = Tee::start(&app.url).await;
    let (status, set) =
        app.request(Method::PUT, "/sandbox/control/webhook", Some(json!({"url": tee.url, "verify": false}))).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (as_meta, own) = (Receiver::start().await, Receiver::start().await);
    let echoing =
        create_meta_endpoint(&app, json!({"url": as_meta.url, "format": "meta", "include_echoes": true})).await;
    assert_eq!((echoing["include_echoes"].as_bool(), echoing["app_secret_set"].as_bool()), (Some(true), Some(false)));
    let own_secret = "an-app-secret-of-its-own-0123456789";
    let signed_own =
        create_meta_endpoint(&app, json!({"url": own.url, "format": "meta", "app_secret": own_secret})).await;
    assert_eq!(signed_own["app_secret_set"], true);
    assert!(!signed_own.to_string().contains(own_secret), "the app secret is never shown");

    // A customer writes, a text goes out and is read: the sandbox posts each webhook.
    let customer = customer();
    app.customer_writes(&account.phone_number_id, &customer, "Où est ma commande ? 📦").await;
    let body = json!({"from": account.phone_number_id, "to": customer, "type": "text", "text": {"body": "Shipped ✓"}});
    let (status, sent) = app.post("/v1/messages", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let sent = wait_for_message(&app.http, &app.url, &app.api_key, sent["id"].as_str().unwrap(), "read", |m| {
        m["status"] == "read"
    })
    .await;
    // And a body Meta might send, laid out as no serialiser here would: spaces, escapes, key order.
    let odd = format!(
        "{{ \"entry\" : [ {{\"changes\":[{{\"field\":\"messages\",\"value\":{{\"messaging_product\":\"whatsapp\",\
         \"metadata\":{{\"phone_number_id\":\"{}\",\"display_phone_number\":\"15550000000\"}},\"statuses\":[]}}}}],\
         \"id\":\"{}\"}} ],\n  \"object\":\"whatsapp_business_account\", \"note\": \"caf\\u00e9 \\ud83d\\ude00\" }}",
        account.phone_number_id, account.waba_id
    );
    post_signed(&app, &account, odd.clone().into_bytes()).await;

    let mut posted = tee.posted();
    assert!(posted.len() >= 4, "the customer's message and sent, delivered, read: {} bodies", posted.len());
    posted.push(Bytes::from(odd));
    let forwarded = |r: &Receiver| -> Vec<Bytes> { r.taken().into_iter().map(|d| d.body).collect() };
    eventually("every body the sandbox posted, forwarded to both", || async {
        let (a, b) = (forwarded(&as_meta), forwarded(&own));
        posted.iter().all(|p| a.contains(p) && b.contains(p)).then_some(())
    })
    .await;
    let wamid = sent["wamid"].as_str().unwrap();
    let echo = eventually("the echo of the message sent", || async {
        as_meta
            .taken()
            .into_iter()
            .map(|d| d.json())
            .find(|b| b["entry"][0]["changes"][0]["field"] == "smb_message_echoes")
    })
    .await;
    let message = &echo["entry"][0]["changes"][0]["value"]["message_echoes"][0];
    assert_eq!(message["id"], wamid, "{echo}");
    assert_eq!((message["type"].as_str(), message["text"]["body"].as_str()), (Some("text"), Some("Shipped ✓")));
    assert_eq!(message["to"], customer.as_str());
    assert_eq!(echo["entry"][0]["id"], account.waba_id.as_str());
    assert_eq!(
        echo["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"],
        account.phone_number_id.as_str()
    );

    // Signed as Meta signs: with the account's app secret, or the endpoint's own.
    for d in as_meta.all() {
        assert!(meta_verifies(&account.app_secret, &d), "{:?}", String::from_utf8_lossy(&d.body));
    }
    for d in own.all() {
        assert!(meta_verifies(own_secret, &d) && !meta_verifies(&account.app_secret, &d));
    }
    // Nothing else: each body posted, once (no retries were needed), no echoes where none were
    // asked for.
    let mut posted_now = tee.posted();
    posted_now.push(posted.last().unwrap().clone());
    for (r, echoes) in [(&own, 0), (&as_meta, 1)] {
        let bodies = forwarded(r);
        let unique: std::collections::HashSet<&Bytes> = bodies.iter().collect();
        assert_eq!(unique.len(), bodies.len(), "a body forwarded twice");
        assert_eq!(bodies.iter().filter(|b| !posted_now.contains(b)).count(), echoes, "only what was posted");
    }
    // wagate's own log does not show Meta's bodies.
    let (_, listed) = app.get("/v1/events?limit=100").await;
    assert!(listed["data"].as_array().unwrap().iter().all(|e| e["type"] != "meta.webhook"), "{listed}");

    // A test is a Meta body without entries, signed the same way.
    let id = signed_own["id"].as_str().unwrap();
    let (status, tested) = app.post(&format!("/v1/webhook-endpoints/{id}/test"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{tested}");
    let ping =
        eventually("the test", || async { own.taken().into_iter().find(|d| d.json()["entry"] == json!([])) }).await;
    assert!(meta_verifies(own_secret, &ping));
    assert_eq!(ping.json(), json!({"object": "whatsapp_business_account", "entry": []}));
    app.stop().await;
}

async fn meta_endpoints_are_checked(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let url = "https://example.com/meta";
    let refused = [
        (json!({"url": url, "format": "meta", "events": ["message.*"]}), "events"),
        (json!({"url": url, "events": ["*"], "app_secret": "0123456789abcdef"}), "app_secret"),
        (json!({"url": url, "events": ["*"], "include_echoes": true}), "include_echoes"),
        (json!({"url": url, "format": "meta", "app_secret": ""}), "app_secret"),
        (json!({"url": url, "format": "meta", "app_secret": "has a space in it"}), "app_secret"),
        (json!({"url": url, "format": "meta", "app_secret": "nul\u{0}0123456789"}), "app_secret"),
        (json!({"url": url, "format": "xml", "events": ["*"]}), "format"),
        (json!({"url": url, "events": ["meta.webhook"]}), "events[0]"),
    ];
    for (body, field) in refused {
        let (status, answer) = app.post("/v1/webhook-endpoints", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        assert!(answer.to_string().contains(field), "{body} → {answer} names {field}");
    }
    let meta = create_meta_endpoint(&app, json!({"url": url, "format": "meta"})).await;
    let id = meta["id"].as_str().unwrap();
    let path = format!("/v1/webhook-endpoints/{id}");
    let (status, answer) = app.request(Method::PATCH, &path, Some(json!({"format": "standard"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.to_string().contains("create another endpoint"), "{answer}");
    let (status, answer) = app.request(Method::PATCH, &path, Some(json!({"events": ["*"]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let patch = json!({"app_secret": "a-new-app-secret-123", "include_echoes": true});
    let (status, patched) = app.request(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((patched["app_secret_set"].as_bool(), patched["include_echoes"].as_bool()), (Some(true), Some(true)));
    let (status, patched) = app.request(Method::PATCH, &path, Some(json!({"app_secret": null}))).await;
    assert_eq!((status, patched["app_secret_set"].as_bool()), (StatusCode::OK, Some(false)), "back to the account's");
    let (status, answer) = app.post(&format!("{path}/rotate-secret"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer.to_string().contains("app_secret"), "{answer}");
    // A replay names only what the format carries.
    let standard = app.post("/v1/webhook-endpoints", json!({"url": url, "events": ["*"]})).await.1;
    let ping = app.post(&format!("/v1/webhook-endpoints/{}/test", standard["id"].as_str().unwrap()), json!({})).await.1;
    let account = sandbox_account(&app).await;
    app.customer_writes(&account.phone_number_id, &customer(), "hello").await;
    let (_, received) = app.get("/v1/events?type=message.received").await;
    let received = received["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, answer) = app.post(&format!("{path}/replay"), json!({"event_ids": [received]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.to_string().contains("event_ids[0]"), "{answer}");
    let (status, answer) = app.post(&format!("{path}/replay"), json!({"event_ids": [ping["event_id"]]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a ping goes to either: {answer}");
    app.stop().await;
}

on_each_backend!(meta_bodies_arrive_byte_for_byte, meta_endpoints_are_checked);
