//! Careless and hostile input on both backends: text no backend can store is refused when a
//! client sends it and repaired when Meta does; recipients, request ids, webhook refusals, query
//! strings, tags, delivery retention, `/metrics`, connections and the open-file limit; and the
//! README's walkthrough run as a script.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

fn text_to(from: &str, to: &str, body: &str) -> Value {
    json!({"from": from, "to": to, "type": "text", "text": {"body": body}})
}

async fn key_count(app: &TestApp) -> usize {
    let (status, keys) = app.get("/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    keys["data"].as_array().unwrap().len()
}

async fn client_text_no_backend_can_store_is_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&from, &customer, "hello").await;
    let messages = app.store().count_messages().await.unwrap();
    let keys = key_count(&app).await;

    let with = |field: &str, value: Value| {
        let mut body = text_to(&from, &customer, "fine");
        body[field] = value;
        body
    };
    let cases = [
        (text_to(&from, &customer, "a\u{0}b"), "text.body"),
        (with("idempotency_key", json!("key\u{0}")), "idempotency_key"),
        (with("from", json!(format!("{from}\u{0}"))), "from"),
        (with("to", json!(format!("{customer}\u{0}"))), "to"),
        (with("metadata", json!({"order\u{0}": 1})), "metadata.order\u{FFFD}"),
        (with("metadata", json!({"order": ["x", "\u{0}"]})), "metadata.order[1]"),
    ];
    for (body, path) in cases {
        let (status, answer) = app.post("/v1/messages", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(
            (answer["error"]["code"].as_str(), answer["error"]["path"].as_str()),
            (Some("nul_character"), Some(path))
        );
    }
    let (status, answer) = app.post("/v1/api-keys", json!({"name": "app\u{0}"})).await;
    assert_eq!(
        (status, answer["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{answer}"
    );

    // Query parameters and path segments: the parameter is named; nothing reaches the database.
    for (query, param) in [
        ("/v1/messages?to=%00", "to"),
        ("/v1/messages?from=a%00b", "from"),
        ("/v1/contacts?q=%00", "q"),
        ("/v1/contacts?tag=vip%00", "tag"),
        ("/v1/conversations?phone_number_id=%00", "phone_number_id"),
        ("/v1/accounts/x/events?field=%00", "field"),
    ] {
        let (status, answer) = app.get(query).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {answer}");
        assert_eq!(
            (answer["error"]["code"].as_str(), answer["error"]["path"].as_str()),
            (Some("nul_character"), Some(param))
        );
    }
    for path in ["/v1/messages/%00", "/v1/messages/%ff", "/v1/phone-numbers/x%00"] {
        let method = if path.starts_with("/v1/phone-numbers") { Method::PATCH } else { Method::GET };
        let (status, answer) = app.request(method, path, Some(json!({"default": true}))).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_path")),
            "{path}: {answer}"
        );
    }
    // A parameter given twice is one error, in JSON, naming it.
    let (status, answer) = app.get("/v1/messages?to=%2B15550170001&to=%2B15550170002").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        (answer["error"]["code"].as_str(), answer["error"]["path"].as_str()),
        (Some("duplicate_parameter"), Some("to"))
    );

    // The Meta-compatible surface refuses the same, in Meta's shape.
    let graph = |number: &str| format!("/graph/v23.0/{number}/messages");
    let body = json!({"messaging_product": "whatsapp", "to": customer, "text": {"body": "a\u{0}b"}});
    for (path, body) in [(graph(&from), body.clone()), (graph("%00"), body.clone()), (graph("%ff"), body)] {
        let (status, answer) = app.post(&path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_i64()),
            (StatusCode::BAD_REQUEST, Some(100)),
            "{path}: {answer}"
        );
    }

    assert_eq!(app.store().count_messages().await.unwrap(), messages, "a refused request stores nothing");
    assert_eq!(key_count(&app).await, keys);
    app.stop().await;
}

/// A `messages` webhook of the sandbox's number, signed, as raw JSON text: `patch` edits the text
/// (a lone surrogate cannot be made any other way).
async fn deliver_raw(app: &TestApp, account: &SandboxAccount, value: Value, patch: impl Fn(String) -> String) {
    let mut v = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": account.phone_number_id},
    });
    v.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": account.waba_id, "changes": [{"field": "messages", "value": v}]}]});
    post_signed(app, account, patch(body.to_string()).into_bytes()).await;
}

fn inbound(from: &str, wamid: &str, body: &str) -> Value {
    json!({"from": from, "id": wamid, "timestamp": "1750000000", "type": "text", "text": {"body": body}})
}

async fn message_by_wamid(app: &TestApp, wamid: &str) -> Value {
    let stored = app.store().find_message_by_wamid(wamid).await.unwrap().unwrap_or_else(|| panic!("{wamid} stored"));
    let (status, view) = app.get(&format!("/v1/messages/{}", stored.id)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

async fn what_meta_sends_is_stored_whatever_its_text(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let tag = wagate_domain::id::new_id("w");
    let (nul, lone, long) =
        (format!("wamid.nul{tag}"), format!("wamid.lone{tag}"), format!("wamid.{}{tag}", "L".repeat(10_000)));
    let long_wa_id = "7".repeat(10_000);
    let value = json!({
        "contacts": [
            {"profile": {"name": "Ana\u{0}Lima"}, "wa_id": "15550181001"},
            {"profile": {"name": "Bo"}, "wa_id": "15550181002"},
            {"profile": {"name": "x".repeat(10_000)}, "wa_id": long_wa_id},
        ],
        "messages": [
            inbound("15550181001", &nul, "a\u{0}b"),
            inbound("15550181002", &lone, "LONE-SURROGATE"),
            inbound(&long_wa_id, &long, "a long id"),
        ],
    });
    deliver_raw(&app, &account, value, |text| text.replace("LONE-SURROGATE", r"x\ud83dy")).await;
    // A status for a wamid too long to index, and one with a NUL in its error.
    let statuses = json!({"statuses": [
        {"id": format!("wamid.{}", "S".repeat(10_000)), "status": "delivered", "timestamp": "1750000001", "recipient_id": "15550181001"},
        {"id": format!("wamid.s{tag}"), "status": "failed", "timestamp": "1750000001", "recipient_id": "15550181001",
         "errors": [{"code": 131026, "title": "Message undeliverable\u{0}", "message": "x\u{0}"}]},
    ]});
    deliver_raw(&app, &account, statuses, |t| t).await;
    all_processed(&app).await;

    let view = message_by_wamid(&app, &nul).await;
    assert_eq!(view["text"]["body"], "a\u{FFFD}b", "{view}");
    let (_, contacts) = app.get("/v1/contacts?q=%2B15550181001").await;
    assert_eq!(contacts["data"][0]["profile_name"], "Ana\u{FFFD}Lima", "{contacts}");
    let view = message_by_wamid(&app, &lone).await;
    assert_eq!(view["text"]["body"], "x\u{FFFD}y", "{view}");
    let short = wagate_domain::input::bounded_id(&long);
    let view = message_by_wamid(&app, &short).await;
    assert_eq!(view["text"]["body"], "a long id", "{view}");
    assert_eq!(app.store().count_deliveries().await.unwrap(), 2);
    app.stop().await;
}

async fn recipients_are_numbers_or_metas_user_ids(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let before = app.store().count_messages().await.unwrap();
    for to in ["undefined", "null", "x", "msg_01", "wamid.abc", "us.123", "US.", "US.12 3"] {
        let (status, answer) = app.post("/v1/messages", text_to(&from, to, "hi")).await;
        assert_eq!(
            (status, answer["error"]["path"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("to")),
            "{to}: {answer}"
        );
        let body = json!({"messaging_product": "whatsapp", "to": to, "text": {"body": "hi"}});
        let (status, answer) = app.post(&format!("/graph/v23.0/{from}/messages"), body).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(100)), "{to}: {answer}");
    }
    assert_eq!(app.store().count_messages().await.unwrap(), before);
    // Meta's shapes are taken (a template: these users never wrote, so only templates may go).
    for to in ["US.13491208655302741918", "US.ENT.11815799212886844830"] {
        let body = json!({"from": from, "to": to, "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}});
        let (status, answer) = app.post("/v1/messages", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{to}: {answer}");
    }
    // A send time's offset is at most 23:59.
    let mut body = text_to(&from, &customer(), "later");
    body["send_at"] = json!("2030-01-01T00:00:00+25:00");
    let (status, answer) = app.post("/v1/messages", body).await;
    assert_eq!(
        (status, answer["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("send_at")),
        "{answer}"
    );
    app.stop().await;
}

async fn tags_are_visible_and_one_per_spelling(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&from, &customer, "hello").await;
    let id = app.contact_of(&customer).await;
    let path = format!("/v1/contacts/{id}");
    let patch = |tags: Value| app.request(Method::PATCH, &path, Some(json!({"tags": tags})));
    for (tags, path, rule) in [
        (json!(["VIP", "vip"]), "tags[1]", "duplicate"),
        (json!(["\u{200B}\u{200D}"]), "tags[0]", "invalid_value"),
        (json!(["vip\u{202E}"]), "tags[0]", "invalid_value"),
    ] {
        let (status, answer) = patch(tags.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{tags}: {answer}");
        assert_eq!((answer["error"]["path"].as_str(), answer["error"]["code"].as_str()), (Some(path), Some(rule)));
    }
    let (status, answer) = patch(json!(["VIP", "Gold"])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Any spelling finds it.
    for tag in ["vip", "VIP", "Vip"] {
        let (_, found) = app.get(&format!("/v1/contacts?tag={tag}")).await;
        let ids: Vec<&str> = found["data"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, [id.as_str()], "{tag}: {found}");
    }
    app.stop().await;
}

async fn processed_deliveries_are_deleted_after_the_retention(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.inbound.keep_processed_secs = 0;
        c.inbound.sweep_interval_ms = 50;
    })
    .await
    else {
        return;
    };
    let account = sandbox_account(&app).await;
    let wamid = format!("wamid.{}", wagate_domain::id::new_id("r"));
    let value = json!({"contacts": [{"profile": {"name": "Rae"}, "wa_id": "15550182001"}],
        "messages": [inbound("15550182001", &wamid, "replayed")]});
    // The same signed payload, replayed: each is a delivery, one message.
    for _ in 0..20 {
        deliver_raw(&app, &account, value.clone(), |t| t).await;
    }
    eventually("processed deliveries deleted", || async {
        (app.store().count_deliveries().await.unwrap() == 0).then_some(())
    })
    .await;
    message_by_wamid(&app, &wamid).await;
    let (_, listed) = app.get("/v1/messages?direction=inbound&from=%2B15550182001").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    app.stop().await;
}

async fn the_walkthrough_runs_as_a_script(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let mut sent = Vec::new();
    for i in 0..10 {
        let customer = customer();
        let simulate = json!({"phone_number_id": from, "from": customer, "name": "Ana",
            "message": {"type": "text", "text": {"body": format!("Where is order {i}?")}}});
        let (status, answer) = app.post("/sandbox/simulate/inbound", simulate).await;
        assert_eq!((status, &answer["applied"]), (StatusCode::OK, &json!(true)), "{answer}");
        // At once: the window is open.
        let (status, answer) = app.post("/v1/messages", text_to(&from, &customer, "On its way!")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        sent.push(answer["id"].as_str().unwrap().to_owned());
    }
    for id in sent {
        wait_for_message(&app.http, &app.url, &app.api_key, &id, "the reply to be read", |m| m["status"] == "read")
            .await;
    }
    app.stop().await;
}

on_each_backend!(
    client_text_no_backend_can_store_is_refused,
    what_meta_sends_is_stored_whatever_its_text,
    recipients_are_numbers_or_metas_user_ids,
    tags_are_visible_and_one_per_spelling,
    processed_deliveries_are_deleted_after_the_retention,
    the_walkthrough_runs_as_a_script,
);

/// A caller's request id is kept only when it is a short token: it goes into every log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_short_tokens() {
    let _turn = take_turn("request_ids_are_short_tokens").await;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let echoed = |ids: Vec<String>| {
        let mut req = app.http.get(format!("{}/healthz", app.url));
        for id in ids {
            req = req.header("x-request-id", id);
        }
        async move { req.send().await.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned() }
    };
    for kept in ["trace-me-42", "4bf92f3577b34da6a3ce929d0e0e4736", "a.b:c_d"] {
        assert_eq!(echoed(vec![kept.into()]).await, kept);
    }
    for forged in ["abc method=DELETE path=/v1/api-keys", &"x".repeat(5_000), "tab\there", "é"] {
        let id = echoed(vec![forged.into()]).await;
        assert!(id.starts_with("req_") && id != forged, "{forged:?} gave {id}");
    }
    assert!(echoed(vec!["one".into(), "two".into()]).await.starts_with("req_"));
    app.stop().await;
}

/// An unsigned caller learns nothing from the receiver's refusals (is this WABA connected?).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refusals_look_alike() {
    let _turn = take_turn("webhook_refusals_look_alike").await;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let account = sandbox_account(&app).await;
    let payload = |waba: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": []}]}).to_string().into_bytes()
    };
    let mut answers = Vec::new();
    for (body, signature) in [
        (payload(&account.waba_id), None),
        (payload(&account.waba_id), Some("sha256=00".to_owned())),
        (payload("999999999999999"), None),
        (
            payload("999999999999999"),
            Some(wagate_domain::signature::sign(&account.app_secret, &payload("999999999999999"))),
        ),
        (b"not json".to_vec(), Some("sha256=00".to_owned())),
    ] {
        let mut req = app.http.post(format!("{}/webhooks/meta", app.url)).body(body);
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        let resp = req.send().await.unwrap();
        answers.push((resp.status(), resp.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:#?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_may_require_a_key() {
    let _turn = take_turn("metrics_may_require_a_key").await;
    let Some(open) = TestApp::spawn(Backend::Sqlite).await else { return };
    let status = open.http.get(format!("{}/metrics", open.url)).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK, "open by default");
    open.stop().await;
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| c.metrics.require_key = true).await else { return };
    let (status, answer) = request(&app.http, Method::GET, &format!("{}/metrics", app.url), None, None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (status, answer) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.as_str().unwrap().contains("wagate_"), "{answer}");
    app.stop().await;
}

/// Clients that open connections and send nothing cannot keep others out: at the cap, the
/// connection idle longest makes room (the default cap is far higher; the file limit too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_keep_clients_out() {
    let _turn = take_turn("idle_connections_cannot_keep_clients_out").await;
    const CAP: usize = 32;
    const IDLE: usize = 100;
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| c.http.max_connections = CAP).await else { return };
    let addr = app.url.trim_start_matches("http://").to_owned();
    let idle: Vec<std::net::TcpStream> = (0..IDLE).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    // Well within the 30 s the idle ones may keep silent.
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
    let resp = client.get(format!("{}/healthz", app.url)).send().await.expect("served while the idle hold the cap");
    assert_eq!(resp.status(), StatusCode::OK);
    let closed = eventually("the idlest connections closed", || async {
        let closed = idle
            .iter()
            .filter(|s| {
                use std::io::Read;
                s.set_nonblocking(true).unwrap();
                matches!((&mut &**s).read(&mut [0u8; 1]), Ok(0))
            })
            .count();
        (closed > IDLE - CAP).then_some(closed)
    })
    .await;
    assert!(closed < IDLE, "the newest idle connections stay open ({closed} of {IDLE} closed)");
    app.stop().await;
}

/// wagate raises its soft open-file limit to the hard one: services often start with 1,024.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_at_start() {
    let _turn = take_turn("the_open_file_limit_is_raised_at_start").await;
    let dir = tempfile::tempdir().unwrap();
    let script = r#"ulimit -Sn 512 && exec "$0" "$@""#;
    let bin = env!("CARGO_BIN_EXE_wagate");
    let data = dir.path().to_str().unwrap();
    let process =
        Process::start_command("sh", &["-c", script, bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data], &[])
            .await;
    let pid = process.child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft limit raised to the hard one: {line}");
    assert_ne!(numbers[0], "512", "{line}");
    process.kill().await;
}

/// The README's walkthrough, as the script in `examples/` runs it against `wagate serve`: a
/// customer writes, the reply follows at once, and it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_script_reaches_read() {
    let _turn = take_turn("the_readme_walkthrough_script_reaches_read").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Process::start(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("WAGATE_BOOTSTRAP_API_KEY", "dev-key")],
    )
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/first-conversation.sh");
    let out = tokio::process::Command::new("sh")
        .arg(script)
        .env("WAGATE_URL", &server.url)
        .env("KEY", "dev-key")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("status: read") && stdout.contains("\"status\":\"read\""), "{stdout}");
    server.kill().await;
}

/// A body larger than the route takes is refused with 413 before it is read, and the client,
/// still sending it, gets that answer rather than a reset connection, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_answered_413_not_reset() {
    let _turn = take_turn("an_oversized_body_is_answered_413_not_reset").await;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let huge = json!({"from": phone, "to": "+15550170000", "type": "text",
        "text": {"body": "x".repeat(3 * 1024 * 1024)}});
    for _ in 0..20 {
        let (status, e) = app.post("/v1/messages", huge.clone()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    }
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing refused is stored");
    app.stop().await;
}
