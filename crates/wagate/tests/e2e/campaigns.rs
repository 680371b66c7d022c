//! Campaigns: a template to thousands of recipients at the number's rate, paused and resumed
//! without a second copy, counted from the recipients themselves, stopped by what Meta says
//! (a paused template, a flagged number, the messaging limit), and every row of a recipient
//! list checked with its line and rule.

use std::collections::HashMap;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_domain::campaign::RecipientStatus;
use wagate_domain::id::CampaignId;
use wagate_server::state::Worker;
use wagate_storage::{Backend, RecipientFilter};

use crate::support::*;

/// A template made at the sandbox and approved there (as Meta's review would).
async fn approved_template(
    app: &TestApp,
    sandbox: &str,
    key: Option<&str>,
    name: &str,
    category: &str,
    body: &str,
) -> String {
    let (status, accounts) = request(&app.http, Method::GET, &format!("{sandbox}/control/accounts"), key, None).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let business = &accounts["data"][0];
    let token = business["access_token"].as_str().unwrap();
    let waba = business["waba_id"].as_str().unwrap();
    let examples: Vec<Value> = (1..=body.matches("{{").count()).map(|i| json!(format!("example {i}"))).collect();
    let mut component = json!({"type": "BODY", "text": body});
    if !examples.is_empty() {
        component["example"] = json!({"body_text": [examples]});
    }
    let t = json!({"name": name, "language": "en_US", "category": category, "components": [component]});
    let url = format!("{sandbox}/v23.0/{waba}/message_templates");
    let (status, created) = request(&app.http, Method::POST, &url, Some(token), Some(t)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let url = format!("{sandbox}/control/templates/{id}/status");
    let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"status": "APPROVED"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

async fn create(app: &TestApp, phone: &str, template: &str, extra: Value) -> String {
    let mut body = json!({"name": format!("{template} campaign"), "phone_number_id": phone,
        "template": {"name": template, "language": "en_US"}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, c) = app.post("/v1/campaigns", body).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["state"], "draft");
    c["id"].as_str().unwrap().to_owned()
}

async fn add(app: &TestApp, id: &str, recipients: Value) -> Value {
    let (status, added) = app.post(&format!("/v1/campaigns/{id}/recipients"), recipients).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    added
}

async fn act(app: &TestApp, id: &str, action: &str) -> Value {
    let (status, c) = app.post(&format!("/v1/campaigns/{id}/{action}"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{action}: {c}");
    c
}

async fn campaign(app: &TestApp, id: &str) -> Value {
    let (status, c) = app.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    c
}

/// The counts add up to the total, always.
fn assert_consistent(c: &Value) {
    let counts = &c["counts"];
    let parts: i64 = ["pending", "queued", "accepted", "sent", "delivered", "read", "failed", "skipped"]
        .iter()
        .map(|k| counts[k].as_i64().unwrap())
        .sum();
    assert_eq!(parts, counts["total"].as_i64().unwrap(), "{counts}");
    let by_code: i64 = counts["failed_by_code"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(by_code, counts["failed"].as_i64().unwrap(), "{counts}");
    let by_reason: i64 = counts["skipped_by_reason"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(by_reason, counts["skipped"].as_i64().unwrap(), "{counts}");
}

/// The counts equal the recipient rows, status by status (read while nothing moves).
async fn assert_counts_are_the_rows(app: &TestApp, id: &str) {
    let c = campaign(app, id).await;
    assert_consistent(&c);
    let parsed = CampaignId::parse(id).unwrap();
    for status in RecipientStatus::ALL {
        let filter = RecipientFilter { status: Some(status), after: None };
        let rows = app.store().list_recipients(&parsed, &filter, 1_000_000).await.unwrap();
        assert_eq!(rows.len() as i64, c["counts"][status.as_str()].as_i64().unwrap(), "{status}: {}", c["counts"]);
        assert!(rows.iter().all(|r| r.status == status));
    }
    // And through the API, a page at a time.
    let (status, page) = app.get(&format!("/v1/campaigns/{id}/recipients?status=failed&limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page["data"].as_array().unwrap().iter().all(|r| r["status"] == "failed"));
}

async fn received_campaign(app: &TestApp, sandbox: &str, key: Option<&str>, phone: &str) -> Vec<(String, u64)> {
    let (status, all) =
        request(&app.http, Method::GET, &format!("{sandbox}/control/messages?phone_number_id={phone}"), key, None)
            .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["wamid"].is_string() && r["body"]["type"] == "template")
        .map(|r| (r["body"]["to"].as_str().unwrap().to_owned(), r["received_at_ms"].as_u64().unwrap()))
        .collect()
}

/// The most arrivals in any one-second window.
fn busiest_second(mut times: Vec<u64>) -> usize {
    times.sort_unstable();
    let (mut best, mut start) = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] >= 1_000 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

async fn a_campaign_keeps_to_its_rate_pauses_resumes_and_sends_each_recipient_once(backend: Backend) {
    const RECIPIENTS: usize = 5_000;
    let Some(app) = TestApp::spawn_with(backend, |c| c.sandbox.enabled = false).await else { return };
    let (sandbox, _) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (account, numbers) = app.connect_sandbox(&sandbox).await;
    let phone = numbers[0].clone();
    set_throughput(&app, &sandbox, &phone, 100).await;
    let (status, body) = app
        .request(Method::PATCH, &format!("/v1/accounts/{account}"), Some(json!({"messaging_tier": "TIER_10K"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    approved_template(&app, &sandbox, None, "spring_sale", "UTILITY", "Hi {{1}}, your order ships today.").await;
    let id = create(&app, &phone, "spring_sale", json!({})).await;

    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({"to": format!("+1555{:07}", 2_000_000 + i), "params": [format!("N{i}")]}))
        .collect();
    let added = add(&app, &id, Value::Array(recipients)).await;
    assert_eq!((added["added"].as_u64(), added["invalid"].as_u64()), (Some(RECIPIENTS as u64), Some(0)), "{added}");
    let (status, pre) = app.post(&format!("/v1/campaigns/{id}/preflight"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pre}");
    assert_eq!((pre["checked"].as_i64(), pre["will_send"].as_i64()), (Some(5_000), Some(5_000)), "{pre}");
    assert_eq!((pre["rate"].as_u64(), pre["estimated_seconds"].as_u64()), (Some(100), Some(50)), "{pre}");

    let started = Instant::now();
    let c = act(&app, &id, "start").await;
    assert_eq!(c["state"], "running");
    // A one-time code on the same number while the campaign runs: behind at most the half
    // second of campaign kept queued ahead of the dispatcher, not behind the campaign.
    eventually("the campaign to be sending", || async {
        (received_campaign(&app, &sandbox, None, &phone).await.len() >= 300).then_some(())
    })
    .await;
    let code_to = customer();
    let before = received_campaign(&app, &sandbox, None, &phone).await.len();
    let sent_at = Instant::now();
    let (status, otp) = app
        .post(
            "/v1/messages",
            json!({"from": phone, "to": code_to, "type": "template",
            "template": {"name": "spring_sale", "language": "en_US", "params": ["123456"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{otp}");
    let otp_id = otp["id"].as_str().unwrap().to_owned();
    wait_for_message(&app.http, &app.url, &app.api_key, &otp_id, "the code to be accepted", |m| m["wamid"].is_string())
        .await;
    let code_latency = sent_at.elapsed();
    let ahead = received_campaign(&app, &sandbox, None, &phone).await.len() - before;
    assert!(ahead <= 100, "{ahead} campaign messages went out before the code: more than a second of the campaign");

    // Pausing freezes what Meta receives once the half second queued ahead has gone.
    let mut last = Value::Null;
    for _ in 0..5 {
        last = campaign(&app, &id).await;
        assert_consistent(&last);
    }
    act(&app, &id, "pause").await;
    let frozen = eventually("the queued half second to drain", || async {
        let c = campaign(&app, &id).await;
        (c["counts"]["queued"] == 0).then_some(c)
    })
    .await;
    assert_eq!(frozen["state"], "paused");
    assert_eq!(frozen["pause_reason"], "requested");
    let at_pause = received_campaign(&app, &sandbox, None, &phone).await.len();
    // Twenty rounds of the campaign worker (two seconds of them) feed nothing.
    let from_round = app.state.health.rounds(Worker::Campaigns);
    eventually("the campaign worker to go round twenty times", || async {
        (app.state.health.rounds(Worker::Campaigns) >= from_round + 20).then_some(())
    })
    .await;
    assert_eq!(received_campaign(&app, &sandbox, None, &phone).await.len(), at_pause, "nothing is sent while paused");
    assert!(at_pause < RECIPIENTS, "paused midway: {at_pause}");
    assert_counts_are_the_rows(&app, &id).await;
    assert!(last["counts"]["total"] == RECIPIENTS as i64);

    act(&app, &id, "resume").await;
    let done = eventually_for("the campaign to complete", std::time::Duration::from_secs(120), || async {
        let c = campaign(&app, &id).await;
        assert_consistent(&c);
        (c["state"] == "completed").then_some(c)
    })
    .await;
    let took = started.elapsed();
    assert!(done["finished_at"].is_string());
    let received = received_campaign(&app, &sandbox, None, &phone).await;
    let mut by: HashMap<&str, usize> = HashMap::new();
    for (to, _) in &received {
        *by.entry(to.as_str()).or_default() += 1;
    }
    let recipients: usize =
        by.iter().filter(|(to, _)| to.trim_start_matches('+') != code_to.trim_start_matches('+')).count();
    assert_eq!(recipients, RECIPIENTS, "every recipient reached Meta");
    assert!(by.values().all(|n| *n == 1), "no recipient was sent twice");
    let busiest = busiest_second(received.iter().map(|(_, t)| *t).collect());
    assert!(busiest <= 110, "{busiest} messages reached Meta within one second, at 100 a second");
    // Statuses arrive after the send: every recipient ends read, and the rows say so.
    let settled = eventually("every status to be applied", || async {
        let c = campaign(&app, &id).await;
        (c["counts"]["read"] == RECIPIENTS as i64).then_some(c)
    })
    .await;
    assert_consistent(&settled);
    assert_counts_are_the_rows(&app, &id).await;
    println!(
        "{RECIPIENTS} recipients at 100/s: done in {took:?} (with a 2 s pause), busiest second {busiest}; \
         the code was accepted {code_latency:?} after its send, behind {ahead} campaign messages"
    );
    app.stop().await;
}

/// Polls `check` until it yields a value or `patience` runs out.
async fn eventually_for<T, F, Fut>(what: &str, patience: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {patience:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn a_marketing_campaign_skips_who_opted_out_and_stops_when_meta_pauses_its_template(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    let template_id =
        approved_template(&app, &sandbox, key, "weekend_offer", "MARKETING", "Hi {{1}}, 20% off this weekend.").await;
    set_throughput(&app, &sandbox, &phone, 5).await;
    // Two customers wrote, then one stopped marketing messages.
    let (stays, leaves) = (customer(), customer());
    app.customer_writes(&phone, &stays, "hi").await;
    app.customer_writes(&phone, &leaves, "hi").await;
    let contact = app.contact_of(&leaves).await;
    let (status, body) =
        app.request(Method::PATCH, &format!("/v1/contacts/{contact}"), Some(json!({"marketing_opt_out": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let id = create(&app, &phone, "weekend_offer", json!({})).await;
    let mut rows = vec![json!({"to": stays, "params": ["Ana"]}), json!({"to": leaves, "params": ["Bo"]})];
    rows.extend((0..60).map(|_| json!({"to": customer(), "params": ["Cy"]})));
    add(&app, &id, Value::Array(rows)).await;
    let (_, pre) = app.post(&format!("/v1/campaigns/{id}/preflight"), json!({})).await;
    assert_eq!(pre["category"], "MARKETING");
    assert_eq!(pre["skipped"]["opted_out"], 1, "{pre}");
    assert_eq!((pre["will_send"].as_i64(), pre["outside_window"].as_i64()), (Some(61), Some(60)), "{pre}");
    assert_eq!(pre["messaging_limit"], 250, "{pre}");
    act(&app, &id, "start").await;

    // The opted-out customer is skipped and counted; the first recipients go out.
    eventually("the opted-out recipient to be skipped and others sent", || async {
        let c = campaign(&app, &id).await;
        (c["counts"]["skipped_by_reason"]["opted_out"] == 1 && c["counts"]["read"].as_i64().unwrap() >= 3).then_some(())
    })
    .await;
    let (_, skipped) = app.get(&format!("/v1/campaigns/{id}/recipients?status=skipped")).await;
    assert_eq!(skipped["data"][0]["to"], leaves.as_str(), "{skipped}");
    assert_eq!(skipped["data"][0]["skip_reason"], "opted_out");

    // Meta pauses the template for its quality: the campaign pauses itself, saying why.
    let url = format!("{sandbox}/control/templates/{template_id}/status");
    let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"status": "PAUSED"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let paused = eventually("the campaign to pause with the template", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "paused").then_some(c)
    })
    .await;
    assert_eq!(paused["pause_reason"], "template_paused", "{paused}");
    assert!(paused["pause_detail"].as_str().unwrap().contains("weekend_offer"), "{paused}");
    assert!(paused["counts"]["pending"].as_i64().unwrap() > 0, "it stopped midway: {}", paused["counts"]);
    assert_consistent(&paused);
    let (_, events) = app.get("/v1/events?type=campaign.paused").await;
    assert_eq!(events["data"][0]["data"]["pause_reason"], "template_paused", "{events}");

    // Reinstated, and resumed by a person: it finishes, nobody twice.
    let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"status": "APPROVED"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    set_throughput(&app, &sandbox, &phone, 80).await;
    eventually("the template to be approved again in wagate", || async {
        let (_, t) = app.get("/v1/templates?name=weekend_offer").await;
        (t["data"][0]["status"] == "APPROVED").then_some(())
    })
    .await;
    act(&app, &id, "resume").await;
    let done = eventually("the campaign to complete", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "completed").then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["skipped"], 1);
    // What was queued when Meta paused the template went to Meta and was refused (132015):
    // a paused template may come back, so those are retried.
    let refused = done["counts"]["failed"].as_i64().unwrap();
    assert_eq!(
        done["counts"]["failed_by_code"].get("132015").and_then(Value::as_i64).unwrap_or(0),
        refused,
        "{}",
        done["counts"]
    );
    if refused > 0 {
        let (_, retried) = app.post(&format!("/v1/campaigns/{id}/retry-failed"), json!({})).await;
        assert_eq!(retried["requeued"], refused, "{retried}");
        eventually("the retried recipients to be sent", || async {
            let c = campaign(&app, &id).await;
            (c["state"] == "completed" && c["counts"]["failed"] == 0).then_some(())
        })
        .await;
    }
    let received = received_campaign(&app, &sandbox, key, &phone).await;
    assert_eq!(received.len(), 61, "each recipient but the opted-out one, once");
    let (_, events) = app.get("/v1/events?type=campaign.*&limit=100").await;
    let kinds: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["campaign.started", "campaign.progress", "campaign.paused", "campaign.resumed", "campaign.completed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    app.stop().await;
}

async fn the_messaging_limit_makes_a_campaign_wait_and_a_flagged_number_pauses_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    approved_template(&app, &sandbox, key, "renewal_notice", "UTILITY", "Your plan renews on {{1}}.").await;
    let (_, numbers) = app.get("/v1/phone-numbers").await;
    let account = numbers["data"][0]["account_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .request(Method::PATCH, &format!("/v1/accounts/{account}"), Some(json!({"messaging_tier": "TIER_50"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 80 customers who never wrote: each send opens a conversation; the tier allows 50 a day.
    let id = create(&app, &phone, "renewal_notice", json!({"rate": 40})).await;
    add(&app, &id, Value::Array((0..80).map(|_| json!({"to": customer(), "params": ["1 May"]})).collect())).await;
    let (_, pre) = app.post(&format!("/v1/campaigns/{id}/preflight"), json!({})).await;
    assert_eq!((pre["outside_window"].as_i64(), pre["messaging_left"].as_i64()), (Some(80), Some(50)), "{pre}");
    act(&app, &id, "start").await;
    let waiting = eventually("the campaign to wait for the limit", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "paused").then_some(c)
    })
    .await;
    assert_eq!(waiting["pause_reason"], "awaiting_quota", "{waiting}");
    assert!(waiting["resumes_at"].is_string(), "it says when it goes on: {waiting}");
    let c = eventually("what was fed to settle", || async {
        let c = campaign(&app, &id).await;
        (c["counts"]["queued"] == 0).then_some(c)
    })
    .await;
    let handed = 80 - c["counts"]["pending"].as_i64().unwrap();
    assert_eq!(handed, 50, "exactly the limit went out: {}", c["counts"]);
    assert_eq!(c["counts"]["failed"], 0, "none failed for the limit: {}", c["counts"]);

    // A second campaign on the number runs until Meta flags the number's quality.
    // The campaign's own number, as Meta displays it (the sandbox has two).
    let display =
        numbers["data"].as_array().unwrap().iter().find(|n| n["id"] == phone.as_str()).unwrap()["display_phone_number"]
            .as_str()
            .unwrap()
            .to_owned();
    let (status, body) = app
        .request(Method::PATCH, &format!("/v1/accounts/{account}"), Some(json!({"messaging_tier": "TIER_UNLIMITED"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = create(&app, &phone, "renewal_notice", json!({"rate": 2})).await;
    add(&app, &second, Value::Array((0..40).map(|_| json!({"to": customer(), "params": ["2 May"]})).collect())).await;
    act(&app, &second, "start").await;
    let a = sandbox_account(&app).await;
    let flagged = json!({"object": "whatsapp_business_account", "entry": [{"id": a.waba_id, "time": 1_700_000_000,
        "changes": [{"field": "phone_number_quality_update", "value": {
            "display_phone_number": display, "event": "FLAGGED", "current_limit": "TIER_2K"}}]}]});
    post_signed(&app, &a, serde_json::to_vec(&flagged).unwrap()).await;
    let paused = eventually("the second campaign to pause for the number's quality", || async {
        let c = campaign(&app, &second).await;
        (c["state"] == "paused").then_some(c)
    })
    .await;
    assert_eq!(paused["pause_reason"], "quality_dropped", "{paused}");
    assert!(paused["pause_detail"].as_str().unwrap().contains("flagged"), "{paused}");
    app.stop().await;
}

async fn recipients_are_checked_row_by_row_and_accounted_for(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    approved_template(&app, &sandbox, key, "appointment_reminder", "UTILITY", "Hi {{1}}, see you at {{2}}.").await;

    // Refused at creation: each with the field and the rule.
    let bad = [
        (
            json!({"name": "", "phone_number_id": phone, "template": {"name": "appointment_reminder", "language": "en_US"}}),
            "name",
        ),
        (
            json!({"name": "x", "phone_number_id": "nope", "template": {"name": "appointment_reminder", "language": "en_US"}}),
            "phone_number_id",
        ),
        (
            json!({"name": "x", "phone_number_id": phone, "template": {"name": "appointment_reminder", "language": "en_US"}, "rate": 100000}),
            "rate",
        ),
        (
            json!({"name": "x", "phone_number_id": phone, "template": {"name": "appointment_reminder", "language": "en_US"}, "max_failure_share": 2}),
            "max_failure_share",
        ),
        (
            json!({"name": "x", "phone_number_id": phone, "template": {"name": "appointment_reminder", "language": "en_US"}, "send_at": "tomorrow"}),
            "send_at",
        ),
        (
            json!({"name": "a\u{0000}b", "phone_number_id": phone, "template": {"name": "appointment_reminder", "language": "en_US"}}),
            "name",
        ),
    ];
    for (body, path) in bad {
        let (status, e) = app.post("/v1/campaigns", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["path"], path, "{e}");
    }
    let (status, e) = app
        .post("/v1/campaigns", json!({"name": "x", "phone_number_id": phone, "template": {"name": "no_such_template", "language": "en_US"}}))
        .await;
    assert!(status.is_client_error(), "{status} {e}");

    let id = create(&app, &phone, "appointment_reminder", json!({"metadata": {"team": "clinic"}})).await;
    // JSON rows: written loosely, normalised, deduplicated; bad ones reported by index and rule.
    let (ana, bo) = (customer(), customer());
    let spaced = format!("{} {}-{}", &ana[..5], &ana[5..8], &ana[8..]);
    let rows = json!([
        {"to": ana, "params": ["Ana", "9:00"]},
        {"to": spaced, "params": ["Ana again", "9:30"]},
        {"to": bo, "params": ["Bo", "10:00"], "metadata": {"ref": "r-1"}},
        {"to": "12", "params": ["Short", "1"]},
        {"to": "not a number"},
        {"to": customer(), "params": "Ana"},
        {"to": customer(), "params": ["\u{202e}Zoë 🌸", "10:30"]},
        {"to": customer(), "params": ["x".repeat(9_000), "1"]},
        {"to": customer(), "oops": 1},
        {"to": customer(), "params": ["Only one"]},
    ]);
    let added = add(&app, &id, rows).await;
    assert_eq!(
        (added["added"].as_u64(), added["duplicates"].as_u64(), added["invalid"].as_u64()),
        (Some(4), Some(1), Some(5)),
        "{added}"
    );
    let errors: Vec<(u64, &str)> = added["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert!(errors.contains(&(3, "e164")) && errors.contains(&(4, "e164")), "{errors:?}");
    assert!(
        errors.contains(&(5, "type")) && errors.contains(&(7, "max_size")) && errors.contains(&(8, "invalid")),
        "{errors:?}"
    );

    // CSV: a header naming the columns, each bad line reported with its number.
    let csv = format!(
        "to,1,2,metadata.source\n{},Cy,11:00,csv\n+1 (555) 0x,Dee,12:00,csv\n{},Ed,13:00\n\n{ana},Ana,9:00,csv\n",
        customer(),
        customer()
    );
    let (status, job) = app.post_csv(&format!("/v1/campaigns/{id}/recipients"), csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a file is added by a job: {job}");
    let job = app.job_ended(job["id"].as_str().unwrap()).await;
    let p = &job["progress"];
    assert_eq!(
        (p["succeeded"].as_i64(), p["failed"].as_i64(), p["invalid"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{job}"
    );
    let (_, invalid) = app.get(&format!("/v1/jobs/{}/entries?outcome=invalid", job["id"].as_str().unwrap())).await;
    assert_eq!(
        (invalid["data"][0]["line"].as_i64(), invalid["data"][0]["code"].as_str()),
        (Some(3), Some("e164")),
        "{invalid}"
    );
    let (status, e) = app.post_csv(&format!("/v1/campaigns/{id}/recipients"), "name,1\nAna,x\n".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a file without a `to` column: {e}");

    // The preflight checks each row against the template as a send would: the one with a
    // single value for two variables is reported with its position and the rule.
    let (status, pre) = app.post(&format!("/v1/campaigns/{id}/preflight"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pre}");
    assert_eq!((pre["checked"].as_i64(), pre["will_send"].as_i64()), (Some(6), Some(5)), "{pre}");
    assert_eq!(pre["skipped"]["invalid"], 1, "{pre}");
    assert_eq!(pre["duplicates"], 2, "one number given twice in the JSON, one again in the file: {pre}");
    assert_eq!(pre["errors"][0]["position"], 4, "{pre}");

    // Removed before it is sent; a number it does not have is 404.
    let (status, _) =
        app.request(Method::DELETE, &format!("/v1/campaigns/{id}/recipients/{}", bo.replace('+', "%2B")), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        app.request(Method::DELETE, &format!("/v1/campaigns/{id}/recipients/{}", bo.replace('+', "%2B")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, e) = app.post(&format!("/v1/campaigns/{id}/pause"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a draft cannot be paused: {e}");
    act(&app, &id, "start").await;
    let done = eventually("the campaign to complete", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "completed" && c["counts"]["read"] == 4).then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["skipped_by_reason"]["invalid"], 1, "{}", done["counts"]);
    assert_counts_are_the_rows(&app, &id).await;
    let (_, skipped) = app.get(&format!("/v1/campaigns/{id}/recipients?status=skipped")).await;
    assert_eq!(skipped["data"][0]["error"]["reason"], "invalid", "{skipped}");
    let (status, e) = app.post(&format!("/v1/campaigns/{id}/recipients"), json!([{"to": customer()}])).await;
    assert_eq!(status, StatusCode::CONFLICT, "a completed campaign takes no more: {e}");

    // The export: a line per recipient with its status and message.
    let csv = app
        .http
        .get(format!("{}/v1/campaigns/{id}/recipients.csv", app.url))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "to,status,reason,message_id,wamid,error_code,error,attempts,updated_at");
    assert_eq!(lines.len(), 1 + 5, "{csv}");
    assert_eq!(lines.iter().filter(|l| l.contains(",read,")).count(), 4, "{csv}");
    // Unicode survives the round trip on both backends.
    let (_, read) = app.get(&format!("/v1/campaigns/{id}/recipients?status=read&limit=100")).await;
    assert!(read["data"].as_array().unwrap().iter().any(|r| r["params"][0] == "\u{202e}Zoë 🌸"), "{read}");

    // A clone is a new draft with the same recipients, none sent.
    let (status, copy) = app.post(&format!("/v1/campaigns/{id}/clone"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_eq!((copy["state"].as_str(), copy["counts"]["pending"].as_i64()), (Some("draft"), Some(5)), "{copy}");
    assert_eq!(copy["metadata"]["team"], "clinic");
    let (status, listed) = app.get("/v1/campaigns?state=draft").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], copy["id"]);
    let (status, e) = app.get("/v1/campaigns?state=sleeping").await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("state")));
    // Cancelled before it starts: every recipient skipped as canceled, nothing sent.
    let copy_id = copy["id"].as_str().unwrap();
    let canceled = act(&app, copy_id, "cancel").await;
    assert_eq!(canceled["state"], "canceled");
    assert_eq!(canceled["counts"]["skipped_by_reason"]["canceled"], 5, "{}", canceled["counts"]);
    app.stop().await;
}

async fn failed_recipients_are_retried_only_when_meta_says_it_may_pass(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    approved_template(&app, &sandbox, key, "flash_sale", "MARKETING", "Flash sale, {{1}}!").await;
    let (limited, gone) = (customer(), customer());
    for (who, code) in [(&limited, 131_049), (&gone, 131_026)] {
        let url = format!("{sandbox}/control/failures/{}", who.trim_start_matches('+'));
        let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"code": code}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let id = create(&app, &phone, "flash_sale", json!({"max_failure_share": 1.0})).await;
    let mut rows: Vec<Value> = (0..8).map(|_| json!({"to": customer(), "params": ["you"]})).collect();
    rows.push(json!({"to": limited, "params": ["you"]}));
    rows.push(json!({"to": gone, "params": ["you"]}));
    add(&app, &id, Value::Array(rows)).await;
    act(&app, &id, "start").await;
    let done = eventually("the campaign to complete with two failures", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "completed" && c["counts"]["failed"] == 2 && c["counts"]["read"] == 8).then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["failed_by_code"], json!({"131026": 1, "131049": 1}), "{}", done["counts"]);
    let (_, failed) = app.get(&format!("/v1/campaigns/{id}/recipients?status=failed")).await;
    assert!(
        failed["data"].as_array().unwrap().iter().all(|r| r["error"]["code"].is_i64() && r["message_id"].is_string())
    );

    // Meta's per-user marketing limit passes later; an undeliverable number does not.
    let url = format!("{sandbox}/control/failures/{}", limited.trim_start_matches('+'));
    let (status, _) = request(&app.http, Method::DELETE, &url, key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, retried) = app.post(&format!("/v1/campaigns/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["requeued"], 1, "{retried}");
    let done = eventually("the retried recipient to be read", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "completed" && c["counts"]["read"] == 9).then_some(c)
    })
    .await;
    assert_eq!(done["counts"]["failed_by_code"], json!({"131026": 1}), "{}", done["counts"]);
    let received = received_campaign(&app, &sandbox, key, &phone).await;
    let to_limited =
        received.iter().filter(|(to, _)| to.trim_start_matches('+') == limited.trim_start_matches('+')).count();
    assert_eq!(to_limited, 2, "the retry is a second send, under its own key");
    let (_, r) = app.get(&format!("/v1/campaigns/{id}/recipients?status=read&limit=100")).await;
    let limited_row = r["data"].as_array().unwrap().iter().find(|x| x["to"] == limited.as_str()).unwrap().clone();
    assert_eq!(limited_row["attempts"], 2, "{limited_row}");
    app.stop().await;
}

async fn contacts_chosen_by_tag_get_their_own_names_on_schedule_and_replies_are_counted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    approved_template(&app, &sandbox, key, "welcome_back", "UTILITY", "Welcome back, {{1}}!").await;
    // Three customers wrote; two are tagged `vip` with a first name, one `vip` without one.
    let (ana, bo, cy, dee) = (customer(), customer(), customer(), customer());
    for (who, attributes, tags) in [
        (&ana, json!({"first_name": "Ana"}), json!(["vip"])),
        (&bo, json!({"first_name": "Bo"}), json!(["vip", "lead"])),
        (&cy, json!({}), json!(["vip"])),
        (&dee, json!({"first_name": "Dee"}), json!(["lead"])),
    ] {
        app.customer_writes(&phone, who, "hi").await;
        let contact = app.contact_of(who).await;
        let (status, body) = app
            .request(
                Method::PATCH,
                &format!("/v1/contacts/{contact}"),
                Some(json!({"attributes": attributes, "tags": tags})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let send_at = wagate_domain::time::Timestamp::now().plus(std::time::Duration::from_secs(2));
    let id = create(&app, &phone, "welcome_back", json!({"send_at": send_at.to_string()})).await;
    let added = add(&app, &id, json!({"tags": ["VIP"], "params": ["{{contact.first_name}}"]})).await;
    assert_eq!(added["added"], 3, "{added}");
    let (_, pre) = app.post(&format!("/v1/campaigns/{id}/preflight"), json!({})).await;
    assert_eq!((pre["will_send"].as_i64(), pre["outside_window"].as_i64()), (Some(2), Some(0)), "{pre}");
    assert_eq!(pre["errors"][0]["code"], "missing_contact_field", "{pre}");
    assert_eq!(pre["errors"][0]["to"], cy.as_str(), "{pre}");

    let c = act(&app, &id, "start").await;
    assert_eq!(c["state"], "scheduled", "it waits for its send_at: {c}");
    // Appended while it waits, by number, naming a field the contact has.
    add(&app, &id, json!([{"to": dee, "params": ["{{contact.first_name}}"]}])).await;
    let done = eventually("the scheduled campaign to run and complete", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "completed" && c["counts"]["read"] == 3).then_some(c)
    })
    .await;
    assert!(done["started_at"].as_str().unwrap() >= send_at.to_string().as_str(), "{done}");
    assert_eq!(done["counts"]["skipped_by_reason"]["invalid"], 1, "{}", done["counts"]);
    let received =
        request(&app.http, Method::GET, &format!("{sandbox}/control/messages?phone_number_id={phone}"), key, None)
            .await
            .1;
    let names: Vec<&str> = received["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"]["type"] == "template")
        .map(|m| m["body"]["template"]["components"][0]["parameters"][0]["text"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["Ana", "Bo", "Dee"], "each got their own name");

    // One writes back: counted as replied.
    app.customer_writes(&phone, &bo, "thanks!").await;
    let c = eventually("the reply to be counted", || async {
        let c = campaign(&app, &id).await;
        (c["counts"]["replied"] == 1).then_some(c)
    })
    .await;
    assert_eq!(c["counts"]["read"], 3);
    app.stop().await;
}

async fn a_campaign_whose_sends_keep_failing_pauses_itself(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let phone = app.sandbox_numbers().await[0].clone();
    approved_template(&app, &sandbox, key, "stock_alert", "UTILITY", "Good news: {{1}} is back in stock.").await;
    set_throughput(&app, &sandbox, &phone, 20).await;
    let mut rows = Vec::new();
    for i in 0..200 {
        let to = customer();
        // Half the numbers are unreachable: Meta fails them (131026) after accepting them.
        if i % 2 == 0 {
            let url = format!("{sandbox}/control/failures/{}", to.trim_start_matches('+'));
            let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"code": 131_026}))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        rows.push(json!({"to": to, "params": ["The blue lamp"]}));
    }
    let id = create(&app, &phone, "stock_alert", json!({"max_failure_share": 0.2})).await;
    add(&app, &id, Value::Array(rows)).await;
    act(&app, &id, "start").await;
    let paused = eventually("the campaign to pause for its failures", || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "paused").then_some(c)
    })
    .await;
    assert_eq!(paused["pause_reason"], "too_many_failures", "{paused}");
    assert!(paused["pause_detail"].as_str().unwrap().contains("20 %"), "{paused}");
    assert!(paused["counts"]["pending"].as_i64().unwrap() > 100, "it stopped early: {}", paused["counts"]);
    assert!(paused["counts"]["failed_by_code"]["131026"].as_i64().unwrap() >= 4, "{}", paused["counts"]);
    // Nothing failed is worth retrying: undeliverable stays undeliverable.
    let (_, retried) = app.post(&format!("/v1/campaigns/{id}/retry-failed"), json!({})).await;
    assert_eq!(retried["requeued"], 0, "{retried}");
    let canceled = act(&app, &id, "cancel").await;
    assert_eq!(canceled["state"], "canceled");
    let (_, events) = app.get("/v1/events?type=campaign.canceled").await;
    assert_eq!(events["data"][0]["data"]["id"], id.as_str(), "{events}");
    app.stop().await;
}

on_each_backend!(
    contacts_chosen_by_tag_get_their_own_names_on_schedule_and_replies_are_counted,
    a_campaign_whose_sends_keep_failing_pauses_itself,
    a_campaign_keeps_to_its_rate_pauses_resumes_and_sends_each_recipient_once,
    a_marketing_campaign_skips_who_opted_out_and_stops_when_meta_pauses_its_template,
    the_messaging_limit_makes_a_campaign_wait_and_a_flagged_number_pauses_it,
    recipients_are_checked_row_by_row_and_accounted_for,
    failed_recipients_are_retried_only_when_meta_says_it_may_pass,
);
