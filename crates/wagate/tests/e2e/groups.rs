//! Groups and the Flows key through wagate: each endpoint against the sandbox's Meta, with Meta's
//! group webhooks applied to what wagate keeps.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

on_each_backend!(groups_are_managed_through_meta_and_kept_current, the_flows_key_is_checked_set_and_read);

const KEY: &str = include_str!("../../../../testdata/flows-public-key-2048.pem");
const KEY_1024: &str = include_str!("../../../../testdata/flows-public-key-1024.pem");

async fn group(app: &TestApp, id: &str) -> Value {
    let (status, g) = app.get(&format!("/v1/groups/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    g
}

/// Waits until the stored group satisfies `done` (a webhook applied).
async fn group_until(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || async {
        let g = group(app, id).await;
        done(&g).then_some(g)
    })
    .await
}

fn wa_ids(g: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        g["participants"].as_array().unwrap().iter().map(|p| p["wa_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

async fn join(app: &TestApp, id: &str, customer: &str) -> Value {
    let (status, body) = app
        .post(&format!("/sandbox/simulate/groups/{id}/join"), json!({"wa_id": customer.trim_start_matches('+')}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn groups_are_managed_through_meta_and_kept_current(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    // Refused before Meta: what a group needs.
    for (body, path, rule) in [
        (json!({"phone_number_id": from, "subject": "  "}), "subject", "min_length"),
        (json!({"phone_number_id": from, "subject": "x".repeat(129)}), "subject", "max_length"),
        (
            json!({"phone_number_id": from, "subject": "ok", "join_approval_mode": "anyone"}),
            "join_approval_mode",
            "invalid_value",
        ),
        (json!({"phone_number_id": "999", "subject": "ok"}), "phone_number_id", "unknown_sender"),
        (json!({"phone_number_id": from, "subject": "nul \u{0}"}), "subject", "nul_character"),
    ] {
        let (status, answer) = app.post("/v1/groups", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        assert_eq!(
            (answer["error"]["path"].as_str(), answer["error"]["code"].as_str()),
            (Some(path), Some(rule)),
            "{answer}"
        );
    }
    // Created at Meta, announced by webhook: its id and invite link.
    let (status, created) = app
        .post(
            "/v1/groups",
            json!({"phone_number_id": from, "subject": "Ünïcode club 🌿", "description": "For regulars"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["invite_link"].as_str().unwrap().to_owned();
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{created}");
    assert_eq!(
        (created["subject"].as_str(), created["description"].as_str()),
        (Some("Ünïcode club 🌿"), Some("For regulars"))
    );
    assert_eq!(created["join_approval_mode"], "auto_approve");
    let (_, approval) = app
        .post(
            "/v1/groups",
            json!({"phone_number_id": from, "subject": "VIP", "join_approval_mode": "approval_required"}),
        )
        .await;
    let vip = approval["id"].as_str().unwrap().to_owned();
    let (_, listed) = app.get(&format!("/v1/groups?phone_number_id={from}&limit=1")).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let (_, rest) =
        app.get(&format!("/v1/groups?phone_number_id={from}&cursor={}", listed["next_cursor"].as_str().unwrap())).await;
    let mut all: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    all.sort();
    let mut want = vec![id.as_str(), vip.as_str()];
    want.sort();
    assert_eq!(all, want);
    // Customers join through the link; the webhooks add them.
    let (ana, bo, cy) = (customer(), customer(), customer());
    for c in [&ana, &bo, &cy] {
        assert_eq!(join(&app, &id, c).await["joined"], true);
    }
    let mut expected: Vec<String> = [&ana, &bo, &cy].iter().map(|c| c.trim_start_matches('+').to_owned()).collect();
    expected.sort();
    group_until(&app, &id, "three participants", |g| wa_ids(g) == expected).await;
    // A message to the group, by its id, as before.
    let send = json!({"from": from, "to": id, "recipient_type": "group", "type": "text", "text": {"body": "Welcome!"}});
    let (status, sent) = app.post("/v1/messages", send).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    wait_for_message(&app.http, &app.url, &app.api_key, sent["id"].as_str().unwrap(), "the group message", |m| {
        m["wamid"].is_string()
    })
    .await;
    // Settings, at Meta and here.
    let (status, renamed) =
        app.request(Method::PATCH, &format!("/v1/groups/{id}"), Some(json!({"subject": "Regulars"}))).await;
    assert_eq!((status, renamed["subject"].as_str()), (StatusCode::OK, Some("Regulars")), "{renamed}");
    let (status, body) = app.request(Method::PATCH, &format!("/v1/groups/{id}"), Some(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required")),
        "{body}"
    );
    // The invite link: read, then reset (the old one stops working).
    let (status, read) = app.get(&format!("/v1/groups/{id}/invite-link")).await;
    assert_eq!((status, read["invite_link"].as_str()), (StatusCode::OK, Some(link.as_str())), "{read}");
    let (status, reset) = app.post(&format!("/v1/groups/{id}/invite-link"), json!({})).await;
    let new_link = reset["invite_link"].as_str().unwrap().to_owned();
    assert!(status == StatusCode::OK && new_link != link, "{reset}");
    assert_eq!(group(&app, &id).await["invite_link"], new_link.as_str());
    // Participants removed at Meta; one who is not in the group is named with Meta's error.
    let outsider = customer();
    let (status, removed) = app
        .post(&format!("/v1/groups/{id}/participants/remove"), json!({"participants": [bo.clone(), outsider.clone()]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["done"], json!([bo]), "{removed}");
    assert_eq!(removed["failed"].as_array().unwrap().len(), 1, "{removed}");
    let (status, body) = app.post(&format!("/v1/groups/{id}/participants/remove"), json!({"participants": []})).await;
    assert_eq!(
        (status, body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("participants")),
        "{body}"
    );
    let mut left: Vec<String> = [&ana, &cy].iter().map(|c| c.trim_start_matches('+').to_owned()).collect();
    left.sort();
    group_until(&app, &id, "the participant removed", |g| wa_ids(g) == left).await;
    // Join requests: asked for, listed, approved or rejected.
    let (dee, eve) = (customer(), customer());
    let asked = join(&app, &vip, &dee).await;
    assert_eq!(asked["joined"], false, "{asked}");
    join(&app, &vip, &eve).await;
    group_until(&app, &vip, "two join requests", |g| g["join_requests"].as_array().unwrap().len() == 2).await;
    let (status, requests) = app.get(&format!("/v1/groups/{vip}/join-requests")).await;
    assert_eq!(status, StatusCode::OK, "{requests}");
    let request_of = |who: &str| {
        requests["data"].as_array().unwrap().iter().find(|r| r["wa_id"] == who.trim_start_matches('+')).unwrap()["join_request_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (dee_request, eve_request) = (request_of(&dee), request_of(&eve));
    let (status, approved) = app
        .post(&format!("/v1/groups/{vip}/join-requests/approve"), json!({"join_request_ids": [dee_request, "nope"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (approved["done"].as_array().unwrap().len(), approved["failed"].as_array().unwrap().len()),
        (1, 1),
        "{approved}"
    );
    let (status, rejected) =
        app.post(&format!("/v1/groups/{vip}/join-requests/reject"), json!({"join_request_ids": [eve_request]})).await;
    assert_eq!((status, rejected["done"].as_array().unwrap().len()), (StatusCode::OK, 1), "{rejected}");
    let dee_id = dee.trim_start_matches('+').to_owned();
    let g = group_until(&app, &vip, "the approved member in", |g| wa_ids(g) == [dee_id.clone()]).await;
    assert_eq!(g["join_requests"], json!([]), "{g}");
    // Deleted at Meta and here; sends to it are Meta's to refuse.
    let (status, _) = app.request(Method::DELETE, &format!("/v1/groups/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/v1/groups/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.request(Method::DELETE, &format!("/v1/groups/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}

async fn the_flows_key_is_checked_set_and_read(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let path = format!("/v1/phone-numbers/{from}/flows-key");
    let (status, none) = app.get(&path).await;
    assert_eq!((status, &none["public_key"]), (StatusCode::OK, &Value::Null), "{none}");
    for (key, rule) in [
        (KEY_1024, "rsa_2048"),
        ("not a key", "public_key"),
        ("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----", "public_key"),
    ] {
        let (status, body) = app.request(Method::PUT, &path, Some(json!({"public_key": key}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["path"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(rule), Some("public_key")),
            "{body}"
        );
    }
    let (status, set) = app.request(Method::PUT, &path, Some(json!({"public_key": KEY}))).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (status, read) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["public_key"].as_str().map(str::trim), Some(KEY.trim()), "{read}");
    assert_eq!(read["signature_status"], "VALID");
    // At Meta too: the sandbox holds it.
    let account = sandbox_account(&app).await;
    let (_, at_meta) = request(
        &app.http,
        Method::GET,
        &format!("{}/sandbox/v23.0/{from}/whatsapp_business_encryption", app.url),
        Some(&account.access_token),
        None,
    )
    .await;
    assert_eq!(at_meta["data"][0]["business_public_key"].as_str().map(str::trim), Some(KEY.trim()), "{at_meta}");
    let (status, _) = app.get("/v1/phone-numbers/999/flows-key").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}
