//! `kill -9` in the middle of a burst: every message answered 202 reaches Meta (a standalone
//! `wagate sandbox` process, which outlives wagate), and any sent twice are counted; every
//! webhook delivery answered 200 is processed, even when wagate died before processing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_storage::Backend;
use wagate_storage::testing::TestDatabase;

use crate::support::*;

const KEY: &str = "crash-test-key-0123456789abcdef";
const MESSAGES: usize = 300;
const DELIVERIES: usize = 400;
const APP_SECRET: &str = "crash-test-app-secret";

/// `wagate serve` on this database with leases short enough for a test.
async fn serve(db: &TestDatabase, config: &std::path::Path) -> Process {
    serve_binary(db, config, &[("WAGATE_BOOTSTRAP_API_KEY", KEY), ("WAGATE_SANDBOX_APP_SECRET", APP_SECRET)]).await
}

/// What the sandbox accepted, by recipient.
async fn accepted_by_recipient(http: &reqwest::Client, sandbox: &str, phone: &str) -> HashMap<String, usize> {
    let (status, all) =
        request(http, Method::GET, &format!("{sandbox}/control/messages?phone_number_id={phone}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let mut by = HashMap::new();
    for r in all["data"].as_array().unwrap().iter().filter(|r| r["wamid"].is_string()) {
        *by.entry(r["body"]["to"].as_str().unwrap().trim_start_matches('+').to_owned()).or_default() += 1;
    }
    by
}

async fn every_accepted_message_is_sent_after_a_kill_9(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let config = db.dir().join("wagate.toml");
    std::fs::write(
        &config,
        "[dispatcher]\ngraph_timeout_ms = 2000\nlease_margin_ms = 1000\nnumber_lease_ms = 2000\nretry_base_ms = 100\n\
         [network]\nallow_private = [\"127.0.0.0/8\", \"::1/128\"]\n",
    )
    .unwrap();
    let first = serve(&db, &config).await;
    let sandbox = standalone_sandbox(None).await;
    let http = reqwest::Client::new();
    let (_, accounts) = request(&http, Method::GET, &format!("{}/control/accounts", sandbox.url), None, None).await;
    let a = &accounts["data"][0];
    let phone = a["phone_numbers"][0]["id"].as_str().unwrap().to_owned();
    let (status, account) = request(
        &http,
        Method::POST,
        &format!("{}/v1/accounts", first.url),
        Some(KEY),
        Some(json!({
            "name": "crash", "graph_base_url": sandbox.url, "access_token": a["access_token"],
            "waba_id": a["waba_id"], "app_secret": a["app_secret"], "verify_token": a["verify_token"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    // Slow enough that the kill finds messages queued, claimed and on the wire.
    let (status, n) = request(
        &http,
        Method::PATCH,
        &format!("{}/v1/phone-numbers/{phone}", first.url),
        Some(KEY),
        Some(json!({"messages_per_second": 100})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{n}");

    // Eight clients send; wagate is killed while they still are.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, url, phone, answered) = (http.clone(), first.url.clone(), phone.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..MESSAGES / 8 {
                let to = customer();
                let body = json!({"from": phone, "to": to, "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}}});
                let Ok(resp) = http.post(format!("{url}/v1/messages")).bearer_auth(KEY).json(&body).send().await else {
                    return; // wagate is gone
                };
                if resp.status() == StatusCode::ACCEPTED {
                    answered.lock().unwrap().push(to.trim_start_matches('+').to_owned());
                }
            }
        }));
    }
    eventually("the sandbox to have received some messages", || async {
        (accepted_by_recipient(&http, &sandbox.url, &phone).await.len() >= 40).then_some(())
    })
    .await;
    first.kill().await;
    for c in clients {
        c.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let at_kill = accepted_by_recipient(&http, &sandbox.url, &phone).await.len();
    assert!(at_kill < answered.len(), "killed mid-flight: {at_kill} of {} sent", answered.len());

    // Restarted on the same database, it sends the rest: every 202 reaches Meta.
    let second = serve(&db, &config).await;
    let sent = eventually("every accepted message to reach the sandbox", || async {
        let by = accepted_by_recipient(&http, &sandbox.url, &phone).await;
        answered.iter().all(|to| by.contains_key(to)).then_some(by)
    })
    .await;
    let duplicated: Vec<(&String, &usize)> = sent.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} messages answered 202, {at_kill} sent before kill -9; after restart all sent, {} twice: {duplicated:?}",
        answered.len(),
        duplicated.len()
    );
    // Only sends on the wire at the kill can be repeated: a fraction of a second's worth.
    assert!(duplicated.len() <= 20, "{} duplicates", duplicated.len());
    assert_eq!(second.terminate().await, Some(0));
    assert_eq!(sandbox.terminate().await, Some(0));
}

/// A customer's text message to the built-in sandbox number, as Meta would deliver it.
fn inbound_text(waba_id: &str, phone_number_id: &str, wamid: &str) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100000", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Crash Customer"}, "wa_id": "15550170000"}],
            "messages": [{"from": "15550170000", "id": wamid, "timestamp": "1800000000", "type": "text",
                          "text": {"body": "are you there?"}}],
        }}]}],
    })
    .to_string()
    .into_bytes()
}

async fn every_acknowledged_delivery_is_processed_after_a_kill_9(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let config = db.dir().join("wagate.toml");
    // Short leases: deliveries claimed by the killed process are taken again soon after restart.
    std::fs::write(&config, "[inbound]\nlease_ms = 1000\n").unwrap();
    let first = serve(&db, &config).await;
    let http = reqwest::Client::new();
    let (status, numbers) =
        request(&http, Method::GET, &format!("{}/v1/phone-numbers", first.url), Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{numbers}");
    let number = &numbers["data"][0];
    let (waba, phone) = (number["waba_id"].as_str().unwrap().to_owned(), number["id"].as_str().unwrap().to_owned());

    // Eight clients post signed deliveries as fast as they are answered; wagate is killed the
    // moment the last is acknowledged, long before it can have processed them all.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (http, url, waba, phone, acknowledged) =
            (http.clone(), first.url.clone(), waba.clone(), phone.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..DELIVERIES / 8 {
                let wamid = format!("wamid.CRASH{c}x{i}");
                let body = inbound_text(&waba, &phone, &wamid);
                let resp = http
                    .post(format!("{url}/webhooks/meta"))
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", wagate_domain::signature::sign(APP_SECRET, &body))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap_or_default());
                acknowledged.lock().unwrap().push(wamid);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    first.kill().await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), DELIVERIES);

    let store = open_store(&db).await;
    let pending = store.deliveries().pending().await.unwrap();
    assert!(pending > 0, "the kill came after every delivery was processed: nothing was shown");
    assert_eq!(store.count_deliveries().await.unwrap(), DELIVERIES as i64, "every acknowledged delivery stored");

    // Restarted on the same database, it processes what it had acknowledged but not processed.
    let second = serve(&db, &config).await;
    eventually("every acknowledged delivery to be processed", || async {
        if store.deliveries().pending().await.unwrap() > 0 {
            return None;
        }
        for wamid in &acknowledged {
            store.find_message_by_wamid(wamid).await.unwrap()?;
        }
        Some(())
    })
    .await;
    println!(
        "{DELIVERIES} deliveries answered 200, {pending} of them unprocessed at kill -9; all processed after restart"
    );
    assert_eq!(second.terminate().await, Some(0));
    store.close().await;
}

on_each_backend!(
    every_accepted_message_is_sent_after_a_kill_9,
    every_acknowledged_delivery_is_processed_after_a_kill_9
);
