mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;
use wagate_sandbox::StatusDelays;

/// The `status` of each entry, in order.
fn names(statuses: &[Value]) -> Vec<&str> {
    statuses.iter().map(|s| s["status"].as_str().unwrap_or("?")).collect()
}

fn text_to(to: &str) -> Value {
    json!({"to": to, "type": "text", "text": {"body": "Your order has shipped."}})
}

/// A template with a plain body, created and approved; its send body to `to`.
async fn template(h: &Harness, category: &str, to: &str) -> Value {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("{}_note_{}", category.to_lowercase(), NEXT.fetch_add(1, Ordering::Relaxed));
    h.approved_template(json!({
        "name": name,
        "language": "en_US",
        "category": category,
        "components": [{"type": "BODY", "text": "Thank you for shopping with us."}],
    }))
    .await;
    json!({"to": to, "type": "template", "template": {"name": name, "language": {"code": "en_US"}}})
}

/// Meta's one-time-password template and a send of it to `to`.
async fn authentication_template(h: &Harness, to: &str) -> Value {
    let templates: Vec<Value> = serde_json::from_str(TEMPLATES).unwrap();
    let otp = templates.into_iter().find(|t| t["category"] == "AUTHENTICATION").expect("an authentication template");
    h.approved_template(otp.clone()).await;
    json!({"to": to, "type": "template", "template": {
        "name": otp["name"], "language": {"code": otp["language"]},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "J$FpnYnP"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "J$FpnYnP"}]}
        ]
    }})
}

/// Waits until `wamid` has settled (`sent`, `delivered`, `read`): later statuses of messages
/// sent before it are due no later, so a check after this sees them if they were owed.
async fn settle(h: &Harness) {
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(text_to(&c)).await;
    h.hooks.wait_statuses(&wamid, 3).await;
}

/// Every (envelope, entry, change value) that carries a status of `wamid`.
fn carriers(h: &Harness, wamid: &str) -> Vec<(Value, Value, Value)> {
    let mut out = Vec::new();
    for d in h.hooks.deliveries() {
        for entry in d.json["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                let statuses = change["value"]["statuses"].as_array().cloned().unwrap_or_default();
                if statuses.iter().any(|s| s["id"] == wamid) {
                    out.push((d.json.clone(), entry.clone(), change.clone()));
                }
            }
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn an_accepted_message_is_sent_then_delivered_then_read() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(text_to(&c)).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    assert_eq!(names(&statuses), ["sent", "delivered", "read"]);
    settle(&h).await;
    assert_eq!(h.hooks.statuses(&wamid).len(), 3, "a text is never played: {:?}", h.hooks.statuses(&wamid));
}

#[tokio::test]
async fn status_webhooks_come_in_metas_envelope_with_the_numbers_metadata() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(text_to(&c)).await;
    h.hooks.wait_statuses(&wamid, 3).await;
    let carriers = carriers(&h, &wamid);
    assert_eq!(carriers.len(), 3, "one change per status");
    for (envelope, entry, change) in carriers {
        assert_eq!(envelope["object"], "whatsapp_business_account");
        assert_eq!(entry["id"], h.waba(), "entry.id is the WABA id");
        assert_eq!(change["field"], "messages");
        let value = &change["value"];
        assert_eq!(value["messaging_product"], "whatsapp");
        assert_eq!(
            value["metadata"],
            json!({"display_phone_number": h.number_digits(), "phone_number_id": h.number()})
        );
        let display = value["metadata"]["display_phone_number"].as_str().unwrap();
        assert!(!display.is_empty() && display.bytes().all(|b| b.is_ascii_digit()), "{display}");
    }
}

#[tokio::test]
async fn each_status_names_the_message_the_recipient_and_when_as_a_string() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(json!({"to": format!("+{c}"), "type": "text", "text": {"body": "hello"}})).await;
    let before = unix_now();
    for s in h.hooks.wait_statuses(&wamid, 3).await {
        assert_eq!(s["id"], wamid);
        assert_eq!(s["recipient_id"], c, "the wa_id, digits only");
        let timestamp = s["timestamp"].as_str().unwrap_or_else(|| panic!("timestamp is a string: {s}"));
        let at: u64 = timestamp.parse().unwrap_or_else(|_| panic!("Unix seconds: {timestamp}"));
        assert!(at.abs_diff(before) < 3_600, "{at} is not around now ({before})");
        assert!(s.get("recipient_type").is_none() && s.get("errors").is_none(), "{s}");
    }
}

#[tokio::test]
async fn statuses_of_a_message_to_a_business_scoped_user_id_name_the_user_and_leave_recipient_id_empty() {
    let h = Harness::start().await;
    let user = "user.9373795779eb6441c8adb2eaee5b848e7dd174ddd302d7db62142f4722d574b6";
    let hello =
        json!({"to": user, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let wamid = h.send_ok(hello).await;
    for s in h.hooks.wait_statuses(&wamid, 3).await {
        assert_eq!(s["recipient_user_id"], user, "{s}");
        assert_eq!(s["recipient_id"], "", "the sandbox never knows the number behind a BSUID: {s}");
    }
}

#[tokio::test]
async fn a_service_message_is_free_customer_service_on_sent_and_delivered_and_bare_on_read() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(text_to(&c)).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    let by = |name: &str| statuses.iter().find(|s| s["status"] == name).unwrap().clone();
    let (sent, delivered, read) = (by("sent"), by("delivered"), by("read"));
    let free =
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"});
    assert_eq!(sent["pricing"], free);
    assert_eq!(delivered["pricing"], free);
    assert_eq!(sent["conversation"]["origin"]["type"], "service");
    assert_eq!(delivered["conversation"]["origin"]["type"], "service");
    let id = sent["conversation"]["id"].as_str().expect("a conversation id");
    assert!(!id.is_empty());
    assert_eq!(delivered["conversation"]["id"], id, "one conversation per message");
    let expires: u64 = sent["conversation"]["expiration_timestamp"].as_str().expect("a string").parse().unwrap();
    assert!(expires > unix_now(), "the conversation expires in the future");
    assert!(delivered["conversation"].get("expiration_timestamp").is_none(), "only sent carries it: {delivered}");
    assert!(
        read.get("conversation").is_none() && read.get("pricing").is_none(),
        "v23 prices sent and one other: {read}"
    );
}

#[tokio::test]
async fn each_message_has_its_own_conversation_id() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let first = h.send_ok(text_to(&c)).await;
    let second = h.send_ok(text_to(&c)).await;
    let first = h.hooks.wait_statuses(&first, 1).await.remove(0);
    let second = h.hooks.wait_statuses(&second, 1).await.remove(0);
    assert!(first["conversation"]["id"].is_string(), "{first}");
    assert_ne!(first["conversation"]["id"], second["conversation"]["id"], "v23: a unique id per message");
}

#[tokio::test]
async fn a_marketing_template_is_billed_as_marketing() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(template(&h, "MARKETING", &c).await).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    let billed = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing"});
    for s in statuses.iter().filter(|s| s["status"] != "read") {
        assert_eq!(s["pricing"], billed, "{s}");
        assert_eq!(s["conversation"]["origin"]["type"], "marketing", "{s}");
    }
}

#[tokio::test]
async fn a_utility_template_outside_the_window_is_billed_as_utility() {
    let h = Harness::start().await;
    let c = customer();
    let wamid = h.send_ok(template(&h, "UTILITY", &c).await).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    let billed = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"});
    for s in statuses.iter().filter(|s| s["status"] != "read") {
        assert_eq!(s["pricing"], billed, "{s}");
        assert_eq!(s["conversation"]["origin"]["type"], "utility", "{s}");
    }
}

#[tokio::test]
async fn a_utility_template_inside_the_window_is_free() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(template(&h, "UTILITY", &c).await).await;
    let sent = h.hooks.wait_statuses(&wamid, 1).await.remove(0);
    assert_eq!(
        sent["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "utility"})
    );
}

#[tokio::test]
async fn an_authentication_template_is_billed_as_authentication() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let wamid = h.send_ok(authentication_template(&h, &c).await).await;
    let sent = h.hooks.wait_statuses(&wamid, 1).await.remove(0);
    assert_eq!(
        sent["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "authentication"})
    );
    assert_eq!(sent["conversation"]["origin"]["type"], "authentication");
}

#[tokio::test]
async fn group_messages_report_the_group_and_group_pricing() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.group_with(&[&c]).await;
    let text =
        h.send_ok(json!({"recipient_type": "group", "to": group, "type": "text", "text": {"body": "hi all"}})).await;
    let mut promo = template(&h, "MARKETING", &group).await;
    promo["recipient_type"] = json!("group");
    let promo = h.send_ok(promo).await;
    let text = h.hooks.wait_statuses(&text, 1).await.remove(0);
    assert_eq!(text["recipient_id"], group);
    assert_eq!(text["recipient_type"], "group");
    assert_eq!(
        text["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_group_customer_service", "category": "group_service"})
    );
    let promo = h.hooks.wait_statuses(&promo, 1).await.remove(0);
    assert_eq!(
        promo["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "group_marketing"})
    );
}

#[tokio::test]
async fn biz_opaque_callback_data_is_echoed_on_every_status() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let mut body = text_to(&c);
    body["biz_opaque_callback_data"] = json!("order-42/äö");
    let wamid = h.send_ok(body).await;
    for s in h.hooks.wait_statuses(&wamid, 3).await {
        assert_eq!(s["biz_opaque_callback_data"], "order-42/äö", "{s}");
    }
    let other = h.send_ok(text_to(&c)).await;
    for s in h.hooks.wait_statuses(&other, 3).await {
        assert!(s.get("biz_opaque_callback_data").is_none(), "only when the send set it: {s}");
    }
}

#[tokio::test]
async fn a_voice_message_is_also_played_after_read() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let voice = json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/note.ogg", "voice": true}});
    let wamid = h.send_ok(voice).await;
    let statuses = h.hooks.wait_statuses(&wamid, 4).await;
    assert_eq!(names(&statuses), ["sent", "delivered", "read", "played"]);
    let played = &statuses[3];
    assert_eq!(played["recipient_id"], c);
    assert!(played.get("pricing").is_none() && played.get("errors").is_none(), "{played}");
    // `business-scoped-user-ids.mdx`: contacts on sent, delivered and read only.
    for (_, _, change) in carriers(&h, &wamid) {
        let status = change["value"]["statuses"][0]["status"].as_str().unwrap().to_owned();
        let contacts = change["value"].get("contacts");
        if status == "played" {
            assert!(contacts.is_none(), "played carries no contacts: {change}");
        } else {
            assert_eq!(contacts.unwrap()[0]["wa_id"], c, "{status}: {change}");
        }
    }
}

#[tokio::test]
async fn an_audio_file_that_is_not_a_voice_message_is_never_played() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let audio = h.send_ok(json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/song.mp3"}})).await;
    let voice = json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/note.ogg", "voice": true}});
    let voice = h.send_ok(voice).await;
    // The voice message, sent later, is played no earlier than the audio file would be.
    h.hooks.wait_statuses(&voice, 4).await;
    assert_eq!(names(&h.hooks.statuses(&audio)), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_reaction_is_only_sent() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let message = h.send_ok(text_to(&c)).await;
    let reaction =
        h.send_ok(json!({"to": c, "type": "reaction", "reaction": {"message_id": message, "emoji": "👍"}})).await;
    assert_eq!(names(&h.hooks.wait_statuses(&reaction, 1).await), ["sent"]);
    settle(&h).await;
    assert_eq!(names(&h.hooks.statuses(&reaction)), ["sent"], "no delivered or read for a reaction");
}

#[tokio::test]
async fn status_delays_are_configurable() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    // `delivered` ten minutes away: `sent` comes, and nothing more (`read` counts as due with it).
    let (status, settings) = h
        .control(
            Method::PATCH,
            "control/settings",
            Some(json!({"statuses": {"sent_ms": 0, "delivered_ms": 600_000, "read_ms": 60}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["statuses"], json!({"sent_ms": 0, "delivered_ms": 600_000, "read_ms": 60, "played_ms": 80}));
    let held = h.send_ok(text_to(&c)).await;
    assert_eq!(names(&h.hooks.wait_statuses(&held, 1).await), ["sent"]);
    // Lowered, the delay applies to what is sent next: that message, sent later, is delivered
    // and read while the first one still waits for its `delivered`.
    h.patch_settings(json!({"statuses": {"delivered_ms": 100, "read_ms": 200}})).await;
    let prompt = h.send_ok(text_to(&c)).await;
    let statuses = h.hooks.wait_statuses(&prompt, 3).await;
    assert_eq!(names(&statuses), ["sent", "delivered", "read"]);
    assert_eq!(names(&h.hooks.statuses(&held)), ["sent"], "the first message's delivered is not due yet");
    // Each is stamped when it is due, in order.
    let at: Vec<u64> = statuses.iter().map(|s| s["timestamp"].as_str().unwrap().parse().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
}

#[tokio::test]
async fn statuses_keep_metas_order_whatever_the_delays() {
    // `wagate sandbox --read-delay-ms 3000` sets read later than the default played (2000 ms).
    let h = Harness::start_with(Options {
        delays: StatusDelays {
            sent: Duration::from_millis(20),
            delivered: Duration::from_millis(40),
            read: Duration::from_millis(3_000),
        },
        ..Options::default()
    })
    .await;
    h.patch_settings(json!({"statuses": {"played_ms": 2_000}})).await;
    let c = h.customer_who_wrote("hi").await;
    let voice = json!({"to": c, "type": "audio", "audio": {"link": "https://example.com/note.ogg", "voice": true}});
    let wamid = h.send_ok(voice).await;
    assert_eq!(names(&h.hooks.wait_statuses(&wamid, 4).await), ["sent", "delivered", "read", "played"]);
    // `sent` set later than `delivered` still comes first.
    h.patch_settings(json!({"statuses": {"sent_ms": 400, "delivered_ms": 50, "read_ms": 60}})).await;
    let wamid = h.send_ok(text_to(&c)).await;
    assert_eq!(names(&h.hooks.wait_statuses(&wamid, 3).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_groups_delivered_and_read_come_as_one_webhook_each_with_a_status_per_participant() {
    let h = Harness::start().await;
    let (a, b) = (customer(), customer());
    let group = h.group_with(&[&a, &b]).await;
    let wamid =
        h.send_ok(json!({"recipient_type": "group", "to": group, "type": "text", "text": {"body": "hi all"}})).await;
    let statuses = h.hooks.wait_statuses(&wamid, 5).await;
    let carriers = carriers(&h, &wamid);
    let per_change: Vec<Vec<Value>> =
        carriers.iter().map(|(_, _, change)| change["value"]["statuses"].as_array().unwrap().clone()).collect();
    assert_eq!(
        per_change.iter().map(|s| names(s)).collect::<Vec<_>>(),
        [vec!["sent"], vec!["delivered"; 2], vec!["read"; 2]]
    );
    // `sent` is about the group as a whole.
    let sent = &per_change[0][0];
    assert_eq!((&sent["recipient_id"], &sent["recipient_type"]), (&json!(group), &json!("group")), "{sent}");
    assert!(sent.get("recipient_participant_id").is_none(), "{sent}");
    // The others name the group and, apart, each participant's number.
    for s in per_change[1..].iter().flatten() {
        assert_eq!((&s["recipient_id"], &s["recipient_type"]), (&json!(group), &json!("group")), "{s}");
    }
    for change in &per_change[1..] {
        let mut who: Vec<&str> = change.iter().map(|s| s["recipient_participant_id"].as_str().unwrap()).collect();
        who.sort();
        let mut members = [a.as_str(), b.as_str()];
        members.sort();
        assert_eq!(who, members, "{change:?}");
    }
    // Billed per participant reached.
    assert!(per_change[1].iter().all(|s| s["pricing"]["category"] == "group_service"), "{statuses:?}");
}

#[tokio::test]
async fn a_recipient_set_to_fail_gets_a_failed_status_with_metas_error() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let (status, body) = h.control(Method::PUT, &format!("control/failures/{c}"), Some(json!({"code": 131026}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut send = text_to(&c);
    send["biz_opaque_callback_data"] = json!("tracking-7");
    let wamid = h.send_ok(send).await;
    let failed = h.hooks.wait_statuses(&wamid, 1).await.remove(0);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["recipient_id"], c);
    assert_eq!(failed["biz_opaque_callback_data"], "tracking-7");
    let errors = failed["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["code"], 131026);
    assert_eq!(e["title"], "Message Undeliverable");
    assert_eq!(e["message"], e["title"], "Meta's message repeats the title");
    assert!(e["error_data"]["details"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
    assert!(e["href"].as_str().is_some_and(|href| href.contains("error-codes")), "{e}");
    assert!(failed.get("pricing").is_none() && failed.get("conversation").is_none(), "{failed}");
    settle(&h).await;
    assert_eq!(names(&h.hooks.statuses(&wamid)), ["failed"], "nothing follows a failure");
}

#[tokio::test]
async fn every_failure_code_fails_a_marketing_template_with_that_code() {
    let h = Harness::start().await;
    for code in [131_000, 131_026, 131_049, 131_050] {
        let c = customer();
        let (status, body) =
            h.control(Method::PUT, &format!("control/failures/{c}"), Some(json!({"code": code}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["code"], code);
        let wamid = h.send_ok(template(&h, "MARKETING", &c).await).await;
        let failed = h.hooks.wait_statuses(&wamid, 1).await.remove(0);
        assert_eq!(failed["status"], "failed", "{code}: {failed}");
        assert_eq!(failed["errors"][0]["code"], code);
        assert!(failed["errors"][0]["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

/// A user failing with `code` (a marketing-only one) still gets everything but marketing.
async fn fails_marketing_only(code: i64) {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let (status, body) = h.control(Method::PUT, &format!("control/failures/{c}"), Some(json!({"code": code}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let marketing = h.send_ok(template(&h, "MARKETING", &c).await).await;
    let text = h.send_ok(text_to(&c)).await;
    let utility = h.send_ok(template(&h, "UTILITY", &c).await).await;
    let failed = h.hooks.wait_statuses(&marketing, 1).await.remove(0);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["errors"][0]["code"], code);
    assert_eq!(names(&h.hooks.wait_statuses(&text, 3).await), ["sent", "delivered", "read"]);
    assert_eq!(names(&h.hooks.wait_statuses(&utility, 3).await), ["sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_user_who_opted_out_of_marketing_fails_marketing_templates_only() {
    fails_marketing_only(131_050).await;
}

#[tokio::test]
async fn metas_engagement_limit_fails_marketing_templates_only() {
    fails_marketing_only(131_049).await;
}

#[tokio::test]
async fn a_failure_set_on_a_plus_number_applies_to_its_wa_id() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let (status, body) = h.control(Method::PUT, &format!("control/failures/+{c}"), Some(json!({"code": 131026}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = h.control(Method::GET, "control/failures", None).await;
    assert_eq!(list["data"], json!([{"user": c, "code": 131026, "title": "Message Undeliverable"}]));
    let wamid = h.send_ok(text_to(&c)).await;
    assert_eq!(names(&h.hooks.wait_statuses(&wamid, 1).await), ["failed"]);
}

#[tokio::test]
async fn deleting_a_failure_lets_messages_through_again() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    h.control(Method::PUT, &format!("control/failures/{c}"), Some(json!({"code": 131026}))).await;
    let (status, _) = h.control(Method::DELETE, &format!("control/failures/{c}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = h.control(Method::GET, "control/failures", None).await;
    assert_eq!(list["data"], json!([]));
    let wamid = h.send_ok(text_to(&c)).await;
    assert_eq!(names(&h.hooks.wait_statuses(&wamid, 3).await), ["sent", "delivered", "read"]);
    let (status, body) = h.control(Method::DELETE, &format!("control/failures/{c}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to clear: {body}");
}

#[tokio::test]
async fn an_unknown_failure_code_is_refused_naming_code() {
    let h = Harness::start().await;
    let c = customer();
    for bad in [json!({"code": 131047}), json!({"code": "131026"})] {
        let (status, body) = h.control(Method::PUT, &format!("control/failures/{c}"), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["path"], "code", "{body}");
    }
    let (_, list) = h.control(Method::GET, "control/failures", None).await;
    assert_eq!(list["data"], json!([]), "nothing was set");
}
