//! The walking skeleton's flow: a customer writes, wagate replies through the outbox and the
//! sandbox, and the reply's statuses come back by signed webhook.

use reqwest::StatusCode;
use serde_json::json;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{Backend, Direction};

use crate::support::*;

async fn customer_message_then_reply_ends_read(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let numbers = app.sandbox_numbers().await;
    assert!(numbers.len() >= 2, "the sandbox account has at least two numbers");
    let customer = customer();

    // The customer writes first; the inbound text lands in storage with its contact.
    let inbound_wamid =
        simulate_inbound(&app.http, &sandbox, Some(&app.api_key), &numbers[0], &customer, "Where is my order?").await;
    let inbound = eventually("the inbound message to be stored", || async {
        app.store().find_message_by_wamid(&inbound_wamid).await.unwrap()
    })
    .await;
    assert_eq!(inbound.direction, Direction::Inbound);
    assert_eq!(inbound.status, MessageStatus::Received);
    assert_eq!(inbound.phone_number_id, numbers[0]);
    assert_eq!(inbound.counterpart, customer);
    assert_eq!(inbound.content["text"]["body"], "Where is my order?");
    let contact =
        app.store().get_contact_by_wa_id(customer.trim_start_matches('+')).await.unwrap().expect("contact stored");
    assert_eq!(contact.profile_name.as_deref(), Some("Ana Customer"));
    assert_eq!(inbound.contact_id, Some(contact.id));

    // The reply: 202 queued, then accepted, sent, delivered, read.
    let (status, queued) = app
        .post(
            "/v1/messages",
            json!({"from": numbers[0], "to": customer, "type": "text", "text": {"body": "On its way!"}, "metadata": {"order": "A-17"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(queued["metadata"]["order"], "A-17");

    let done =
        wait_for_message(&app.http, &app.url, &app.api_key, id, "the reply to be read", |m| m["status"] == "read")
            .await;
    let wamid = done["wamid"].as_str().expect("a wamid once accepted");
    assert!(wamid.starts_with("wamid."), "{wamid}");
    assert!(done["error"].is_null());
    let statuses: Vec<&str> =
        done["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["queued", "accepted", "sent", "delivered", "read"]);
    for s in done["statuses"].as_array().unwrap() {
        let ts = s["timestamp"].as_str().unwrap();
        assert!(Timestamp::parse_rfc3339(ts).is_some(), "{ts} is RFC 3339");
        assert_eq!(s["implied"], false);
    }

    // What reached "Meta" is exactly the text, once.
    let received = sandbox_received(&app.http, &sandbox, Some(&app.api_key), &customer).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["wamid"], wamid);
    assert_eq!(
        received[0]["body"],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": customer, "type": "text", "text": {"body": "On its way!"}})
    );
    app.stop().await;
}

async fn default_sender_is_used_when_from_is_omitted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let default: Vec<_> = numbers["data"].as_array().unwrap().iter().filter(|n| n["default"] == true).collect();
    assert_eq!(default.len(), 1, "the sandbox seeds one default number");
    let customer = customer();
    app.customer_writes(default[0]["id"].as_str().unwrap(), &customer, "hi").await;
    let (status, body) =
        app.post("/v1/messages", json!({"to": customer, "type": "text", "text": {"body": "hello"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["from"], default[0]["id"]);
    wait_for_message(&app.http, &app.url, &app.api_key, body["id"].as_str().unwrap(), "accepted", |m| {
        !m["wamid"].is_null()
    })
    .await;
    app.stop().await;
}

on_each_backend!(customer_message_then_reply_ends_read, default_sender_is_used_when_from_is_omitted);
