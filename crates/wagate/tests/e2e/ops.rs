//! Operations: health, readiness, metrics, the OpenAPI document and request ids.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_storage::Backend;

use crate::support::*;

async fn operations_endpoints_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let open = |path: &str| {
        let url = format!("{}{path}", app.url);
        let http = app.http.clone();
        async move { request(&http, Method::GET, &url, None, None).await }
    };

    assert_eq!(open("/healthz").await, (StatusCode::OK, json!({"status": "ok"})));
    let ready = eventually("readiness", || async {
        let (status, body) = open("/readyz").await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(
        ready,
        json!({"status": "ready", "database": true, "dispatcher": true, "inbound_processor": true, "media_downloader": true})
    );

    // A send shows in the metrics; no customer's number does.
    let customer = customer();
    let from = app.sandbox_numbers().await[0].clone();
    app.customer_writes(&from, &customer, "hi").await;
    let (status, _) =
        app.post("/v1/messages", json!({"from": from, "to": customer, "type": "text", "text": {"body": "x"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    for series in [
        "wagate_http_requests_total{method=\"POST\",route=\"/v1/messages\",status=\"202\"} 1",
        "wagate_messages_enqueued_total 1",
        "wagate_outbox_depth",
        "wagate_webhook_backlog",
        "wagate_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains(customer.trim_start_matches('+')), "a customer's number is in the metrics");

    // The OpenAPI document covers every native endpoint.
    let (status, doc) = open("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for (path, methods) in [
        ("/v1/messages", &["get", "post"][..]),
        ("/v1/messages/{id}", &["get"]),
        ("/v1/messages/{id}/read", &["post"]),
        ("/v1/messages/{id}/cancel", &["post"]),
        ("/v1/accounts", &["get", "post"]),
        ("/v1/accounts/{id}", &["get", "patch"]),
        ("/v1/accounts/{id}/resume", &["post"]),
        ("/v1/phone-numbers", &["get"]),
        ("/v1/phone-numbers/{id}", &["patch"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete"]),
        ("/webhooks/meta", &["get", "post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/contacts", &["get"]),
        ("/v1/contacts/{id}", &["get", "patch"]),
        ("/v1/conversations", &["get"]),
        ("/v1/conversations/{id}", &["get"]),
        ("/v1/conversations/{id}/messages", &["get"]),
        ("/v1/conversations/{id}/read", &["post"]),
    ] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path} missing from /openapi.json");
        }
    }
    // The send request documents every content object of Meta's model.
    let send = &doc["components"]["schemas"]["SendRequest"]["properties"];
    for kind in [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "interactive",
        "template",
    ] {
        assert!(send[kind].is_object(), "SendRequest.{kind} is not documented");
    }
    for option in ["send_at", "expires_at", "idempotency_key", "metadata"] {
        assert!(send[option].is_object(), "SendRequest.{option} is not documented");
    }
    assert!(
        doc["components"]["schemas"]["Interactive"].is_object() && doc["components"]["schemas"]["Template"].is_object()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Unknown paths and methods answer in the same error shape.
    let (status, body) = open("/v2/nothing").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = app.request(Method::PUT, "/v1/messages", Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));

    // Request ids: a caller's is echoed, otherwise one is made.
    let resp = app.http.get(format!("{}/healthz", app.url)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let resp = app.http.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert!(resp.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    app.stop().await;
}

on_each_backend!(operations_endpoints_answer);
