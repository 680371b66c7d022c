//! Contacts and conversations through HTTP: contacts made from Meta's own webhook payloads
//! (`business-scoped-user-ids.mdx`, the `messages`, `system` and `user_preferences` references),
//! linked by wa_id and user_id; conversations sorted by last message with unread counts and the
//! 24-hour window; mark-read reaching the sandbox; message pages both ways; PATCH rules.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

fn now_s() -> i64 {
    wagate_domain::time::Timestamp::now().as_millis() / 1000
}

/// Posts one change as Meta would (signed with the app secret) and waits until it is processed.
async fn deliver(app: &TestApp, sb: &SandboxAccount, field: &str, mut value: Value) {
    value["messaging_product"] = json!("whatsapp");
    if value.get("metadata").is_none() {
        value["metadata"] = json!({"display_phone_number": "15550783881", "phone_number_id": sb.phone_number_id});
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": sb.waba_id, "changes": [{"value": value, "field": field}]}],
    })
    .to_string();
    post_signed(app, sb, body.into_bytes()).await;
    all_processed(app).await;
}

/// An incoming text as Meta sends it: `wa_id` and `from` empty for a username user.
fn text_from(wa_id: &str, user_id: Option<&str>, name: &str, wamid: &str, sent_s: i64) -> Value {
    let mut contact = json!({"profile": {"name": name}, "wa_id": wa_id});
    let mut message = json!({"from": wa_id, "id": wamid, "timestamp": sent_s.to_string(), "type": "text",
        "text": {"body": format!("hello from {name}")}});
    if let Some(u) = user_id {
        contact["user_id"] = json!(u);
        contact["profile"]["username"] = json!(format!("@{}", name.to_lowercase().replace(' ', "")));
        contact["profile"]["country_code"] = json!("US");
        message["from_user_id"] = json!(u);
    }
    json!({"contacts": [contact], "messages": [message]})
}

async fn find_contacts(app: &TestApp, q: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/contacts?q={}", urlencode(q))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

async fn contacts_from_inbound_are_linked_by_wa_id_and_user_id(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sb = sandbox_account(&app).await;
    let phone = customer();
    let wa_id = phone.trim_start_matches('+').to_owned();
    let bsuid = format!("US.{}", wagate_domain::id::new_id("u").trim_start_matches("u_"));

    // A phone user first (no BSUID, as before usernames), then the same person as a username
    // user whose number Meta does not share: two contacts, as nothing links them yet.
    deliver(&app, &sb, "messages", text_from(&wa_id, None, "Sheena Nelson", "wamid.LINK1", now_s())).await;
    deliver(&app, &sb, "messages", text_from("", Some(&bsuid), "Sheena Nelson", "wamid.LINK2", now_s())).await;
    let by_phone = find_contacts(&app, &phone).await;
    assert_eq!(by_phone.len(), 1, "{by_phone:?}");
    assert_eq!((by_phone[0]["wa_id"].as_str(), &by_phone[0]["user_id"]), (Some(wa_id.as_str()), &Value::Null));
    let by_user = find_contacts(&app, &bsuid).await;
    assert_eq!(by_user.len(), 1, "{by_user:?}");
    assert_eq!((&by_user[0]["wa_id"], by_user[0]["user_id"].as_str()), (&Value::Null, Some(bsuid.as_str())));
    assert_eq!(by_user[0]["profile_name"], "Sheena Nelson");
    assert_ne!(by_phone[0]["id"], by_user[0]["id"]);
    let (_, m) = app.get("/v1/messages?direction=inbound&limit=1").await;
    assert_eq!(m["data"][0]["from"], bsuid.as_str(), "a username user's message is from their BSUID");

    // Meta names both ids in one message: the two become the older contact.
    deliver(&app, &sb, "messages", text_from(&wa_id, Some(&bsuid), "Sheena Nelson", "wamid.LINK3", now_s())).await;
    let older = by_phone[0]["id"].as_str().unwrap();
    let (status, linked) = app.get(&format!("/v1/contacts/{older}")).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!((linked["wa_id"].as_str(), linked["user_id"].as_str()), (Some(wa_id.as_str()), Some(bsuid.as_str())));
    let (status, gone) = app.get(&format!("/v1/contacts/{}", by_user[0]["id"].as_str().unwrap())).await;
    assert_eq!((status, gone["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let conversations = linked["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{linked}");
    assert_eq!(
        (conversations[0]["phone_number_id"].as_str(), conversations[0]["unread_count"].as_i64()),
        (Some(sb.phone_number_id.as_str()), Some(3))
    );
    let conversation = conversations[0]["id"].as_str().unwrap();
    let (_, page) = app.get(&format!("/v1/conversations/{conversation}/messages")).await;
    let wamids: Vec<&str> = page["data"].as_array().unwrap().iter().map(|m| m["wamid"].as_str().unwrap()).collect();
    assert_eq!(wamids, ["wamid.LINK3", "wamid.LINK2", "wamid.LINK1"], "both ids' messages in one conversation");
    // A send to either id reads the same 24-hour window.
    for to in [phone.as_str(), bsuid.as_str()] {
        let (status, sent) = app
            .post("/v1/messages", json!({"from": sb.phone_number_id, "to": to, "type": "text", "text": {"body": "hi"}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{to}: {sent}");
    }
    app.stop().await;
}

async fn a_customer_who_changes_number_keeps_contact_and_conversation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let (old, new) = (customer(), customer());
    app.customer_writes(&phone, &old, "before the change").await;
    let before = find_contacts(&app, &old).await;
    assert_eq!(before.len(), 1);
    let (_, convs) = app.get(&format!("/v1/conversations?phone_number_id={phone}")).await;
    let conversation = convs["data"][0]["id"].as_str().unwrap().to_owned();

    // The sandbox sends Meta's `system` message (`type: user_changed_number`, the new `wa_id`).
    let body = json!({"phone_number_id": phone, "from": old, "name": "Ana Customer",
        "message": {"type": "system", "system": {"type": "user_changed_number", "new_wa_id": new}}});
    let (status, resp) = app.post("/sandbox/simulate/inbound", body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let new_wa_id = new.trim_start_matches('+').to_owned();
    let moved = eventually("the contact to take the new number", || async {
        let (_, c) = app.get(&format!("/v1/contacts/{}", before[0]["id"].as_str().unwrap())).await;
        (c["wa_id"].as_str() == Some(new_wa_id.as_str())).then_some(c)
    })
    .await;
    assert_eq!(moved["conversations"][0]["id"].as_str(), Some(conversation.as_str()));
    assert!(find_contacts(&app, &old).await.is_empty(), "nobody has the old number now");
    assert_eq!(moved["conversations"][0]["unread_count"], 1, "a number change is not a message");

    app.customer_writes(&phone, &new, "after the change").await;
    let (_, c) = app.get(&format!("/v1/conversations/{conversation}")).await;
    assert_eq!((c["unread_count"].as_i64(), c["to"].as_str()), (Some(2), Some(new.as_str())), "{c}");
    let (_, page) = app.get(&format!("/v1/conversations/{conversation}/messages")).await;
    let from: Vec<&str> = page["data"].as_array().unwrap().iter().map(|m| m["from"].as_str().unwrap()).collect();
    assert_eq!(from, [new.as_str(), old.as_str()], "old and new number, one conversation");

    // Through the webhook receiver: Meta redelivers the message from before the change, and one
    // sent from the old number before the change arrives late. Neither makes a contact for the
    // old number; the late one joins the conversation.
    let mut sb = sandbox_account(&app).await;
    // The conversation's number (the sandbox account has several, listed in no set order).
    sb.phone_number_id = phone.clone();
    let old_wa_id = old.trim_start_matches('+').to_owned();
    let first = page["data"].as_array().unwrap().last().unwrap()["wamid"].as_str().unwrap().to_owned();
    deliver(&app, &sb, "messages", text_from(&old_wa_id, None, "Ana Customer", &first, now_s() - 120)).await;
    deliver(&app, &sb, "messages", text_from(&old_wa_id, None, "Ana Customer", "wamid.LATE1", now_s() - 60)).await;
    assert!(find_contacts(&app, &old).await.is_empty(), "still nobody has the old number");
    let (_, c) = app.get(&format!("/v1/contacts/{}", before[0]["id"].as_str().unwrap())).await;
    assert_eq!(c["wa_id"].as_str(), Some(new_wa_id.as_str()), "{c}");
    let (_, page) = app.get(&format!("/v1/conversations/{conversation}/messages")).await;
    let wamids: Vec<&str> = page["data"].as_array().unwrap().iter().map(|m| m["wamid"].as_str().unwrap()).collect();
    assert_eq!(wamids.len(), 3, "{wamids:?}");
    assert_eq!((wamids[0], wamids[2]), ("wamid.LATE1", first.as_str()), "{wamids:?}");
    let (_, c) = app.get(&format!("/v1/conversations/{conversation}")).await;
    assert_eq!(c["unread_count"].as_i64(), Some(3), "the replay is not counted: {c}");
    app.stop().await;
}

async fn user_preferences_opt_out_then_in(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sb = sandbox_account(&app).await;
    let phone = customer();
    let wa_id = phone.trim_start_matches('+').to_owned();
    let preference = |value: &str, at: i64| {
        let detail = format!("User requested to {value} marketing messages");
        json!({"contacts": [{"wa_id": wa_id}], "user_preferences": [{"wa_id": wa_id, "detail": detail,
            "category": "marketing_messages", "value": value, "timestamp": at}]})
    };
    let opt_out = || async {
        let found = find_contacts(&app, &phone).await;
        assert_eq!(found.len(), 1, "{found:?}");
        (found[0]["marketing_opt_out"].as_bool().unwrap(), found[0]["marketing_opt_out_at"].clone())
    };
    let t = now_s() - 60;
    deliver(&app, &sb, "user_preferences", preference("stop", t)).await;
    let (out, since) = opt_out().await;
    assert!(out, "a stop opts out a customer not seen before");
    assert_eq!(
        since.as_str().map(|s| wagate_domain::time::Timestamp::parse_rfc3339(s).unwrap().as_millis()),
        Some(t * 1000)
    );
    deliver(&app, &sb, "user_preferences", preference("resume", t + 10)).await;
    assert!(!opt_out().await.0, "resumed");
    // Webhooks are not ordered: a stop older than the resume, arriving now, changes nothing.
    deliver(&app, &sb, "user_preferences", preference("stop", t + 5)).await;
    assert!(!opt_out().await.0, "a late older stop is ignored");

    // A username user's preference names their BSUID (`business-scoped-user-ids.mdx`).
    let bsuid = format!("US.{}", wagate_domain::id::new_id("p").trim_start_matches("p_"));
    let value = json!({"contacts": [{"profile": {"name": "Pablo M.", "username": "@pablomorales", "country_code": "US"},
        "wa_id": "", "user_id": bsuid}], "user_preferences": [{"wa_id": "", "user_id": bsuid,
        "detail": "User requested to stop marketing messages", "category": "marketing_messages", "value": "stop",
        "timestamp": now_s()}]});
    deliver(&app, &sb, "user_preferences", value).await;
    let pablo = find_contacts(&app, &bsuid).await;
    // The sandbox's (widely known) secret cannot opt out customers of numbers it does not own.
    let stranger = customer();
    let mut forged = preference("stop", now_s());
    forged["user_preferences"][0]["wa_id"] = json!(stranger.trim_start_matches('+'));
    forged["metadata"] = json!({"display_phone_number": "15550000000", "phone_number_id": "999999"});
    deliver(&app, &sb, "user_preferences", forged).await;
    assert!(find_contacts(&app, &stranger).await.is_empty(), "a preference for another account's number");
    assert_eq!(pablo.len(), 1);
    assert_eq!(
        (pablo[0]["marketing_opt_out"].as_bool(), pablo[0]["profile_name"].as_str()),
        (Some(true), Some("Pablo M."))
    );
    app.stop().await;
}

async fn conversations_sort_by_last_message_with_unread_and_window(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sb = sandbox_account(&app).await;
    let phone = sb.phone_number_id.clone();
    let (ana, bo, cy) = (customer(), customer(), customer());
    // Cy wrote two days ago: the window is closed.
    let two_days_ago = now_s() - 2 * 86_400;
    deliver(&app, &sb, "messages", text_from(cy.trim_start_matches('+'), None, "Cy", "wamid.OLD1", two_days_ago)).await;
    let ana_wamid = app.customer_writes(&phone, &ana, "first").await;
    app.customer_writes(&phone, &bo, "one").await;
    app.customer_writes(&phone, &bo, "two").await;

    let list = || async {
        let (status, body) = app.get(&format!("/v1/conversations?phone_number_id={phone}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    };
    let to = |cs: &[Value]| cs.iter().map(|c| c["to"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let cs = list().await;
    assert_eq!(to(&cs), [bo.clone(), ana.clone(), cy.clone()], "by last message, newest first");
    let unread: Vec<i64> = cs.iter().map(|c| c["unread_count"].as_i64().unwrap()).collect();
    assert_eq!(unread, [2, 1, 1]);
    assert_eq!(cs[0]["window"]["state"], "open");
    let open_until = wagate_domain::time::Timestamp::parse_rfc3339(cs[0]["window"]["open_until"].as_str().unwrap());
    let last_inbound = wagate_domain::time::Timestamp::parse_rfc3339(cs[0]["last_inbound_at"].as_str().unwrap());
    assert_eq!(open_until.unwrap().as_millis() - last_inbound.unwrap().as_millis(), 86_400_000);
    assert_eq!(
        (cs[2]["window"]["state"].as_str(), cs[2]["contact"]["profile_name"].as_str()),
        (Some("closed"), Some("Cy"))
    );

    // Replying to Ana makes hers the latest conversation; a reply is not unread.
    let (status, reply) =
        app.post("/v1/messages", json!({"from": phone, "to": ana, "type": "text", "text": {"body": "hi Ana"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let cs = list().await;
    assert_eq!(to(&cs), [ana.clone(), bo.clone(), cy.clone()]);
    assert_eq!((cs[0]["last_message_id"].as_str(), cs[0]["unread_count"].as_i64()), (reply["id"].as_str(), Some(1)));
    // Pages follow the order.
    let (_, first) = app.get(&format!("/v1/conversations?phone_number_id={phone}&limit=2")).await;
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, rest) = app.get(&format!("/v1/conversations?phone_number_id={phone}&limit=2&cursor={cursor}")).await;
    assert_eq!((to(rest["data"].as_array().unwrap()), &rest["next_cursor"]), (vec![cy.clone()], &Value::Null));
    let (status, e) = app.get(&format!("/v1/conversations?cursor={}", reply["id"].as_str().unwrap())).await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")));

    // Mark read: the sandbox receives a read receipt for Ana's newest message; unread → 0.
    let ana_conv = cs[0]["id"].as_str().unwrap().to_owned();
    let (status, read) = app.post(&format!("/v1/conversations/{ana_conv}/read"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["unread_count"], 0);
    let (_, received) = app.get("/sandbox/control/messages").await;
    let receipts: Vec<&Value> =
        received["data"].as_array().unwrap().iter().filter(|r| r["body"]["status"] == "read").collect();
    assert_eq!(receipts.len(), 1, "{received}");
    assert_eq!(
        receipts[0]["body"],
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": ana_wamid})
    );
    app.customer_writes(&phone, &ana, "again").await;
    let (_, c) = app.get(&format!("/v1/conversations/{ana_conv}")).await;
    assert_eq!(c["unread_count"], 1, "only what came after the mark");
    let (status, e) = app.post("/v1/conversations/cv_01J00000000000000000000000/read", json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}

async fn conversation_messages_page_both_ways(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let ana = customer();
    // In / out / in / out / in: five messages, both directions.
    let mut ids = Vec::new();
    for i in 0..5 {
        if i % 2 == 0 {
            let wamid = app.customer_writes(&phone, &ana, &format!("in {i}")).await;
            ids.push(app.store().find_message_by_wamid(&wamid).await.unwrap().unwrap().id.to_string());
        } else {
            let (status, m) = app
                .post(
                    "/v1/messages",
                    json!({"from": phone, "to": ana, "type": "text", "text": {"body": format!("out {i}")}}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{m}");
            ids.push(m["id"].as_str().unwrap().to_owned());
        }
    }
    ids.reverse(); // newest first, as pages show them
    let (_, cs) = app.get(&format!("/v1/conversations?phone_number_id={phone}")).await;
    let conv = cs["data"][0]["id"].as_str().unwrap().to_owned();
    let page = |query: String| {
        let app = &app;
        let conv = conv.clone();
        async move {
            let (status, body) = app.get(&format!("/v1/conversations/{conv}/messages?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            let got: Vec<String> =
                body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
            (got, body["next_cursor"].as_str().map(str::to_owned))
        }
    };
    // Backwards from the newest, two at a time, following next_cursor.
    let (p1, c1) = page("limit=2".into()).await;
    assert_eq!((p1.as_slice(), c1.as_deref()), (&ids[0..2], Some(ids[1].as_str())));
    let (p2, c2) = page(format!("limit=2&before={}", c1.unwrap())).await;
    assert_eq!((p2.as_slice(), c2.as_deref()), (&ids[2..4], Some(ids[3].as_str())));
    let (p3, c3) = page(format!("limit=2&cursor={}", c2.unwrap())).await;
    assert_eq!((p3.as_slice(), c3), (&ids[4..5], None));
    // Forwards from the oldest: the next two, still newest first.
    let (f1, n1) = page(format!("limit=2&after={}", ids[4])).await;
    assert_eq!((f1.as_slice(), n1.as_deref()), (&ids[2..4], Some(ids[2].as_str())));
    let (f2, n2) = page(format!("limit=2&after={}", n1.unwrap())).await;
    assert_eq!((f2.as_slice(), n2), (&ids[0..2], None));
    let (_, body) = app.get(&format!("/v1/conversations/{conv}/messages?limit=5")).await;
    let directions: Vec<&str> =
        body["data"].as_array().unwrap().iter().map(|m| m["direction"].as_str().unwrap()).collect();
    assert_eq!(directions, ["inbound", "outbound", "inbound", "outbound", "inbound"]);

    for (query, path) in [
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("before=nope", "before"),
        ("cursor=msg_x", "cursor"),
        (&format!("before={}&after={}", ids[0], ids[4]) as &str, "after"),
    ] {
        let (status, e) = app.get(&format!("/v1/conversations/{conv}/messages?{query}")).await;
        assert_eq!(
            (status, e["error"]["path"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(path)),
            "{query}: {e}"
        );
    }
    let (status, _) = app.get("/v1/conversations/cv_nope/messages").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn contact_patch_merges_replaces_and_names_bad_fields(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let ana = customer();
    app.customer_writes(&phone, &ana, "hi").await;
    let id = find_contacts(&app, &ana).await[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/contacts/{id}");
    let patch = |body: Value| app.request(Method::PATCH, &path, Some(body));

    let (status, c) = patch(json!({"attributes": {"plan": "gold", "city": "Lima"}, "tags": ["vip", "b2b"]})).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let (status, c) = patch(json!({"attributes": {"city": null, "orders": 3}, "marketing_opt_out": true})).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["attributes"], json!({"plan": "gold", "orders": 3}), "merged; null deletes");
    assert_eq!(c["tags"], json!(["b2b", "vip"]), "tags kept when not given");
    assert!(c["marketing_opt_out"].as_bool().unwrap() && c["marketing_opt_out_at"].is_string());
    let (_, c) = patch(json!({"tags": ["vip"], "marketing_opt_out": false})).await;
    assert_eq!((&c["tags"], &c["marketing_opt_out"]), (&json!(["vip"]), &json!(false)));
    assert!(c["marketing_opt_in_at"].is_string());
    let tagged = app.get("/v1/contacts?tag=vip").await.1;
    assert_eq!(tagged["data"][0]["id"], id.as_str());
    assert!(app.get("/v1/contacts?tag=b2b").await.1["data"].as_array().unwrap().is_empty());

    let long_key = "k".repeat(65);
    for (body, rule, field) in [
        (json!({"tags": ["vip", "vip"]}), "duplicate", "tags[1]".to_owned()),
        (json!({"tags": [""]}), "min_length", "tags[0]".to_owned()),
        (json!({"tags": "vip"}), "invalid_type", "tags".to_owned()),
        (json!({"marketing_opt_out": "yes"}), "invalid_type", "marketing_opt_out".to_owned()),
        (json!({"attributes": [1]}), "invalid_type", "attributes".to_owned()),
        (json!({"attributes": {long_key.clone(): 1}}), "max_length", format!("attributes.{long_key}")),
        (json!({"attributes": {"blob": "x".repeat(17 * 1024)}}), "max_size", "attributes".to_owned()),
        (json!({"nickname": "Ana"}), "unknown_field", "nickname".to_owned()),
    ] {
        let (status, e) = patch(body.clone()).await;
        assert_eq!(
            (status, e["error"]["code"].as_str(), e["error"]["path"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(rule), Some(field.as_str())),
            "{body}: {e}"
        );
    }
    let (status, e) = patch(json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_patch")));
    let resp = app
        .http
        .patch(format!("{}{path}", app.url))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(
        (&unchanged["tags"], &unchanged["attributes"]),
        (&json!(["vip"]), &json!({"plan": "gold", "orders": 3}))
    );
    let (status, _) =
        app.request(Method::PATCH, "/v1/contacts/ct_01J00000000000000000000000", Some(json!({"tags": []}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, e) = app.get("/v1/contacts?cursor=bad").await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")));
    app.stop().await;
}

on_each_backend!(
    contacts_from_inbound_are_linked_by_wa_id_and_user_id,
    a_customer_who_changes_number_keeps_contact_and_conversation,
    user_preferences_opt_out_then_in,
    conversations_sort_by_last_message_with_unread_and_window,
    conversation_messages_page_both_ways,
    contact_patch_merges_replaces_and_names_bad_fields,
);
