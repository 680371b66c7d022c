//! The flow with processes: `wagate serve` connected through `POST /v1/accounts` to a
//! standalone `wagate sandbox`, both the binary cargo built for these tests.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_storage::Backend;
use wagate_storage::testing::TestDatabase;

use crate::support::*;

async fn serve_with_a_standalone_sandbox(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let key = "standalone-test-key-0123456789";
    let data_dir = db.data_dir();
    let serve = Process::start(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap(), "--database-url", db.url()],
        &[("WAGATE_BOOTSTRAP_API_KEY", key), ("WAGATE_ALLOW_PRIVATE", LOOPBACK)],
    )
    .await;
    let webhook_url = format!("{}/webhooks/meta", serve.url);
    let sandbox = standalone_sandbox(Some(&webhook_url)).await;
    let http = reqwest::Client::new();

    // The standalone sandbox's control paths are open; it is a test tool.
    let (status, accounts) =
        request(&http, Method::GET, &format!("{}/control/accounts", sandbox.url), None, None).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let a = &accounts["data"][0];
    let from = a["phone_numbers"][0]["id"].as_str().unwrap().to_owned();

    let (status, account) = request(
        &http,
        Method::POST,
        &format!("{}/v1/accounts", serve.url),
        Some(key),
        Some(json!({
            "name": "standalone",
            "graph_base_url": sandbox.url,
            "access_token": a["access_token"],
            "waba_id": a["waba_id"],
            "app_secret": a["app_secret"],
            "verify_token": a["verify_token"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    assert_eq!(account["mode"], "live");

    // The handshake Meta would do against serve's receiver, with the sandbox's verify token.
    let challenge = http
        .get(format!(
            "{webhook_url}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=42",
            a["verify_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!((challenge.status(), challenge.text().await.unwrap()), (StatusCode::OK, "42".to_owned()));

    let customer = customer();
    let inbound_wamid = simulate_inbound(&http, &sandbox.url, None, &from, &customer, "is anyone there?").await;
    let (status, sent) = request(
        &http,
        Method::POST,
        &format!("{}/v1/messages", serve.url),
        Some(key),
        Some(json!({"from": from, "to": customer, "type": "text", "text": {"body": "Yes, how can we help?"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let done = wait_for_message(&http, &serve.url, key, sent["id"].as_str().unwrap(), "read through processes", |m| {
        m["status"] == "read"
    })
    .await;
    let statuses: Vec<&str> =
        done["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["queued", "accepted", "sent", "delivered", "read"]);
    let received = sandbox_received(&http, &sandbox.url, None, &customer).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["wamid"], done["wamid"]);

    // The inbound message reached serve's storage through the signed webhook.
    let store = open_store(&db).await;
    let inbound = store.find_message_by_wamid(&inbound_wamid).await.unwrap().expect("the inbound message is stored");
    assert_eq!(inbound.content["text"]["body"], "is anyone there?");
    assert_eq!(inbound.phone_number_id, from);
    let contact = store.get_contact_by_wa_id(customer.trim_start_matches('+')).await.unwrap();
    assert_eq!(contact.and_then(|c| c.profile_name).as_deref(), Some("Ana Customer"));
    store.close().await;

    // SIGTERM: both stop cleanly, with exit code 0.
    assert_eq!(serve.terminate().await, Some(0), "wagate serve exits 0 on SIGTERM");
    assert_eq!(sandbox.terminate().await, Some(0), "wagate sandbox exits 0 on SIGTERM");
}

on_each_backend!(serve_with_a_standalone_sandbox);
