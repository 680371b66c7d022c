//! The sandbox's answers and webhooks validate against Meta's OpenAPI spec of the Cloud API, as
//! patched in `conformance/` (each patch explained there), with `conformance/validate.py`.
//!
//! Runs in the Python environment `WAGATE_PYTHON` names (`.ci/run` makes one from
//! `clients/requirements.txt`); skipped without it, except with `CI=true`.

mod support;

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

fn python() -> Option<PathBuf> {
    match std::env::var_os("WAGATE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but WAGATE_PYTHON is not set: the conformance checks must run in CI")
        }
        None => {
            eprintln!("skipping the OpenAPI conformance checks: WAGATE_PYTHON is not set");
            None
        }
    }
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

/// Runs one of the kit's scripts; its output when it fails.
fn run(python: &PathBuf, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(python)
        .args(args)
        .current_dir(conformance_dir())
        .output()
        .expect("the conformance environment's python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(text) }
}

/// Bodies to validate, one JSONL line each.
#[derive(Default)]
struct Bodies(Vec<Value>);

impl Bodies {
    /// A Graph answer, against the spec's response schema for `method path` and its status.
    fn answer(&mut self, label: &str, method: &str, path: &str, (status, body): &(StatusCode, Value)) {
        assert!(body.is_object(), "{label}: {status} {body}");
        self.0.push(json!({
            "label": format!("{label} ({status})"),
            "operation": {"method": method, "path": path, "status": status.as_u16()},
            "body": body,
        }));
    }

    fn webhook(&mut self, label: &str, body: &Value) {
        self.0.push(json!({"label": label, "schema": "WebhookPayload", "body": body}));
    }
}

#[tokio::test]
async fn the_patched_copy_is_what_the_patches_make_of_metas_spec() {
    let Some(python) = python() else { return };
    if let Err(out) = run(&python, &["build.py", "--check"]) {
        panic!("conformance/meta-cloud-api-v23.0.patched.json is stale; run conformance/build.py:\n{out}");
    }
    let out = run(&python, &["validate.py", "--doc-examples"]).unwrap_or_else(|out| panic!("{out}"));
    assert!(out.contains(" 0 failed"), "{out}");
}

#[tokio::test]
async fn answers_and_webhooks_validate_against_metas_schemas() {
    let Some(python) = python() else { return };
    let h = Harness::start().await;
    let mut bodies = Bodies::default();
    let number = h.number();
    let waba = h.waba();
    let c = customer();
    let send_path = "/{Version}/{Phone-Number-ID}/messages";

    // Accounts.
    bodies.answer("phone number", "get", "/{Version}/{Phone-Number-ID}", &h.graph(Method::GET, &number, None).await);
    let fields = h.graph(Method::GET, &format!("{number}?fields=throughput,quality_rating"), None).await;
    bodies.answer("phone number fields", "get", "/{Version}/{Phone-Number-ID}", &fields);
    let numbers = h.graph(Method::GET, &format!("{waba}/phone_numbers"), None).await;
    bodies.answer("phone numbers", "get", "/{Version}/{WABA-ID}/phone_numbers", &numbers);
    let refused = h.graph_as(Some("EAAGwrong"), Method::GET, &number, None).await;
    bodies.answer("wrong token", "get", "/{Version}/{Phone-Number-ID}", &refused);

    // Inbound of every type, replying to a business message where Meta's do.
    let inbound = h.customer_writes(&c, "hello").await;
    let group = h.prepare_examples(&c).await;
    let text = json!({"to": c, "type": "text", "text": {"body": "hi"}, "biz_opaque_callback_data": "t-1"});
    let sent = h.send(text.clone()).await;
    bodies.answer("send text", "post", send_path, &sent);
    let business_wamid = sent.1["messages"][0]["id"].as_str().unwrap().to_owned();
    for (name, body) in send_examples() {
        let answer = h.send(addressed(&body, &c, &group)).await;
        assert_eq!(answer.0, StatusCode::OK, "{name}: {}", answer.1);
        bodies.answer(&name, "post", send_path, &answer);
    }
    let read = json!({"status": "read", "message_id": inbound, "typing_indicator": {"type": "text"}});
    bodies.answer("mark read", "post", send_path, &h.send(read).await);
    let bad = json!({"to": c, "type": "text", "text": {}});
    bodies.answer("missing text body", "post", send_path, &h.send(bad).await);
    let unknown_template =
        json!({"to": c, "type": "template", "template": {"name": "nope", "language": {"code": "en_US"}}});
    bodies.answer("unknown template", "post", send_path, &h.send(unknown_template).await);
    let failing = customer();
    h.control(Method::PUT, &format!("control/failures/{failing}"), Some(json!({"code": 131026}))).await;
    let hello =
        json!({"to": failing, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let doomed = h.send_ok(hello).await;
    h.hooks.wait_statuses(&doomed, 1).await;
    let voice = h
        .send_ok(json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/a.ogg", "voice": true}}))
        .await;
    h.hooks.wait_statuses(&voice, 4).await;

    let png = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nconformance")
    };
    let contents = [
        json!({"type": "text", "text": {"body": "Olá 😀"}, "referral": {"source_url": "https://fb.me/x", "source_id": "1", "source_type": "ad", "body": "Summer sale", "headline": "Chat with us", "media_type": "image", "image_url": "https://example.com/ad.png", "ctwa_clid": "abc"}}),
        json!({"type": "image", "image": {"caption": "look", "content_base64": png, "mime_type": "image/png"}}),
        json!({"type": "audio", "audio": {"voice": true}}),
        // What the simulate API fills in when a test leaves it out must fit Meta's schema too.
        json!({"type": "audio", "audio": {}}),
        json!({"type": "sticker", "sticker": {}}),
        json!({"type": "document", "document": {}}),
        json!({"type": "image", "image": {}}),
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r2", "title": "Row 2"}}}),
        json!({"type": "video", "video": {"caption": "clip"}}),
        json!({"type": "document", "document": {"filename": "a.pdf", "caption": "doc"}}),
        json!({"type": "sticker", "sticker": {"animated": false}}),
        json!({"type": "location", "location": {"latitude": 38.7, "longitude": -9.1, "name": "Lisbon", "address": "Praça"}}),
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana Lima", "first_name": "Ana"}, "phones": [{"phone": "+15550100", "type": "MOBILE"}]}]}),
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}}),
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "First"}}}),
        json!({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": {"flow_token": "t"}}}}),
        json!({"type": "button", "button": {"payload": "Stop promotions", "text": "Stop promotions"}}),
        json!({"type": "reaction", "reaction": {"message_id": business_wamid, "emoji": "👍"}}),
        json!({"type": "order", "order": {"catalog_id": "1", "text": "Love these!", "product_items": [{"product_retailer_id": "p1", "quantity": 2, "item_price": 7.99, "currency": "USD"}]}}),
        json!({"type": "system", "system": {"type": "user_changed_number", "new_wa_id": "15550109999"}}),
        json!({"type": "unsupported", "unsupported": {"type": "poll"}}),
        json!({"type": "request_welcome"}),
        json!({"type": "text", "text": {"body": "a reply"}, "context": {"id": business_wamid}}),
    ];
    for message in contents {
        let body = json!({"phone_number_id": number, "from": c, "name": "Ana", "message": message});
        let (status, answer) = h.control(Method::POST, "simulate/inbound", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{message}: {answer}");
    }
    let in_group = json!({"phone_number_id": number, "from": c, "group_id": group, "message": {"type": "text", "text": {"body": "hi all"}}});
    assert_eq!(h.control(Method::POST, "simulate/inbound", Some(in_group)).await.0, StatusCode::OK);

    // Templates.
    let templates = format!("{waba}/message_templates");
    let definition = json!({"name": "conformance_check", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Your code is {{1}} today.", "example": {"body_text": [["42"]]}}]});
    let created = h.graph(Method::POST, &templates, Some(definition)).await;
    bodies.answer("template create", "post", "/{Version}/{WABA-ID}/message_templates", &created);
    let id = created.1["id"].as_str().unwrap().to_owned();
    h.control(Method::PUT, &format!("control/templates/{id}/status"), Some(json!({"status": "APPROVED"}))).await;
    bodies.answer(
        "template list",
        "get",
        "/{Version}/{WABA-ID}/message_templates",
        &h.graph(Method::GET, &format!("{templates}?limit=2"), None).await,
    );
    bodies.answer("template get", "get", "/{Version}/{TEMPLATE_ID}", &h.graph(Method::GET, &id, None).await);
    let edit = json!({"components": [{"type": "BODY", "text": "Your code is {{1}} now.", "example": {"body_text": [["42"]]}}]});
    bodies.answer("template edit", "post", "/{Version}/{TEMPLATE_ID}", &h.graph(Method::POST, &id, Some(edit)).await);
    let rejected = json!({"name": "conformance_reject", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Please reject this one."}]});
    h.graph(Method::POST, &templates, Some(rejected)).await;
    h.hooks.wait_change("message_template_status_update", |v| v["event"] == "REJECTED").await;
    let deleted = h.graph(Method::DELETE, &format!("{templates}?name=conformance_reject"), None).await;
    bodies.answer("template delete", "delete", "/{Version}/{WABA-ID}/message_templates", &deleted);

    // Media.
    let form = reqwest::multipart::Form::new().text("messaging_product", "whatsapp").text("type", "image/png").part(
        "file",
        reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nupload".to_vec())
            .file_name("a.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let uploaded = h.upload(form).await;
    bodies.answer("media upload", "post", "/{Version}/{Phone-Number-ID}/media", &uploaded);
    let media = uploaded.1["id"].as_str().unwrap().to_owned();
    bodies.answer("media get", "get", "/{Version}/{Media-ID}", &h.graph(Method::GET, &media, None).await);
    bodies.answer("media delete", "delete", "/{Version}/{Media-ID}", &h.graph(Method::DELETE, &media, None).await);

    // Groups.
    let groups = format!("{number}/groups");
    let create =
        json!({"messaging_product": "whatsapp", "subject": "Conformance", "join_approval_mode": "approval_required"});
    bodies.answer(
        "group create",
        "post",
        "/{Version}/{Phone-Number-ID}/groups",
        &h.graph(Method::POST, &groups, Some(create)).await,
    );
    bodies.answer(
        "group list",
        "get",
        "/{Version}/{Phone-Number-ID}/groups",
        &h.graph(Method::GET, &groups, None).await,
    );
    let fields =
        "subject,description,suspended,creation_timestamp,participants,total_participant_count,join_approval_mode";
    let info = h.graph(Method::GET, &format!("{group}?fields={fields}"), None).await;
    bodies.answer("group info", "get", "/{Version}/{group_id}", &info);
    let link = format!("{group}/invite_link");
    let wa = json!({"messaging_product": "whatsapp"});
    bodies.answer("invite link", "get", "/{Version}/{group_id}/invite_link", &h.graph(Method::GET, &link, None).await);
    bodies.answer(
        "invite link reset",
        "post",
        "/{Version}/{group_id}/invite_link",
        &h.graph(Method::POST, &link, Some(wa.clone())).await,
    );
    let (_, list) = h.graph(Method::GET, &groups, None).await;
    let gated =
        list["data"]["groups"].as_array().unwrap().iter().find(|g| g["subject"] == "Conformance").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    for who in [customer(), customer()] {
        h.control(Method::POST, &format!("simulate/groups/{gated}/join"), Some(json!({"wa_id": who}))).await;
    }
    let requests = h.graph(Method::GET, &format!("{gated}/join_requests"), None).await;
    bodies.answer("join requests", "get", "/{Version}/{group_id}/join_requests", &requests);
    let ids: Vec<Value> = requests.1["data"].as_array().unwrap().iter().map(|r| r["join_request_id"].clone()).collect();
    let approve = json!({"messaging_product": "whatsapp", "join_requests": [ids[0]]});
    bodies.answer(
        "approve",
        "post",
        "/{Version}/{group_id}/join_requests",
        &h.graph(Method::POST, &format!("{gated}/join_requests"), Some(approve)).await,
    );
    let reject = json!({"messaging_product": "whatsapp", "join_requests": [ids[1], "nope"]});
    bodies.answer(
        "reject",
        "delete",
        "/{Version}/{group_id}/join_requests",
        &h.graph(Method::DELETE, &format!("{gated}/join_requests"), Some(reject)).await,
    );
    bodies.answer(
        "invite link delete",
        "delete",
        "/{Version}/{group_id}/invite_link",
        &h.graph(Method::DELETE, &format!("{gated}/invite_link"), Some(wa)).await,
    );
    bodies.answer("group delete", "delete", "/{Version}/{group_id}", &h.graph(Method::DELETE, &gated, None).await);
    h.hooks.wait_change("group_lifecycle_update", |v| v["groups"][0]["type"] == "group_delete").await;

    // Flows encryption.
    let path = format!("{number}/whatsapp_business_encryption");
    let key = include_str!("../../../testdata/flows-public-key-2048.pem");
    let set = h.graph(Method::POST, &path, Some(json!({"business_public_key": key}))).await;
    bodies.answer("encryption set", "post", "/{Version}/{Phone-Number-ID}/whatsapp_business_encryption", &set);
    bodies.answer(
        "encryption get",
        "get",
        "/{Version}/{Phone-Number-ID}/whatsapp_business_encryption",
        &h.graph(Method::GET, &path, None).await,
    );

    // Every webhook delivered so far: statuses of all kinds, inbound of all types, templates, groups.
    let kinds = |v: &Value| {
        let changes = v["entry"][0]["changes"][0].clone();
        let value = &changes["value"];
        let detail = value["statuses"][0]["status"]
            .as_str()
            .or(value["messages"][0]["type"].as_str())
            .or(value["groups"][0]["type"].as_str())
            .or(value["event"].as_str())
            .unwrap_or("?")
            .to_owned();
        format!("{} {detail}", changes["field"].as_str().unwrap_or("?"))
    };
    let deliveries = h.hooks.deliveries();
    let mut seen = std::collections::BTreeSet::new();
    for d in &deliveries {
        let kind = kinds(&d.json);
        seen.insert(kind.clone());
        bodies.webhook(&format!("webhook {kind}"), &d.json);
    }
    for expected in [
        "messages sent",
        "messages delivered",
        "messages read",
        "messages played",
        "messages failed",
        "messages text",
        "messages image",
        "messages audio",
        "messages video",
        "messages document",
        "messages sticker",
        "messages location",
        "messages contacts",
        "messages interactive",
        "messages button",
        "messages reaction",
        "messages order",
        "messages system",
        "messages unsupported",
        "messages request_welcome",
        "message_template_status_update APPROVED",
        "message_template_status_update REJECTED",
        "group_lifecycle_update group_create",
        "group_lifecycle_update group_delete",
        "group_participants_update group_participants_add",
        "group_participants_update group_join_request_created",
    ] {
        assert!(seen.contains(expected), "no {expected} webhook among {seen:?}");
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = bodies.0.iter().map(Value::to_string).collect();
    std::fs::write(file.path(), lines.join("\n")).unwrap();
    match run(&python, &["validate.py", file.path().to_str().unwrap()]) {
        Ok(out) => assert!(out.contains(&format!("validated {} bodies, 0 failed", bodies.0.len())), "{out}"),
        Err(out) => panic!("sandbox bodies do not validate against Meta's (patched) schemas:\n{out}"),
    }
}
