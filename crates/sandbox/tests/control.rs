mod support;

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

use wagate_sandbox::{Seed, StatusDelays};

/// The settings every sandbox field defaults to, as `GET /control/settings` shows them.
fn default_settings() -> Value {
    json!({
        "statuses": {"sent_ms": 300, "delivered_ms": 800, "read_ms": 1500, "played_ms": 2000},
        "throughput_mps": 80,
        "pair_rate": {"capacity": 45, "refill_ms": 6000},
        "template_review_ms": 1000,
        "webhooks": {
            "batch_max": 0, "batch_window_ms": 0, "duplicate": false, "reorder": false,
            "extra_delay_ms": 0, "drop_first_attempt": false, "max_attempts": 10
        },
        "graph": {"latency_ms": 0, "fail": null, "fail_count": null, "hang_ms": 60000}
    })
}

async fn settings(h: &Harness) -> Value {
    let (status, body) = h.control(Method::GET, "control/settings", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn text_to(to: &str, text: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"body": text}})
}

fn hello_world_to(to: &str) -> Value {
    json!({"to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}

/// Sends `body` as is from the number `from`.
async fn send_from(h: &Harness, from: &str, body: Value) -> (StatusCode, Value) {
    h.graph(Method::POST, &format!("{from}/messages"), Some(body)).await
}

async fn messages(h: &Harness, query: &str) -> Vec<Value> {
    let (status, body) = h.control(Method::GET, &format!("control/messages{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Uploads `bytes` as a PDF from the first number; the media id.
async fn upload_pdf(h: &Harness, bytes: &[u8]) -> String {
    let file = Part::bytes(bytes.to_vec()).file_name("invoice.pdf").mime_str("application/pdf").unwrap();
    let form = Form::new().text("messaging_product", "whatsapp").text("type", "application/pdf").part("file", file);
    let (status, body) = h.upload(form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The bytes behind a media id, fetched as a bot does: its URL, then the URL with the token.
async fn download(h: &Harness, media_id: &str) -> Vec<u8> {
    let (status, media) = h.graph(Method::GET, media_id, None).await;
    assert_eq!(status, StatusCode::OK, "{media}");
    let resp = h.http.get(media["url"].as_str().unwrap()).bearer_auth(&h.seed.access_token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

async fn template_names(h: &Harness) -> Vec<String> {
    let (status, body) = h.graph(Method::GET, &format!("{}/message_templates", h.waba()), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

async fn group_subjects(h: &Harness) -> Vec<String> {
    let (status, body) = h.graph(Method::GET, &format!("{}/groups", h.number()), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["groups"].as_array().unwrap().iter().map(|g| g["subject"].as_str().unwrap().to_owned()).collect()
}

fn promotion() -> Value {
    json!({
        "name": "weekend_offer",
        "language": "en_US",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Everything is 10% off this weekend."}],
    })
}

const PDF: &[u8] = b"%PDF-1.4\n% sandbox test file\n";

#[tokio::test]
async fn control_messages_lists_each_body_exactly_with_the_wamid_or_error_answered() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    let mut accepted = text_to(&c, "Your order has shipped.");
    accepted["biz_opaque_callback_data"] = json!("order 42: äöå");
    let (status, answer) = send_from(&h, &h.number(), accepted.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let refused = json!({"messaging_product": "whatsapp", "to": c, "type": "text", "text": {}});
    let (status, refusal) = send_from(&h, &h.number(), refused.clone()).await;
    assert!(status.is_client_error(), "{refusal}");
    let listed = messages(&h, "").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["phone_number_id"], h.number());
    assert_eq!(listed[0]["body"], accepted, "the body exactly as sent");
    assert_eq!(listed[0]["wamid"], answer["messages"][0]["id"]);
    assert!(listed[0].get("error").is_none(), "{}", listed[0]);
    assert!(listed[0]["received_at"].is_u64());
    assert_eq!(listed[1]["body"], refused);
    assert_eq!(listed[1]["error"], refusal["error"], "the error refused with");
    assert!(listed[1].get("wamid").is_none(), "{}", listed[1]);
}

#[tokio::test]
async fn control_messages_keeps_each_body_byte_for_byte() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    // Keys out of alphabetical order, spacing, an escape: what a client really sent.
    let sent = format!(
        r#"{{ "to": "{c}",  "type": "text", "messaging_product": "whatsapp", "text": {{"body": "caf\u00e9"}} }}"#
    );
    let url = format!("{}/v23.0/{}/messages", h.url, h.number());
    let resp = h
        .http
        .post(url)
        .bearer_auth(&h.seed.access_token)
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let listed = h.http.get(format!("{}/control/messages", h.url)).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains(&format!("\"body\":{sent}")), "{listed}");
}

#[tokio::test]
async fn control_messages_filters_by_phone_number_id_and_to() {
    let h = Harness::start().await;
    let (first, second) = (h.number(), h.seed.phone_numbers[1].id.clone());
    let (alice, bob) = (customer(), customer());
    let mut sent = Vec::new();
    for (from, to) in [(&first, alice.clone()), (&first, format!("+{bob}")), (&second, alice.clone())] {
        let mut body = hello_world_to(&to);
        body["messaging_product"] = json!("whatsapp");
        let (status, answer) = send_from(&h, from, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        sent.push(answer["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    let wamids =
        |listed: Vec<Value>| listed.iter().map(|m| m["wamid"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(wamids(messages(&h, &format!("?phone_number_id={first}")).await), [sent[0].clone(), sent[1].clone()]);
    assert_eq!(wamids(messages(&h, &format!("?phone_number_id={second}")).await), [sent[2].clone()]);
    assert_eq!(wamids(messages(&h, &format!("?to={alice}")).await), [sent[0].clone(), sent[2].clone()]);
    assert_eq!(wamids(messages(&h, &format!("?to={alice}&phone_number_id={second}")).await), [sent[2].clone()]);
    // A number matches however it was written.
    assert_eq!(wamids(messages(&h, &format!("?to={bob}")).await), [sent[1].clone()]);
    assert_eq!(wamids(messages(&h, &format!("?to=%2B{bob}")).await), [sent[1].clone()]);
    assert!(messages(&h, &format!("?to={}", customer())).await.is_empty());
}

#[tokio::test]
async fn deleting_control_messages_clears_them() {
    let h = Harness::start().await;
    h.send_ok(hello_world_to(&customer())).await;
    assert_eq!(messages(&h, "").await.len(), 1);
    let (status, _) = h.control(Method::DELETE, "control/messages", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(messages(&h, "").await.is_empty());
    let wamid = h.send_ok(hello_world_to(&customer())).await;
    let listed = messages(&h, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["wamid"], wamid);
}

#[tokio::test]
async fn patching_settings_changes_only_the_named_fields() {
    let h = Harness::start().await;
    let before = settings(&h).await;
    let (status, answer) = h
        .control(
            Method::PATCH,
            "control/settings",
            Some(json!({"pair_rate": {"capacity": 3}, "webhooks": {"duplicate": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut expected = before.clone();
    expected["pair_rate"]["capacity"] = json!(3);
    expected["webhooks"]["duplicate"] = json!(true);
    assert_eq!(answer, expected);
    assert_eq!(settings(&h).await, expected);
}

#[tokio::test]
async fn putting_settings_replaces_them_with_unnamed_fields_back_to_how_the_sandbox_started() {
    let h = Harness::start().await;
    h.patch_settings(json!({"throughput_mps": 5, "webhooks": {"duplicate": true}, "graph": {"latency_ms": 50}})).await;
    let (status, answer) = h
        .control(Method::PUT, "control/settings", Some(json!({"pair_rate": {"capacity": 7}, "template_review_ms": 10})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut expected = default_settings();
    expected["pair_rate"]["capacity"] = json!(7);
    expected["template_review_ms"] = json!(10);
    // The status delays the harness started the sandbox with, not the built-in ones.
    expected["statuses"] = json!({"sent_ms": 20, "delivered_ms": 40, "read_ms": 60, "played_ms": 2000});
    assert_eq!(answer, expected);
    assert_eq!(settings(&h).await, expected);
}

#[tokio::test]
async fn unknown_or_ill_typed_settings_are_refused_with_422_naming_the_field() {
    let h = Harness::start().await;
    let before = settings(&h).await;
    let cases = [
        (Method::PATCH, json!({"pair_rat": 1}), "pair_rat"),
        (Method::PATCH, json!({"statuses": {"sent": 5}}), "statuses.sent"),
        (Method::PATCH, json!({"throughput_mps": "fast"}), "throughput_mps"),
        (Method::PATCH, json!({"graph": {"fail": "sometimes"}}), "graph.fail"),
        (Method::PUT, json!({"webhooks": {"dupe": true}}), "webhooks.dupe"),
        (Method::PUT, json!({"colour": "blue"}), "colour"),
    ];
    for (method, body, field) in cases {
        let (status, answer) = h.control(method.clone(), "control/settings", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{method} {body}: {answer}");
        assert_eq!(answer["error"]["path"], field, "{method} {body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
    assert_eq!(settings(&h).await, before, "nothing changed");
}

#[tokio::test]
async fn the_webhook_url_can_be_read_and_moved_to_another_receiver() {
    let h = Harness::start().await;
    let (status, body) = h.control(Method::GET, "control/webhook", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "{body}");
    let (other, other_url) = Receiver::start().await;
    let (status, body) = h.control(Method::PUT, "control/webhook", Some(json!({"url": other_url}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.control(Method::GET, "control/webhook", None).await.1["url"], other_url);
    let wamid = h.customer_writes(&customer(), "where does this go?").await;
    other.wait_change("messages", |v| v["messages"][0]["id"] == wamid).await;
    assert!(h.hooks.deliveries().is_empty(), "the old receiver got nothing");
}

#[tokio::test]
async fn a_null_webhook_url_stops_webhooks() {
    let h = Harness::start().await;
    let (status, body) = h.control(Method::PUT, "control/webhook", Some(json!({"url": null}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.control(Method::GET, "control/webhook", None).await.1["url"], Value::Null);
    h.customer_writes(&customer(), "anyone?").await;
    eventually("the sandbox to discard the webhook", || async {
        let (_, body) = h.control(Method::GET, "control/webhook", None).await;
        (body["deliveries"]["discarded"] == 1).then_some(())
    })
    .await;
    assert!(h.hooks.deliveries().is_empty());
}

#[tokio::test]
async fn a_webhook_url_that_is_not_http_is_refused_with_422() {
    let h = Harness::start().await;
    let before = h.control(Method::GET, "control/webhook", None).await.1["url"].clone();
    for url in [json!("ftp://example.com/hook"), json!("not a url"), json!("/relative/hook"), json!(42)] {
        let (status, body) = h.control(Method::PUT, "control/webhook", Some(json!({"url": url}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["path"], "url", "{body}");
    }
    assert_eq!(h.control(Method::GET, "control/webhook", None).await.1["url"], before, "unchanged");
}

/// A bot's endpoint that answers Meta's verification request only with the right verify token.
async fn verifying_endpoint(verify_token: String) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::get(move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
            let verify_token = verify_token.clone();
            async move {
                let ok = q.get("hub.mode").map(String::as_str) == Some("subscribe")
                    && q.get("hub.verify_token") == Some(&verify_token);
                match (ok, q.get("hub.challenge")) {
                    (true, Some(c)) => (axum::http::StatusCode::OK, c.clone()),
                    _ => (axum::http::StatusCode::FORBIDDEN, "Forbidden".to_owned()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_new_webhook_url_must_pass_metas_verification_request() {
    let h = Harness::start().await;
    let before = h.control(Method::GET, "control/webhook", None).await.1["url"].clone();
    let good = verifying_endpoint(h.seed.verify_token.clone()).await;
    let (status, body) = h.control(Method::PUT, "control/webhook", Some(json!({"url": good}))).await;
    assert_eq!(status, StatusCode::OK, "the endpoint echoed the challenge for the sandbox's verify token: {body}");

    let wrong = verifying_endpoint("another app's token".into()).await;
    let (status, body) = h.control(Method::PUT, "control/webhook", Some(json!({"url": wrong}))).await;
    assert_eq!((status, &body["error"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("url")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("403"), "{body}");
    let (status, body) =
        h.control(Method::PUT, "control/webhook", Some(json!({"url": "http://127.0.0.1:9/hook"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "nothing listens there: {body}");
    assert_eq!(h.control(Method::GET, "control/webhook", None).await.1["url"], json!(good), "unchanged by refusals");

    // A receiver without the handshake can still be used, on purpose.
    let (status, _) = h.control(Method::PUT, "control/webhook", Some(json!({"url": wrong, "verify": false}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(before, json!(wrong));
}

#[tokio::test]
async fn reset_forgets_messages_windows_templates_media_groups_failures_and_settings_but_keeps_businesses() {
    let h = Harness::start().await;
    let (c, failing) = (customer(), customer());
    h.customer_writes(&c, "hello").await;
    h.approved_template(promotion()).await;
    let media = upload_pdf(&h, PDF).await;
    h.group_with(&[&c]).await;
    h.control(Method::PUT, &format!("control/failures/{failing}"), Some(json!({"code": 131026}))).await;
    let (status, extra) = h.control(Method::POST, "control/accounts", Some(json!({"name": "Second Shop"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{extra}");
    let (_, accounts_before) = h.control(Method::GET, "control/accounts", None).await;
    h.patch_settings(json!({"throughput_mps": 5})).await;
    h.send_ok(text_to(&c, "before the reset")).await;
    let own = format!("control/phone-numbers/{}/throughput", h.number());
    assert_eq!(h.control(Method::PUT, &own, Some(json!({"messages_per_second": 1000}))).await.0, StatusCode::OK);
    let key = include_str!("../../../testdata/flows-public-key-2048.pem");
    let keys = format!("{}/whatsapp_business_encryption", h.number());
    assert_eq!(h.graph(Method::POST, &keys, Some(json!({"business_public_key": key}))).await.0, StatusCode::OK);

    let (status, _) = h.control(Method::POST, "control/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert!(messages(&h, "").await.is_empty(), "messages forgotten");
    assert_eq!(template_names(&h).await, ["hello_world"], "templates but hello_world forgotten");
    let (status, body) = h.graph(Method::GET, &media, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "media forgotten: {body}");
    assert!(group_subjects(&h).await.is_empty(), "groups forgotten");
    assert_eq!(h.control(Method::GET, "control/failures", None).await.1["data"], json!([]), "failures forgotten");
    assert_eq!(settings(&h).await["throughput_mps"], 80, "settings back to the start");
    let (_, number) = h.graph(Method::GET, &format!("{}?fields=throughput", h.number()), None).await;
    assert_eq!(number["throughput"]["level"], "STANDARD", "per-number throughput forgotten");
    assert_eq!(h.graph(Method::GET, &keys, None).await.1["data"], json!([]), "encryption keys forgotten");
    let (_, accounts_after) = h.control(Method::GET, "control/accounts", None).await;
    assert_eq!(accounts_after, accounts_before, "businesses kept");
    let wamid = h.send_ok(text_to(&c, "after the reset")).await;
    let statuses = h.hooks.wait_statuses(&wamid, 1).await;
    assert_eq!(statuses[0]["status"], "failed", "the window is closed");
    assert_eq!(statuses[0]["errors"][0]["code"], 131047);
    h.send_ok(hello_world_to(&c)).await;
}

#[tokio::test]
async fn reset_drops_the_status_webhooks_still_owed_for_forgotten_messages() {
    let h = Harness::start().await;
    let slow = json!({"statuses": {"sent_ms": 300, "delivered_ms": 400, "read_ms": 500}});
    h.patch_settings(slow.clone()).await;
    let forgotten = h.send_ok(hello_world_to(&customer())).await;
    let (status, _) = h.control(Method::POST, "control/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    h.patch_settings(slow).await;
    let kept = h.send_ok(hello_world_to(&customer())).await;
    // Sent later with the same delays, its statuses fall due after the forgotten ones would.
    h.hooks.wait_statuses(&kept, 3).await;
    assert!(h.hooks.statuses(&forgotten).is_empty(), "{:?}", h.hooks.statuses(&forgotten));
}

#[tokio::test]
async fn state_in_a_data_dir_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::generate(None, None, None);
    let start = || {
        Harness::start_with(Options {
            state_dir: Some(dir.path().into()),
            seed: Some(seed.clone()),
            ..Options::default()
        })
    };
    let c = customer();
    let (media, group_subject) = {
        let h = start().await;
        h.customer_writes(&c, "hello").await;
        h.approved_template(promotion()).await;
        let media = upload_pdf(&h, PDF).await;
        let group = h.group_with(&[&c]).await;
        h.patch_settings(json!({"throughput_mps": 7, "pair_rate": {"capacity": 9}, "statuses": {"read_ms": 77}})).await;
        let subject = group_subjects(&h).await.pop().unwrap();
        assert!(!group.is_empty());
        h.sandbox.shutdown();
        (media, subject)
    };

    let h = start().await;
    assert!(template_names(&h).await.contains(&"weekend_offer".to_owned()), "templates kept");
    let promo =
        json!({"to": c, "type": "template", "template": {"name": "weekend_offer", "language": {"code": "en_US"}}});
    h.send_ok(promo).await;
    assert_eq!(download(&h, &media).await, PDF, "media bytes kept");
    assert_eq!(group_subjects(&h).await, [group_subject], "groups kept");
    let wamid = h.send_ok(text_to(&c, "still there?")).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    assert_eq!(statuses[0]["status"], "sent", "the window is still open: {statuses:?}");
    let kept = settings(&h).await;
    assert_eq!(kept["throughput_mps"], 7, "settings kept");
    assert_eq!(kept["pair_rate"]["capacity"], 9, "settings kept");
    assert_eq!(kept["statuses"]["read_ms"], 77, "status delays changed at run time are settings too");
}

#[tokio::test]
async fn status_delays_given_at_start_win_when_they_changed_since_the_last_start() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::generate(None, None, None);
    let start = |read: u64| {
        Harness::start_with(Options {
            state_dir: Some(dir.path().into()),
            seed: Some(seed.clone()),
            delays: StatusDelays {
                sent: Duration::from_millis(20),
                delivered: Duration::from_millis(40),
                read: Duration::from_millis(read),
            },
        })
    };
    let h = start(60).await;
    h.patch_settings(json!({"statuses": {"sent_ms": 11}})).await;
    h.sandbox.shutdown();
    // The same start: what was changed at run time stays.
    let h = start(60).await;
    assert_eq!(settings(&h).await["statuses"]["sent_ms"], 11);
    h.sandbox.shutdown();
    // A start given other delays (a flag or the configuration changed): they apply.
    let h = start(65).await;
    let statuses = settings(&h).await["statuses"].clone();
    assert_eq!((&statuses["sent_ms"], &statuses["read_ms"]), (&json!(20), &json!(65)), "{statuses}");
}

#[tokio::test]
async fn load_or_generate_brings_back_the_same_business_ids_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let first = Seed::load_or_generate(dir.path(), None, None, None).unwrap();
    let again = Seed::load_or_generate(dir.path(), None, None, None).unwrap();
    assert_eq!(again, first, "the same ids and credentials");
    let rotated = Seed::load_or_generate(dir.path(), Some("new-app-secret".into()), None, None).unwrap();
    assert_eq!(rotated.app_secret, "new-app-secret", "given credentials replace the kept ones");
    assert_eq!((&rotated.waba_id, &rotated.phone_numbers), (&first.waba_id, &first.phone_numbers));
    assert_eq!(Seed::load_or_generate(dir.path(), None, None, None).unwrap(), rotated, "and are kept");

    let state_dir = dir.path().to_owned();
    let h =
        Harness::start_with(Options { state_dir: Some(state_dir), seed: Some(rotated.clone()), ..Options::default() })
            .await;
    let (_, accounts) = h.control(Method::GET, "control/accounts", None).await;
    let account = &accounts["data"][0];
    assert_eq!(account["waba_id"], first.waba_id);
    assert_eq!(account["access_token"], first.access_token);
    assert_eq!(account["app_secret"], "new-app-secret");
    let ids: Vec<_> = account["phone_numbers"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect();
    assert_eq!(ids, first.phone_numbers.iter().map(|n| json!(n.id)).collect::<Vec<_>>());
    let (status, number) = h.graph_as(Some(&first.access_token), Method::GET, &first.phone_numbers[0].id, None).await;
    assert_eq!(status, StatusCode::OK, "the kept token still works: {number}");
}

/// The seed holds the app's secrets, the state what the business did: readable by their owner
/// only, whatever the umask, also when an older version left the seed readable to others.
#[cfg(unix)]
#[tokio::test]
async fn the_state_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("state");
    let seed = Seed::load_or_generate(&dir, None, None, None).unwrap();
    assert_eq!((mode(&dir), mode(&dir.join("seed.json"))), (0o700, 0o600));
    std::fs::set_permissions(dir.join("seed.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    Seed::load_or_generate(&dir, None, None, None).unwrap();
    assert_eq!(mode(&dir.join("seed.json")), 0o600);

    let h = Harness::start_with(Options { state_dir: Some(dir.clone()), seed: Some(seed), ..Options::default() }).await;
    let (status, _) = h.control(Method::PATCH, "control/settings", Some(json!({"pair_rate": {"capacity": 7}}))).await;
    assert_eq!(status, StatusCode::OK);
    h.sandbox.shutdown();
    assert_eq!((mode(&dir.join("state.json")), mode(&dir.join("media"))), (0o600, 0o700));
}
