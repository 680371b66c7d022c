//! Invalid sends are refused with a 4xx naming the field and the rule, and nothing is stored
//! or sent.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

async fn invalid_sends_are_refused_and_nothing_is_stored(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let ok = |extra: Value| {
        let mut body = json!({"from": from, "to": "+15550171234", "type": "text", "text": {"body": "hi"}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases: Vec<(&str, Value, StatusCode, &str, Option<&str>)> = vec![
        (
            "empty body",
            ok(json!({"text": {"body": ""}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "min_length",
            Some("text.body"),
        ),
        (
            "4097 chars",
            ok(json!({"text": {"body": "x".repeat(4097)}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_length",
            Some("text.body"),
        ),
        ("no body", ok(json!({"text": {}})), StatusCode::UNPROCESSABLE_ENTITY, "required", Some("text.body")),
        (
            "body not a string",
            ok(json!({"text": {"body": 7}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            Some("text.body"),
        ),
        ("no text object", ok(json!({"text": null})), StatusCode::UNPROCESSABLE_ENTITY, "required", Some("text")),
        ("number without +", ok(json!({"to": "15550171234"})), StatusCode::UNPROCESSABLE_ENTITY, "e164", Some("to")),
        ("letters in number", ok(json!({"to": "+1555CALLNOW"})), StatusCode::UNPROCESSABLE_ENTITY, "e164", Some("to")),
        ("too short", ok(json!({"to": "+1555"})), StatusCode::UNPROCESSABLE_ENTITY, "e164", Some("to")),
        ("no recipient", ok(json!({"to": null})), StatusCode::UNPROCESSABLE_ENTITY, "required", Some("to")),
        (
            "unknown sender",
            ok(json!({"from": "999999999999999"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sender",
            Some("from"),
        ),
        (
            "unknown type",
            ok(json!({"type": "hologram"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_type",
            Some("type"),
        ),
        (
            "unknown field",
            ok(json!({"sned_at": "tomorrow"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            Some("sned_at"),
        ),
        (
            "metadata not an object",
            ok(json!({"metadata": [1]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            Some("metadata"),
        ),
    ];
    for (what, body, status, code, path) in cases {
        let (got, resp) = app.post("/v1/messages", body).await;
        assert_eq!(got, status, "{what}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{what}: {resp}");
        assert_eq!(resp["error"]["path"].as_str(), path, "{what}: {resp}");
        let message = resp["error"]["message"].as_str().unwrap();
        if let Some(path) = path {
            assert!(message.contains(path), "{what}: the message names the field: {message}");
        }
    }

    // Not JSON at all, or not sent as JSON.
    let raw = |ct: &'static str, body: &'static str| {
        app.http
            .post(format!("{}/v1/messages", app.url))
            .bearer_auth(&app.api_key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let resp = raw("application/json", "{\"to\": ").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");
    let resp = raw("text/plain", "{}").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = raw("application/json", "[1, 2]").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing was stored or queued, and nothing reached the sandbox.
    assert_eq!(app.store().count_messages().await.unwrap(), 0);
    assert_eq!(app.store().outbox().pending().await.unwrap(), 0);
    let (_, received) = app.get("/sandbox/control/messages").await;
    assert_eq!(received["data"], json!([]));
    let (status, missing) = app.get("/v1/messages/msg_01M7YGVNCPBZF5EN57NZH9PDYQ").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}

on_each_backend!(invalid_sends_are_refused_and_nothing_is_stored);
