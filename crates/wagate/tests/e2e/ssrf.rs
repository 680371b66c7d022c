//! Requests to URLs that callers choose (an account's Graph base URL, a sandbox's webhook URL):
//! non-public destinations are refused unless `[network] allow_private` names them, redirects are
//! never followed, and the bodies of unexpected answers are never repeated.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_server::Config;
use wagate_storage::Backend;

use crate::support::*;

/// In the body and the location of every unexpected answer: must never appear in wagate's.
const MARKER: &str = "internal-secret-5f1c";

/// A listener that redirects every request to another one, which counts what reaches it and
/// answers as a Graph API would, so that following the redirect would connect the account.
async fn redirect_to_internal() -> (Canned, Canned) {
    let internal = Canned::start("200 OK", "", &format!(r#"{{"data": [], "note": "{MARKER}"}}"#)).await;
    let location = format!("{}/internal?token={MARKER}", internal.url);
    let body = format!("<a href=\"{location}\">moved: {MARKER}</a>");
    let redirector = Canned::start("302 Found", &format!("Location: {location}\r\n"), &body).await;
    (redirector, internal)
}

fn account_body(graph_base_url: &str) -> Value {
    json!({
        "name": "internal", "graph_base_url": graph_base_url, "access_token": "EAAGinternal",
        "waba_id": "102290129340398", "app_secret": "app-secret", "verify_token": "verify-token",
    })
}

fn without_allow_list(c: &mut Config) {
    c.network.allow_private.clear();
}

async fn account_count(app: &TestApp) -> usize {
    app.get("/v1/accounts").await.1["data"].as_array().unwrap().len()
}

async fn private_addresses_are_refused_without_the_allow_list(backend: Backend) {
    // An account connected while loopback was allowed, then a restart without the allow-list.
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (sandbox_url, _) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (account, numbers) = app.connect_sandbox(&sandbox_url).await;
    let app = app.restart_with(without_allow_list).await;
    let accounts = account_count(&app).await;

    let (redirector, internal) = redirect_to_internal().await;
    let port = redirector.url.rsplit(':').next().unwrap().to_owned();
    let refused = [
        redirector.url.clone(),
        // The URL parser reads these as 127.0.0.1.
        format!("http://127.1:{port}/sandbox"),
        format!("http://2130706433:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://0.0.0.0:{port}"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1".to_owned(),
        // A name is judged by the addresses it resolves to, when connecting.
        format!("http://localhost:{port}/sandbox"),
    ];
    for url in &refused {
        let (status, e) = app.post("/v1/accounts", account_body(url)).await;
        assert_eq!(
            (status, e["error"]["path"].as_str(), e["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("graph_base_url"), Some("private_address")),
            "{url}: {e}"
        );
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("[network] allow_private") && message.contains("WAGATE_ALLOW_PRIVATE"), "{message}");
    }
    let path = format!("/v1/accounts/{account}");
    let (status, e) = app.request(Method::PATCH, &path, Some(json!({"graph_base_url": refused[1]}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("private_address")));
    assert_eq!((redirector.hits(), internal.hits()), (0, 0), "nothing was sent");
    assert_eq!(account_count(&app).await, accounts, "nothing was stored");
    assert_eq!(app.get(&path).await.1["graph_base_url"], sandbox_url.as_str(), "unchanged");

    // The length of a base URL has a limit.
    let long = format!("https://graph.facebook.com/{}", "v".repeat(2048));
    let (status, e) = app.post("/v1/accounts", account_body(&long)).await;
    assert_eq!(
        (status, e["error"]["path"].as_str(), e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("graph_base_url"), Some("max_length")),
        "{e}"
    );

    // The account's sends fail at once, without retries, and nothing reaches its sandbox.
    let customer = customer();
    let text = json!({"from": numbers[0], "to": customer, "type": "text", "text": {"body": "hi"}});
    let (status, sent) = app.post("/v1/messages", text).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().unwrap();
    let failed =
        wait_for_message(&app.http, &app.url, &app.api_key, id, "the send to fail", |m| m["status"] == "failed").await;
    assert_eq!(failed["error"]["reason"], "private_address", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("allow_private"), "{failed}");
    assert!(sandbox_received(&app.http, &sandbox_url, None, &customer).await.is_empty());
    app.stop().await;
}

async fn with_the_allow_list_redirects_are_not_followed_nor_bodies_echoed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let accounts = account_count(&app).await;
    let (redirector, internal) = redirect_to_internal().await;
    let page = format!("<html><body>{MARKER}</body></html>");
    let html = Canned::start("200 OK", "", &page).await;
    let outage = Canned::start("500 Internal Server Error", "", &page).await;
    for (url, why) in [
        (&redirector.url, "a redirect, not followed"),
        (&html.url, "not JSON"),
        (&outage.url, "not Meta's error object"),
    ] {
        let (status, e) = app.post("/v1/accounts", account_body(url)).await;
        assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("graph_unavailable")), "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(why) && message.contains("text/html"), "{message}");
        assert!(!e.to_string().contains(MARKER), "the answer's body or location was echoed: {e}");
    }
    assert!(redirector.hits() >= 1 && html.hits() >= 1 && outage.hits() >= 1, "each was asked");
    assert_eq!(internal.hits(), 0, "the redirect was not followed");
    assert_eq!(account_count(&app).await, accounts, "nothing was stored");

    // Moving a connected account to it: refused the same way, the account unchanged.
    let (sandbox_url, _) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (account, _) = app.connect_sandbox(&sandbox_url).await;
    let path = format!("/v1/accounts/{account}");
    let (status, e) = app.request(Method::PATCH, &path, Some(json!({"graph_base_url": redirector.url}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("graph_unavailable")), "{e}");
    assert!(!e.to_string().contains(MARKER), "{e}");
    assert_eq!(internal.hits(), 0, "the redirect was not followed");
    assert_eq!(app.get(&path).await.1["graph_base_url"], sandbox_url.as_str(), "unchanged");
    app.stop().await;
}

on_each_backend!(
    private_addresses_are_refused_without_the_allow_list,
    with_the_allow_list_redirects_are_not_followed_nor_bodies_echoed,
);

/// The standalone sandbox may post to loopback (it is a test tool), but it follows no redirect:
/// not when verifying a new webhook URL, whose request carries the verify token, and not when
/// delivering. Nor does it show what an endpoint answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_follows_no_webhook_redirect_and_echoes_no_body() {
    let _turn = take_turn("the_sandbox_follows_no_webhook_redirect_and_echoes_no_body").await;
    let (sandbox_url, seed) = spawn_sandbox("http://127.0.0.1:9/hook").await;
    let http = reqwest::Client::new();
    let webhook = format!("{sandbox_url}/control/webhook");
    let (redirector, internal) = redirect_to_internal().await;
    let wrong_answer = Canned::start("200 OK", "", &format!("not the challenge: {MARKER}")).await;
    for (url, why) in [(&redirector.url, "302 Found, a redirect"), (&wrong_answer.url, "200 OK without the challenge")]
    {
        let (status, e) = request(&http, Method::PUT, &webhook, None, Some(json!({"url": url}))).await;
        assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("url")), "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
        assert!(!message.contains(MARKER) && !message.contains(&seed.verify_token), "{message}");
    }
    assert_eq!((redirector.hits(), wrong_answer.hits()), (1, 1));

    // Delivering to it anyway (no verification): refused, not followed.
    let (status, e) =
        request(&http, Method::PUT, &webhook, None, Some(json!({"url": redirector.url, "verify": false}))).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    simulate_inbound(&http, &sandbox_url, None, &seed.phone_numbers[0].id, &customer(), "hello").await;
    eventually("the delivery to be refused", || async {
        let (_, w) = request(&http, Method::GET, &webhook, None, None).await;
        (w["deliveries"]["refused"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    assert!(redirector.hits() >= 2, "the delivery was posted to it");
    assert_eq!(internal.hits(), 0, "no redirect was followed");
}
