//! Connecting Meta accounts: credentials checked against the Graph API (here a standalone
//! sandbox on its own port), phone numbers read from it, secrets never returned.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_sandbox::Seed;
use wagate_storage::Backend;

use crate::support::*;

fn connect_body(sandbox_url: &str, seed: &Seed, token: &str) -> Value {
    json!({
        "name": "Shop (staging)",
        "graph_base_url": sandbox_url,
        "api_version": "v23.0",
        "access_token": token,
        "waba_id": seed.waba_id,
        "app_secret": seed.app_secret,
        "verify_token": seed.verify_token,
    })
}

async fn accounts_connect_rotate_and_send(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (sandbox_url, seed) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;

    // A wrong token: Meta's 190 comes back, nothing is stored.
    let (status, refused) = app.post("/v1/accounts", connect_body(&sandbox_url, &seed, "EAAGwrong")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "meta_rejected");
    assert_eq!(refused["error"]["meta"]["code"], 190);
    assert_eq!(app.get("/v1/accounts").await.1["data"].as_array().unwrap().len(), 1, "only the sandbox account");

    // Bad fields are named.
    for (field, value, path) in [
        ("graph_base_url", json!("ftp://graph"), "graph_base_url"),
        ("api_version", json!("23"), "api_version"),
        ("waba_id", json!("my-waba"), "waba_id"),
        ("app_secret", json!(""), "app_secret"),
    ] {
        let mut body = connect_body(&sandbox_url, &seed, &seed.access_token);
        body[field] = value;
        let (status, e) = app.post("/v1/accounts", body).await;
        assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(path)), "{e}");
    }
    let mut unreachable = connect_body("http://127.0.0.1:9/sandbox", &seed, &seed.access_token);
    unreachable["graph_base_url"] = json!("http://127.0.0.1:9/sandbox");
    let (status, e) = app.post("/v1/accounts", unreachable).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("graph_unavailable")), "{e}");

    // The right token: connected, live, its numbers read from the Graph API.
    let (status, account) = app.post("/v1/accounts", connect_body(&sandbox_url, &seed, &seed.access_token)).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    assert_eq!(account["mode"], "live");
    assert_eq!(account["waba_id"], seed.waba_id.as_str());
    let text = account.to_string();
    for secret in [&seed.access_token, &seed.app_secret, &seed.verify_token] {
        assert!(!text.contains(secret.as_str()), "a secret leaked into the response");
    }
    let ids: Vec<&str> =
        account["phone_numbers"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let seeded: Vec<&str> = seed.phone_numbers.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(seeded.iter().all(|id| ids.contains(id)));
    let account_id = account["id"].as_str().unwrap().to_owned();

    let (status, dup) = app.post("/v1/accounts", connect_body(&sandbox_url, &seed, &seed.access_token)).await;
    assert_eq!((status, dup["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let live: Vec<&Value> = numbers["data"].as_array().unwrap().iter().filter(|n| n["mode"] == "live").collect();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|n| n["account_id"] == account_id.as_str() && n["waba_id"] == seed.waba_id.as_str()));

    // Rotation: a bad token is refused and changes nothing; a rename goes through.
    let path = format!("/v1/accounts/{account_id}");
    let (status, e) = app.request(Method::PATCH, &path, Some(json!({"access_token": "EAAGrotated-but-wrong"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("meta_rejected")));
    let (status, renamed) =
        app.request(Method::PATCH, &path, Some(json!({"name": "Shop", "access_token": seed.access_token}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Shop");
    assert_eq!(renamed["access_token_hint"], account["access_token_hint"]);
    let (status, e) = app.request(Method::PATCH, &path, Some(json!({"tokn": "x"}))).await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("tokn")));
    let (status, _) =
        app.request(Method::PATCH, "/v1/accounts/acc_01M7YGVNCPBZF5EN57NZH9PDYQ", Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The sandbox account's credentials belong to the running sandbox: only its name may change.
    let sandbox_account = app.get("/v1/accounts").await.1["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mode"] == "sandbox")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sandbox_path = format!("/v1/accounts/{sandbox_account}");
    let (status, e) = app.request(Method::PATCH, &sandbox_path, Some(json!({"app_secret": "rotated"}))).await;
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sandbox_managed"), Some("app_secret"))
    );
    let (status, _) = app.request(Method::PATCH, &sandbox_path, Some(json!({"name": "My sandbox"}))).await;
    assert_eq!(status, StatusCode::OK);

    // With live numbers connected, a send without `from` never falls back to the sandbox.
    let customer = customer();
    let (status, e) = app.post("/v1/messages", json!({"to": customer, "type": "text", "text": {"body": "hi"}})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required"), Some("from"))
    );
    let from = seed.phone_numbers[1].id.clone();
    let (status, n) =
        app.request(Method::PATCH, &format!("/v1/phone-numbers/{from}"), Some(json!({"default": true}))).await;
    assert_eq!((status, n["default"].as_bool()), (StatusCode::OK, Some(true)), "{n}");
    let (status, e) =
        app.request(Method::PATCH, &format!("/v1/phone-numbers/{from}"), Some(json!({"default": false}))).await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("default")));
    let (status, _) = app.request(Method::PATCH, "/v1/phone-numbers/1999", Some(json!({"default": true}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let defaults: Vec<(&str, &str)> = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["default"] == true)
        .map(|n| (n["mode"].as_str().unwrap(), n["id"].as_str().unwrap()))
        .collect();
    assert!(defaults.contains(&("live", from.as_str())) && defaults.len() == 2, "{defaults:?}");

    // And the live account sends through the standalone sandbox, statuses and all, as the default.
    simulate_inbound(&app.http, &sandbox_url, None, &from, &customer, "hello?").await;
    let (status, sent) =
        app.post("/v1/messages", json!({"to": customer, "type": "text", "text": {"body": "hi!"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["from"], from.as_str());
    let done = wait_for_message(
        &app.http,
        &app.url,
        &app.api_key,
        sent["id"].as_str().unwrap(),
        "read via the standalone sandbox",
        |m| m["status"] == "read",
    )
    .await;
    assert_eq!(sandbox_received(&app.http, &sandbox_url, None, &customer).await[0]["wamid"], done["wamid"]);
    app.stop().await;
}

on_each_backend!(accounts_connect_rotate_and_send);
