//! Whatomate's dialect at `/whatomate`: every request example of Whatomate's Messages API page
//! run against the real server with an `X-API-Key`, each answer in Whatomate's envelope, each
//! message sent followed to `read` in the native API and to the body the sandbox's Meta got,
//! and bad requests refused in Whatomate's error shape, naming the field and the rule.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_domain::time::Timestamp;
use wagate_storage::Backend;

use crate::support::*;

on_each_backend!(
    texts_and_interactive_messages_reach_the_contact_and_are_listed,
    template_examples_send_by_name_id_phone_and_account,
    positional_template_params_are_given_by_number,
    media_is_fetched_checked_and_sent,
    bad_requests_name_the_field_and_the_rule,
);

/// A request to the dialect, authenticated as Whatomate's clients are.
async fn whatomate(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = app.http.request(method, format!("{}/whatomate{path}", app.url)).header("X-API-Key", &app.api_key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The `data` of a success.
fn data(status: StatusCode, answer: &Value) -> Value {
    assert_eq!((status, &answer["status"]), (StatusCode::OK, &json!("success")), "{answer}");
    answer["data"].clone()
}

/// The message followed in the native API until the customer read it.
async fn read_by_customer(app: &TestApp, id: &str) -> Value {
    wait_for_message(&app.http, &app.url, &app.api_key, id, "the message to be read", |m| m["status"] == "read").await
}

/// What the sandbox's Meta received with this wamid: the number it was sent from and the body.
async fn reached_meta(app: &TestApp, wamid: &Value) -> (String, Value) {
    let (status, received) = app.get("/sandbox/control/messages").await;
    assert_eq!(status, StatusCode::OK, "{received}");
    let got = received["data"].as_array().unwrap().iter().find(|r| &r["wamid"] == wamid).cloned();
    let got = got.unwrap_or_else(|| panic!("the sandbox got {wamid}"));
    (got["phone_number_id"].as_str().unwrap().to_owned(), got["body"].clone())
}

/// The sandbox's default number and another: a contact who wrote to the other is answered from
/// it, one who never wrote from the default.
async fn numbers(app: &TestApp) -> (String, String) {
    let (status, body) = app.get("/v1/phone-numbers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let numbers = body["data"].as_array().unwrap();
    let pick = |default: bool| {
        numbers.iter().find(|n| n["default"] == default).map(|n| n["id"].as_str().unwrap().to_owned()).unwrap()
    };
    (pick(true), pick(false))
}

/// A template created through wagate and approved by the sandbox's Meta.
async fn approved(app: &TestApp, body: Value) -> String {
    let (status, created) = app.post("/v1/templates", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let url = format!("/sandbox/control/templates/{id}/status");
    let (status, body) = app.request(Method::PUT, &url, Some(json!({"status": "APPROVED"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the template to be approved", || async {
        let (status, t) = app.get(&format!("/v1/templates/{id}")).await;
        (status == StatusCode::OK && t["status"] == "APPROVED").then_some(())
    })
    .await;
    id
}

async fn texts_and_interactive_messages_reach_the_contact_and_are_listed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, phone) = numbers(&app).await;
    let customer = customer();
    let inbound_wamid = app.customer_writes(&phone, &customer, "Hello!").await;
    let contact = app.contact_of(&customer).await;
    let path = format!("/api/contacts/{contact}/messages");

    // The seed's three examples, and the object of each as Meta received it.
    let examples = [
        (
            json!({"type": "text", "text": "Hello! How can I help you today?"}),
            json!({"type": "text", "text": {"body": "Hello! How can I help you today?"}}),
        ),
        (
            json!({"type": "interactive", "interactive": {
                "type": "button",
                "body": "How would you like to proceed?",
                "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]
            }}),
            json!({"type": "interactive", "interactive": {
                "type": "button",
                "body": {"text": "How would you like to proceed?"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}}
                ]}
            }}),
        ),
        (
            json!({"type": "interactive", "interactive": {
                "type": "cta_url",
                "body": "Click below to view your order details",
                "button_text": "View Order",
                "url": "https://example.com/orders/12345"
            }}),
            json!({"type": "interactive", "interactive": {
                "type": "cta_url",
                "body": {"text": "Click below to view your order details"},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "View Order", "url": "https://example.com/orders/12345"
                }}
            }}),
        ),
    ];
    let mut sent = Vec::new();
    for (request, meta) in examples {
        let (status, answer) = whatomate(&app, Method::POST, &path, Some(request.clone())).await;
        let d = data(status, &answer);
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "status", "timestamp", "wa_message_id"], "{answer}");
        assert_eq!(d["status"], "sent");
        assert!(Timestamp::parse_rfc3339(d["timestamp"].as_str().unwrap()).is_some(), "{answer}");
        let id = d["id"].as_str().unwrap();
        assert!(id.starts_with("msg_"), "{answer}");
        let native = read_by_customer(&app, id).await;
        assert_eq!(native["wamid"], d["wa_message_id"], "{native}");
        let (from, body) = reached_meta(&app, &d["wa_message_id"]).await;
        assert_eq!((from.as_str(), &body["to"]), (phone.as_str(), &json!(customer)), "from the number written to");
        let kind = meta["type"].as_str().unwrap();
        assert_eq!((&body["type"], &body[kind]), (&meta["type"], &meta[kind]), "{request}");
        sent.push(id.to_owned());
    }

    // Mark the customer's message read: Meta gets the read receipt.
    let inbound = app.store().find_message_by_wamid(&inbound_wamid).await.unwrap().unwrap().id.to_string();
    let (status, answer) = whatomate(&app, Method::PUT, &format!("/api/messages/{inbound}/read"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"status": "success", "data": null})));
    let (_, received) = app.get("/sandbox/control/messages").await;
    let receipt = received["data"].as_array().unwrap().iter().any(|r| {
        r["body"]["status"] == "read" && r["body"]["message_id"] == inbound_wamid && r["phone_number_id"] == phone
    });
    assert!(receipt, "{received}");

    // The contact's messages: page 1 is the newest, each page oldest first.
    let list = |query: String| {
        let app = &app;
        let path = path.clone();
        async move {
            let (status, answer) = whatomate(app, Method::GET, &format!("{path}?{query}"), None).await;
            data(status, &answer)
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    };
    let all = list(String::new()).await;
    assert_eq!((&all["total"], &all["page"], &all["limit"]), (&json!(4), &json!(1), &json!(50)), "{all}");
    let mut expected = vec![inbound.clone()];
    expected.extend(sent.iter().cloned());
    assert_eq!(ids(&all), expected);
    assert_eq!(
        all["items"][0],
        json!({
            "id": inbound, "wa_message_id": inbound_wamid, "contact_id": contact, "direction": "incoming",
            "type": "text", "content": {"text": "Hello!"}, "status": "received", "error_message": null,
            "timestamp": all["items"][0]["timestamp"],
        })
    );
    let text = &all["items"][1];
    assert_eq!(
        (&text["direction"], &text["type"], &text["content"], &text["status"]),
        (&json!("outgoing"), &json!("text"), &json!({"text": "Hello! How can I help you today?"}), &json!("read"))
    );
    assert_eq!(all["items"][2]["content"]["action"]["buttons"][1]["reply"]["title"], "No");
    let newest = list("page=1&limit=3".into()).await;
    assert_eq!((ids(&newest), &newest["total"], &newest["limit"]), (sent.clone(), &json!(4), &json!(3)));
    let oldest = list("page=2&limit=3".into()).await;
    assert_eq!((ids(&oldest), &oldest["page"]), (vec![inbound.clone()], &json!(2)));
    let before = list(format!("before={}", sent[1])).await;
    assert_eq!((ids(&before), &before["total"]), (vec![inbound.clone(), sent[0].clone()], &json!(2)));
    let after = list(format!("after={}&limit=2", sent[0])).await;
    assert_eq!((ids(&after), &after["total"]), (sent[1..].to_vec(), &json!(2)));
    let between = list(format!("after={inbound}&before={}", sent[2])).await;
    assert_eq!(ids(&between), sent[..2].to_vec());

    // Contacts, searched by name and number, paged with totals.
    let other = crate::support::customer();
    app.customer_writes(&phone, &other, "Me too").await;
    let (status, answer) =
        whatomate(&app, Method::GET, &format!("/api/contacts?search={}", &customer[1..]), None).await;
    let found = data(status, &answer);
    assert_eq!((&found["total"], found["items"].as_array().unwrap().len()), (&json!(1), 1), "{found}");
    let c = &found["items"][0];
    assert_eq!(
        (&c["id"], &c["phone_number"], &c["name"], &c["tags"]),
        (&json!(contact), &json!(customer[1..]), &json!("Ana Customer"), &json!([]))
    );
    let mut seen = Vec::new();
    for page in [1, 2] {
        let (status, answer) =
            whatomate(&app, Method::GET, &format!("/api/contacts?search=ana&limit=1&page={page}"), None).await;
        let d = data(status, &answer);
        assert_eq!((&d["total"], &d["page"], &d["limit"]), (&json!(2), &json!(page), &json!(1)), "{d}");
        seen.push(d["items"][0]["phone_number"].as_str().unwrap().to_owned());
    }
    seen.sort();
    let mut both = vec![customer[1..].to_owned(), other[1..].to_owned()];
    both.sort();
    assert_eq!(seen, both, "newest first, one per page");
    app.stop().await;
}

fn order_confirmation_named() -> Value {
    json!({
        "name": "order_confirmation",
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "BODY", "text": "Hello {{name}}, your order {{order_id}} is ready",
             "example": {"body_text_named_params": [
                 {"param_name": "name", "example": "John"},
                 {"param_name": "order_id", "example": "12345"}]}}
        ]
    })
}

fn order_shipped() -> Value {
    json!({
        "name": "order_shipped",
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "BODY", "text": "Hello {{name}}, your order {{order_id}} has shipped",
             "example": {"body_text_named_params": [
                 {"param_name": "name", "example": "John"},
                 {"param_name": "order_id", "example": "12345"}]}},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}",
                 "example": ["https://example.com/track/12345"]}]}
        ]
    })
}

/// The component of `kind` (`body`, `button`) of the template Meta received.
fn component<'a>(template: &'a Value, kind: &str) -> &'a Value {
    template["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("{template}"))
}

async fn template_examples_send_by_name_id_phone_and_account(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (default, phone) = numbers(&app).await;
    let customer = customer();
    app.customer_writes(&phone, &customer, "Where is my order?").await;
    let contact = app.contact_of(&customer).await;
    approved(&app, order_confirmation_named()).await;
    approved(&app, order_shipped()).await;
    let (_, hello) = app.get("/v1/templates?name=hello_world").await;
    let hello_id = hello["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, accounts) = app.get("/v1/accounts").await;
    let account_name = accounts["data"][0]["name"].as_str().unwrap().to_owned();

    // Each example: the request, the name in the answer, the recipient; a new contact is sent to
    // from the default number, the customer from the number they wrote to.
    let examples = [
        (json!({"phone_number": "919876543210", "template_name": "hello_world"}), "hello_world", "919876543210"),
        (
            json!({"contact_id": contact, "template_name": "order_confirmation",
                   "template_params": {"name": "John", "order_id": "12345"}}),
            "order_confirmation",
            &customer[1..],
        ),
        (
            json!({"contact_id": contact, "template_name": "order_shipped",
                   "template_params": {"name": "John", "order_id": "12345"}, "button_params": {"0": "12345"}}),
            "order_shipped",
            &customer[1..],
        ),
        (json!({"contact_id": contact, "template_id": hello_id}), "hello_world", &customer[1..]),
        (
            json!({"contact_id": contact, "template_name": "hello_world", "account_name": account_name}),
            "hello_world",
            &customer[1..],
        ),
    ];
    for (request, name, number) in examples {
        let (status, answer) = whatomate(&app, Method::POST, "/api/messages/template", Some(request.clone())).await;
        let d = data(status, &answer);
        let id = d["message_id"].as_str().unwrap().to_owned();
        assert_eq!(
            d,
            json!({"message_id": id, "phone_number": number, "status": "pending", "template_name": name}),
            "{request}"
        );
        let native = read_by_customer(&app, &id).await;
        let (from, body) = reached_meta(&app, &native["wamid"]).await;
        let sender = if number == "919876543210" { &default } else { &phone };
        assert_eq!((&from, &body["to"]), (sender, &json!(format!("+{number}"))), "{request}");
        let template = &body["template"];
        assert_eq!((&template["name"], &template["language"]["code"]), (&json!(name), &json!("en_US")), "{body}");
        if name != "hello_world" {
            let texts: Vec<&Value> =
                component(template, "body")["parameters"].as_array().unwrap().iter().map(|p| &p["text"]).collect();
            assert_eq!(texts, [&json!("John"), &json!("12345")], "{body}");
        }
        if name == "order_shipped" {
            let button = component(template, "button");
            assert_eq!((&button["sub_type"], &button["parameters"][0]["text"]), (&json!("url"), &json!("12345")));
        }
    }
    // The number given became a contact.
    let (status, answer) = whatomate(&app, Method::GET, "/api/contacts?search=919876543210", None).await;
    assert_eq!(data(status, &answer)["items"][0]["phone_number"], "919876543210", "{answer}");
    app.stop().await;
}

async fn positional_template_params_are_given_by_number(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (default, _) = numbers(&app).await;
    approved(
        &app,
        json!({
            "name": "order_confirmation",
            "language": "en_US",
            "category": "UTILITY",
            "components": [
                {"type": "BODY", "text": "Hello {{1}}, your order {{2}} is ready",
                 "example": {"body_text": [["John", "12345"]]}}
            ]
        }),
    )
    .await;
    let request = json!({
        "phone_number": "919876543210",
        "template_name": "order_confirmation",
        "template_params": {"1": "John", "2": "12345"}
    });
    let (status, answer) = whatomate(&app, Method::POST, "/api/messages/template", Some(request)).await;
    let d = data(status, &answer);
    assert_eq!((&d["status"], &d["template_name"]), (&json!("pending"), &json!("order_confirmation")));
    let native = read_by_customer(&app, d["message_id"].as_str().unwrap()).await;
    let (from, body) = reached_meta(&app, &native["wamid"]).await;
    assert_eq!(from, default, "a new contact is sent to from the default number");
    assert_eq!(
        component(&body["template"], "body")["parameters"],
        json!([{"type": "text", "text": "John"}, {"type": "text", "text": "12345"}]),
        "{body}"
    );
    app.stop().await;
}

/// A public link on the app to a file uploaded to it.
async fn served(app: &TestApp, bytes: Vec<u8>, mime: &str, filename: &str) -> String {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()).mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let resp =
        app.http.post(format!("{}/v1/media", app.url)).bearer_auth(&app.api_key).multipart(form).send().await.unwrap();
    let uploaded: Value = resp.json().await.unwrap();
    let (status, link) = app.post(&format!("/v1/media/{}/link", uploaded["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    link["url"].as_str().unwrap().to_owned()
}

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(2048, 7);
    bytes
}

fn pdf() -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(2048, b' ');
    bytes
}

async fn media_is_fetched_checked_and_sent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, phone) = numbers(&app).await;
    let customer = customer();
    app.customer_writes(&phone, &customer, "Show me").await;
    let contact = app.contact_of(&customer).await;
    let image = served(&app, png(), "image/png", "product.png").await;
    let document = served(&app, pdf(), "application/pdf", "scan.pdf").await;
    let examples = [
        json!({"contact_id": contact, "type": "image", "media_url": image, "caption": "Check out this product!"}),
        json!({"contact_id": contact, "type": "document", "media_url": document, "caption": "Your invoice",
               "filename": "invoice.pdf"}),
    ];
    for request in examples {
        let (status, answer) = whatomate(&app, Method::POST, "/api/messages/media", Some(request.clone())).await;
        let d = data(status, &answer);
        let id = d["id"].as_str().unwrap().to_owned();
        assert_eq!(d, json!({"id": id, "wa_message_id": d["wa_message_id"], "status": "sent"}));
        let native = read_by_customer(&app, &id).await;
        assert_eq!(native["wamid"], d["wa_message_id"]);
        let (from, body) = reached_meta(&app, &d["wa_message_id"]).await;
        assert_eq!((from.as_str(), &body["to"]), (phone.as_str(), &json!(customer)));
        let kind = request["type"].as_str().unwrap();
        let object = &body[kind];
        assert_eq!((&body["type"], &object["caption"]), (&request["type"], &request["caption"]), "{body}");
        // Sent as Meta's id of wagate's upload of the file.
        assert!(object["id"].is_string() && object.get("link").is_none(), "{body}");
        if kind == "document" {
            assert_eq!(object["filename"], "invoice.pdf");
        }
    }
    app.stop().await;
}

async fn bad_requests_name_the_field_and_the_rule(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    let inbound_wamid = app.customer_writes(&phone, &customer, "Hi").await;
    let contact = app.contact_of(&customer).await;
    let image = served(&app, png(), "image/png", "a.png").await;
    let messages = format!("/api/contacts/{contact}/messages");
    let before = app.store().count_messages().await.unwrap();
    let four_buttons: Vec<Value> = (0..4).map(|i| json!({"id": format!("b{i}"), "title": format!("B{i}")})).collect();
    let cases: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (Method::GET, "/api/contacts?limit=101".into(), None, StatusCode::BAD_REQUEST, "limit: must be 1 to 100"),
        (Method::GET, format!("{messages}?page=0"), None, StatusCode::BAD_REQUEST, "page: must be 1 to"),
        (Method::GET, format!("{messages}?before=nope"), None, StatusCode::BAD_REQUEST, "before: must be a message id"),
        (Method::GET, "/api/contacts/ct_nobody/messages".into(), None, StatusCode::NOT_FOUND, "id: no contact"),
        (
            Method::GET,
            format!("/api/contacts/{}/messages", "c".repeat(65)),
            None,
            StatusCode::BAD_REQUEST,
            "id: must be at most 64",
        ),
        (Method::POST, messages.clone(), Some(json!("text")), StatusCode::BAD_REQUEST, "body: must be a JSON object"),
        (Method::POST, messages.clone(), Some(json!({"type": "text"})), StatusCode::BAD_REQUEST, "text: is required"),
        (
            Method::POST,
            messages.clone(),
            Some(json!({"type": "text", "text": "a\u{0}b"})),
            StatusCode::BAD_REQUEST,
            "text: must not contain the NUL",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(json!({"type": "text", "text": "x".repeat(5000)})),
            StatusCode::BAD_REQUEST,
            "text: must be at most 4096 characters",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(json!({"type": "text", "text": "x", "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "colour: unknown field `colour`",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(json!({"type": "video", "text": "x"})),
            StatusCode::BAD_REQUEST,
            "type: must be text or interactive",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(
                json!({"type": "interactive", "interactive": {"type": "button", "body": "Pick", "buttons": four_buttons}}),
            ),
            StatusCode::BAD_REQUEST,
            "interactive.buttons: must have at most 3 buttons",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(json!({"type": "interactive", "interactive": {"type": "button", "body": "Pick",
                "buttons": [{"id": "a", "title": "x".repeat(21)}]}})),
            StatusCode::BAD_REQUEST,
            "interactive.buttons[0].title: must be at most 20",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(
                json!({"type": "interactive", "interactive": {"type": "cta_url", "body": "Go", "button_text": "Open"}}),
            ),
            StatusCode::BAD_REQUEST,
            "interactive.url: is required",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"contact_id": contact, "phone_number": "919876543210", "template_name": "hello_world"})),
            StatusCode::BAD_REQUEST,
            "phone_number: give contact_id or phone_number, not both",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"template_name": "hello_world"})),
            StatusCode::BAD_REQUEST,
            "contact_id: is required",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"contact_id": contact, "template_name": "no_such_template"})),
            StatusCode::NOT_FOUND,
            "template_name: no template named 'no_such_template'",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"contact_id": "ct_nobody", "template_name": "hello_world"})),
            StatusCode::NOT_FOUND,
            "contact_id: no contact",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"contact_id": contact, "template_name": "hello_world", "template_params": {"1": "x"}})),
            StatusCode::BAD_REQUEST,
            "template_params",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"contact_id": contact, "template_name": "hello_world", "account_name": "nope"})),
            StatusCode::NOT_FOUND,
            "account_name: no connected account is named 'nope'",
        ),
        (
            Method::POST,
            "/api/messages/template".into(),
            Some(json!({"phone_number": "12", "template_name": "hello_world"})),
            StatusCode::BAD_REQUEST,
            "phone_number: must be the number's digits",
        ),
        (
            Method::POST,
            "/api/messages/media".into(),
            Some(json!({"contact_id": contact, "type": "gif", "media_url": image})),
            StatusCode::BAD_REQUEST,
            "type: must be image, video, audio or document",
        ),
        (
            Method::POST,
            "/api/messages/media".into(),
            Some(json!({"contact_id": contact, "type": "image", "media_url": "ftp://example.com/a.png"})),
            StatusCode::BAD_REQUEST,
            "media_url: must be an http or https URL",
        ),
        (
            Method::POST,
            "/api/messages/media".into(),
            Some(json!({"contact_id": contact, "type": "video", "media_url": image})),
            StatusCode::BAD_REQUEST,
            "media_url: is image/png, a file WhatsApp sends as image, not as video",
        ),
        (
            Method::POST,
            "/api/messages/media".into(),
            Some(json!({"contact_id": contact, "type": "image", "media_url": image, "filename": "a.png"})),
            StatusCode::BAD_REQUEST,
            "filename: only a document has a file name",
        ),
        (Method::PUT, "/api/messages/msg_nothing/read".into(), None, StatusCode::NOT_FOUND, "id: no message"),
    ];
    assert!(cases.len() >= 10);
    for (method, path, body, status, message) in cases {
        let (got, answer) = whatomate(&app, method.clone(), &path, body).await;
        assert_eq!((got, &answer["status"]), (status, &json!("error")), "{method} {path}: {answer}");
        let said = answer["message"].as_str().unwrap();
        assert!(said.starts_with(message), "{method} {path}: '{said}' should start with '{message}'");
    }
    // A body that is not JSON, and a request without a key.
    let resp = app
        .http
        .post(format!("{}/whatomate{messages}", app.url))
        .header("X-API-Key", &app.api_key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer["message"].as_str().unwrap().starts_with("body: is not valid JSON"), "{answer}");
    let resp = app.http.get(format!("{}/whatomate/api/contacts", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "error");
    assert_eq!(app.store().count_messages().await.unwrap(), before, "nothing was sent");

    // A reply names the message replied to; only a customer's message can be marked read.
    let inbound = app.store().find_message_by_wamid(&inbound_wamid).await.unwrap().unwrap().id.to_string();
    let reply = json!({"type": "text", "text": "ok", "reply_to_message_id": inbound});
    let (status, answer) = whatomate(&app, Method::POST, &messages, Some(reply)).await;
    let sent = data(status, &answer)["id"].as_str().unwrap().to_owned();
    let (_, native) = app.get(&format!("/v1/messages/{sent}")).await;
    assert_eq!(native["reply_to"], json!(inbound_wamid), "{native}");
    let (status, answer) = whatomate(&app, Method::PUT, &format!("/api/messages/{sent}/read"), None).await;
    assert_eq!((status, &answer["status"]), (StatusCode::BAD_REQUEST, &json!("error")), "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with("id: only a message a customer sent"), "{answer}");
    app.stop().await;
}
