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
        json!({"status": "ready", "database": true, "dispatcher": true, "inbound_processor": true, "media_downloader": true,
            "janitor": true, "event_deliverer": true})
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
        ("/v1/events", &["get"]),
        ("/v1/events/stream", &["get"]),
        ("/v1/webhook-endpoints", &["get", "post"]),
        ("/v1/webhook-endpoints/{id}", &["get", "patch", "delete"]),
        ("/v1/webhook-endpoints/{id}/rotate-secret", &["post"]),
        ("/v1/webhook-endpoints/{id}/attempts", &["get"]),
        ("/v1/webhook-endpoints/{id}/replay", &["post"]),
        ("/v1/webhook-endpoints/{id}/test", &["post"]),
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

/// What the server does with a connection within 10 s: close it (`None`) or answer (its text).
async fn server_answer(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed the connection: {:?}", String::from_utf8_lossy(&got));
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned())
}

/// A client that opens connections and sends nothing, a head a little at a time, or a body
/// that never completes, holds no connection for long (the listener faces the internet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let _turn = crate::support::take_turn("slow_clients_are_cut_off").await;
    use tokio::io::AsyncWriteExt;
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.header_timeout_ms = 300;
        c.http.body_timeout_ms = 300;
    })
    .await
    else {
        return;
    };
    let addr = app.url.trim_start_matches("http://").to_owned();

    // Silent, and a head that never ends: closed without an answer.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert_eq!(server_answer(&mut silent).await, None);
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: wagate\r\n").await.unwrap();
    assert_eq!(server_answer(&mut partial).await, None);

    // A kept-alive connection gone idle after its answer: closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: wagate\r\n\r\n").await.unwrap();
    let answer = server_answer(&mut idle).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(server_answer(&mut idle).await, None);

    // A body that stops short: 408, naming the limit.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: wagate\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":",
        app.api_key
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = server_answer(&mut slow).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\"") && answer.contains("0.3 s"), "{answer}");

    // Clients that keep up are served as before.
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
}
