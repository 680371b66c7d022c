//! `POST /{phone-number-id}/messages`: Meta's answers to its documented bodies, Meta's refusals of
//! everything else, and what the sandbox keeps of each.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

/// The title in each refusal's "(#code) Title" message.
fn title(code: i64) -> &'static str {
    match code {
        100 => "Invalid parameter",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131020 => "Bad Group",
        131021 => "Recipient cannot be sender",
        131041 => "Group unknown",
        131051 => "Unsupported message type",
        _ => panic!("no title for {code}"),
    }
}

/// Checks a refusal is Meta's error object for `code`, with HTTP 400; its details.
fn refused(status: StatusCode, e: &Value, code: i64, what: &str) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {e}");
    let error = &e["error"];
    assert_eq!(error["code"], code, "{what}: {e}");
    assert_eq!(error["message"], format!("(#{code}) {}", title(code)), "{what}: {e}");
    assert_eq!(error["type"], "OAuthException", "{what}: {e}");
    assert!(error["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()), "{what}: {e}");
    assert_eq!(error["error_data"]["messaging_product"], "whatsapp", "{what}: {e}");
    error["error_data"]["details"].as_str().unwrap_or_else(|| panic!("{what}: no details: {e}")).to_owned()
}

/// An invalid-sends case in Meta's form, as wagate's Meta-compatible surface takes it; `None` for
/// the cases that have no Meta form.
fn metas_form(case: &Value) -> Option<Value> {
    // Meta takes a number without `+` (it prepends the business number's country code).
    if case["name"] == "number without +" {
        return None;
    }
    let mut body = case["body"].clone();
    body["messaging_product"] = json!("whatsapp");
    let obj = body.as_object_mut().unwrap();
    // Meta's body has no metadata, and replies by context.
    if obj.remove("metadata").is_some() {
        return None;
    }
    if let Some(r) = obj.remove("reply_to") {
        if r.as_str() == Some("") {
            return None;
        }
        obj.insert("context".into(), json!({"message_id": r}));
    }
    Some(body)
}

#[tokio::test]
async fn every_documented_example_is_accepted_with_metas_answer() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.prepare_examples(&c).await;
    let examples = send_examples();
    assert!(examples.len() >= 40, "the examples are all there");
    for (name, example) in examples {
        let body = addressed(&example, &c, &group);
        let (status, answer) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["messaging_product"], "whatsapp", "{name}: {answer}");
        assert_eq!(answer["contacts"].as_array().map(Vec::len), Some(1), "{name}: {answer}");
        assert_eq!(answer["contacts"][0]["input"], body["to"], "{name}: {answer}");
        assert!(answer["contacts"][0]["wa_id"].is_string(), "{name}: {answer}");
        assert_eq!(answer["messages"].as_array().map(Vec::len), Some(1), "{name}: {answer}");
        let wamid = answer["messages"][0]["id"].as_str().unwrap_or_else(|| panic!("{name}: {answer}"));
        assert!(wamid.starts_with("wamid."), "{name}: {wamid}");
        if body["type"] == "template" {
            assert_eq!(answer["messages"][0]["message_status"], "accepted", "{name}: {answer}");
        } else {
            assert!(answer["messages"][0].get("message_status").is_none(), "{name}: {answer}");
        }
        let kept: Vec<Value> = h.received().await.into_iter().filter(|r| r["wamid"] == wamid).collect();
        assert_eq!(kept.len(), 1, "{name}");
        assert_eq!(kept[0]["body"], body, "{name}: the body is kept exactly as sent");
    }
}

#[tokio::test]
async fn a_send_to_a_phone_number_is_answered_with_its_wa_id() {
    let h = Harness::start().await;
    let c = customer();
    let to = format!("+1 ({}) {}-{}", &c[1..4], &c[4..7], &c[7..]);
    let (status, answer) = h
        .send(json!({"to": to, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["contacts"], json!([{"input": to, "wa_id": c}]), "input is echoed, wa_id is digits only");
    assert!(answer["contacts"][0].get("user_id").is_none());
    assert!(answer["messages"][0].get("group_id").is_none());
}

#[tokio::test]
async fn a_send_to_a_business_scoped_user_id_is_answered_with_user_id_and_an_empty_wa_id() {
    let h = Harness::start().await;
    let user = "user.9373795779eb6441c8adb2eaee5b848e7dd174ddd302d7db62142f4722d574b6";
    let (status, answer) = h
        .send(json!({"recipient_type": "individual", "to": user, "type": "text",
        "text": {"body": "Hi! Your order is ready."}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["contacts"], json!([{"input": user, "wa_id": "", "user_id": user}]));
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."), "{answer}");
    // Its statuses name the user as Meta's BSUID statuses do.
    let statuses = h.hooks.wait_statuses(wamid, 1).await;
    assert_eq!(statuses[0]["recipient_user_id"], user, "{statuses:?}");
}

#[tokio::test]
async fn a_group_send_is_answered_with_the_group_id() {
    let h = Harness::start().await;
    let group = h.group_with(&[&customer()]).await;
    let (status, answer) = h
        .send(json!({"recipient_type": "group", "to": group, "type": "text",
        "text": {"body": "Hello, group"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["contacts"], json!([{"input": group, "wa_id": group}]));
    assert_eq!(answer["messages"][0]["group_id"], group.as_str(), "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let statuses = h.hooks.wait_statuses(wamid, 1).await;
    assert_eq!((&statuses[0]["recipient_id"], &statuses[0]["recipient_type"]), (&json!(group), &json!("group")));
}

#[tokio::test]
async fn every_invalid_send_is_refused_with_metas_code_naming_the_parameter() {
    let h = Harness::start().await;
    let cases: Vec<Value> = serde_json::from_str(INVALID_SENDS).unwrap();
    let mut tried = 0;
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let Some(body) = metas_form(case) else { continue };
        tried += 1;
        let path = case["path"].as_str().unwrap();
        let expected = match (path, case["rule"].as_str().unwrap()) {
            (_, "required") => 131008,
            ("type", "unsupported_type") => 131051,
            _ => 100,
        };
        let (status, e) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(body)).await;
        let top = match path.split(['.', '[']).next().unwrap() {
            "reply_to" => "context",
            top => top,
        };
        // Every case is tried, so one run shows all that differ.
        let got = (status, e["error"]["code"].as_i64(), e["error"]["error_data"]["details"].as_str());
        if got.0 != StatusCode::BAD_REQUEST || got.1 != Some(expected) || !got.2.is_some_and(|d| d.contains(top)) {
            wrong.push(format!("{name}: expected {expected} naming {top}, got {e}"));
            continue;
        }
        refused(status, &e, expected, name);
    }
    assert!(wrong.is_empty(), "{} of {tried} cases answered wrongly:\n{}", wrong.len(), wrong.join("\n"));
    assert!(tried >= 70, "only {tried} cases tried");
    let kept = h.received().await;
    assert_eq!(kept.len(), tried, "every refusal is kept");
    assert!(
        kept.iter().all(|r| r.get("wamid").is_none() && r["error"]["code"].is_i64()),
        "nothing refused was accepted"
    );
}

#[tokio::test]
async fn a_recipient_that_cannot_be_a_phone_number_gets_131009() {
    let h = Harness::start().await;
    for to in ["+1 555", "+1234567890123456"] {
        let (status, e) = h.send(json!({"to": to, "type": "text", "text": {"body": "hi"}})).await;
        let details = refused(status, &e, 131009, to);
        assert!(details.contains(to), "{details}");
    }
}

#[tokio::test]
async fn a_send_to_the_senders_own_number_gets_131021() {
    let h = Harness::start().await;
    let own = h.seed.phone_numbers[0].display_phone_number.clone();
    for to in [own.clone(), h.number_digits()] {
        let (status, e) = h.send(json!({"to": to, "type": "text", "text": {"body": "me?"}})).await;
        refused(status, &e, 131021, &to);
    }
    // The business's other number is a recipient like any other.
    let other = h.seed.phone_numbers[1].display_phone_number.clone();
    let (status, answer) = h
        .send(json!({"to": other, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_send_to_an_unknown_group_gets_131041() {
    let h = Harness::start().await;
    let (status, e) = h
        .send(json!({"recipient_type": "group", "to": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
        "type": "text", "text": {"body": "anyone?"}}))
        .await;
    refused(status, &e, 131041, "unknown group");
}

#[tokio::test]
async fn a_send_to_another_numbers_group_gets_131041() {
    let h = Harness::start().await;
    let other = h.seed.phone_numbers[1].id.clone();
    let body = json!({"messaging_product": "whatsapp", "subject": "Other number's group"});
    let (status, created) = h.graph(Method::POST, &format!("{other}/groups"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (_, list) = h.graph(Method::GET, &format!("{other}/groups"), None).await;
    let group = list["data"]["groups"][0]["id"].as_str().unwrap().to_owned();
    let (status, e) =
        h.send(json!({"recipient_type": "group", "to": group, "type": "text", "text": {"body": "hi"}})).await;
    refused(status, &e, 131041, "a group the sender is not in");
}

#[tokio::test]
async fn a_send_to_a_group_without_members_gets_131020() {
    let h = Harness::start().await;
    let body = json!({"messaging_product": "whatsapp", "subject": "Just us"});
    let (status, created) = h.graph(Method::POST, &format!("{}/groups", h.number()), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (_, list) = h.graph(Method::GET, &format!("{}/groups", h.number()), None).await;
    let group = list["data"]["groups"][0]["id"].as_str().unwrap().to_owned();
    let (status, e) =
        h.send(json!({"recipient_type": "group", "to": group, "type": "text", "text": {"body": "hello?"}})).await;
    refused(status, &e, 131020, "an empty group");
}

#[tokio::test]
async fn a_group_takes_text_media_and_templates_only() {
    let h = Harness::start().await;
    let group = h.group_with(&[&customer()]).await;
    for (kind, content) in [
        ("image", json!({"link": "https://example.com/a.png"})),
        ("document", json!({"link": "https://example.com/a.pdf", "filename": "a.pdf"})),
        ("template", json!({"name": "hello_world", "language": {"code": "en_US"}})),
    ] {
        let (status, answer) =
            h.send(json!({"recipient_type": "group", "to": group, "type": kind, kind: content})).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {answer}");
    }
    for (kind, content) in [
        ("location", json!({"latitude": "1", "longitude": "1"})),
        ("contacts", json!([{"name": {"formatted_name": "A"}}])),
        (
            "interactive",
            json!({"type": "button", "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}),
        ),
    ] {
        let (status, e) = h.send(json!({"recipient_type": "group", "to": group, "type": kind, kind: content})).await;
        let details = refused(status, &e, 100, kind);
        assert!(details.contains("type"), "{kind}: {details}");
    }
}

#[tokio::test]
async fn a_read_receipt_is_answered_with_success() {
    let h = Harness::start().await;
    let inbound = h.customer_writes(&customer(), "hi").await;
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound});
    let (status, answer) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(body)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
}

#[tokio::test]
async fn a_typing_indicator_is_answered_with_success() {
    let h = Harness::start().await;
    let inbound = h.customer_writes(&customer(), "hi").await;
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
        "typing_indicator": {"type": "text"}});
    let (status, answer) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(body)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
}

#[tokio::test]
async fn a_malformed_read_receipt_is_refused() {
    let h = Harness::start().await;
    let inbound = h.customer_writes(&customer(), "hi").await;
    let cases = [
        ("no message_id", json!({"messaging_product": "whatsapp", "status": "read"}), 131008, "message_id"),
        (
            "empty message_id",
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": ""}),
            100,
            "message_id",
        ),
        ("no messaging_product", json!({"status": "read", "message_id": inbound}), 131008, "messaging_product"),
        (
            "status not read",
            json!({"messaging_product": "whatsapp", "status": "delivered", "message_id": inbound}),
            100,
            "status",
        ),
        (
            "typing of audio",
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
            "typing_indicator": {"type": "audio"}}),
            100,
            "typing_indicator",
        ),
        (
            "unknown key",
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
            "read_at": "now"}),
            100,
            "read_at",
        ),
    ];
    for (name, body, code, param) in cases {
        let (status, e) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(body)).await;
        let details = refused(status, &e, code, name);
        assert!(details.contains(param), "{name}: {details}");
    }
}

#[tokio::test]
async fn the_control_api_lists_each_body_with_its_wamid_or_its_refusal() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let good = json!({"messaging_product": "whatsapp", "to": c, "type": "text", "text": {"body": "héllo 😀", "preview_url": false}});
    let bad = json!({"messaging_product": "whatsapp", "to": c, "type": "text", "text": {"body": ""}});
    let (_, answer) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(good.clone())).await;
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    let (status, e) = h.graph(Method::POST, &format!("{}/messages", h.number()), Some(bad.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    // Another number's send is not among the first number's.
    let other = h.seed.phone_numbers[1].id.clone();
    let (status, _) = h.graph(Method::POST, &format!("{other}/messages"), Some(bad.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, listed) =
        h.control(Method::GET, &format!("control/messages?phone_number_id={}&to={c}", h.number()), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{listed}");
    assert_eq!(data[0]["body"], good);
    assert_eq!(data[0]["wamid"], wamid.as_str());
    assert!(data[0].get("error").is_none(), "{listed}");
    assert_eq!(data[1]["body"], bad);
    assert!(data[1].get("wamid").is_none(), "{listed}");
    assert_eq!(data[1]["error"], e["error"], "the error kept is the one answered");
    assert!(data.iter().all(|r| r["phone_number_id"] == h.number() && r["received_at"].is_u64()), "{listed}");

    let (status, all) = h.control(Method::GET, "control/messages", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
}

#[tokio::test]
async fn a_recipient_type_that_does_not_fit_to_is_refused_naming_recipient_type() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.group_with(&[&c]).await;
    let metas = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";
    let text = json!({"type": "text", "text": {"body": "hi"}});
    let with = |recipient_type: Option<&str>, to: &str| {
        let mut body = text.clone();
        body["to"] = json!(to);
        if let Some(t) = recipient_type {
            body["recipient_type"] = json!(t);
        }
        body
    };
    // `groups-messaging.mdx`: a recipient_type/to mismatch is an error in the sync response.
    for (what, body) in [
        ("this sandbox's group, no recipient_type", with(None, &group)),
        ("this sandbox's group as individual", with(Some("individual"), &group)),
        ("a group id shaped as Meta's", with(None, metas)),
        ("a phone number as a group", with(Some("group"), &c)),
    ] {
        let (status, e) = h.send(body).await;
        let details = refused(status, &e, 100, what);
        assert!(details.contains("recipient_type"), "{what}: {details}");
    }
    let kept = h.received().await;
    assert!(kept.iter().all(|r| r.get("wamid").is_none()), "nothing accepted: {kept:?}");
}

#[tokio::test]
async fn a_send_to_an_unknown_number_is_listed_under_the_id_it_was_sent_to() {
    let h = Harness::start().await;
    let body = json!({"messaging_product": "whatsapp", "to": customer(), "type": "text", "text": {"body": "hi"}});
    let (status, e) = h.graph(Method::POST, "100000000000042/messages", Some(body.clone())).await;
    assert_eq!((status, &e["error"]["code"]), (StatusCode::BAD_REQUEST, &json!(100)), "{e}");
    let (_, listed) = h.control(Method::GET, "control/messages?phone_number_id=100000000000042", None).await;
    let listed = listed["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["body"], body);
    assert_eq!(listed[0]["error"], e["error"]);
    assert_eq!(listed[0]["status"], 400);
}

/// A text body with `n` bytes of text: valid JSON, refused for its length, not its size.
fn long_text(to: &str, n: usize) -> String {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "x".repeat(n)}}).to_string()
}

async fn post_raw(h: &Harness, body: String) -> (StatusCode, Value) {
    let resp = h
        .http
        .post(format!("{}/v23.0/{}/messages", h.url, h.number()))
        .bearer_auth(&h.seed.access_token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text}")))
}

#[tokio::test]
async fn a_body_over_4_mb_is_refused_in_metas_shape_and_listed_by_its_start() {
    let h = Harness::start().await;
    let c = customer();
    // 3 MB, over axum's 2 MB default: read and judged on its content.
    let (status, e) = post_raw(&h, long_text(&c, 3 * 1024 * 1024)).await;
    let details = refused(status, &e, 100, "a 3 MB text");
    assert!(details.contains("text"), "{details}");
    // Over the 4 MB the endpoint takes: refused for its size, as JSON.
    let huge = long_text(&c, 5 * 1024 * 1024);
    let size = huge.len();
    let (status, e) = post_raw(&h, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    assert_eq!(e["error"]["code"], 100, "{e}");
    assert_eq!(e["error"]["type"], "OAuthException", "{e}");
    assert!(e["error"]["error_data"]["details"].as_str().unwrap().contains("4194304"), "{e}");
    // Both are listed; neither is kept whole.
    let listed = h.received().await;
    assert_eq!(listed.len(), 2, "{}", listed.len());
    assert_eq!(listed[1]["status"], 413);
    assert_eq!(listed[1]["error"], e["error"]);
    assert_eq!(listed[1]["truncated"]["size"], size);
    for r in &listed {
        let start = r["body"].as_str().expect("the body's start, as text");
        assert!(start.starts_with("{\"messaging_product\":\"whatsapp\""), "{start}");
        assert!(start.len() <= 1024, "{}", start.len());
    }
    assert_eq!(listed[0]["truncated"]["size"], long_text(&c, 3 * 1024 * 1024).len());
    // Still found by recipient.
    let (_, by_to) = h.control(Method::GET, &format!("control/messages?to={c}"), None).await;
    assert_eq!(by_to["data"].as_array().unwrap().len(), 1, "the one whose `to` was read: {by_to}");
}
