//! Inbound through the HTTP receiver with Meta's own payloads (from Meta's webhook reference):
//! every message type, errors at value level, the other webhook fields, message echoes, group
//! statuses, and one message's statuses in many orders and batchings.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wagate_domain::time::Timestamp;
use wagate_storage::Backend;

use crate::support::*;

/// Signs `entries` (`[(changes)]`, each for the sandbox WABA) as one delivery and posts it.
async fn deliver_entries(app: &TestApp, account: &SandboxAccount, entries: Vec<Vec<Value>>) {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|changes| json!({"id": account.waba_id, "time": 1_750_000_000, "changes": changes}))
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": entries}).to_string().into_bytes();
    post_signed(app, account, body).await;
}

async fn deliver(app: &TestApp, account: &SandboxAccount, changes: Vec<Value>) {
    deliver_entries(app, account, vec![changes]).await;
}

/// A `messages` change of the sandbox's number carrying `value`'s fields.
fn messages_change(account: &SandboxAccount, value: Value) -> Value {
    let mut v = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": account.phone_number_id},
    });
    v.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
    json!({"field": "messages", "value": v})
}

async fn list(app: &TestApp, path: &str) -> Vec<Value> {
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body["data"].as_array().unwrap().clone()
}

fn rfc3339(unix_seconds: i64) -> Value {
    serde_json::to_value(Timestamp::from_unix_seconds(unix_seconds)).unwrap()
}

/// Meta's inbound message objects, as its webhook reference shows them, without id/timestamp.
fn inbound_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("text", json!({"text": {"body": "Does it come in another color?"}})),
        (
            "image",
            json!({"image": {"caption": "This one?", "mime_type": "image/jpeg",
                   "sha256": "RXKn8xJrSZJqg0D/+Q1gD0E6WC3sV5ULWQ6UPEmdR6Y=", "id": "1003383421387256"}}),
        ),
        (
            "audio",
            json!({"audio": {"mime_type": "audio/ogg; codecs=opus",
                   "sha256": "i2s4BZKwODvJcKkHf0HQBQIP0uQWYyYzKwxYd6lBBgU=", "id": "1003383421387257", "voice": true}}),
        ),
        (
            "video",
            json!({"video": {"caption": "Look", "mime_type": "video/mp4",
                   "sha256": "8hcvdRqy9vR9Yb5ZkXy6c+J0iC2zRy6s2mSPZbtrRkQ=", "id": "1003383421387258"}}),
        ),
        (
            "document",
            json!({"document": {"caption": "Invoice", "filename": "invoice.pdf", "mime_type": "application/pdf",
                   "sha256": "Bs1KEh7W9p3b5R5N2uCkzF5PjdGnWJ3+GQzQ3l0lBQ4=", "id": "1003383421387259"}}),
        ),
        (
            "sticker",
            json!({"sticker": {"mime_type": "image/webp", "sha256": "Xm3tKq9dN0p8vB1bU7eYkS5xQ2cH4jL6wR9zA0fE3gI=",
                   "id": "1003383421387260", "animated": false}}),
        ),
        (
            "location",
            json!({"location": {"address": "1 Hacker Way, Menlo Park, CA 94025", "latitude": 37.483_307,
                   "longitude": -122.148_981, "name": "Meta Headquarters", "url": "https://meta.com"}}),
        ),
        (
            "contacts",
            json!({"contacts": [{"name": {"formatted_name": "Barbara Johnson", "first_name": "Barbara",
                   "last_name": "Johnson"}, "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME",
                   "wa_id": "19405551234"}]}]}),
        ),
        (
            "interactive",
            json!({"interactive": {"type": "button_reply", "button_reply": {"id": "unsubscribe", "title": "Unsubscribe"}}}),
        ),
        (
            "interactive",
            json!({"interactive": {"type": "list_reply", "list_reply": {"id": "priority_express",
                   "title": "Express", "description": "Next day"}}}),
        ),
        (
            "interactive",
            json!({"interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                   "response_json": "{\"flow_token\": \"AQAAAAACS5FpgQ_cAAAAAD0QI3s.\", \"screen_0_date\": \"2025-06-01\"}"}}}),
        ),
        ("button", json!({"button": {"payload": "Unsubscribe", "text": "Unsubscribe"}})),
        (
            "order",
            json!({"order": {"catalog_id": "194836987003835", "text": "Love these!", "product_items": [
                {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
                {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25, "currency": "USD"}]}}),
        ),
        (
            "system",
            json!({"system": {"body": "User Sheena Nelson changed from 16505551234 to 12195555358",
                   "wa_id": "12195555358", "type": "user_changed_number"}}),
        ),
        (
            "unsupported",
            json!({"errors": [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
                   "error_data": {"details": "Message type is currently not supported."}}],
                   "unsupported": {"type": "edit"}}),
        ),
        (
            "text",
            json!({"text": {"body": "I saw your ad"}, "referral": {"source_url": "https://fb.me/3cr4Wqqkv",
                   "source_id": "120226305854810726", "source_type": "ad", "body": "Summer Succulents are here!",
                   "headline": "Chat with us", "media_type": "image", "image_url": "https://scontent.xx.fbcdn.net/v/t45.1",
                   "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQ", "welcome_message": {"text": "Hi! How can we help?"}}}),
        ),
    ]
}

async fn every_inbound_message_type_is_stored_once_with_metas_timestamp(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let numbers = store.list_phone_numbers().await.unwrap();
    let ours = claimed_message(store.as_ref(), &numbers[0].id).await;
    assert!(store.record_accepted(&ours, "wamid.OURS", &json!({}), Timestamp::now()).await.unwrap());
    let app = built.started();
    let account = sandbox_account(&app).await;
    let from = "16505551234";

    let mut sent = Vec::new();
    for (i, (kind, body)) in inbound_examples().into_iter().enumerate() {
        let mut m = json!({"from": from, "id": format!("wamid.IN{i}"), "timestamp": (1_750_090_000 + i).to_string(), "type": kind});
        m.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        sent.push(m);
    }
    // A reply to our message, a reaction to it, and the reaction taken back (an empty emoji).
    sent.push(json!({"from": from, "id": "wamid.REPLY", "timestamp": "1750090100", "type": "text",
        "text": {"body": "Yes please"}, "context": {"from": "15550100000", "id": "wamid.OURS"}}));
    sent.push(json!({"from": from, "id": "wamid.REACT", "timestamp": "1750090101", "type": "reaction",
        "reaction": {"message_id": "wamid.OURS", "emoji": "\u{1F44D}"}}));
    sent.push(json!({"from": from, "id": "wamid.UNREACT", "timestamp": "1750090102", "type": "reaction",
        "reaction": {"message_id": "wamid.OURS"}}));
    let contacts = json!([{"profile": {"name": "Sheena Nelson"}, "wa_id": from}]);
    // Half in one delivery, the rest one per delivery, then everything again: Meta's retries.
    let (batch, singles) = sent.split_at(sent.len() / 2);
    deliver(&app, &account, vec![messages_change(&account, json!({"contacts": contacts, "messages": batch}))]).await;
    for m in singles {
        deliver(&app, &account, vec![messages_change(&account, json!({"contacts": contacts, "messages": [m]}))]).await;
    }
    deliver(&app, &account, vec![messages_change(&account, json!({"contacts": contacts, "messages": sent}))]).await;
    all_processed(&app).await;

    let stored = list(&app, "/v1/messages?direction=inbound&limit=100").await;
    // A `system` message (a number change) is about the contact: kept as an event, not a message.
    let (system, messages): (Vec<&Value>, Vec<&Value>) = sent.iter().partition(|m| m["type"] == "system");
    assert_eq!(stored.len(), messages.len(), "each stored once: {stored:#?}");
    let numbers = list(&app, "/v1/phone-numbers").await;
    let number = numbers.iter().find(|n| n["id"] == account.phone_number_id).unwrap();
    let events =
        list(&app, &format!("/v1/accounts/{}/events?field=messages", number["account_id"].as_str().unwrap())).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!((events[0]["kind"].as_str(), &events[0]["subject"]), (Some("system"), &system[0]["id"]));
    assert_eq!(events[0]["payload"]["system"], system[0]["system"]);
    assert_eq!(events[0]["occurred_at"], rfc3339(system[0]["timestamp"].as_str().unwrap().parse().unwrap()));
    for m in messages {
        let wamid = m["id"].as_str().unwrap();
        let got = stored.iter().find(|s| s["wamid"] == wamid).unwrap_or_else(|| panic!("{wamid} stored"));
        let kind = m["type"].as_str().unwrap();
        assert_eq!(got["type"], kind, "{wamid}");
        assert_eq!(got["from"], format!("+{from}"), "{wamid}");
        assert_eq!(got["to"], account.phone_number_id, "{wamid}");
        assert_eq!(got["status"], "received", "{wamid}");
        assert_eq!(got["created_at"], rfc3339(m["timestamp"].as_str().unwrap().parse().unwrap()), "{wamid}");
        assert_eq!(got[kind], m[kind], "{wamid}: the content as Meta sent it");
    }
    let by_wamid = |w: &str| stored.iter().find(|s| s["wamid"] == w).unwrap().clone();
    let referral = by_wamid("wamid.IN15");
    assert_eq!(referral["referral"]["source_id"], "120226305854810726");
    assert_eq!(referral["referral"]["ctwa_clid"], "Aff-n8ZTODiE79d22KtAwQ");
    let unsupported = by_wamid("wamid.IN14");
    assert_eq!(unsupported["error"]["code"], 131051);
    assert_eq!(unsupported["error"]["details"], "Message type is currently not supported.");
    for w in ["wamid.REPLY", "wamid.REACT", "wamid.UNREACT"] {
        let m = by_wamid(w);
        assert_eq!(m["reply_to"], "wamid.OURS", "{w}");
        assert_eq!(m["reply_to_message_id"], ours.message_id.as_str(), "{w} is linked to our message");
    }
    assert_eq!(by_wamid("wamid.UNREACT")["reaction"], json!({"message_id": "wamid.OURS"}), "a removal has no emoji");
    assert_eq!(by_wamid("wamid.IN0")["reply_to"], Value::Null);
    app.stop().await;
}

async fn other_fields_are_kept_as_account_events_and_applied(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let number = numbers["data"].as_array().unwrap().iter().find(|n| n["id"] == account.phone_number_id).unwrap();
    let display = number["display_phone_number"].as_str().unwrap().to_owned();
    let account_id = number["account_id"].as_str().unwrap().to_owned();

    let template = json!({"field": "message_template_status_update", "value": {"event": "APPROVED",
        "message_template_id": 1_689_556_908_129_832_i64, "message_template_name": "order_confirmation",
        "message_template_language": "en-US", "reason": "NONE", "message_template_category": "UTILITY"}});
    let quality = json!({"field": "phone_number_quality_update", "value": {"display_phone_number": display,
        "event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_UNLIMITED", "max_daily_conversations_per_business": "TIER_10K"}});
    let account_update = json!({"field": "account_update", "value": {"event": "ACCOUNT_VIOLATION",
        "violation_info": {"violation_type": "ADULT"}}});
    let unknown = json!({"field": "some_field_meta_adds_later", "value": {"anything": [1, 2, 3]}});
    let errors = messages_change(
        &account,
        json!({"errors": [{"code": 130429, "title": "Rate limit hit",
        "message": "Rate limit hit", "error_data": {"details": "Message failed to send because there were too many messages sent from this phone number in a short period of time"},
        "href": "/docs/whatsapp/cloud-api/support/error-codes/"}]}),
    );
    let echo = json!({"field": "smb_message_echoes", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": account.phone_number_id},
        "message_echoes": [{"from": display, "to": "+16505551234", "id": "wamid.ECHO1", "timestamp": "1750090702",
            "type": "text", "text": {"body": "Here's the info you requested! https://www.meta.com/quest/quest-3/"}}]}});
    let changes = vec![template, quality, account_update, unknown, errors, echo];
    deliver(&app, &account, changes.clone()).await;
    // Meta delivers the same changes again: nothing is kept twice.
    deliver(&app, &account, changes).await;
    all_processed(&app).await;

    let events = list(&app, &format!("/v1/accounts/{account_id}/events")).await;
    let summary: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["kind"].as_str().unwrap(), e["subject"].as_str()))
        .collect();
    // Value-level errors carry no time of their own, so each delivery's is kept.
    assert_eq!(
        summary,
        [
            ("messages", "error", Some("130429")),
            ("messages", "error", Some("130429")),
            ("some_field_meta_adds_later", "some_field_meta_adds_later", None),
            ("account_update", "ACCOUNT_VIOLATION", None),
            ("phone_number_quality_update", "THROUGHPUT_UPGRADE", Some(display.as_str())),
            ("message_template_status_update", "APPROVED", Some("1689556908129832")),
        ]
    );
    let template = events.last().unwrap();
    assert_eq!(template["payload"]["message_template_name"], "order_confirmation");
    assert_eq!(template["occurred_at"], rfc3339(1_750_000_000), "Meta's time for the change");
    let only = list(&app, &format!("/v1/accounts/{account_id}/events?field=account_update")).await;
    assert_eq!(only.len(), 1);
    let page = list(&app, &format!("/v1/accounts/{account_id}/events?limit=4")).await;
    assert_eq!(page.len(), 4);
    let (status, body) = app.get(&format!("/v1/accounts/{account_id}/events?limit=4")).await;
    assert_eq!(status, StatusCode::OK);
    let cursor = body["next_cursor"].as_str().unwrap();
    let rest = list(&app, &format!("/v1/accounts/{account_id}/events?limit=4&cursor={cursor}")).await;
    assert_eq!(rest.len(), 2);
    let (status, body) = app.get(&format!("/v1/accounts/{account_id}/events?cursor=nonsense")).await;
    assert_eq!((status, body["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")), "{body}");
    let (status, _) = app.get("/v1/accounts/acc_unknown/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The quality update is applied: the tier to the account, the throughput level to the number.
    let (_, a) = app.get(&format!("/v1/accounts/{account_id}")).await;
    assert_eq!(a["messaging_limit"]["tier"], "TIER_10K");
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let number = numbers["data"].as_array().unwrap().iter().find(|n| n["id"] == account.phone_number_id).unwrap();
    assert_eq!(number["throughput_level"], "HIGH");

    // The echo is an outbound message, sent from the app.
    let outbound = list(&app, "/v1/messages?direction=outbound").await;
    assert_eq!(outbound.len(), 1, "{outbound:#?}");
    let echo = &outbound[0];
    assert_eq!((echo["wamid"].as_str(), echo["status"].as_str()), (Some("wamid.ECHO1"), Some("sent")));
    assert_eq!((echo["from_app"].as_bool(), echo["to"].as_str()), (Some(true), Some("+16505551234")));
    assert_eq!(echo["text"]["body"], "Here's the info you requested! https://www.meta.com/quest/quest-3/");
    app.stop().await;
}

/// One status of Meta's for `wamid`, with what Meta attaches to `sent` and `delivered`.
fn status(wamid: &str, s: &str, at: i64, participant: Option<&str>) -> Value {
    let mut v = json!({"id": wamid, "status": s, "timestamp": at.to_string(), "recipient_id": "16505551234"});
    if let Some(p) = participant {
        v["recipient_id"] = json!("120363025246125486@g.us");
        v["recipient_type"] = json!("group");
        v["recipient_participant_id"] = json!(p);
    }
    if s == "sent" || s == "delivered" {
        v["conversation"] = json!({"id": "72b14d6bd5407799e66f64d1b338e567", "origin": {"type": "utility"}});
        v["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"});
    }
    if s == "failed" {
        v["errors"] = json!([{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]);
    }
    v
}

/// What a user sees of a message's delivery: its status and Meta's part of its history.
async fn delivery_view(app: &TestApp, id: &str) -> (String, Vec<Value>) {
    let (code, m) = app.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(code, StatusCode::OK, "{m}");
    let history = m["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !["queued", "sending", "accepted"].contains(&s["status"].as_str().unwrap()))
        .cloned()
        .collect();
    (m["status"].as_str().unwrap().to_owned(), history)
}

/// The same statuses of one message — `sent`, `delivered`, `read` — in ten orders and batchings
/// (duplicates, several per delivery, several changes or entries per delivery, before the send's
/// wamid is recorded) end in the same status and the same history.
async fn any_order_and_batching_ends_in_the_same_history(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let number = store.list_phone_numbers().await.unwrap()[0].id.clone();
    // Ten messages Meta accepted (the last one's wamid recorded only after its statuses came).
    let mut messages = Vec::new();
    for i in 0..10 {
        let d = claimed_message(store.as_ref(), &number).await;
        let wamid = format!("wamid.ORDER{i}");
        if i < 9 {
            assert!(store.record_accepted(&d, &wamid, &json!({}), Timestamp::now()).await.unwrap());
        }
        messages.push((d, wamid));
    }
    let app = built.started();
    let account = sandbox_account(&app).await;
    let one = |w: &str, s: &str| match s {
        "sent" => status(w, "sent", 1_750_000_001, None),
        "delivered" => status(w, "delivered", 1_750_000_002, None),
        _ => status(w, "read", 1_750_000_003, None),
    };
    let change = |statuses: Vec<Value>| messages_change(&account, json!({"statuses": statuses}));
    for (i, (_, w)) in messages.iter().enumerate() {
        let s = |k: &str| one(w, k);
        // Each scenario: deliveries, each a list of entries, each a list of changes.
        let deliveries: Vec<Vec<Vec<Value>>> = match i {
            0 => vec![
                vec![vec![change(vec![s("sent")])]],
                vec![vec![change(vec![s("delivered")])]],
                vec![vec![change(vec![s("read")])]],
            ],
            1 => vec![
                vec![vec![change(vec![s("read")])]],
                vec![vec![change(vec![s("delivered")])]],
                vec![vec![change(vec![s("sent")])]],
            ],
            2 => vec![vec![vec![change(vec![s("sent"), s("delivered"), s("read")])]]],
            3 => vec![vec![vec![change(vec![s("read"), s("delivered"), s("sent")])]]],
            4 => vec![vec![vec![change(vec![s("read")])]], vec![vec![change(vec![s("sent"), s("delivered")])]]],
            5 => vec![
                vec![vec![change(vec![s("delivered"), s("sent")])]],
                vec![vec![change(vec![s("read"), s("delivered")])]],
                vec![vec![change(vec![s("sent"), s("read")])]],
            ],
            6 => vec![vec![vec![change(vec![s("delivered")]), change(vec![s("read")]), change(vec![s("sent")])]]],
            7 => vec![vec![
                vec![change(vec![s("read")])],
                vec![change(vec![s("sent")])],
                vec![change(vec![s("delivered")])],
            ]],
            8 => vec![
                vec![vec![change(vec![s("sent")])]],
                vec![vec![change(vec![s("read"), s("read")])]],
                vec![vec![change(vec![s("delivered")])]],
                vec![vec![change(vec![s("sent"), s("delivered"), s("read")])]],
            ],
            _ => vec![vec![vec![change(vec![s("delivered"), s("read")])]], vec![vec![change(vec![s("sent")])]]],
        };
        for entries in deliveries {
            deliver_entries(&app, &account, entries).await;
        }
    }
    all_processed(&app).await;
    let (last, wamid) = messages.last().unwrap();
    assert_eq!(delivery_view(&app, last.message_id.as_str()).await.0, "sending", "its statuses wait for the wamid");
    assert!(store.record_accepted(last, wamid, &json!({}), Timestamp::now()).await.unwrap());

    let expected = (
        "read".to_owned(),
        vec![
            json!({"status": "sent", "timestamp": rfc3339(1_750_000_001), "implied": false,
                   "conversation": one("x", "sent")["conversation"], "pricing": one("x", "sent")["pricing"]}),
            json!({"status": "delivered", "timestamp": rfc3339(1_750_000_002), "implied": false,
                   "conversation": one("x", "sent")["conversation"], "pricing": one("x", "sent")["pricing"]}),
            json!({"status": "read", "timestamp": rfc3339(1_750_000_003), "implied": false}),
        ],
    );
    for (i, (d, _)) in messages.iter().enumerate() {
        assert_eq!(delivery_view(&app, d.message_id.as_str()).await, expected, "scenario {i}");
    }
    app.stop().await;
}

/// `read` alone shows the `delivered` Meta skipped, implied; `failed` decides a message that has
/// not passed `sent` and is only history after delivery.
async fn implied_deliveries_and_failures_through_http(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let number = store.list_phone_numbers().await.unwrap()[0].id.clone();
    let mut ids = Vec::new();
    for w in ["wamid.READONLY", "wamid.FAILFIRST", "wamid.FAILLATE"] {
        let d = claimed_message(store.as_ref(), &number).await;
        assert!(store.record_accepted(&d, w, &json!({}), Timestamp::now()).await.unwrap());
        ids.push(d.item.message_id);
    }
    let app = built.started();
    let account = sandbox_account(&app).await;
    let statuses = vec![
        status("wamid.READONLY", "read", 1_750_000_003, None),
        status("wamid.FAILFIRST", "failed", 1_750_000_002, None),
        status("wamid.FAILFIRST", "sent", 1_750_000_001, None),
        status("wamid.FAILLATE", "delivered", 1_750_000_002, None),
        status("wamid.FAILLATE", "failed", 1_750_000_004, None),
    ];
    deliver(&app, &account, vec![messages_change(&account, json!({"statuses": statuses}))]).await;
    all_processed(&app).await;

    let (s, h) = delivery_view(&app, ids[0].as_str()).await;
    assert_eq!(s, "read");
    let kinds: Vec<_> = h.iter().map(|e| (e["status"].as_str().unwrap(), e["implied"].as_bool().unwrap())).collect();
    assert_eq!(kinds, [("delivered", true), ("read", false)]);
    assert_eq!(h[0]["timestamp"], rfc3339(1_750_000_003));

    let (_, failed) = app.get(&format!("/v1/messages/{}", ids[1])).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], 131026);
    assert_eq!(failed["error"]["details"], "Message Undeliverable.");

    let (_, late) = app.get(&format!("/v1/messages/{}", ids[2])).await;
    assert_eq!((late["status"].as_str(), &late["error"]), (Some("delivered"), &Value::Null));
    let last = late["statuses"].as_array().unwrap().last().unwrap();
    assert_eq!((last["status"].as_str(), &last["error"]["code"]), (Some("failed"), &json!(131026)));
    app.stop().await;
}

/// A group message: `sent` once, then `delivered` and `read` per participant, aggregated into
/// one webhook per status as Meta does; each participant's entries are kept.
async fn group_statuses_are_kept_per_participant(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let number = store.list_phone_numbers().await.unwrap()[0].id.clone();
    let d = claimed_message(store.as_ref(), &number).await;
    assert!(store.record_accepted(&d, "wamid.GROUP", &json!({}), Timestamp::now()).await.unwrap());
    let app = built.started();
    let account = sandbox_account(&app).await;
    let w = "wamid.GROUP";
    let batches = [
        vec![status(w, "read", 1_750_000_005, Some("16505550002"))],
        vec![status(w, "sent", 1_750_000_001, None)],
        vec![
            status(w, "delivered", 1_750_000_002, Some("16505550001")),
            status(w, "delivered", 1_750_000_003, Some("16505550003")),
        ],
        vec![status(w, "delivered", 1_750_000_002, Some("16505550001"))],
    ];
    for b in batches {
        deliver(&app, &account, vec![messages_change(&account, json!({"statuses": b}))]).await;
    }
    all_processed(&app).await;
    let (s, h) = delivery_view(&app, d.message_id.as_str()).await;
    assert_eq!(s, "read", "the furthest any participant got");
    let entries: Vec<_> = h
        .iter()
        .map(|e| (e["status"].as_str().unwrap(), e["participant"].as_str(), e["implied"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [
            ("sent", None, false),
            ("delivered", Some("16505550001"), false),
            ("delivered", Some("16505550003"), false),
            ("delivered", Some("16505550002"), true),
            ("read", Some("16505550002"), false),
        ]
    );
    app.stop().await;
}

on_each_backend!(
    every_inbound_message_type_is_stored_once_with_metas_timestamp,
    other_fields_are_kept_as_account_events_and_applied,
    any_order_and_batching_ends_in_the_same_history,
    implied_deliveries_and_failures_through_http,
    group_statuses_are_kept_per_participant,
);
