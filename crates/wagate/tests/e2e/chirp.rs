//! Chirp's dialect at `/chirp`: Chirp's bodies in, Chirp's answers and errors out, each send a
//! native message that reaches the sandbox's Meta as Meta's body and is followed to `read`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_domain::time::Timestamp;
use wagate_storage::Backend;

use crate::support::*;

on_each_backend!(
    every_type_reaches_meta_as_metas_body_and_is_followed_to_read,
    bad_requests_get_chirps_error_with_the_field_in_chirps_names,
    uploads_retries_and_lookups_answer_in_chirps_shapes,
);

async fn chirp(app: &TestApp, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    request(&app.http, Method::POST, &format!("{}/chirp/v1/whatsapp/messages", app.url), key, Some(body)).await
}

/// A multipart upload to `/chirp/v1/media`: the status and answer.
async fn upload(app: &TestApp, bytes: Vec<u8>, mime: &str, filename: &str) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()).mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let url = format!("{}/chirp/v1/media", app.url);
    let resp = app.http.post(url).bearer_auth(&app.api_key).multipart(form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The `mediaId` of a file uploaded through Chirp's media endpoint.
async fn media_id(app: &TestApp, bytes: Vec<u8>, mime: &str, filename: &str) -> String {
    let (status, answer) = upload(app, bytes, mime, filename).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

fn file(magic: &[u8], size: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(wagate_domain::id::new_id("f").as_bytes());
    bytes.resize(size, 7);
    bytes
}

/// The seeded sandbox number a test sends from: its phone-number id and its number in E.164.
async fn sender(app: &TestApp) -> (String, String) {
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let n = numbers["data"].as_array().unwrap().iter().find(|n| n["mode"] == "sandbox").unwrap();
    let digits: String = n["display_phone_number"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    (n["id"].as_str().unwrap().to_owned(), format!("+{digits}"))
}

/// wagate's id of a Chirp message id from a sandbox number.
fn native_id(chirp_id: &str) -> String {
    format!("msg_{}", chirp_id.strip_prefix("msg_wa_test_").unwrap_or_else(|| panic!("a test id: {chirp_id}")))
}

/// The answer to a send has Chirp's shape and says what was asked.
fn assert_queued(answer: &Value, from: &str, to: &str, kind: &str) {
    let keys: Vec<&str> = answer.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["from", "id", "status", "timestamp", "to", "type"], "{answer}");
    assert!(answer["id"].as_str().unwrap().starts_with("msg_wa_test_"), "{answer}");
    assert_eq!((answer["from"].as_str(), answer["to"].as_str()), (Some(from), Some(to)), "{answer}");
    assert_eq!((answer["type"].as_str(), answer["status"].as_str()), (Some(kind), Some("queued")), "{answer}");
    assert!(Timestamp::parse_rfc3339(answer["timestamp"].as_str().unwrap()).is_some(), "{answer}");
}

/// Meta's ids of uploaded files differ per run: each media object's `id` becomes `*`.
fn masked(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        for (k, v) in map.iter_mut() {
            let media = ["image", "video", "audio", "document", "sticker"].contains(&k.as_str());
            if media && v["id"].is_string() {
                v["id"] = json!("*");
            } else {
                *v = masked(v.take());
            }
        }
    }
    value
}

/// The body "Meta" received for the message with this wamid, once.
async fn received(app: &TestApp, wamid: &str) -> Value {
    let (_, all) = app.get("/sandbox/control/messages").await;
    let got: Vec<&Value> = all["data"].as_array().unwrap().iter().filter(|r| r["wamid"] == wamid).collect();
    assert_eq!(got.len(), 1, "sent once: {wamid}");
    got[0]["body"].clone()
}

fn seed_contact() -> Value {
    json!({
        "name": {"formattedName": "John Doe", "firstName": "John", "lastName": "Doe", "middleName": "Robert",
                 "prefix": "Dr.", "suffix": "Jr."},
        "phones": [{"phone": "+15551234567", "type": "CELL"}],
        "emails": [{"email": "john@example.com", "type": "WORK"}],
        "addresses": [{"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94105",
                       "country": "United States", "countryCode": "US", "type": "WORK"}],
        "org": {"company": "Acme Inc", "department": "Engineering", "title": "Senior Engineer"},
        "urls": [{"url": "https://example.com", "type": "WORK"}],
        "birthday": "1990-01-15"
    })
}

/// Chirp's documentation example: every object at once, `type` saying which one is meant.
fn seed_example(from: &str, to: &str, reply_to: &str) -> Value {
    json!({
        "from": from, "to": to, "type": "text",
        "text": {"body": "Hello from Chirp!"},
        "media": {"mediaId": "media_abc123", "caption": "Check out this image!", "filename": "document.pdf"},
        "sticker": {"mediaId": "media_sticker123"},
        "location": {"latitude": 37.7749, "longitude": -122.4194, "name": "Chirp HQ", "address": "123 Main St, San Francisco, CA"},
        "contacts": {"contacts": [seed_contact()]},
        "reaction": {"messageId": "msg_wa_2DbBs7GWhGvVNJGrDXr5RG0mBWI", "emoji": "👍"},
        "template": {"name": "hello_world", "language": "en_US", "variables": {"1": "John", "2": "your order"}},
        "interactive": {
            "type": "buttons", "body": "Please choose an option:",
            "header": {"type": "text", "text": "Welcome!", "mediaId": "media_abc123"},
            "footer": "Powered by Chirp", "buttons": [{"id": "btn_1", "title": "Option 1"}],
            "buttonText": "View Options",
            "sections": [{"rows": [{"id": "row_1", "title": "Item 1", "description": "Description of item 1"}], "title": "Section 1"}],
            "url": "https://example.com/checkout", "flowId": "1234567890", "flowToken": "flow_token_abc123",
            "flowAction": "navigate", "flowActionPayload": {"screen": "WELCOME", "data": {"user_name": "John"}}
        },
        "replyTo": reply_to
    })
}

/// A template with two positional variables, created through wagate and approved.
async fn order_template(app: &TestApp) {
    let body = json!({
        "name": "chirp_order", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way to you.",
                        "example": {"body_text": [["Ana", "A-1"]]}}]
    });
    let (status, created) = app.post("/v1/templates", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("chirp_order to be approved", || async {
        let (_, t) = app.get(&format!("/v1/templates/{id}")).await;
        (t["status"] == "APPROVED").then_some(())
    })
    .await;
}

async fn every_type_reaches_meta_as_metas_body_and_is_followed_to_read(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (phone, from) = sender(&app).await;
    let to = customer();
    let inbound_wamid = app.customer_writes(&phone, &to, "hi").await;
    let inbound = app.store().find_message_by_wamid(&inbound_wamid).await.unwrap().unwrap().id;
    let inbound = format!("msg_wa_test_{}", inbound.as_str().strip_prefix("msg_").unwrap());
    order_template(&app).await;

    let image = media_id(&app, file(b"\x89PNG\r\n\x1a\n", 2000), "image/png", "photo.png").await;
    let video = media_id(&app, file(b"\0\0\0\x18ftypmp42", 4000), "video/mp4", "clip.mp4").await;
    let audio = media_id(&app, file(b"OggS", 3000), "audio/ogg", "voice.ogg").await;
    let document = media_id(&app, file(b"%PDF-1.7\n", 3000), "application/pdf", "invoice.pdf").await;
    let sticker = media_id(&app, file(b"RIFF\0\0\0\0WEBPVP8 ", 5000), "image/webp", "s.webp").await;

    // Each: Chirp's body (without from and to), and Meta's object of the type as Meta got it.
    let cases = vec![
        (json!({"type": "text", "text": {"body": "Hello from Chirp!"}}), json!({"body": "Hello from Chirp!"})),
        (
            json!({"type": "image", "media": {"mediaId": image, "caption": "Check out this image!"}}),
            json!({"id": "*", "caption": "Check out this image!"}),
        ),
        (
            json!({"type": "video", "media": {"mediaId": video, "caption": "A clip"}}),
            json!({"id": "*", "caption": "A clip"}),
        ),
        (json!({"type": "audio", "media": {"mediaId": audio}}), json!({"id": "*"})),
        (
            json!({"type": "document", "media": {"mediaId": document, "caption": "Your invoice", "filename": "document.pdf"}}),
            json!({"id": "*", "caption": "Your invoice", "filename": "document.pdf"}),
        ),
        (json!({"type": "sticker", "sticker": {"mediaId": sticker}}), json!({"id": "*"})),
        (
            json!({"type": "location", "location": {"latitude": 37.7749, "longitude": -122.4194, "name": "Chirp HQ",
                   "address": "123 Main St, San Francisco, CA"}}),
            json!({"latitude": 37.7749, "longitude": -122.4194, "name": "Chirp HQ", "address": "123 Main St, San Francisco, CA"}),
        ),
        (
            json!({"type": "contacts", "contacts": {"contacts": [seed_contact()]}}),
            json!([{
                "name": {"formatted_name": "John Doe", "first_name": "John", "last_name": "Doe", "middle_name": "Robert",
                         "prefix": "Dr.", "suffix": "Jr."},
                "phones": [{"phone": "+15551234567", "type": "CELL"}],
                "emails": [{"email": "john@example.com", "type": "WORK"}],
                "addresses": [{"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94105",
                               "country": "United States", "country_code": "US", "type": "WORK"}],
                "org": {"company": "Acme Inc", "department": "Engineering", "title": "Senior Engineer"},
                "urls": [{"url": "https://example.com", "type": "WORK"}],
                "birthday": "1990-01-15"
            }]),
        ),
        (
            json!({"type": "template", "template": {"name": "hello_world", "language": "en_US"}}),
            json!({"name": "hello_world", "language": {"code": "en_US"}}),
        ),
        (
            json!({"type": "template", "template": {"name": "chirp_order", "language": "en_US",
                   "variables": {"1": "John", "2": "A-7"}}}),
            json!({"name": "chirp_order", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "John"}, {"type": "text", "text": "A-7"}]}]}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "buttons", "body": "Please choose an option:",
                   "header": {"type": "text", "text": "Welcome!"}, "footer": "Powered by Chirp",
                   "buttons": [{"id": "btn_1", "title": "Option 1"}, {"id": "btn_2", "title": "Option 2"}]}}),
            json!({"type": "button", "header": {"type": "text", "text": "Welcome!"}, "body": {"text": "Please choose an option:"},
                   "footer": {"text": "Powered by Chirp"}, "action": {"buttons": [
                       {"type": "reply", "reply": {"id": "btn_1", "title": "Option 1"}},
                       {"type": "reply", "reply": {"id": "btn_2", "title": "Option 2"}}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list", "body": "Pick one", "buttonText": "View Options",
                   "sections": [{"title": "Section 1", "rows": [{"id": "row_1", "title": "Item 1", "description": "Description of item 1"}]}]}}),
            json!({"type": "list", "body": {"text": "Pick one"}, "action": {"button": "View Options", "sections": [
                {"title": "Section 1", "rows": [{"id": "row_1", "title": "Item 1", "description": "Description of item 1"}]}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "cta_url", "body": "Ready to pay?",
                   "header": {"type": "image", "mediaId": image}, "buttonText": "Checkout", "url": "https://example.com/checkout"}}),
            json!({"type": "cta_url", "header": {"type": "image", "image": {"id": "*"}}, "body": {"text": "Ready to pay?"},
                   "action": {"name": "cta_url", "parameters": {"display_text": "Checkout", "url": "https://example.com/checkout"}}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "flow", "body": "Book a table", "buttonText": "Book",
                   "flowId": "1234567890", "flowToken": "flow_token_abc123", "flowAction": "navigate",
                   "flowActionPayload": {"screen": "WELCOME", "data": {"user_name": "John"}}}}),
            json!({"type": "flow", "body": {"text": "Book a table"}, "action": {"name": "flow", "parameters": {
                "flow_message_version": "3", "flow_cta": "Book", "flow_id": "1234567890", "flow_token": "flow_token_abc123",
                "flow_action": "navigate", "flow_action_payload": {"screen": "WELCOME", "data": {"user_name": "John"}}}}}),
        ),
    ];
    let mut sent = Vec::new();
    for (mut body, expected) in cases {
        body["from"] = json!(from);
        body["to"] = json!(to);
        let kind = body["type"].as_str().unwrap().to_owned();
        let (status, answer) = chirp(&app, Some(&app.api_key), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} → {answer}");
        assert_queued(&answer, &from, &to, &kind);
        sent.push((kind, answer["id"].as_str().unwrap().to_owned(), expected, None));
    }
    // The documentation's example as it stands: the objects of other types are not read.
    let (status, answer) = chirp(&app, Some(&app.api_key), seed_example(&from, &to, &inbound)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_queued(&answer, &from, &to, "text");
    sent.push((
        "text".into(),
        answer["id"].as_str().unwrap().to_owned(),
        json!({"body": "Hello from Chirp!"}),
        Some(inbound_wamid),
    ));

    // A reaction to the first message, once Meta has it.
    let first = &sent[0].1;
    let done =
        wait_for_message(&app.http, &app.url, &app.api_key, &native_id(first), "a wamid", |m| m["wamid"].is_string())
            .await;
    let first_wamid = done["wamid"].as_str().unwrap().to_owned();
    let body = json!({"from": from, "to": to, "type": "reaction", "reaction": {"messageId": first, "emoji": "👍"}});
    let (status, answer) = chirp(&app, Some(&app.api_key), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_queued(&answer, &from, &to, "reaction");
    sent.push((
        "reaction".into(),
        answer["id"].as_str().unwrap().to_owned(),
        json!({"message_id": first_wamid, "emoji": "👍"}),
        None,
    ));

    for (kind, id, expected, context) in &sent {
        // As at Meta, a reaction is only ever `sent`.
        let last = if kind == "reaction" { "sent" } else { "read" };
        let done = |m: &Value| m["status"] == last || m["status"] == "failed";
        let what = format!("the {kind} {id} to be {last}");
        let followed = wait_for_message(&app.http, &app.url, &app.api_key, &native_id(id), &what, done).await;
        assert_eq!(followed["status"], last, "{kind}: {followed}");
        let meta = received(&app, followed["wamid"].as_str().unwrap()).await;
        assert_eq!((meta["type"].as_str(), meta["to"].as_str()), (Some(kind.as_str()), Some(to.as_str())), "{meta}");
        assert_eq!(masked(meta.clone())[kind], *expected, "{kind}: {meta}");
        assert_eq!(meta["context"]["message_id"].as_str(), context.as_deref(), "{meta}");
        // Chirp's own lookup says the same, in Chirp's words.
        let (status, looked_up) = app.get(&format!("/chirp/v1/whatsapp/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{looked_up}");
        assert_eq!(looked_up["status"], last, "{looked_up}");
        assert_eq!((&looked_up["id"], &looked_up["type"]), (&json!(id), &json!(kind)), "{looked_up}");
        assert_eq!((&looked_up["from"], &looked_up["to"]), (&json!(from), &json!(to)), "{looked_up}");
    }
    // The customer's message, looked up by its Chirp id, came from the customer.
    let (_, looked_up) = app.get(&format!("/chirp/v1/whatsapp/messages/{inbound}")).await;
    assert_eq!(
        (&looked_up["from"], &looked_up["to"], &looked_up["status"]),
        (&json!(to), &json!(from), &json!("received"))
    );
    app.stop().await;
}

async fn bad_requests_get_chirps_error_with_the_field_in_chirps_names(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, from) = sender(&app).await;
    let to = customer();
    let text = |body: &str| json!({"from": from, "to": to, "type": "text", "text": {"body": body}});
    let with = |patch: Value| {
        let mut body = text("hi");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let unknown_upload = "media_01JX3ZQ8V6W5T4S3R2Q1P0N9M8";
    let cases = [
        ("missing to", with(json!({"to": null})), "required", "to"),
        ("not E.164", with(json!({"to": "12345"})), "e164", "to"),
        ("unknown type", with(json!({"type": "carrier_pigeon"})), "unsupported_type", "type"),
        ("object missing for the type", with(json!({"type": "image"})), "required", "media"),
        (
            "a wamid to reply to",
            with(json!({"replyTo": "wamid.HBgLMTU1NTAxNzAwMDAVAgARGBI"})),
            "wamid_not_accepted",
            "replyTo",
        ),
        (
            "a reply to no message",
            with(json!({"replyTo": "msg_wa_test_01JX3ZQ8V6W5T4S3R2Q1P0N9M8"})),
            "unknown_message",
            "replyTo",
        ),
        (
            "unknown mediaId",
            with(json!({"type": "image", "media": {"mediaId": unknown_upload}})),
            "unknown_media",
            "media.mediaId",
        ),
        (
            "not a mediaId",
            with(json!({"type": "image", "media": {"mediaId": "med_abc"}})),
            "invalid_value",
            "media.mediaId",
        ),
        (
            "caption on audio",
            with(json!({"type": "audio", "media": {"mediaId": unknown_upload, "caption": "x"}})),
            "not_allowed",
            "media.caption",
        ),
        ("text too long", text(&"x".repeat(4097)), "max_length", "text.body"),
        ("unknown from", with(json!({"from": "+19995550100"})), "unknown_sender", "from"),
        ("NUL in the text", text("a\u{0}b"), "nul_character", "text.body"),
        ("unknown field", with(json!({"priority": "high"})), "unknown_field", "priority"),
        ("text of the wrong type", with(json!({"text": {"body": 5}})), "invalid_type", "text.body"),
        (
            "button title too long",
            with(json!({"type": "interactive", "interactive": {"type": "buttons", "body": "Pick",
                "buttons": [{"id": "a", "title": "A title longer than twenty"}]}})),
            "max_length",
            "interactive.buttons[0].title",
        ),
        (
            "cta_url without its label",
            with(
                json!({"type": "interactive", "interactive": {"type": "cta_url", "body": "Pay", "url": "https://example.com"}}),
            ),
            "required",
            "interactive.buttonText",
        ),
        (
            "list without sections",
            with(json!({"type": "interactive", "interactive": {"type": "list", "body": "Pick", "buttonText": "Open"}})),
            "required",
            "interactive.sections",
        ),
        (
            "contact without a name",
            with(json!({"type": "contacts", "contacts": {"contacts": [{"name": {"firstName": "Jo"}}]}})),
            "required",
            "contacts.contacts[0].name.formattedName",
        ),
        (
            "reaction to no message",
            with(
                json!({"type": "reaction", "reaction": {"messageId": "msg_wa_test_01JX3ZQ8V6W5T4S3R2Q1P0N9M8", "emoji": "👍"}}),
            ),
            "unknown_message",
            "reaction.messageId",
        ),
        (
            "template not there",
            with(json!({"type": "template", "template": {"name": "no_such_template", "language": "en_US"}})),
            "template_not_found",
            "template.name",
        ),
        (
            "too many variables",
            with(
                json!({"type": "template", "template": {"name": "hello_world", "language": "en_US", "variables": {"1": "John"}}}),
            ),
            "template_param_count",
            "template.variables.1",
        ),
    ];
    for (name, body, code, param) in cases {
        let (status, e) = chirp(&app, Some(&app.api_key), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{name}: {e}");
        assert_eq!(
            (e["error"]["code"].as_str(), e["error"]["param"].as_str()),
            (Some(code), Some(param)),
            "{name}: {e}"
        );
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{param}: ")), "{name}: {e}");
        // The caller's ids, not wagate's.
        assert!(!message.contains("med_") && !message.contains("'msg_0"), "{name}: {e}");
    }

    // Not JSON, and not an object.
    let url = format!("{}/chirp/v1/whatsapp/messages", app.url);
    let resp = app.http.post(&url).bearer_auth(&app.api_key).body("{\"from\": ").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let e: Value = resp.json().await.unwrap();
    assert_eq!((e["error"]["code"].as_str(), &e["error"]["param"]), (Some("invalid_json"), &Value::Null), "{e}");
    let (status, e) = chirp(&app, Some(&app.api_key), json!([text("hi")])).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")), "{e}");
    // Larger than any message: refused before it is read whole.
    let (status, e) = chirp(&app, Some(&app.api_key), text(&"x".repeat(3 * 1024 * 1024))).await;
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request_error")),
        "{e}"
    );

    // Keys: none or unknown is 401, one without the scope 403.
    for key in [None, Some("sk_live_app_not-a-wagate-key")] {
        let (status, e) = chirp(&app, key, text("hi")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
        assert_eq!(
            (e["error"]["type"].as_str(), e["error"]["code"].as_str()),
            (Some("authentication_error"), Some("unauthorized"))
        );
    }
    let (_, read_only) = app.post("/v1/api-keys", json!({"name": "reader", "scopes": ["read"]})).await;
    let (status, e) = chirp(&app, read_only["key"].as_str(), text("hi")).await;
    assert_eq!((status, e["error"]["type"].as_str()), (StatusCode::FORBIDDEN, Some("permission_error")), "{e}");

    // A message that is not there.
    for id in ["msg_wa_test_01JX3ZQ8V6W5T4S3R2Q1P0N9M8", "msg_wa_2DbBs7GWhGvVNJGrDXr5RG0mBWI", "wamid.HBgL"] {
        let (status, e) = app.get(&format!("/chirp/v1/whatsapp/messages/{id}")).await;
        assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{id}: {e}");
    }
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing refused is stored");
    assert_eq!(app.get("/sandbox/control/messages").await.1["data"], json!([]), "nothing refused reached Meta");
    app.stop().await;
}

async fn uploads_retries_and_lookups_answer_in_chirps_shapes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (phone, from) = sender(&app).await;
    let to = customer();
    app.customer_writes(&phone, &to, "hi").await;

    let png = file(b"\x89PNG\r\n\x1a\n", 1500);
    let (status, uploaded) = upload(&app, png, "image/png", "photo.png").await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let id = uploaded["id"].as_str().unwrap();
    assert!(id.starts_with("media_") && id.len() == "media_".len() + 26, "{uploaded}");
    assert_eq!(
        (&uploaded["type"], &uploaded["mimeType"], &uploaded["size"], &uploaded["filename"]),
        (&json!("image"), &json!("image/png"), &json!(1500), &json!("photo.png"))
    );
    // The same file in the native API.
    let (status, native) = app.get(&format!("/v1/media/med_{}", &id["media_".len()..])).await;
    assert_eq!((status, &native["file_size"]), (StatusCode::OK, &json!(1500)), "{native}");
    let (status, e) = upload(&app, b"GIF89a-not-taken".to_vec(), "image/gif", "a.gif").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        (e["error"]["code"].as_str(), e["error"]["param"].as_str()),
        (Some("unsupported_media_type"), Some("file"))
    );
    let form = reqwest::multipart::Form::new().text("caption", "no file");
    let resp = app
        .http
        .post(format!("{}/chirp/v1/media", app.url))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "caption", "{e}");

    // A retry with the same Idempotency-Key is the first answer, and sends nothing more.
    let url = format!("{}/chirp/v1/whatsapp/messages", app.url);
    let body = json!({"from": from, "to": to, "type": "image", "media": {"mediaId": id, "caption": "Your photo"}});
    let send = |body: Value, key: &'static str| {
        app.http.post(&url).bearer_auth(&app.api_key).header("Idempotency-Key", key).json(&body).send()
    };
    let first = send(body.clone(), "chirp-order-7").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_queued(&first, &from, &to, "image");
    let again = send(body.clone(), "chirp-order-7").await.unwrap();
    assert_eq!((again.status(), again.headers()["idempotent-replayed"].to_str().unwrap()), (StatusCode::OK, "true"));
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = send(json!({"from": from, "to": to, "type": "text", "text": {"body": "other"}}), "chirp-order-7")
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let e: Value = other.json().await.unwrap();
    assert_eq!(
        (e["error"]["code"].as_str(), e["error"]["param"].as_str()),
        (Some("idempotency_key_reused"), Some("Idempotency-Key")),
        "{e}"
    );

    // Followed in Chirp's words until read; it reached Meta once.
    let chirp_id = first["id"].as_str().unwrap();
    let read = eventually("the photo to be read", || async {
        let (_, m) = app.get(&format!("/chirp/v1/whatsapp/messages/{chirp_id}")).await;
        (m["status"] == "read").then_some(m)
    })
    .await;
    assert_eq!((&read["from"], &read["to"], &read["type"]), (&json!(from), &json!(to), &json!("image")), "{read}");
    assert!(read.get("error").is_none(), "{read}");
    let reached = sandbox_received(&app.http, &format!("{}/sandbox", app.url), Some(&app.api_key), &to).await;
    assert_eq!(reached.len(), 1, "{reached:?}");
    assert_eq!(reached[0]["body"]["image"]["caption"], "Your photo");
    assert_eq!(app.store().count_messages().await.unwrap(), 2, "the customer's message and the photo");
    app.stop().await;
}
