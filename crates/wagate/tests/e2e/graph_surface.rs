//! The Meta-compatible surface: Meta's bodies in, Meta's answers out, through the same outbox.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::message_types::{addressed, examples};
use crate::support::*;

const INVALID: &str = include_str!("../../../../testdata/invalid-sends.json");

async fn graph(app: &TestApp, phone_number_id: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let url = format!("{}/graph/v23.0/{phone_number_id}/messages", app.url);
    request(&app.http, Method::POST, &url, key, Some(body)).await
}

async fn metas_bodies_get_metas_answers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    let inbound = app.customer_writes(&phone, &customer, "hi").await;
    let group = app.prepare_examples(&phone, &customer).await;

    for ex in examples() {
        let body = addressed(&ex.body, &customer, &group);
        let (status, answer) = graph(&app, &phone, Some(&app.api_key), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{}: {answer}", ex.name);
        assert_eq!(answer["messaging_product"], "whatsapp", "{}", ex.name);
        assert_eq!(answer["contacts"][0]["input"], body["to"], "{}", ex.name);
        let wamid = answer["messages"][0]["id"].as_str().unwrap_or_else(|| panic!("{}: {answer}", ex.name));
        assert!(wamid.starts_with("wamid."));
        // Exactly the client's body reached "Meta", once, with nothing added.
        let (_, received) = app.get("/sandbox/control/messages").await;
        let got: Vec<&Value> = received["data"].as_array().unwrap().iter().filter(|r| r["wamid"] == wamid).collect();
        assert_eq!(got.len(), 1, "{}", ex.name);
        assert_eq!(got[0]["body"], body, "{}", ex.name);
        if body["type"] == "template" {
            assert_eq!(answer["messages"][0]["message_status"], "accepted", "{}", ex.name);
        }
        // And it is a message like any other in the native API.
        let (_, listed) = app.get("/v1/messages?direction=outbound&limit=1").await;
        assert_eq!(listed["data"][0]["wamid"], wamid);
    }

    // Read receipts and typing indicators answer Meta's `{"success": true}`.
    for typing in [false, true] {
        let mut body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound});
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        assert_eq!(graph(&app, &phone, Some(&app.api_key), body).await, (StatusCode::OK, json!({"success": true})));
    }
    app.stop().await;
}

async fn refusals_are_metas_error_objects(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let text = json!({"messaging_product": "whatsapp", "to": "+15550170000", "type": "text", "text": {"body": "hi"}});

    // The API key is the access token: without one, Meta's 190.
    for key in [None, Some("EAAGnot-a-wagate-key")] {
        let (status, e) = graph(&app, &phone, key, text.clone()).await;
        assert_eq!(
            (status, e["error"]["code"].as_i64(), e["error"]["type"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(190), Some("OAuthException"))
        );
        assert!(e["error"]["fbtrace_id"].is_string());
    }
    let (status, e) = graph(&app, "1234567890", Some(&app.api_key), text.clone()).await;
    assert_eq!(
        (status, e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(100), Some(33))
    );

    // Every invalid body: 131008 for what is missing, 131051 for an unknown type, 100 for the rest,
    // with the parameter named as Meta names it.
    let cases: Vec<Value> = serde_json::from_str(INVALID).unwrap();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        // Meta takes a number without `+` (it prepends the business number's country code).
        if name == "number without +" {
            continue;
        }
        let mut body = case["body"].clone();
        body["messaging_product"] = json!("whatsapp");
        let obj = body.as_object_mut().unwrap();
        // Meta's body has no metadata, and replies by context.
        if obj.remove("metadata").is_some() {
            continue;
        }
        if let Some(r) = obj.remove("reply_to") {
            if r.as_str() == Some("") {
                continue;
            }
            obj.insert("context".into(), json!({"message_id": r}));
        }
        let (status, e) = graph(&app, &phone, Some(&app.api_key), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {e}");
        let expected = match (case["path"].as_str().unwrap(), case["rule"].as_str().unwrap()) {
            (_, "required") => 131008,
            ("type", "unsupported_type") => 131051,
            _ => 100,
        };
        assert_eq!(e["error"]["code"], expected, "{name}: {e}");
        let details = e["error"]["error_data"]["details"].as_str().unwrap();
        let top = match case["path"].as_str().unwrap().split(['.', '[']).next().unwrap() {
            "reply_to" => "context",
            top => top,
        };
        assert!(details.contains(top), "{name}: {details}");
        // Meta's wording, not the JSON reader's.
        assert!(!details.contains("invalid type") && !details.contains('`'), "{name}: {details}");
    }
    let wrong_type =
        json!({"messaging_product": "whatsapp", "to": "+15550170000", "type": "text", "text": {"body": 5}});
    let (_, e) = graph(&app, &phone, Some(&app.api_key), wrong_type).await;
    assert_eq!(e["error"]["error_data"]["details"], "Param text['body'] must be a string.", "{e}");
    let unknown =
        json!({"messaging_product": "whatsapp", "to": "+15550170000", "type": "text", "text": {"bodyy": "x"}});
    let (_, e) = graph(&app, &phone, Some(&app.api_key), unknown).await;
    assert_eq!(e["error"]["error_data"]["details"], "Unexpected key \"bodyy\" on param \"text\".", "{e}");
    // A body over the size limit is refused in Meta's shape too, not as plain text.
    let huge = json!({"messaging_product": "whatsapp", "to": "+15550170000", "type": "text",
        "text": {"body": "x".repeat(3 * 1024 * 1024)}});
    let (status, e) = graph(&app, &phone, Some(&app.api_key), huge).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::PAYLOAD_TOO_LARGE, Some(100)), "{e}");
    assert!(e["error"]["error_data"]["details"].as_str().unwrap().contains("length limit"), "{e}");
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing refused is stored");
    app.stop().await;
}

async fn a_send_not_handed_to_meta_in_time_is_cancelled_with_130429(backend: Backend) {
    // An instance that takes requests but leaves sending to others: nothing is handed to Meta.
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.dispatcher.enabled = false;
        c.graph_surface.wait_ms = 300;
    })
    .await
    else {
        return;
    };
    let phone = app.sandbox_numbers().await[0].clone();
    app.customer_writes(&phone, "+15550170001", "hi").await;
    let body = json!({"messaging_product": "whatsapp", "to": "+15550170001", "type": "text", "text": {"body": "late"}});
    let (status, e) = graph(&app, &phone, Some(&app.api_key), body).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(130429)), "{e}");
    // Cancelled, so a dispatcher starting later never sends it, and the client's retry is the only copy.
    let (_, listed) = app.get("/v1/messages?direction=outbound").await;
    assert_eq!(listed["data"][0]["status"], "canceled");
    assert_eq!(listed["data"][0]["error"]["reason"], "not_dispatched_in_time");
    assert_eq!(app.store().outbox().pending().await.unwrap(), 0);
    app.stop().await;
}

async fn a_send_already_handed_to_meta_is_waited_for(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.graph_surface.wait_ms = 200).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    app.customer_writes(&phone, "+15550170002", "hi").await;
    // "Meta" takes 1.5 s to answer: far beyond the wait, but the send is in flight by then.
    let (status, _) =
        app.request(Method::PATCH, "/sandbox/control/settings", Some(json!({"graph": {"latency_ms": 1500}}))).await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"messaging_product": "whatsapp", "to": "+15550170002", "type": "text", "text": {"body": "slow"}});
    let (status, answer) = graph(&app, &phone, Some(&app.api_key), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let received =
        sandbox_received(&app.http, &format!("{}/sandbox", app.url), Some(&app.api_key), "+15550170002").await;
    assert_eq!((received.len(), received[0]["wamid"].as_str()), (1, Some(wamid)));
    app.stop().await;
}

on_each_backend!(
    graph_paths_beyond_messages_are_wagates_features,
    object_parameters_may_be_json_strings_and_recipient_names_the_user,
    metas_bodies_get_metas_answers,
    refusals_are_metas_error_objects,
    a_send_not_handed_to_meta_in_time_is_cancelled_with_130429,
    a_send_already_handed_to_meta_is_waited_for,
);

/// What the sandbox received for a wamid.
async fn received(app: &TestApp, wamid: &str) -> Value {
    let (_, all) = app.get("/sandbox/control/messages").await;
    all["data"].as_array().unwrap().iter().find(|r| r["wamid"] == wamid).unwrap()["body"].clone()
}

async fn object_parameters_may_be_json_strings_and_recipient_names_the_user(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&phone, &customer, "hi").await;
    // Object parameters as JSON-encoded strings, as Node SDKs send them.
    let contacts =
        json!([{"name": {"formatted_name": "Ana Lima", "first_name": "Ana"}, "phones": [{"phone": "+1 555 0100"}]}]);
    for (kind, object) in [("text", json!({"body": "hi from a string"})), ("contacts", contacts)] {
        let mut body = json!({"messaging_product": "whatsapp", "to": customer, "type": kind});
        body[kind] = json!(object.to_string());
        let (status, answer) = graph(&app, &phone, Some(&app.api_key), body).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {answer}");
        let got = received(&app, answer["messages"][0]["id"].as_str().unwrap()).await;
        assert_eq!(got[kind], object, "{kind}");
    }
    let bad = json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": "{not json"});
    let (status, answer) = graph(&app, &phone, Some(&app.api_key), bad).await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(100)), "{answer}");
    // A BSUID as `recipient`; `to` wins when both are there.
    let user = "US.13491208655302741918";
    let to_user =
        json!({"messaging_product": "whatsapp", "recipient": user, "type": "text", "text": {"body": "hello"}});
    let (status, answer) = graph(&app, &phone, Some(&app.api_key), to_user).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(received(&app, answer["messages"][0]["id"].as_str().unwrap()).await["to"], user);
    let both = json!({"messaging_product": "whatsapp", "to": customer, "recipient": user, "type": "text",
        "text": {"body": "to wins"}});
    let (status, answer) = graph(&app, &phone, Some(&app.api_key), both).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(received(&app, answer["messages"][0]["id"].as_str().unwrap()).await["to"], customer.as_str());
    // The sandbox, called directly as Meta, reads them the same way.
    let account = sandbox_account(&app).await;
    let url = format!("{}/sandbox/v23.0/{phone}/messages", app.url);
    let body = json!({"messaging_product": "whatsapp", "recipient": user, "type": "text",
        "text": "{\"body\": \"straight to Meta\"}"});
    let (status, answer) = request(&app.http, Method::POST, &url, Some(&account.access_token), Some(body)).await;
    assert_eq!((status, answer["contacts"][0]["input"].as_str()), (StatusCode::OK, Some(user)), "{answer}");
    // Listed as it came.
    let got = received(&app, answer["messages"][0]["id"].as_str().unwrap()).await;
    assert_eq!(
        (got["recipient"].as_str(), got["text"].as_str()),
        (Some(user), Some("{\"body\": \"straight to Meta\"}"))
    );
    let unreadable = json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": "{not json"});
    let (status, answer) = request(&app.http, Method::POST, &url, Some(&account.access_token), Some(unreadable)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    app.stop().await;
}

/// A Graph call with a key, a method and a JSON or form body.
async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    request(&app.http, method, &format!("{}/graph/v23.0/{path}", app.url), Some(key), body).await
}

async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(format!("{}/graph/v23.0/{path}", app.url))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// Meta's paths for numbers, accounts, templates, groups and the Flows key, answered by
/// wagate's own features: what is done through them is what `/v1` shows.
async fn graph_paths_beyond_messages_are_wagates_features(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let key = app.api_key.clone();
    let account = sandbox_account(&app).await;
    let (phone, waba) = (account.phone_number_id.clone(), account.waba_id.clone());

    // Numbers and the account.
    let (status, number) = call(&app, &key, Method::GET, &phone, None).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!((number["id"].as_str(), number["platform_type"].as_str()), (Some(phone.as_str()), Some("CLOUD_API")));
    assert!(number["display_phone_number"].is_string() && number["throughput"]["level"].is_string(), "{number}");
    let (_, listed) = call(&app, &key, Method::GET, &format!("{waba}/phone_numbers"), None).await;
    assert!(listed["data"].as_array().unwrap().len() >= 2, "{listed}");
    let (status, waba_node) = call(&app, &key, Method::GET, &waba, None).await;
    assert_eq!((status, waba_node["id"].as_str()), (StatusCode::OK, Some(waba.as_str())), "{waba_node}");
    // An id wagate does not know, and an edge a node does not have, as Meta answers them.
    for (method, path) in [(Method::GET, "4242424242".to_owned()), (Method::GET, format!("{phone}/message_templates"))]
    {
        let (status, e) = call(&app, &key, method, &path, None).await;
        assert_eq!(
            (status, e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()),
            (StatusCode::BAD_REQUEST, Some(100), Some(33)),
            "{path}: {e}"
        );
    }

    // Templates: created at Meta and stored, edited by an admin only, deleted by name.
    let name = format!("graph_{}", wagate_domain::id::new_id("t").to_lowercase().replace('_', ""));
    let template = json!({"name": name, "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Order {{1}} shipped", "example": {"body_text": [["4711"]]}}]});
    let (status, created) = call(&app, &key, Method::POST, &format!("{waba}/message_templates"), Some(template)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["category"], "UTILITY", "{created}");
    let (status, native) = app.get(&format!("/v1/templates/{id}")).await;
    assert_eq!((status, native["name"].as_str()), (StatusCode::OK, Some(name.as_str())), "{native}");
    let (_, read) = call(&app, &key, Method::GET, &id, None).await;
    assert_eq!((read["name"].as_str(), read["language"].as_str()), (Some(name.as_str()), Some("en_US")), "{read}");
    let (_, page) =
        call(&app, &key, Method::GET, &format!("{waba}/message_templates?name={name}&summary=total_count"), None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert!(page["summary"]["total_count"].as_u64().unwrap() >= 2, "{page}");
    // Meta edits only what its review approved.
    eventually("the template approved", || async {
        let (_, t) = app.get(&format!("/v1/templates/{id}")).await;
        (t["status"] == "APPROVED").then_some(())
    })
    .await;
    let (status, sender) = app.post("/v1/api-keys", json!({"name": "sender", "scopes": ["send"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{sender}");
    let sender = sender["key"].as_str().unwrap().to_owned();
    let edit =
        json!({"components": [{"type": "BODY", "text": "Order {{1}} left", "example": {"body_text": [["4711"]]}}]});
    let (status, refused) = call(&app, &sender, Method::POST, &id, Some(edit.clone())).await;
    assert_eq!((status, refused["error"]["code"].as_i64()), (StatusCode::FORBIDDEN, Some(10)), "{refused}");
    let (status, edited) = call(&app, &key, Method::POST, &id, Some(edit)).await;
    assert_eq!((status, edited), (StatusCode::OK, json!({"success": true})));
    let (_, native) = app.get(&format!("/v1/templates/{id}")).await;
    assert!(native["components"].to_string().contains("Order {{1}} left"), "{native}");
    let (status, deleted) =
        call(&app, &key, Method::DELETE, &format!("{waba}/message_templates?name={name}"), None).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"success": true})));
    let (status, _) = app.get(&format!("/v1/templates/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Groups, created with a form body as Meta takes one.
    let (status, made) =
        form(&app, &format!("{phone}/groups"), &[("messaging_product", "whatsapp"), ("subject", "Graph group")]).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert!(made["request_id"].is_string(), "{made}");
    let group = eventually("the group, announced by Meta", || async {
        let (_, groups) = call(&app, &key, Method::GET, &format!("{phone}/groups"), None).await;
        groups["data"]["groups"].as_array().unwrap().iter().find(|g| g["subject"] == "Graph group").cloned()
    })
    .await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let (_, link) = call(&app, &key, Method::GET, &format!("{gid}/invite_link"), None).await;
    let (_, reset) = call(&app, &key, Method::POST, &format!("{gid}/invite_link"), None).await;
    assert!(link["invite_link"].is_string() && reset["invite_link"].is_string(), "{link} {reset}");
    assert_ne!(link["invite_link"], reset["invite_link"]);
    let (status, changed) =
        call(&app, &key, Method::POST, &gid, Some(json!({"messaging_product": "whatsapp", "subject": "Renamed"})))
            .await;
    assert_eq!((status, changed), (StatusCode::OK, json!({"success": true})));
    let (_, native) = app.get(&format!("/v1/groups/{gid}")).await;
    assert_eq!(native["subject"], "Renamed", "{native}");
    let (_, info) = call(&app, &key, Method::GET, &gid, None).await;
    assert_eq!(
        (info["subject"].as_str(), info["total_participant_count"].as_u64()),
        (Some("Renamed"), Some(0)),
        "{info}"
    );
    let (_, requests) = call(&app, &key, Method::GET, &format!("{gid}/join_requests"), None).await;
    assert_eq!(requests["data"], json!([]), "{requests}");
    let (status, gone) = call(&app, &key, Method::DELETE, &gid, None).await;
    assert_eq!((status, gone), (StatusCode::OK, json!({"success": true})));
    let (status, _) = app.get(&format!("/v1/groups/{gid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The Flows key, set with Meta's form body and read back in Meta's shape.
    let pem = include_str!("../../../../testdata/flows-public-key-2048.pem");
    let (status, set) =
        form(&app, &format!("{phone}/whatsapp_business_encryption"), &[("business_public_key", pem)]).await;
    assert_eq!((status, set), (StatusCode::OK, json!({"success": true})));
    let (_, got) = call(&app, &key, Method::GET, &format!("{phone}/whatsapp_business_encryption"), None).await;
    assert_eq!(got["data"][0]["business_public_key"].as_str().map(str::trim), Some(pem.trim()), "{got}");
    let short = include_str!("../../../../testdata/flows-public-key-1024.pem");
    let (status, refused) =
        form(&app, &format!("{phone}/whatsapp_business_encryption"), &[("business_public_key", short)]).await;
    assert_eq!((status, refused["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(100)), "{refused}");
    app.stop().await;
}
