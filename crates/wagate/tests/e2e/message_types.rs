//! Every message type and variant Meta documents, through the native API: what reaches the
//! sandbox is Meta's documented form; what breaks a rule is refused with its path and rule.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use wagate_storage::Backend;

use crate::support::*;

pub const EXAMPLES: &str = include_str!("../../../../testdata/meta-send-examples.json");
const INVALID: &str = include_str!("../../../../testdata/invalid-sends.json");

pub struct Example {
    pub name: String,
    pub body: Value,
}

pub fn examples() -> Vec<Example> {
    let all: Vec<Value> = serde_json::from_str(EXAMPLES).unwrap();
    all.into_iter().map(|e| Example { name: e["name"].as_str().unwrap().to_owned(), body: e["body"].clone() }).collect()
}

/// The documented body addressed to `customer`, or to `group` when it goes to a group (user ids
/// stay).
pub fn addressed(body: &Value, customer: &str, group: &str) -> Value {
    let mut body = body.clone();
    if body["recipient_type"] == "group" {
        body["to"] = json!(group);
    } else if body["to"].as_str().is_some_and(|to| to.starts_with('+')) {
        body["to"] = json!(customer);
    }
    body
}

/// The same message in the native envelope: no `messaging_product`, `reply_to` for `context`.
fn native(body: &Value, from: &str) -> Value {
    let mut native: Map<String, Value> = body.as_object().unwrap().clone();
    native.remove("messaging_product");
    if let Some(context) = native.remove("context") {
        native.insert("reply_to".into(), context["message_id"].clone());
    }
    native.insert("from".into(), json!(from));
    Value::Object(native)
}

async fn every_type_reaches_the_sandbox_as_meta_documents_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&from, &customer, "show me everything").await;
    let group = app.prepare_examples(&from, &customer).await;

    let examples = examples();
    assert!(examples.len() >= 45, "one example per type and variant");
    let mut sent = Vec::new();
    for ex in &examples {
        let expected = addressed(&ex.body, &customer, &group);
        let (status, body) = app.post("/v1/messages", native(&expected, &from)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}: {body}", ex.name);
        sent.push((ex, expected, body["id"].as_str().unwrap().to_owned()));
    }
    let (_, received) = app.get("/sandbox/control/messages").await;
    for (ex, mut expected, id) in sent {
        let done = wait_for_message(&app.http, &app.url, &app.api_key, &id, &ex.name, |m| m["wamid"].is_string()).await;
        let wamid = done["wamid"].as_str().unwrap();
        let (_, received) = if received["data"].as_array().unwrap().iter().any(|r| r["wamid"] == wamid) {
            (StatusCode::OK, received.clone())
        } else {
            app.get("/sandbox/control/messages").await
        };
        let got: Vec<&Value> = received["data"].as_array().unwrap().iter().filter(|r| r["wamid"] == wamid).collect();
        assert_eq!(got.len(), 1, "{}: sent once", ex.name);
        // The native API always states the recipient type; Meta's default is the same.
        if expected.get("recipient_type").is_none() {
            expected["recipient_type"] = json!("individual");
        }
        assert_eq!(got[0]["body"], expected, "{}", ex.name);
        assert_eq!(done["type"], expected["type"], "{}", ex.name);
        // Each template example was checked against its template, and shows as it was seen.
        if expected["type"] == "template" {
            assert!(done["rendered"].is_object(), "{}: {done}", ex.name);
        }
    }
    app.stop().await;
}

async fn invalid_sends_are_refused_with_their_path_and_rule(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let cases: Vec<Value> = serde_json::from_str(INVALID).unwrap();
    assert!(cases.len() >= 40);
    for case in &cases {
        let mut body = case["body"].clone();
        body["from"] = json!(from);
        let (status, resp) = app.post("/v1/messages", body).await;
        let name = case["name"].as_str().unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {resp}");
        assert_eq!(resp["error"]["code"], case["rule"], "{name}: {resp}");
        assert_eq!(resp["error"]["path"], case["path"], "{name}: {resp}");
    }
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing refused is stored");
    assert_eq!(app.get("/sandbox/control/messages").await.1["data"], json!([]));
    app.stop().await;
}

async fn messages_are_listed_and_inbound_ones_marked_read(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let (ana, bo) = (customer(), customer());
    let inbound_wamid = app.customer_writes(&from, &ana, "hello").await;
    app.customer_writes(&from, &bo, "hi").await;
    let inbound = eventually("both inbound messages stored", || async {
        let (_, page) = app.get("/v1/messages?direction=inbound").await;
        let data = page["data"].as_array().unwrap().clone();
        (data.len() == 2).then_some(data)
    })
    .await;
    let from_ana = inbound.iter().find(|m| m["from"] == ana.as_str()).unwrap();
    assert_eq!(from_ana["to"], from.as_str());
    assert_eq!(from_ana["text"]["body"], "hello");
    assert_eq!(from_ana["wamid"], inbound_wamid.as_str());

    // Replying by wagate's id of the customer's message puts Meta's wamid in the context.
    let mut outbound = Vec::new();
    for i in 0..3 {
        let body = json!({"from": from, "to": ana, "type": "text", "text": {"body": format!("reply {i}")}, "reply_to": from_ana["id"]});
        let (status, m) = app.post("/v1/messages", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{m}");
        assert_eq!(m["reply_to"], inbound_wamid.as_str());
        outbound.push(m["id"].as_str().unwrap().to_owned());
    }
    let (_, to_ana) = app.get(&format!("/v1/messages?to={}", ana.replace('+', "%2B"))).await;
    let ids: Vec<&str> = to_ana["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, outbound.iter().rev().map(String::as_str).collect::<Vec<_>>(), "newest first");
    let (_, page1) = app.get("/v1/messages?limit=2").await;
    let cursor = page1["next_cursor"].as_str().expect("more than two messages").to_owned();
    let (_, page2) = app.get(&format!("/v1/messages?limit=2&cursor={cursor}")).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    assert!(page2["data"][0]["id"].as_str().unwrap() < page1["data"][1]["id"].as_str().unwrap());
    for (query, path) in [
        ("direction=sideways", "direction"),
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("cursor=abc", "cursor"),
    ] {
        let (status, e) = app.get(&format!("/v1/messages?{query}")).await;
        assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(path)), "{query}");
    }

    // Read receipts go to Meta for inbound messages, with the typing indicator when asked.
    let read = format!("/v1/messages/{}/read", from_ana["id"].as_str().unwrap());
    let (status, r) = app.post(&read, json!({"typing_indicator": true})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!((r["read"].as_bool(), r["typing_indicator"].as_bool()), (Some(true), Some(true)));
    let (status, _) = app.request(Method::POST, &read, None).await;
    assert_eq!(status, StatusCode::OK, "no body means no typing indicator");
    let (_, received) = app.get("/sandbox/control/messages").await;
    let receipts: Vec<&Value> = received["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["body"]["message_id"] == inbound_wamid.as_str())
        .collect();
    assert_eq!(receipts.len(), 2);
    assert_eq!(
        receipts[0]["body"],
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound_wamid, "typing_indicator": {"type": "text"}})
    );
    assert!(receipts[1]["body"].get("typing_indicator").is_none());
    let (status, e) = app.post(&format!("/v1/messages/{}/read", outbound[0]), json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_inbound")));
    let (status, e) = app.post(&read, json!({"typing": true})).await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("typing")));
    app.stop().await;
}

on_each_backend!(
    every_type_reaches_the_sandbox_as_meta_documents_it,
    invalid_sends_are_refused_with_their_path_and_rule,
    messages_are_listed_and_inbound_ones_marked_read,
);
