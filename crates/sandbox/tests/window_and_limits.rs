//! The 24-hour customer-service window and Meta's sending limits: per-number throughput and the
//! per-user pair rate. Limits are set so that no machine is slow enough to refill a bucket
//! during a test, or (refills) waited for with a deadline: no test depends on how fast it runs.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}})
}

fn hello_world(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}

/// Sends `body` from the number `from`; the answer.
async fn send_from(h: &Harness, from: &str, body: Value) -> (StatusCode, Value) {
    h.graph(Method::POST, &format!("{from}/messages"), Some(body)).await
}

/// Sends from `from` and expects a wamid.
async fn send_ok_from(h: &Harness, from: &str, body: Value) -> String {
    let (status, answer) = send_from(h, from, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["messages"][0]["id"].as_str().expect("a wamid").to_owned()
}

async fn set_window(h: &Harness, phone_number_id: &str, user: &str, last_inbound_at: Option<u64>) {
    let body = json!({"phone_number_id": phone_number_id, "user": user, "last_inbound_at": last_inbound_at});
    let (status, answer) = h.control(Method::PUT, "control/windows", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// The statuses of `wamid` once its last one (`read` or `failed`) has come.
async fn fate_of(h: &Harness, wamid: &str) -> Vec<Value> {
    eventually(&format!("the last status of {wamid}"), || async {
        let got = h.hooks.statuses(wamid);
        got.iter().any(|s| s["status"] == "read" || s["status"] == "failed").then_some(got)
    })
    .await
}

fn names(statuses: &[Value]) -> Vec<&str> {
    statuses.iter().map(|s| s["status"].as_str().unwrap()).collect()
}

/// Checks `statuses` is the one `failed` status with Meta's 131047 error object.
fn failed_outside_the_window(statuses: &[Value]) {
    assert_eq!(names(statuses), ["failed"], "{statuses:?}");
    let errors = statuses[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{statuses:?}");
    let e = &errors[0];
    assert_eq!(e["code"], 131047, "{e}");
    assert_eq!(e["title"], "Re-engagement message", "{e}");
    assert_eq!(e["message"], "Re-engagement message", "{e}");
    assert_eq!(
        e["error_data"]["details"],
        "More than 24 hours have passed since the recipient last replied to the sender number.",
        "{e}"
    );
    assert!(e["href"].as_str().is_some_and(|h| h.contains("error-codes")), "{e}");
}

#[tokio::test]
async fn a_text_to_a_user_who_never_wrote_is_accepted_then_fails_with_131047() {
    let h = Harness::start().await;
    let stranger = customer();
    let (status, answer) = h.send(json!({"to": stranger, "type": "text", "text": {"body": "hi"}})).await;
    assert_eq!(status, StatusCode::OK, "Meta accepts it, then fails it: {answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."), "{answer}");
    failed_outside_the_window(&fate_of(&h, wamid).await);
    // A template sent after it is delivered; by then the failed message has had nothing more.
    let template = h.send_ok(hello_world(&stranger)).await;
    assert_eq!(names(&fate_of(&h, &template).await), ["sent", "delivered", "read"]);
    assert_eq!(h.hooks.statuses(wamid).len(), 1, "a failed message is never sent");
}

#[tokio::test]
async fn a_text_to_a_user_who_wrote_is_delivered() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello?").await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hello!"}})).await;
    assert_eq!(names(&fate_of(&h, &wamid).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_non_template_after_the_users_last_message_is_a_day_old_fails_with_131047() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    set_window(&h, &h.number(), &c, Some(now() - DAY - 60)).await;
    let wamid = h.send_ok(json!({"to": c, "type": "image", "image": {"link": "https://example.com/a.png"}})).await;
    failed_outside_the_window(&fate_of(&h, &wamid).await);
}

#[tokio::test]
async fn a_text_while_the_users_last_message_is_under_a_day_old_is_delivered() {
    let h = Harness::start().await;
    let c = customer();
    set_window(&h, &h.number(), &c, Some(now() - DAY + 600)).await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "still here"}})).await;
    assert_eq!(names(&fate_of(&h, &wamid).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_closed_window_is_reopened_by_the_users_next_message() {
    let h = Harness::start().await;
    let c = customer();
    set_window(&h, &h.number(), &c, Some(now() - 2 * DAY)).await;
    h.customer_writes(&c, "back again").await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "welcome back"}})).await;
    assert_eq!(names(&fate_of(&h, &wamid).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_template_to_a_user_outside_the_window_is_delivered() {
    let h = Harness::start().await;
    let c = customer();
    set_window(&h, &h.number(), &c, Some(now() - 3 * DAY)).await;
    let wamid = h.send_ok(hello_world(&c)).await;
    assert_eq!(names(&fate_of(&h, &wamid).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_window_on_one_number_does_not_open_another() {
    let h = Harness::start().await;
    let (a, b) = (h.seed.phone_numbers[0].id.clone(), h.seed.phone_numbers[1].id.clone());
    let c = h.customer_who_wrote("hi, number A").await;
    let from_b = send_ok_from(&h, &b, text(&c, "hi from B")).await;
    failed_outside_the_window(&fate_of(&h, &from_b).await);
    let from_a = send_ok_from(&h, &a, text(&c, "hi from A")).await;
    assert_eq!(names(&fate_of(&h, &from_a).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_window_with_one_user_does_not_open_it_for_another() {
    let h = Harness::start().await;
    let (writer, other) = (customer(), customer());
    h.customer_writes(&writer, "hi").await;
    let wamid = h.send_ok(json!({"to": other, "type": "text", "text": {"body": "hi"}})).await;
    failed_outside_the_window(&fate_of(&h, &wamid).await);
}

#[tokio::test]
async fn a_number_reports_standard_throughput_by_default() {
    let h = Harness::start().await;
    let (status, number) = h.graph(Method::GET, &format!("{}?fields=throughput", h.number()), None).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(number, json!({"id": h.number(), "throughput": {"level": "STANDARD"}}));
    let (_, settings) = h.control(Method::GET, "control/settings", None).await;
    assert_eq!(settings["throughput_mps"], 80, "Meta's default is 80 messages a second");
}

#[tokio::test]
async fn a_number_upgraded_to_1000_per_second_reports_high_throughput() {
    let h = Harness::start().await;
    let set = |mps: u32| json!({"messages_per_second": mps});
    let path = format!("control/phone-numbers/{}/throughput", h.number());
    let (status, answer) = h.control(Method::PUT, &path, Some(set(999))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, number) = h.graph(Method::GET, &format!("{}?fields=throughput", h.number()), None).await;
    assert_eq!(number["throughput"], json!({"level": "STANDARD"}));
    let (status, answer) = h.control(Method::PUT, &path, Some(set(1000))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, number) = h.graph(Method::GET, &format!("{}?fields=throughput", h.number()), None).await;
    assert_eq!(number["throughput"], json!({"level": "HIGH"}));
    // Its own; the other number keeps the default.
    let (_, list) = h.graph(Method::GET, &format!("{}/phone_numbers", h.waba()), None).await;
    let levels: Vec<&Value> = list["data"].as_array().unwrap().iter().map(|n| &n["throughput"]["level"]).collect();
    assert_eq!(levels, [&json!("HIGH"), &json!("STANDARD")], "{list}");
}

/// Sends templates to new users from `from` until one is refused (at most `tries`); the number
/// accepted before it and the refusal.
async fn send_until_refused(
    h: &Harness,
    from: &str,
    to: impl Fn() -> String,
    tries: usize,
) -> (usize, StatusCode, Value) {
    for accepted in 0..tries {
        let (status, answer) = send_from(h, from, hello_world(&to())).await;
        if status != StatusCode::OK {
            return (accepted, status, answer);
        }
    }
    panic!("{tries} sends in a row were all accepted");
}

#[tokio::test]
async fn a_number_over_its_throughput_gets_130429_once_the_burst_is_spent() {
    let h = Harness::start().await;
    let path = format!("control/phone-numbers/{}/throughput", h.number());
    let (status, answer) = h.control(Method::PUT, &path, Some(json!({"messages_per_second": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A burst of 2, refilled at 2 a second: 500 sends in a row outrun it on any machine.
    let (accepted, status, e) = send_until_refused(&h, &h.number(), customer, 500).await;
    assert!(accepted >= 2, "a second's worth goes at once; {accepted} went");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], 130429, "{e}");
    assert_eq!(e["error"]["message"], "(#130429) Rate limit hit", "{e}");
    assert_eq!(e["error"]["type"], "OAuthException", "{e}");
    assert!(e["error"]["fbtrace_id"].is_string(), "{e}");
    assert!(e["error"]["error_data"]["details"].is_string(), "{e}");
    let kept = h.received().await;
    let last = kept.last().unwrap();
    assert!(last.get("wamid").is_none() && last["error"]["code"] == 130429, "the refused send got no wamid: {last}");
}

#[tokio::test]
async fn a_numbers_throughput_does_not_hold_back_its_other_numbers() {
    let h = Harness::start().await;
    let (a, b) = (h.seed.phone_numbers[0].id.clone(), h.seed.phone_numbers[1].id.clone());
    let path = format!("control/phone-numbers/{a}/throughput");
    let (status, answer) = h.control(Method::PUT, &path, Some(json!({"messages_per_second": 1}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, status, e) = send_until_refused(&h, &a, customer, 500).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(130429)), "{e}");
    // Number B's bucket is its own: the default 80 a second, all of it unspent.
    for _ in 0..20 {
        send_ok_from(&h, &b, hello_world(&customer())).await;
    }
}

#[tokio::test]
async fn the_pair_rate_refuses_a_users_messages_with_131056_once_the_burst_is_spent() {
    let h = Harness::start().await;
    // Three at once, then one an hour: nothing refills during the test.
    h.patch_settings(json!({"pair_rate": {"capacity": 3, "refill_ms": 3_600_000}})).await;
    let c = customer();
    for _ in 0..3 {
        h.send_ok(hello_world(&c)).await;
    }
    let (status, e) = h.send(hello_world(&c)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], 131056, "{e}");
    assert_eq!(e["error"]["message"], "(#131056) (Business Account, Consumer Account) pair rate limit hit", "{e}");
    assert_eq!(e["error"]["type"], "OAuthException", "{e}");
    assert!(e["error"]["fbtrace_id"].is_string(), "{e}");
    // Spent is spent: the next is refused too, text or template.
    let (status, e) = h.send(json!({"to": c, "type": "text", "text": {"body": "again"}})).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131056)), "{e}");
}

#[tokio::test]
async fn the_pair_rate_does_not_hold_back_other_users() {
    let h = Harness::start().await;
    h.patch_settings(json!({"pair_rate": {"capacity": 2, "refill_ms": 3_600_000}})).await;
    let (busy, other) = (customer(), customer());
    for _ in 0..2 {
        h.send_ok(hello_world(&busy)).await;
    }
    let (status, e) = h.send(hello_world(&busy)).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131056)), "{e}");
    for _ in 0..2 {
        h.send_ok(hello_world(&other)).await;
    }
}

#[tokio::test]
async fn the_pair_rate_is_per_business_number() {
    let h = Harness::start().await;
    h.patch_settings(json!({"pair_rate": {"capacity": 1, "refill_ms": 3_600_000}})).await;
    let (a, b) = (h.seed.phone_numbers[0].id.clone(), h.seed.phone_numbers[1].id.clone());
    let c = customer();
    send_ok_from(&h, &a, hello_world(&c)).await;
    let (status, e) = send_from(&h, &a, hello_world(&c)).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131056)), "{e}");
    send_ok_from(&h, &b, hello_world(&c)).await;
}

#[tokio::test]
async fn the_default_pair_rate_lets_a_burst_of_45_through() {
    let h = Harness::start().await;
    let (_, settings) = h.control(Method::GET, "control/settings", None).await;
    assert_eq!(settings["pair_rate"], json!({"capacity": 45, "refill_ms": 6000}), "Meta's: 45 at once, then 1 per 6 s");
    let c = customer();
    // The bucket starts full, so the first 45 go whatever the machine's speed; one more every 6 s
    // cannot keep up with 100 sends in a row.
    let (accepted, status, e) = send_until_refused(&h, &h.number(), || c.clone(), 100).await;
    assert!(accepted >= 45, "only {accepted} went");
    // One more only if the sends took over 6 s, two if over 12 s: never the 100.
    assert!(accepted <= 47, "{accepted} went: the burst is 45");
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131056)), "{e}");
}

#[tokio::test]
async fn the_pair_rate_refills_one_message_per_refill_period() {
    let h = Harness::start().await;
    h.patch_settings(json!({"pair_rate": {"capacity": 3, "refill_ms": 500}})).await;
    let c = customer();
    // Four at once: the burst lets three through; the fourth finds the bucket empty.
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let req = h
                .http
                .post(format!("{}/v23.0/{}/messages", h.url, h.number()))
                .bearer_auth(&h.seed.access_token)
                .json(&hello_world(&c));
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sends {
        answers.push(s.await.unwrap());
    }
    let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<&Value> = answers.iter().filter(|(status, _)| *status != 200).map(|(_, e)| e).collect();
    assert_eq!(accepted, 3, "{answers:?}");
    assert_eq!(refused.len(), 1, "{answers:?}");
    assert_eq!(refused[0]["error"]["code"], 131056, "{answers:?}");
    // A token comes back: a later send passes.
    eventually("the pair's bucket to refill", || async {
        let (status, _) = h.send(hello_world(&c)).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn changing_an_unrelated_setting_leaves_a_spent_bucket_spent() {
    let h = Harness::start().await;
    h.patch_settings(json!({"pair_rate": {"capacity": 2, "refill_ms": 3_600_000}})).await;
    let c = customer();
    for _ in 0..2 {
        h.send_ok(hello_world(&c)).await;
    }
    let refused = |(status, e): (StatusCode, Value)| {
        assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131056)), "{e}");
    };
    refused(h.send(hello_world(&c)).await);
    // A fault toggled, or the number's throughput default changed, is no new pair limit.
    h.patch_settings(json!({"webhooks": {"duplicate": true}})).await;
    h.patch_settings(json!({"webhooks": {"duplicate": false}, "throughput_mps": 90})).await;
    refused(h.send(hello_world(&c)).await);
    // A new pair limit starts from a full bucket.
    h.patch_settings(json!({"pair_rate": {"capacity": 3}})).await;
    h.send_ok(hello_world(&c)).await;
}

#[tokio::test]
async fn the_default_80_per_second_throughput_refuses_a_burst_of_400() {
    let h = Harness::start().await;
    let (_, settings) = h.control(Method::GET, "control/settings", None).await;
    assert_eq!(settings["throughput_mps"], 80);
    // 400 sends from 50 clients at once, to as many users (no pair limit involved): a bucket of 80
    // refilled at 80 a second would need the burst to last 4 s for all to pass.
    let url = format!("{}/v23.0/{}/messages", h.url, h.number());
    let workers: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, token) = (h.http.clone(), url.clone(), h.seed.access_token.clone());
            let users: Vec<String> = (0..8).map(|_| customer()).collect();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for user in users {
                    let resp = http.post(&url).bearer_auth(&token).json(&hello_world(&user)).send().await.unwrap();
                    let status = resp.status().as_u16();
                    answers.push((status, resp.json::<Value>().await.unwrap()["error"]["code"].as_i64()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
    let throttled = answers.iter().filter(|a| **a == (400, Some(130429))).count();
    assert_eq!(accepted + throttled, 400, "only accepted or 130429: {answers:?}");
    assert!(accepted >= 80, "the first second's 80 go: {accepted}");
    assert!(throttled > 0, "{accepted} of 400 went at once");
}
