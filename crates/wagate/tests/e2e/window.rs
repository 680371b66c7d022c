//! Meta's 24-hour rule, before Meta: outside the customer-service window only templates go.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_server::config::OutsideWindow;
use wagate_storage::Backend;

use crate::support::*;

async fn sends_outside_the_window_are_refused_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let stranger = customer();
    let text = json!({"from": phone, "to": stranger, "type": "text", "text": {"body": "Hi there"}});

    let (status, e) = app.post("/v1/messages", text.clone()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("outside_window"), Some("to")),
        "{e}"
    );
    let graph_body =
        json!({"messaging_product": "whatsapp", "to": stranger, "type": "text", "text": {"body": "Hi there"}});
    let url = format!("{}/graph/v23.0/{phone}/messages", app.url);
    let (status, e) = request(&app.http, Method::POST, &url, Some(&app.api_key), Some(graph_body.clone())).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131047)), "{e}");
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing refused is stored");

    // A template may open the conversation.
    let hello = json!({"from": phone, "to": stranger, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    assert_eq!(app.post("/v1/messages", hello).await.0, StatusCode::ACCEPTED);
    // Once the customer writes, the window is open on both surfaces.
    app.customer_writes(&phone, &stranger, "hello!").await;
    assert_eq!(app.post("/v1/messages", text).await.0, StatusCode::ACCEPTED);
    let (status, answer) = request(&app.http, Method::POST, &url, Some(&app.api_key), Some(graph_body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    app.stop().await;
}

/// The tier's count (`messaging_limit.used_24h`) is of unique users reached outside the window:
/// a template to a stranger counts once however often it goes; a send inside the window, and a
/// refused one, count nothing.
async fn unique_users_reached_outside_the_window_are_counted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let used = || async {
        let (_, accounts) = app.get("/v1/accounts").await;
        let account = accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["phone_numbers"].as_array().unwrap().iter().any(|n| n["id"] == phone.as_str()))
            .cloned()
            .expect("the sandbox number's account");
        account["messaging_limit"]["used_24h"].as_i64().unwrap()
    };
    assert_eq!(used().await, 0);
    let hello = |to: &str| {
        json!({"from": phone, "to": to, "type": "template",
               "template": {"name": "hello_world", "language": {"code": "en_US"}}})
    };
    let (stranger, friend) = (customer(), customer());
    for _ in 0..2 {
        assert_eq!(app.post("/v1/messages", hello(&stranger)).await.0, StatusCode::ACCEPTED);
    }
    let refused = json!({"from": phone, "to": friend, "type": "text", "text": {"body": "Hi"}});
    assert_eq!(app.post("/v1/messages", refused).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(used().await, 1, "one stranger, however many templates; a refused send counts nothing");
    app.customer_writes(&phone, &friend, "hello!").await;
    assert_eq!(app.post("/v1/messages", hello(&friend)).await.0, StatusCode::ACCEPTED);
    assert_eq!(used().await, 1, "inside the window nothing is opened");
    app.stop().await;
}

async fn with_outside_set_to_pass_meta_decides(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.window.outside = OutsideWindow::Pass).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let stranger = customer();
    let (status, m) =
        app.post("/v1/messages", json!({"from": phone, "to": stranger, "type": "text", "text": {"body": "Hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{m}");
    wait_for_message(&app.http, &app.url, &app.api_key, m["id"].as_str().unwrap(), "handed to Meta", |m| {
        m["wamid"].is_string()
    })
    .await;
    app.stop().await;
}

async fn a_number_not_watched_for_a_day_passes_to_meta(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (sandbox_url, seed) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (status, _) = app
        .post(
            "/v1/accounts",
            json!({"name": "new", "graph_base_url": sandbox_url, "access_token": seed.access_token,
                   "waba_id": seed.waba_id, "app_secret": seed.app_secret, "verify_token": seed.verify_token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Just connected: a customer may have written before wagate was watching.
    let (status, m) = app
        .post(
            "/v1/messages",
            json!({"from": seed.phone_numbers[0].id, "to": customer(), "type": "text", "text": {"body": "Hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{m}");
    app.stop().await;
}

on_each_backend!(
    sends_outside_the_window_are_refused_at_once,
    unique_users_reached_outside_the_window_are_counted,
    with_outside_set_to_pass_meta_decides,
    a_number_not_watched_for_a_day_passes_to_meta,
);
