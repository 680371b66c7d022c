//! Meta's webhook receiver through HTTP: the handshake, signatures checked on the raw bytes
//! (refusals change nothing), and statuses that arrive before the send's wamid.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_domain::id::MessageId;
use wagate_domain::signature;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{Backend, Store};

use crate::support::*;

fn status_payload(account: &SandboxAccount, wamid: &str, statuses: &[(&str, i64)]) -> Vec<u8> {
    let entries: Vec<Value> = statuses
        .iter()
        .map(|(s, ts)| json!({"id": wamid, "status": s, "timestamp": ts.to_string(), "recipient_id": "15550171234"}))
        .collect();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": account.waba_id, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100000", "phone_number_id": account.phone_number_id},
            "statuses": entries,
        }}]}],
    })
    .to_string()
    .into_bytes()
}

async fn message_status(store: &dyn Store, id: &MessageId) -> MessageStatus {
    store.get_message(id).await.unwrap().unwrap().status
}

async fn wrong_or_missing_signatures_are_refused_and_change_nothing(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let numbers = store.list_phone_numbers().await.unwrap();
    let d = claimed_message(store.as_ref(), &numbers[0].id).await;
    assert!(store.record_accepted(&d, "wamid.SIGTEST", &json!({}), Timestamp::now()).await.unwrap());
    let app = built.started();
    let account = sandbox_account(&app).await;
    let body = status_payload(&account, "wamid.SIGTEST", &[("read", 1_800_000_000)]);
    let deliveries_before = store.count_deliveries().await.unwrap();

    let other_body = status_payload(&account, "wamid.OTHER", &[("read", 1_800_000_000)]);
    let mut tampered = body.clone();
    let at = tampered.len() - 5;
    tampered[at] = b' ';
    let attempts = [
        ("no signature", body.clone(), None),
        ("empty signature", body.clone(), Some(String::new())),
        ("another secret", body.clone(), Some(signature::sign("not-the-app-secret", &body))),
        ("another body's signature", body.clone(), Some(signature::sign(&account.app_secret, &other_body))),
        ("tampered body", tampered, Some(signature::sign(&account.app_secret, &body))),
        ("hex without prefix", body.clone(), Some(signature::sign(&account.app_secret, &body).replace("sha256=", ""))),
        ("sha1 header", body.clone(), Some(signature::sign(&account.app_secret, &body).replace("sha256=", "sha1="))),
    ];
    for (what, body, sig) in attempts {
        assert_eq!(post_webhook(&app, body, sig).await, StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(store.count_deliveries().await.unwrap(), deliveries_before, "refused deliveries are not stored");
    assert_eq!(message_status(store.as_ref(), &d.message_id).await, MessageStatus::Accepted, "nothing applied");

    // The same body, rightly signed, is taken and applied: the refusals were the signatures.
    let sig = signature::sign(&account.app_secret, &body);
    assert_eq!(post_webhook(&app, body, Some(sig)).await, StatusCode::OK);
    eventually("the signed status to apply", || async {
        (message_status(store.as_ref(), &d.message_id).await == MessageStatus::Read).then_some(())
    })
    .await;
    assert_eq!(store.count_deliveries().await.unwrap(), deliveries_before + 1);
    app.stop().await;
}

async fn statuses_before_the_wamid_are_kept_then_applied(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let numbers = store.list_phone_numbers().await.unwrap();
    let d = claimed_message(store.as_ref(), &numbers[0].id).await;
    let app = built.started();
    let account = sandbox_account(&app).await;
    // `read` first, then `sent` again and again: duplicates and reordering, before the wamid.
    for batch in [&[("read", 1_800_000_003)][..], &[("sent", 1_800_000_001), ("sent", 1_800_000_001)][..]] {
        let body = status_payload(&account, "wamid.EARLY", batch);
        let sig = signature::sign(&account.app_secret, &body);
        assert_eq!(post_webhook(&app, body, Some(sig)).await, StatusCode::OK);
    }
    eventually("both deliveries processed", || async {
        (store.deliveries().pending().await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(store.count_deliveries().await.unwrap(), 2);
    assert_eq!(message_status(store.as_ref(), &d.message_id).await, MessageStatus::Sending);

    // The send's result is recorded: the waiting statuses apply at once.
    assert!(store.record_accepted(&d, "wamid.EARLY", &json!({}), Timestamp::now()).await.unwrap());
    let (status, m) = app.get(&format!("/v1/messages/{}", d.message_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["status"], "read");
    let history: Vec<(&str, bool)> = m["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["status"].as_str().unwrap(), s["implied"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        history,
        [("queued", false), ("accepted", false), ("sent", false), ("delivered", true), ("read", false)]
    );
    app.stop().await;
}

async fn handshake_needs_the_verify_token(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let url = |mode: &str, token: &str| {
        format!("{}/webhooks/meta?hub.mode={mode}&hub.verify_token={token}&hub.challenge=1158201444", app.url)
    };
    let resp = app.http.get(url("subscribe", &account.verify_token)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    for (mode, token) in
        [("subscribe", "wrong-token"), ("unsubscribe", account.verify_token.as_str()), ("subscribe", "")]
    {
        let (status, body) = request(&app.http, Method::GET, &url(mode, token), None, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{mode} {token}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    app.stop().await;
}

/// A payload in the sandbox's name, signed with the sandbox's (widely known) app secret.
fn forged(account: &SandboxAccount, waba: &str, value: Value) -> (Vec<u8>, Option<String>) {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": value}]}],
    })
    .to_string()
    .into_bytes();
    let sig = signature::sign(&account.app_secret, &body);
    (body, Some(sig))
}

async fn one_accounts_secret_cannot_touch_another_accounts_messages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (sandbox_url, seed) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (status, live) = app
        .post(
            "/v1/accounts",
            json!({"name": "live", "graph_base_url": sandbox_url, "access_token": seed.access_token,
                   "waba_id": seed.waba_id, "app_secret": seed.app_secret, "verify_token": seed.verify_token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{live}");
    let live_number = seed.phone_numbers[0].id.clone();
    let customer = customer();
    simulate_inbound(&app.http, &sandbox_url, None, &live_number, &customer, "hi").await;
    let (_, sent) = app
        .post("/v1/messages", json!({"from": live_number, "to": customer, "type": "text", "text": {"body": "x"}}))
        .await;
    let read = wait_for_message(
        &app.http,
        &app.url,
        &app.api_key,
        sent["id"].as_str().unwrap(),
        "the live message read",
        |m| m["status"] == "read",
    )
    .await;
    let live_wamid = read["wamid"].as_str().unwrap().to_owned();

    // The built-in sandbox's secret is known to every API-key holder; it must not vouch for the
    // live account's WABA, for a WABA nobody connected, or for the live account's messages.
    let sandbox = sandbox_account(&app).await;
    let failed = json!({"statuses": [{"id": live_wamid, "status": "failed", "timestamp": "1800000000",
        "errors": [{"code": 131026, "title": "Message undeliverable"}]}]});
    let deliveries = app.store().count_deliveries().await.unwrap();
    for (what, waba) in [("the live WABA", seed.waba_id.as_str()), ("an unknown WABA", "999")] {
        let (body, sig) = forged(&sandbox, waba, failed.clone());
        assert_eq!(post_webhook(&app, body, sig).await, StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(app.store().count_deliveries().await.unwrap(), deliveries);

    // In its own name the sandbox is heard, but only about its own messages and numbers.
    let (body, sig) = forged(&sandbox, &sandbox.waba_id, failed.clone());
    assert_eq!(post_webhook(&app, body, sig).await, StatusCode::OK);
    let inbound = json!({
        "metadata": {"display_phone_number": "1555", "phone_number_id": live_number},
        "contacts": [{"profile": {"name": "Mallory"}, "wa_id": "15550179999"}],
        "messages": [{"from": "15550179999", "id": "wamid.FORGED", "timestamp": "1800000000", "type": "text", "text": {"body": "refund me"}}],
    });
    let (body, sig) = forged(&sandbox, &sandbox.waba_id, inbound);
    assert_eq!(post_webhook(&app, body, sig).await, StatusCode::OK);
    eventually("the forged deliveries processed", || async {
        (app.store().deliveries().pending().await.unwrap() == 0).then_some(())
    })
    .await;
    let (_, after) = app.get(&format!("/v1/messages/{}", sent["id"].as_str().unwrap())).await;
    assert_eq!((after["status"].as_str(), after["error"].is_null()), (Some("read"), true), "{after}");
    assert!(app.store().find_message_by_wamid("wamid.FORGED").await.unwrap().is_none());
    app.stop().await;
}

/// The receiver keeps the accounts it read for a moment; a secret changed behind its back (by
/// another instance) must still be honoured at once, and the old one refused from then on.
async fn a_secret_rotated_elsewhere_is_honoured_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = sandbox_account(&app).await;
    let body = status_payload(&sandbox, "wamid.ROTATE", &[("sent", 1_800_000_000)]);
    let old = signature::sign(&sandbox.app_secret, &body);
    assert_eq!(post_webhook(&app, body.clone(), Some(old.clone())).await, StatusCode::OK);

    let store = app.store();
    let mut account = store.list_accounts().await.unwrap().into_iter().find(|a| a.waba_id == sandbox.waba_id).unwrap();
    let last_updated_at = account.updated_at;
    account.app_secret = wagate_domain::secret::Secret::new("rotated-elsewhere".to_owned());
    account.updated_at = Timestamp::now();
    assert!(store.update_account(&account, last_updated_at, None).await.unwrap());

    let new = signature::sign("rotated-elsewhere", &body);
    assert_eq!(post_webhook(&app, body.clone(), Some(new)).await, StatusCode::OK, "the new secret");
    assert_eq!(post_webhook(&app, body, Some(old)).await, StatusCode::FORBIDDEN, "the old secret");
    app.stop().await;
}

/// The processor takes accounts from the receiver's cache; an account connected behind its back
/// (through another instance, which also stored the delivery) must not have its deliveries set
/// aside as signed by nobody while that cache still holds the older list.
async fn a_delivery_for_an_account_connected_elsewhere_is_processed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = sandbox_account(&app).await;
    // The receiver reads the accounts, and keeps them, for this delivery.
    let body = status_payload(&sandbox, "wamid.BEFORE", &[("sent", 1_800_000_000)]);
    post_signed(&app, &sandbox, body).await;
    all_processed(&app).await;

    let store = app.store();
    let now = Timestamp::now();
    let mut elsewhere =
        store.list_accounts().await.unwrap().into_iter().find(|a| a.waba_id == sandbox.waba_id).unwrap();
    elsewhere.id = wagate_domain::id::AccountId::generate();
    elsewhere.mode = wagate_storage::AccountMode::Live;
    elsewhere.waba_id = "waba-elsewhere".into();
    elsewhere.app_secret = wagate_domain::secret::Secret::new("secret-elsewhere".to_owned());
    let mut number = store.get_phone_number(&sandbox.phone_number_id).await.unwrap().unwrap();
    number.id = "1999001".into();
    number.account_id = elsewhere.id.clone();
    number.waba_id = elsewhere.waba_id.clone();
    number.mode = wagate_storage::AccountMode::Live;
    number.is_default = false;
    store.insert_account(&elsewhere, std::slice::from_ref(&number)).await.unwrap();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "waba-elsewhere", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100000", "phone_number_id": "1999001"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15550170001"}],
            "messages": [{"from": "15550170001", "id": "wamid.ELSEWHERE", "timestamp": "1800000000",
                          "type": "text", "text": {"body": "hello from elsewhere"}}],
        },
    }]}]});
    let delivery = wagate_storage::NewDelivery {
        account_id: Some(elsewhere.id.clone()),
        body: body.to_string().into_bytes(),
        received_at: now,
    };
    store.insert_delivery(delivery).await.unwrap();
    all_processed(&app).await;

    let message = store.find_message_by_wamid("wamid.ELSEWHERE").await.unwrap();
    assert_eq!(message.map(|m| m.phone_number_id), Some("1999001".to_owned()), "the message was set aside");
    app.stop().await;
}

on_each_backend!(
    a_delivery_for_an_account_connected_elsewhere_is_processed,
    a_secret_rotated_elsewhere_is_honoured_at_once,
    one_accounts_secret_cannot_touch_another_accounts_messages,
    wrong_or_missing_signatures_are_refused_and_change_nothing,
    statuses_before_the_wamid_are_kept_then_applied,
    handshake_needs_the_verify_token,
);
