mod support;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;

/// Meta's signature header value for `body`, computed as a receiver would.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a verifier that escapes before hashing does to the text its framework decoded:
/// non-ASCII as `\uXXXX`, lowercase hex, surrogate pairs beyond the BMP.
fn escape_non_ascii(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(out, "\\u{unit:04x}").unwrap();
            }
        }
    }
    out
}

/// A customer's text, as the simulator delivers it; its wamid.
async fn inbound(h: &Harness, text: &str) -> String {
    h.customer_writes(&customer(), text).await
}

/// Waits for the inbound message `wamid` and returns the POSTs that carried it, in arrival order.
async fn deliveries_of(h: &Harness, wamid: &str, at_least: usize) -> Vec<Delivery> {
    eventually(&format!("{at_least} deliveries of {wamid}"), || async {
        let got: Vec<Delivery> =
            h.hooks.deliveries().into_iter().filter(|d| String::from_utf8_lossy(&d.bytes).contains(wamid)).collect();
        (got.len() >= at_least).then_some(got)
    })
    .await
}

/// The position of the first POST that carries `wamid`.
fn arrival(h: &Harness, wamid: &str) -> usize {
    h.hooks.deliveries().iter().position(|d| String::from_utf8_lossy(&d.bytes).contains(wamid)).expect("delivered")
}

/// The statuses (field `messages`) each POST carried, for POSTs carrying any of `wamid`'s.
fn status_posts(h: &Harness, wamid: &str) -> Vec<Vec<Value>> {
    h.hooks
        .deliveries()
        .iter()
        .map(|d| {
            d.json["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
                .flat_map(|c| c["value"]["statuses"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .filter(|statuses| statuses.iter().any(|s| s["id"] == wamid))
        .collect()
}

async fn webhook_counts(h: &Harness) -> Value {
    let (status, body) = h.control(Method::GET, "control/webhook", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["deliveries"].clone()
}

/// A client that gives up on an answer after `timeout`.
fn impatient(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Sends `body` from the first number with `client`.
async fn send_with(h: &Harness, client: &reqwest::Client, body: Value) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/v23.0/{}/messages", h.url, h.number()))
        .bearer_auth(&h.seed.access_token)
        .json(&body)
        .send()
        .await
}

/// A customer who has written (the window is open) and whose message has been delivered, so no
/// webhook is pending when a test changes how they are sent.
async fn settled_customer(h: &Harness) -> String {
    let c = customer();
    let wamid = h.customer_writes(&c, "hello").await;
    deliveries_of(h, &wamid, 1).await;
    c
}

fn text_to(to: &str, text: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": text}})
}

#[tokio::test]
async fn every_webhook_is_signed_with_hmac_sha256_of_the_exact_bytes_posted() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
    h.hooks.wait_statuses(&wamid, 3).await;
    let deliveries = h.hooks.deliveries();
    assert!(deliveries.len() >= 4, "the inbound message and three statuses");
    for d in deliveries {
        let header = d.signature.as_deref().expect("X-Hub-Signature-256");
        let hex = header.strip_prefix("sha256=").expect("sha256= prefix");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{header}");
        assert_eq!(header, signature(&h.seed.app_secret, &d.bytes));
        assert_ne!(header, signature("not-the-app-secret", &d.bytes));
    }
}

#[tokio::test]
async fn non_ascii_is_escaped_as_lowercase_unicode_escapes_and_signed_as_posted() {
    let h = Harness::start().await;
    let wamid = inbound(&h, "äöå 😀").await;
    let d = deliveries_of(&h, &wamid, 1).await.remove(0);
    assert!(d.bytes.is_ascii(), "the body is pure ASCII");
    let raw = String::from_utf8(d.bytes.clone()).unwrap();
    assert!(raw.contains(r"\u00e4\u00f6\u00e5 \ud83d\ude00"), "{raw}");
    assert_eq!(d.json["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"], "äöå 😀");
    let header = d.signature.clone().unwrap();
    assert_eq!(header, signature(&h.seed.app_secret, &d.bytes), "verifies over the raw bytes");
    // A framework that decodes the body hands the verifier literal characters; escaping them
    // again gives back the bytes Meta signed.
    let decoded = serde_json::to_string(&d.json).unwrap();
    assert!(decoded.contains("äöå 😀"), "{decoded}");
    assert_eq!(header, signature(&h.seed.app_secret, escape_non_ascii(&decoded).as_bytes()));
    assert_ne!(header, signature(&h.seed.app_secret, decoded.as_bytes()), "the unescaped text is not what is signed");
}

#[tokio::test]
async fn batching_puts_several_changes_in_one_post() {
    let h = Harness::start().await;
    let c = settled_customer(&h).await;
    h.patch_settings(json!({"webhooks": {"batch_max": 10, "batch_window_ms": 500}})).await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
    h.hooks.wait_statuses(&wamid, 3).await;
    // The window opens when `sent` falls due and outlasts `read`, due 40 ms later.
    let posts = status_posts(&h, &wamid);
    assert_eq!(posts.len(), 1, "one POST: {posts:?}");
    let mut names: Vec<_> = posts[0].iter().map(|s| s["status"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["delivered", "read", "sent"]);
    let d = h.hooks.deliveries().into_iter().find(|d| String::from_utf8_lossy(&d.bytes).contains(&wamid)).unwrap();
    assert_eq!(d.json["entry"].as_array().unwrap().len(), 1, "one entry per WABA");
    assert_eq!(d.json["entry"][0]["id"], h.waba());
    assert_eq!(d.json["entry"][0]["changes"].as_array().unwrap().len(), 3);
    assert_eq!(d.signature.unwrap(), signature(&h.seed.app_secret, &d.bytes));
}

#[tokio::test]
async fn a_batch_never_holds_more_than_batch_max_changes() {
    let h = Harness::start().await;
    let c = settled_customer(&h).await;
    h.patch_settings(json!({"webhooks": {"batch_max": 2, "batch_window_ms": 500}})).await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
    h.hooks.wait_statuses(&wamid, 3).await;
    let mut sizes: Vec<usize> = status_posts(&h, &wamid).iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, [1, 2]);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_payload_on_a_later_attempt() {
    let h = Harness::start().await;
    h.hooks.fail_next(2);
    let wamid = inbound(&h, "are you there?").await;
    let deliveries = deliveries_of(&h, &wamid, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(h.hooks.refused.load(Ordering::SeqCst), 2, "two refusals before it got through");
    assert_eq!(deliveries[0].signature.as_deref().unwrap(), signature(&h.seed.app_secret, &deliveries[0].bytes));
    let counts = eventually("the sandbox to count the delivery", || async {
        let counts = webhook_counts(&h).await;
        (counts["delivered"] == 1).then_some(counts)
    })
    .await;
    assert_eq!(counts["refused"], 2, "{counts}");
    assert_eq!(counts["posted"], 3, "{counts}");
}

#[tokio::test]
async fn the_duplicate_fault_posts_every_payload_twice() {
    let h = Harness::start().await;
    h.patch_settings(json!({"webhooks": {"duplicate": true}})).await;
    let wamid = inbound(&h, "hello twice").await;
    let copies = deliveries_of(&h, &wamid, 2).await;
    assert_eq!(copies[0].bytes, copies[1].bytes, "the same payload");
    assert_eq!(copies[0].signature, copies[1].signature);
}

#[tokio::test]
async fn the_reorder_fault_sends_read_before_delivered_before_sent() {
    let h = Harness::start().await;
    h.patch_settings(json!({
        "statuses": {"sent_ms": 50, "delivered_ms": 450, "read_ms": 850},
        "webhooks": {"reorder": true}
    }))
    .await;
    let c = h.customer_who_wrote("hello").await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    let names: Vec<_> = statuses.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(names, ["read", "delivered", "sent"]);
}

#[tokio::test]
async fn the_extra_delay_fault_holds_webhooks_back() {
    let h = Harness::start().await;
    h.patch_settings(json!({"webhooks": {"extra_delay_ms": 3_000}})).await;
    let held = inbound(&h, "held back").await;
    h.patch_settings(json!({"webhooks": {"extra_delay_ms": 0}})).await;
    let prompt = inbound(&h, "right away").await;
    deliveries_of(&h, &held, 1).await;
    assert!(arrival(&h, &prompt) < arrival(&h, &held), "the message sent later arrived first");
}

#[tokio::test]
async fn the_drop_fault_loses_the_first_attempt_and_the_retry_delivers_it_once() {
    let h = Harness::start().await;
    h.patch_settings(json!({"webhooks": {"drop_first_attempt": true}})).await;
    let wamid = inbound(&h, "second time lucky").await;
    deliveries_of(&h, &wamid, 1).await;
    let counts = eventually("the sandbox to count the delivery", || async {
        let counts = webhook_counts(&h).await;
        (counts["delivered"] == 1).then_some(counts)
    })
    .await;
    assert_eq!(counts["dropped"], 1, "{counts}");
    assert_eq!(counts["posted"], 1, "only the retry reached the receiver: {counts}");
    assert_eq!(h.hooks.refused.load(Ordering::SeqCst), 0);
    assert_eq!(h.hooks.deliveries().len(), 1, "delivered once");
}

#[tokio::test]
async fn graph_latency_outlasts_a_shorter_client_timeout() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"latency_ms": 5_000}})).await;
    let err = send_with(&h, &impatient(Duration::from_millis(300)), text_to(&c, "slow")).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    h.patch_settings(json!({"graph": {"latency_ms": 200}})).await;
    let answer = send_with(&h, &h.http, text_to(&c, "patient")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "a patient client gets its answer");
}

#[tokio::test]
async fn the_http500_fault_answers_a_non_json_500_then_recovers() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"fail": "http500", "fail_count": 2}})).await;
    for _ in 0..2 {
        let (status, body) = h.send(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.is_string(), "not JSON: {body}");
    }
    h.send_ok(json!({"to": c, "type": "text", "text": {"body": "third time"}})).await;
    let (_, settings) = h.control(Method::GET, "control/settings", None).await;
    assert_eq!(settings["graph"]["fail_count"], 0, "spent");
    let listed = h.received().await;
    assert_eq!(listed.len(), 3, "the failed sends are listed too: {listed:?}");
    for r in &listed[..2] {
        assert_eq!(
            r["body"],
            json!({"messaging_product": "whatsapp", "to": c, "type": "text", "text": {"body": "hi"}})
        );
        assert_eq!(r["status"], 500, "{r}");
        assert!(r["error"].as_str().is_some_and(|page| page.contains("500")), "the page answered: {r}");
        assert!(r.get("wamid").is_none(), "{r}");
    }
}

#[tokio::test]
async fn a_fault_without_a_count_lasts_until_it_is_cleared() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    h.patch_settings(json!({"graph": {"fail": "throughput"}})).await;
    for _ in 0..3 {
        let (status, body) = h.send(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!(130429)), "{body}");
    }
    h.patch_settings(json!({"graph": {"fail": null}})).await;
    h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
}

#[tokio::test]
async fn the_unavailable_fault_answers_131016_with_500_then_recovers() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"fail": "unavailable", "fail_count": 1}})).await;
    let (status, body) = h.send(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], 131016, "{body}");
    assert!(body["error"]["fbtrace_id"].is_string(), "{body}");
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "again"}})).await;
    let listed = h.received().await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["error"]["code"], 131016, "the refusal is listed");
    assert_eq!(listed[1]["wamid"], wamid);
}

#[tokio::test]
async fn the_throughput_fault_answers_130429_then_recovers() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"fail": "throughput", "fail_count": 2}})).await;
    for _ in 0..2 {
        let (status, body) = h.send(json!({"to": c, "type": "text", "text": {"body": "hi"}})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], 130429, "{body}");
    }
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "later"}})).await;
    h.hooks.wait_statuses(&wamid, 3).await;
}

#[tokio::test]
async fn a_send_that_hangs_after_accept_is_recorded_and_delivered_though_the_client_timed_out() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"fail": "hang_after_accept", "fail_count": 1}})).await;
    let err = send_with(&h, &impatient(Duration::from_millis(500)), text_to(&c, "did it go?")).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let listed = h.received().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["body"], text_to(&c, "did it go?"));
    let wamid = listed[0]["wamid"].as_str().expect("accepted with a wamid");
    let statuses = h.hooks.wait_statuses(wamid, 3).await;
    assert_eq!(statuses[0]["status"], "sent");
}

#[tokio::test]
async fn a_send_that_hangs_before_accept_answers_131016_after_the_hang_and_accepts_nothing() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    h.patch_settings(json!({"graph": {"fail": "hang_before_accept", "fail_count": 2, "hang_ms": 1_000}})).await;
    // A client that waits out the hang gets Meta's 131016 in the end, as a JSON 500.
    let waited = send_with(&h, &h.http, text_to(&c, "waited")).await.expect("an answer after the hang");
    assert_eq!(waited.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = waited.json().await.unwrap();
    assert_eq!(body["error"]["code"], 131016, "{body}");
    // A client that gives up first learns nothing; the sandbox lists it as refused all the same.
    let err = send_with(&h, &impatient(Duration::from_millis(200)), text_to(&c, "gave up")).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "recovered"}})).await;
    h.hooks.wait_statuses(&wamid, 3).await;
    let listed = h.received().await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (r, text) in listed.iter().zip(["waited", "gave up"]) {
        assert_eq!(r["body"], text_to(&c, text), "{r}");
        assert!(r.get("wamid").is_none(), "nothing accepted: {r}");
        assert_eq!((&r["status"], &r["error"]["code"]), (&json!(500), &json!(131016)), "{r}");
    }
    assert_eq!(listed[2]["wamid"], wamid);
    let other_statuses: Vec<_> = h
        .hooks
        .changes()
        .into_iter()
        .flat_map(|(_, v)| v["statuses"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["id"] != wamid)
        .collect();
    assert!(other_statuses.is_empty(), "nothing delivered for what was not accepted: {other_statuses:?}");
}

#[tokio::test]
async fn a_refused_payload_is_retried_with_the_same_bytes_and_signature_until_it_gets_through() {
    let h = Harness::start().await;
    h.hooks.fail_next(3);
    let wamid = inbound(&h, "again and again").await;
    deliveries_of(&h, &wamid, 1).await;
    let attempts: Vec<(Delivery, bool)> =
        h.hooks.attempts().into_iter().filter(|(d, _)| String::from_utf8_lossy(&d.bytes).contains(&wamid)).collect();
    let refused: Vec<bool> = attempts.iter().map(|(_, refused)| *refused).collect();
    assert_eq!(refused, [true, true, true, false], "three refusals, then the fourth attempt got through");
    let (first, _) = &attempts[0];
    assert_eq!(first.signature.as_deref().unwrap(), signature(&h.seed.app_secret, &first.bytes));
    for (retry, _) in &attempts[1..] {
        assert_eq!(retry.bytes, first.bytes, "a retry posts the same bytes");
        assert_eq!(retry.signature, first.signature, "signed the same");
    }
}

#[tokio::test]
async fn a_payload_refused_max_attempts_times_is_given_up() {
    let h = Harness::start().await;
    h.patch_settings(json!({"webhooks": {"max_attempts": 3}})).await;
    h.hooks.fail_next(1_000);
    let wamid = inbound(&h, "nobody home").await;
    let counts = eventually("the payload to be given up", || async {
        let counts = webhook_counts(&h).await;
        (counts["given_up"] == 1).then_some(counts)
    })
    .await;
    assert_eq!((&counts["posted"], &counts["refused"], &counts["delivered"]), (&json!(3), &json!(3), &json!(0)));
    let tried = h.hooks.attempts().iter().filter(|(d, _)| String::from_utf8_lossy(&d.bytes).contains(&wamid)).count();
    assert_eq!(tried, 3, "three attempts, no more");
}

#[tokio::test]
async fn the_reorder_fault_reverses_statuses_whose_delays_are_out_of_order() {
    let h = Harness::start().await;
    // `read` set later than `played`, as `wagate sandbox --read-delay-ms 3000` leaves it: played
    // counts as due with read, and reordering sends it first.
    h.patch_settings(json!({
        "statuses": {"sent_ms": 50, "delivered_ms": 250, "read_ms": 1_700, "played_ms": 100},
        "webhooks": {"reorder": true}
    }))
    .await;
    let c = h.customer_who_wrote("hello").await;
    let voice = json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/a.ogg", "voice": true}});
    let wamid = h.send_ok(voice).await;
    let statuses = h.hooks.wait_statuses(&wamid, 4).await;
    let names: Vec<_> = statuses.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(names, ["played", "read", "delivered", "sent"]);
    // Each still says when it happened (`sent` over a second before `played`), by which a
    // receiver can put them back in order.
    let at: Vec<u64> = statuses.iter().map(|s| s["timestamp"].as_str().unwrap().parse().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "arrival is newest first: {at:?}");
    assert!(at[3] < at[0], "sent happened before played: {at:?}");
}
