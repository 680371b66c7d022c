//! Generated hostile text in every text field of the write endpoints, the list filters and a
//! signed inbound webhook, on both backends: no answer is a 500, a refused request stores
//! nothing, an accepted send is stored once, and every inbound message is stored (PostgreSQL
//! refuses a NUL and over-long index entries that SQLite keeps; the suite must notice).
//!
//! The corpus is small so CI stays fast; `WAGATE_FUZZ_CASES=N` adds N generated values per field
//! (default 2) for a longer run.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

/// Stands for an unpaired surrogate escape (`\ud800`), which no Rust string can hold: put in
/// the JSON text after serialisation.
const LONE_SURROGATE: &str = "\u{E000}lone\u{E000}";

/// The seed corpus: one of each kind of text some backend or parser cannot take as it is.
fn seeds() -> Vec<String> {
    vec![
        "a\u{0}b".into(),
        format!("a{LONE_SURROGATE}b"),
        "\u{202E}gnp.exe".into(),
        "\u{200B}\u{200D}".into(),
        "ä".repeat(5_000),
        String::new(),
    ]
}

const ATOMS: &[&str] = &[
    "\u{0}",
    LONE_SURROGATE,
    "\u{202E}",
    "\u{2066}",
    "\u{200B}",
    "\u{FEFF}",
    "😀",
    "é",
    "\u{FFFF}",
    "\\",
    "\"",
    "%00",
    "'; --",
    "\r\n\t",
    " ",
    "+1555",
    "US.",
    "wamid.",
    "{{1}}",
    "<b>",
];

/// A deterministic generator (SplitMix64), so a failure names the value that caused it.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One to five atoms with plain text between, now and then 10 KB long.
    fn value(&mut self) -> String {
        let mut out = String::new();
        for _ in 0..=self.next() % 5 {
            out.push_str(ATOMS[(self.next() % ATOMS.len() as u64) as usize]);
            if self.next().is_multiple_of(3) {
                out.push_str("text");
            }
        }
        if self.next().is_multiple_of(8) {
            out = out.repeat(10_240 / out.len().max(1) + 1);
        }
        out
    }
}

/// The hostile values for one field: the seeds, then generated ones.
fn values(field: usize) -> Vec<String> {
    let extra: usize = std::env::var("WAGATE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2);
    let mut generator = Generator(0x5EED ^ field as u64);
    seeds().into_iter().chain((0..extra).map(|_| generator.value())).collect()
}

/// `template` with the string at `pointer` replaced by `value`, as JSON text.
fn with_value(template: &Value, pointer: &str, value: &str) -> String {
    let mut body = template.clone();
    *body.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in {template}")) = json!(value);
    body.to_string().replace(LONE_SURROGATE, r"\ud800")
}

/// Percent-encoded for a query string (a lone surrogate cannot be UTF-8: it becomes %ED%A0%80,
/// what a careless client's encoder would send).
fn query_value(value: &str) -> String {
    let bytes = value.replace(LONE_SURROGATE, "\u{FFFD}").into_bytes();
    let bytes = if value.contains(LONE_SURROGATE) { [bytes, vec![0xED, 0xA0, 0x80]].concat() } else { bytes };
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

async fn send_raw(app: &TestApp, method: Method, path: &str, body: String) -> (StatusCode, String) {
    let resp = app
        .http
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn hostile_text_in_every_write_field(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&from, &customer, "hello").await;
    let contact = app.contact_of(&customer).await;
    let (_, accounts) = app.get("/v1/accounts").await;
    let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();

    let text = json!({"from": from, "to": customer, "type": "text", "text": {"body": "hi"},
        "idempotency_key": "k", "metadata": {"note": "n"}, "biz_opaque_callback_data": "c",
        "reply_to": "msg_01", "send_at": "2030-01-01T00:00:00Z", "recipient_identity_key_hash": "h"});
    let buttons = json!({"from": from, "to": customer, "type": "interactive", "interactive": {"type": "button",
        "header": {"type": "text", "text": "h"}, "body": {"text": "b"}, "footer": {"text": "f"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "i", "title": "t"}}]}}});
    let template = json!({"from": from, "to": customer, "type": "template", "template": {"name": "hello_world",
        "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": "p"}]}]}});
    let graph = json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": {"body": "hi"}});
    let account_body = json!({"name": "n", "graph_base_url": "http://127.0.0.1:1", "api_version": "v23.0",
        "waba_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"});
    let sends: Vec<(&str, Value, &[&str])> = vec![
        (
            "/v1/messages",
            text,
            &[
                "/from",
                "/to",
                "/type",
                "/text/body",
                "/idempotency_key",
                "/metadata/note",
                "/biz_opaque_callback_data",
                "/reply_to",
                "/send_at",
                "/recipient_identity_key_hash",
            ],
        ),
        (
            "/v1/messages",
            buttons,
            &[
                "/interactive/header/text",
                "/interactive/body/text",
                "/interactive/footer/text",
                "/interactive/action/buttons/0/reply/id",
                "/interactive/action/buttons/0/reply/title",
            ],
        ),
        (
            "/v1/messages",
            template,
            &["/template/name", "/template/language/code", "/template/components/0/parameters/0/text"],
        ),
    ];
    let mut field = 0;
    for (path, template, pointers) in &sends {
        for pointer in *pointers {
            field += 1;
            for value in values(field) {
                let before = app.store().count_messages().await.unwrap();
                let (status, answer) = send_raw(&app, Method::POST, path, with_value(template, pointer, &value)).await;
                let after = app.store().count_messages().await.unwrap();
                assert!(status.as_u16() < 500, "{pointer} = {value:?}: {status} {answer}");
                let stored = if status == StatusCode::ACCEPTED { 1 } else { 0 };
                assert_eq!(after - before, stored, "{pointer} = {value:?}: {status} {answer}");
            }
        }
    }
    // The Meta-compatible surface: a send waits for Meta, so a few fields only.
    for pointer in ["/to", "/text/body"] {
        field += 1;
        for value in values(field) {
            let path = format!("/graph/v23.0/{from}/messages");
            let (status, answer) = send_raw(&app, Method::POST, &path, with_value(&graph, pointer, &value)).await;
            assert!(status.as_u16() < 500, "graph {pointer} = {value:?}: {status} {answer}");
        }
    }
    let others: Vec<(Method, String, Value, &[&str])> = vec![
        (Method::POST, "/v1/api-keys".into(), json!({"name": "n"}), &["/name"]),
        (
            Method::PATCH,
            format!("/v1/contacts/{contact}"),
            json!({"tags": ["t"], "attributes": {"k": "v"}}),
            &["/tags/0", "/attributes/k"],
        ),
        (Method::PATCH, format!("/v1/accounts/{account}"), json!({"name": "n"}), &["/name"]),
        (
            Method::POST,
            "/v1/accounts".into(),
            account_body,
            &["/name", "/graph_base_url", "/api_version", "/waba_id", "/access_token", "/app_secret", "/verify_token"],
        ),
    ];
    for (method, path, template, pointers) in &others {
        for pointer in *pointers {
            field += 1;
            for value in values(field) {
                let keys = app.get("/v1/api-keys").await.1["data"].as_array().unwrap().len();
                let (status, answer) =
                    send_raw(&app, method.clone(), path, with_value(template, pointer, &value)).await;
                // Connecting an account asks the Graph API, which may be unreachable: 502.
                let upstream = path == "/v1/accounts" && status == StatusCode::BAD_GATEWAY;
                assert!(status.as_u16() < 500 || upstream, "{path} {pointer} = {value:?}: {status} {answer}");
                if path == "/v1/api-keys" && !status.is_success() {
                    assert_eq!(app.get("/v1/api-keys").await.1["data"].as_array().unwrap().len(), keys);
                }
            }
        }
    }
    // Every list filter.
    for (path, params) in [
        ("/v1/messages", &["direction", "status", "from", "to", "since", "before", "cursor", "limit"][..]),
        ("/v1/contacts", &["q", "tag", "cursor"]),
        ("/v1/conversations", &["phone_number_id", "cursor"]),
        ("/v1/media", &["message_id", "cursor"]),
        (&format!("/v1/accounts/{account}/events"), &["field", "cursor"]),
    ] {
        for param in params {
            field += 1;
            for value in values(field) {
                let url = format!("{path}?{param}={}", query_value(&value));
                let (status, answer) = app.get(&url).await;
                assert!(status.as_u16() < 500, "{url}: {status} {answer}");
            }
        }
    }
    app.stop().await;
}

async fn hostile_text_in_every_field_of_an_inbound_webhook(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let pointers = [
        "/contacts/0/profile/name",
        "/contacts/0/wa_id",
        "/contacts/0/user_id",
        "/metadata/display_phone_number",
        "/messages/0/from",
        "/messages/0/from_user_id",
        "/messages/0/id",
        "/messages/0/timestamp",
        "/messages/0/type",
        "/messages/0/text/body",
        "/messages/0/context/id",
        "/messages/0/context/from",
    ];
    let mut expected = Vec::new();
    for (field, pointer) in pointers.iter().enumerate() {
        for (n, value) in values(100 + field).into_iter().enumerate() {
            let wamid = format!("wamid.fuzz{field}x{n}{}", wagate_domain::id::new_id("f"));
            let wa_id = format!("1555019{:04}", field * 100 + n);
            let template = json!({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100000", "phone_number_id": account.phone_number_id},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id, "user_id": format!("US.{wa_id}")}],
                "messages": [{"from": wa_id, "from_user_id": format!("US.{wa_id}"), "id": wamid,
                    "timestamp": "1750000000", "type": "text", "text": {"body": "hi"},
                    "context": {"from": "15550100000", "id": "wamid.original"}}],
            });
            let value_json = with_value(&template, pointer, &value);
            let value: Value = wagate_domain::input::parse_from_meta(value_json.as_bytes()).unwrap();
            // The wamid the message must be found under, as Meta's text is stored.
            let mut stored_as = value.clone();
            wagate_domain::input::bound_ids(&mut stored_as);
            expected
                .push((format!("{pointer} = {:?}", value.pointer(pointer)), stored_as["messages"][0]["id"].clone()));
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{}","changes":[{{"field":"messages","value":{value_json}}}]}}]}}"#,
                account.waba_id
            );
            post_signed(&app, &account, body.into_bytes()).await;
        }
    }
    all_processed(&app).await;
    for (case, wamid) in expected {
        let wamid = wamid.as_str().unwrap_or_else(|| panic!("{case}: no id"));
        let found = app.store().find_message_by_wamid(wamid).await.unwrap();
        assert!(found.is_some(), "{case}: message {wamid:?} not stored");
    }
    app.stop().await;
}

on_each_backend!(hostile_text_in_every_write_field, hostile_text_in_every_field_of_an_inbound_webhook);
