//! ChakraHQ's plugin API at `/chakra`, used as its documents show: the pass-through messages
//! endpoint with the seed's bodies (answered `{"_data": {"whatsappMessageId"}}` and followed to
//! `read` in the native API), the other Graph paths under the plugin, the plugin configuration
//! backed by wagate's endpoints, and its errors in ChakraHQ's envelope.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::events::Receiver;
use crate::support::*;

async fn plugin_id(app: &TestApp) -> String {
    let (status, accounts) = app.get("/v1/accounts").await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    accounts["data"][0]["id"].as_str().unwrap().to_owned()
}

fn api(plugin: &str, rest: &str) -> String {
    format!("/chakra/v1/ext/plugin/whatsapp/{plugin}/api/v19.0/{rest}")
}

/// The native message with this wamid, once it is `read`.
async fn read_in_native_api(app: &TestApp, customer: &str, wamid: &str) -> Value {
    let (_, list) = app.get(&format!("/v1/messages?to={customer}")).await;
    let id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["wamid"] == wamid)
        .unwrap_or_else(|| panic!("no native message has wamid {wamid}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_message(&app.http, &app.url, &app.api_key, &id, "read", |m| m["status"] == "read").await
}

fn whatsapp_message_id(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only _data, as the seed shows: {body}");
    let wamid = body["_data"]["whatsappMessageId"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    assert!(wamid.starts_with("wamid."), "{body}");
    wamid
}

async fn pass_through_sends_the_seed_examples(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let plugin = plugin_id(&app).await;
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    let inbound = app.customer_writes(&phone, &customer, "Is my order on its way?").await;
    let to = customer.trim_start_matches('+');

    // The seed's template body, exactly.
    let template = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": "hello_world",
            "language": {"policy": "deterministic", "code": "en_US"},
            "components": [{"type": "body", "parameters": []}]
        }
    });
    let (status, body) = app.post(&api(&plugin, &format!("{phone}/messages")), template).await;
    let template_wamid = whatsapp_message_id(status, &body);
    // A session message and a reply, as Meta's messages API takes them.
    let session =
        json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "It left the warehouse."}});
    let (status, body) = app.post(&api(&plugin, &format!("{phone}/messages")), session).await;
    let text_wamid = whatsapp_message_id(status, &body);
    let reply = json!({"messaging_product": "whatsapp", "to": to, "context": {"message_id": inbound},
        "type": "text", "text": {"body": "Answering you"}});
    let (status, body) = app.post(&api(&plugin, &format!("{phone}/messages")), reply).await;
    let reply_wamid = whatsapp_message_id(status, &body);
    // Mark as read.
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound});
    let (status, body) = app.post(&api(&plugin, &format!("{phone}/messages")), read).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"_data": {"success": true}})));

    // Through the one engine: each is a native message that reaches `read`, sent once.
    let sent = read_in_native_api(&app, to, &template_wamid).await;
    assert_eq!((sent["type"].as_str(), sent["template"]["name"].as_str()), (Some("template"), Some("hello_world")));
    assert!(sent["rendered"]["body"].as_str().is_some(), "checked against the stored template: {sent}");
    read_in_native_api(&app, to, &text_wamid).await;
    let replied = read_in_native_api(&app, to, &reply_wamid).await;
    assert_eq!(replied["reply_to"], inbound.as_str());
    let received = sandbox_received(&app.http, &format!("{}/sandbox", app.url), Some(&app.api_key), to).await;
    for wamid in [&template_wamid, &text_wamid, &reply_wamid] {
        assert_eq!(received.iter().filter(|r| r["wamid"] == wamid.as_str()).count(), 1, "{wamid}");
    }

    // The rest of Meta's paths under the plugin, in the envelope.
    let (status, number) = app.get(&api(&plugin, &phone)).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(
        (number["_data"]["id"].as_str(), number["_data"]["status"].as_str()),
        (Some(phone.as_str()), Some("CONNECTED"))
    );
    let waba = sandbox_account(&app).await.waba_id;
    let (status, templates) = app.get(&api(&plugin, &format!("{waba}/message_templates?name=hello_world"))).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    assert_eq!(templates["_data"]["data"][0]["name"], "hello_world", "{templates}");
    let (status, numbers) = app.get(&api(&plugin, &format!("{waba}/phone_numbers"))).await;
    assert_eq!(status, StatusCode::OK, "{numbers}");
    assert!(numbers["_data"]["data"].as_array().unwrap().iter().any(|n| n["id"] == phone.as_str()), "{numbers}");
    app.stop().await;
}

/// Ten and more bad requests, each in ChakraHQ's envelope with what is wrong.
async fn errors_come_in_chakras_envelope(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let plugin = plugin_id(&app).await;
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&phone, &customer, "hi").await;
    let before = app.store().count_messages().await.unwrap();
    let messages = api(&plugin, &format!("{phone}/messages"));
    let text =
        |body: &str| json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": {"body": body}});
    let error = |status: StatusCode, body: &Value, want: StatusCode| -> Value {
        assert_eq!(status, want, "{body}");
        assert!(body["_data"].is_null(), "{body}");
        let errors = body["_errors"].as_array().unwrap_or_else(|| panic!("{body}"));
        assert_eq!(errors.len(), 1, "{body}");
        errors[0].clone()
    };

    // 1. No key.
    let (status, body) =
        request(&app.http, Method::POST, &format!("{}{messages}", app.url), None, Some(text("x"))).await;
    assert!(error(status, &body, StatusCode::UNAUTHORIZED)["message"].as_str().unwrap().contains("API key"));
    // 2. A revoked or made-up key.
    let (status, body) =
        request(&app.http, Method::POST, &format!("{}{messages}", app.url), Some("wg_nope"), Some(text("x"))).await;
    error(status, &body, StatusCode::UNAUTHORIZED);
    // 3. A plugin that does not exist.
    let (status, body) =
        app.post(&api("acc_01JZZZZZZZZZZZZZZZZZZZZZZZ", &format!("{phone}/messages")), text("x")).await;
    assert!(error(status, &body, StatusCode::NOT_FOUND)["message"].as_str().unwrap().contains("plugin"));
    // 4. A phone number that is no number of wagate's.
    let (status, body) = app.post(&api(&plugin, "1234567/messages"), text("x")).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["error_subcode"], 33);
    // 5. A text too long, with Meta's code and the parameter named.
    let (status, body) = app.post(&messages, text(&"x".repeat(4097))).await;
    let e = error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], 100);
    assert!(e["error_data"]["details"].as_str().unwrap().contains("text['body']"), "{e}");
    // 6. A type Meta does not have.
    let (status, body) =
        app.post(&messages, json!({"messaging_product": "whatsapp", "to": customer, "type": "hologram"})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["code"], 131051);
    // 7. No recipient.
    let (status, body) =
        app.post(&messages, json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["code"], 131008);
    // 8. A template that does not exist.
    let template = json!({"messaging_product": "whatsapp", "to": customer, "type": "template",
        "template": {"name": "no_such_template", "language": {"code": "en_US"}}});
    let (status, body) = app.post(&messages, template).await;
    assert_eq!(error(status, &body, StatusCode::NOT_FOUND)["code"], 132001);
    // 9. Not JSON.
    let (status, body) =
        request(&app.http, Method::POST, &format!("{}{messages}", app.url), Some(&app.api_key), None).await;
    error(status, &body, StatusCode::BAD_REQUEST);
    // 10. A NUL byte.
    let (status, body) = app.post(&messages, text("a\u{0}b")).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["code"], 100);
    // 11. A configuration field that does not exist, and one of the wrong type.
    let update = format!("/chakra/v1/ext/plugin/whatsapp/{plugin}/update-config");
    let (status, body) = app.post(&update, json!({"pluginName": "x"})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["field"], "pluginName");
    let (status, body) = app.post(&update, json!({"enableChakraWebhook": "yes"})).await;
    let e = error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("enableChakraWebhook"), Some("invalid_type")));
    // 12. An event ChakraHQ does not have.
    let (status, body) = app.post(&update, json!({"whichChakraWebhookEventsToSend": ["message", "typing"]})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["field"], "whichChakraWebhookEventsToSend[1]");
    // 13. Echoes with no pass-through URL to send them to.
    let (status, body) = app.post(&update, json!({"enableMessageEchoesForPassThroughWebhook": true})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["field"], "passThroughWebhookUrl");
    // 14. A webhook URL that is not one.
    let (status, body) = app.post(&update, json!({"chakraWebhookUrl": "ftp://example.com/hook"})).await;
    assert_eq!(error(status, &body, StatusCode::BAD_REQUEST)["field"], "url");
    // 15. A key that may read but not administer.
    let (status, created) = app.post("/v1/api-keys", json!({"name": "reader", "scopes": ["read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let reader = created["key"].as_str().unwrap();
    let (status, body) =
        request(&app.http, Method::POST, &format!("{}{update}", app.url), Some(reader), Some(json!({}))).await;
    assert_eq!(error(status, &body, StatusCode::FORBIDDEN)["code"], "insufficient_scope");
    assert_eq!(app.store().count_messages().await.unwrap(), before, "nothing bad was sent");
    app.stop().await;
}

/// The plugin configuration is the account's numbers and two endpoints: the pass-through URL gets
/// Meta's bodies, ChakraHQ's webhook the chosen events.
async fn configuration_is_wagates_endpoints(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let plugin = plugin_id(&app).await;
    let account = sandbox_account(&app).await;
    let config_path = format!("/chakra/v1/ext/plugin/whatsapp/{plugin}/config");
    let (status, config) = app.get(&config_path).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let data = &config["_data"];
    assert_eq!(data["passThroughWebhookUrl"], Value::Null);
    assert_eq!(
        (data["enableChakraWebhook"].as_bool(), data["whichChakraWebhookEventsToSend"].clone()),
        (Some(false), json!([]))
    );
    assert_eq!(data["whatsappBusinessAccounts"][0]["id"], account.waba_id.as_str());
    let numbers = data["whatsappPhoneNumbers"].as_array().unwrap();
    assert!(numbers.len() >= 2, "{data}");
    for n in numbers {
        for field in ["id", "display_phone_number", "verified_name", "status", "account_mode", "platform_type"] {
            assert!(n[field].is_string(), "{field} of {n}");
        }
        assert!(n["throughput"]["level"].is_string(), "{n}");
        assert_eq!((n["status"].as_str(), n["account_mode"].as_str()), (Some("CONNECTED"), Some("SANDBOX")));
    }

    // The seed's configuration, with this test's receivers.
    let (pass_through, chakra) = (Receiver::start().await, Receiver::start().await);
    let (status, updated) = app
        .post(
            &format!("/chakra/v1/ext/plugin/whatsapp/{plugin}/update-config"),
            json!({
                "passThroughWebhookUrl": pass_through.url,
                "enableMessageEchoesForPassThroughWebhook": true,
                "enableSendMessageTemplateEventForPassThroughWebhook": true,
                "enableChakraWebhook": true,
                "chakraWebhookUrl": chakra.url,
                "whichChakraWebhookEventsToSend": ["message", "status"]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(updated["_data"]["chakraWebhookSecret"].as_str().unwrap().starts_with("whsec_"), "{updated}");
    let (_, config) = app.get(&config_path).await;
    let data = &config["_data"];
    assert_eq!(data["passThroughWebhookUrl"], pass_through.url.as_str());
    assert_eq!(data["chakraWebhookUrl"], chakra.url.as_str());
    assert_eq!(data["whichChakraWebhookEventsToSend"], json!(["message", "status"]));
    for flag in [
        "enableMessageEchoesForPassThroughWebhook",
        "enableSendMessageTemplateEventForPassThroughWebhook",
        "enableChakraWebhook",
    ] {
        assert_eq!(data[flag], true, "{flag}: {data}");
    }
    // They are wagate's endpoints, seen in the native API.
    let (_, endpoints) = app.get("/v1/webhook-endpoints").await;
    let endpoints = endpoints["data"].as_array().unwrap();
    let meta = endpoints.iter().find(|e| e["url"] == pass_through.url.as_str()).unwrap();
    assert_eq!((meta["format"].as_str(), meta["include_echoes"].as_bool()), (Some("meta"), Some(true)));
    let standard = endpoints.iter().find(|e| e["url"] == chakra.url.as_str()).unwrap();
    assert!(standard["events"].as_array().unwrap().contains(&json!("message.received")), "{standard}");
    assert!(!standard["events"].as_array().unwrap().contains(&json!("message.accepted")), "{standard}");

    // A customer writes and is answered: Meta's bodies reach the pass-through URL, events ChakraHQ's.
    let customer = customer();
    app.customer_writes(&account.phone_number_id, &customer, "hello plugin").await;
    let body = json!({"from": account.phone_number_id, "to": customer, "type": "text", "text": {"body": "hello back"}});
    let (status, sent) = app.post("/v1/messages", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    eventually("Meta's message body at the pass-through URL", || async {
        pass_through
            .taken()
            .iter()
            .any(|d| d.json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] == "hello plugin")
            .then_some(())
    })
    .await;
    eventually("message.received and message.read at ChakraHQ's webhook", || async {
        let types: Vec<String> =
            chakra.taken().iter().map(|d| d.json()["type"].as_str().unwrap_or_default().to_owned()).collect();
        (types.iter().any(|t| t == "message.received") && types.iter().any(|t| t == "message.read")).then_some(())
    })
    .await;

    // Turning the ChakraHQ webhook off disables it; an empty pass-through URL removes that endpoint.
    let (status, updated) = app
        .post(
            &format!("/chakra/v1/ext/plugin/whatsapp/{plugin}/update-config"),
            json!({"enableChakraWebhook": false, "passThroughWebhookUrl": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["_data"]["enableChakraWebhook"], false);
    assert_eq!(updated["_data"]["passThroughWebhookUrl"], Value::Null);
    let (_, endpoints) = app.get("/v1/webhook-endpoints").await;
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 1, "{endpoints}");
    app.stop().await;
}

on_each_backend!(
    pass_through_sends_the_seed_examples,
    errors_come_in_chakras_envelope,
    configuration_is_wagates_endpoints
);
