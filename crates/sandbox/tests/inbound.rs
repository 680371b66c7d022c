//! `POST /simulate/inbound`: a customer writes to a business number, with every inbound type
//! Meta documents, and the webhook that follows has Meta's shape
//! (`webhooks/reference/messages/*`).

mod support;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR inbound test image";
const OGG: &[u8] = b"OggS\x00\x02\x00\x00 inbound voice note";
const MP4: &[u8] = b"\x00\x00\x00\x18ftypmp42 inbound video";
const PDF: &[u8] = b"%PDF-1.4\n inbound receipt";
const WEBP: &[u8] = b"RIFF\x00\x00\x00\x00WEBPVP8  inbound sticker";

async fn simulate(h: &Harness, body: Value) -> (StatusCode, Value) {
    h.control(Method::POST, "simulate/inbound", Some(body)).await
}

/// `from` writes `message` to the first number as "Ana"; the simulate answer and the webhook
/// `value` that delivered it.
async fn inbound(h: &Harness, from: &str, message: Value) -> (Value, Value) {
    let body = json!({"phone_number_id": h.number(), "from": from, "name": "Ana", "message": message});
    let (status, answer) = simulate(h, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let wamid = answer["wamid"].as_str().expect("a wamid").to_owned();
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == wamid).await;
    (answer, value)
}

/// Checks the parts every inbound `value` shares (`webhooks/reference/messages.mdx`) and returns
/// its one message.
fn message_of<'a>(h: &Harness, value: &'a Value, from: &str, kind: &str) -> &'a Value {
    assert_eq!(value["messaging_product"], "whatsapp", "{value}");
    assert_eq!(value["metadata"], json!({"display_phone_number": h.number_digits(), "phone_number_id": h.number()}));
    // The profile, the number and the business-scoped user id, which every messages webhook
    // carries (`business-scoped-user-ids.mdx`): `CC.digits`, stable for the user.
    let contacts = value["contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 1, "{value}");
    let contact = &contacts[0];
    assert_eq!(contact["profile"], json!({"name": "Ana", "country_code": "US"}), "{value}");
    assert_eq!(contact["wa_id"], from);
    let bsuid = contact["user_id"].as_str().expect("a user_id");
    assert!(
        bsuid.strip_prefix("US.").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        "{bsuid}"
    );
    let messages = value["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{value}");
    let m = &messages[0];
    assert_eq!(m["from"], from);
    assert_eq!(m["from_user_id"], bsuid);
    assert!(m["id"].as_str().is_some_and(|id| id.starts_with("wamid.")), "{m}");
    let ts = m["timestamp"].as_str().expect("the timestamp is a string");
    assert!(!ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()), "{ts}");
    assert_eq!(m["type"], kind);
    m
}

/// A customer's window is open when a free-form text to them is delivered.
async fn text_fate(h: &Harness, to: &str) -> Value {
    let wamid = h.send_ok(json!({"to": to, "type": "text", "text": {"body": "are you there?"}})).await;
    h.hooks.wait_statuses(&wamid, 1).await.remove(0)
}

/// The business sends an interactive reply-button message to `to`; its wamid.
async fn send_buttons(h: &Harness, to: &str) -> String {
    h.send_ok(json!({
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Shall we ship it?"},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": "ship-yes", "title": "Yes"}},
                {"type": "reply", "reply": {"id": "ship-no", "title": "No"}}
            ]}
        }
    }))
    .await
}

async fn download(h: &Harness, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = h.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_customer_text_arrives_in_metas_shape() {
    let h = Harness::start().await;
    let c = customer();
    let (answer, value) = inbound(&h, &c, json!({"type": "text", "text": {"body": "Hi there ✓"}})).await;
    let m = message_of(&h, &value, &c, "text");
    assert_eq!(m["text"], json!({"body": "Hi there ✓"}));
    assert_eq!(&answer["message"], m, "the answer shows the message as delivered");
    assert!(m.get("context").is_none() && m.get("referral").is_none() && m.get("group_id").is_none(), "{m}");
    // Messages entries carry the WABA id and, as in all of Meta's examples, no `time`.
    let delivery = h.hooks.deliveries().into_iter().find(|d| d.json.to_string().contains(&answer["wamid"].to_string()));
    let entry = &delivery.expect("the delivery").json["entry"][0];
    assert_eq!(entry["id"], h.waba());
    assert!(entry.get("time").is_none(), "{entry}");
}

#[tokio::test]
async fn each_media_type_arrives_with_an_id_that_downloads_the_sent_bytes() {
    let h = Harness::start().await;
    let c = customer();
    let cases = [
        ("image", PNG, "image/png", json!({"caption": "The shelf"})),
        ("audio", OGG, "audio/ogg; codecs=opus", json!({"voice": true})),
        ("video", MP4, "video/mp4", json!({"caption": "Timelapse"})),
        ("document", PDF, "application/pdf", json!({"caption": "my receipt", "filename": "receipt.pdf"})),
        ("sticker", WEBP, "image/webp", json!({"animated": false})),
    ];
    for (kind, bytes, mime, extra) in cases {
        let mut content = extra.clone();
        content["content_base64"] = json!(STANDARD.encode(bytes));
        content["mime_type"] = json!(mime);
        let (answer, value) = inbound(&h, &c, json!({"type": kind, kind: content})).await;
        let media = &message_of(&h, &value, &c, kind)[kind];
        let id = media["id"].as_str().expect("a media id");
        assert_eq!(answer["media_id"], id);
        assert_eq!(media["mime_type"], mime, "{kind}");
        // Webhooks carry the SHA-256 in base64, as every one of Meta's examples does.
        let digest = Sha256::digest(bytes);
        assert_eq!(media["sha256"], STANDARD.encode(digest), "{kind}");
        for (key, v) in extra.as_object().unwrap() {
            assert_eq!(&media[key], v, "{kind}.{key}");
        }

        let (status, info) = h.graph(Method::GET, id, None).await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["messaging_product"], "whatsapp");
        assert_eq!(info["id"], id);
        assert_eq!(info["mime_type"], mime);
        assert_eq!(info["file_size"], bytes.len().to_string());
        // `GET /{media-id}` gives the digest in hex, as Meta's media endpoint does.
        assert_eq!(info["sha256"], hex::encode(digest), "{kind}");

        for url in [info["url"].as_str().unwrap(), media["url"].as_str().expect("the webhook's url")] {
            let resp = download(&h, url, Some(&h.seed.access_token)).await;
            assert_eq!(resp.status(), 200, "{kind} {url}");
            assert_eq!(resp.headers()["content-type"], mime);
            assert_eq!(resp.bytes().await.unwrap(), bytes, "{kind}");
        }
    }
}

#[tokio::test]
async fn a_customers_media_is_refused_without_the_token() {
    let h = Harness::start().await;
    let content = json!({"content_base64": STANDARD.encode(PNG), "mime_type": "image/png"});
    let (_, value) = inbound(&h, &customer(), json!({"type": "image", "image": content})).await;
    let url = value["messages"][0]["image"]["url"].as_str().unwrap().to_owned();
    let resp = download(&h, &url, None).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
    let resp = download(&h, &url, Some("EAAGnot-the-token")).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn audio_always_says_whether_it_is_a_voice_note() {
    let h = Harness::start().await;
    let c = customer();
    let (_, value) = inbound(&h, &c, json!({"type": "audio", "audio": {"voice": true}})).await;
    let audio = &message_of(&h, &value, &c, "audio")["audio"];
    assert_eq!(audio["voice"], true);
    assert_eq!(audio["mime_type"], "audio/ogg; codecs=opus", "voice notes are Opus in OGG");

    let (_, value) = inbound(&h, &c, json!({"type": "audio", "audio": {"mime_type": "audio/mpeg"}})).await;
    let audio = &message_of(&h, &value, &c, "audio")["audio"];
    assert_eq!(audio["voice"], false, "an audio file is not a voice note: {audio}");
    assert_eq!(audio["mime_type"], "audio/mpeg");
}

#[tokio::test]
async fn a_voice_note_declared_as_plain_ogg_is_reported_as_ogg_opus() {
    let h = Harness::start().await;
    let c = customer();
    let audio = json!({"voice": true, "mime_type": "audio/ogg", "content_base64": STANDARD.encode(OGG)});
    let (answer, value) = inbound(&h, &c, json!({"type": "audio", "audio": audio})).await;
    assert_eq!(message_of(&h, &value, &c, "audio")["audio"]["mime_type"], "audio/ogg; codecs=opus");
    let (_, info) = h.graph(Method::GET, answer["media_id"].as_str().unwrap(), None).await;
    assert_eq!(info["mime_type"], "audio/ogg; codecs=opus");
}

#[tokio::test]
async fn a_voice_note_of_another_audio_type_is_refused() {
    let h = Harness::start().await;
    let body = json!({"phone_number_id": h.number(), "from": customer(),
        "message": {"type": "audio", "audio": {"voice": true, "mime_type": "audio/mpeg"}}});
    let (status, answer) = simulate(&h, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["path"], "message.audio.mime_type");
}

#[tokio::test]
async fn stickers_always_say_whether_they_are_animated() {
    let h = Harness::start().await;
    let c = customer();
    let (_, value) = inbound(&h, &c, json!({"type": "sticker", "sticker": {"animated": true}})).await;
    let sticker = &message_of(&h, &value, &c, "sticker")["sticker"];
    assert_eq!(sticker["animated"], true);
    assert_eq!(sticker["mime_type"], "image/webp");
    let (_, value) = inbound(&h, &c, json!({"type": "sticker", "sticker": {}})).await;
    assert_eq!(message_of(&h, &value, &c, "sticker")["sticker"]["animated"], false);
}

#[tokio::test]
async fn media_without_a_mime_type_takes_the_type_its_content_shows() {
    let h = Harness::start().await;
    let c = customer();
    let (answer, value) =
        inbound(&h, &c, json!({"type": "image", "image": {"content_base64": STANDARD.encode(PNG)}})).await;
    assert_eq!(message_of(&h, &value, &c, "image")["image"]["mime_type"], "image/png");
    let (_, info) = h.graph(Method::GET, answer["media_id"].as_str().unwrap(), None).await;
    let resp = download(&h, info["url"].as_str().unwrap(), Some(&h.seed.access_token)).await;
    assert_eq!(resp.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn media_whose_content_or_type_does_not_fit_the_message_is_refused() {
    let h = Harness::start().await;
    let cases = [
        (
            json!({"type": "image", "image": {"content_base64": STANDARD.encode(PDF), "mime_type": "image/jpeg"}}),
            "message.image.content_base64",
        ),
        (json!({"type": "image", "image": {"mime_type": "application/pdf"}}), "message.image.mime_type"),
        (json!({"type": "video", "video": {"mime_type": "audio/ogg"}}), "message.video.mime_type"),
        (json!({"type": "sticker", "sticker": {"mime_type": "image/png"}}), "message.sticker.mime_type"),
        (json!({"type": "image", "image": {"content_base64": ""}}), "message.image.content_base64"),
    ];
    for (message, path) in cases {
        let body = json!({"phone_number_id": h.number(), "from": customer(), "message": message});
        let (status, answer) = simulate(&h, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}: {answer}");
        assert_eq!(answer["error"]["path"], path, "{message}");
    }
}

#[tokio::test]
async fn a_location_arrives_with_its_coordinates_and_names() {
    let h = Harness::start().await;
    let c = customer();
    let location = json!({"latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301", "url": "https://philzcoffee.com"});
    let (_, value) = inbound(&h, &c, json!({"type": "location", "location": location})).await;
    assert_eq!(message_of(&h, &value, &c, "location")["location"], location);
}

#[tokio::test]
async fn shared_contact_cards_arrive_as_the_customer_shared_them() {
    let h = Harness::start().await;
    let c = customer();
    let cards = json!([{
        "name": {"first_name": "Barbara", "last_name": "Johnson", "formatted_name": "Barbara J. Johnson"},
        "org": {"company": "Social Tsunami"},
        "phones": [{"phone": "+1 (415) 555-0829", "wa_id": "14155550829", "type": "MOBILE"}]
    }]);
    let (_, value) = inbound(&h, &c, json!({"type": "contacts", "contacts": cards})).await;
    assert_eq!(message_of(&h, &value, &c, "contacts")["contacts"], cards);
}

#[tokio::test]
async fn a_button_reply_names_the_business_message_it_answers() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hello").await;
    let buttons = send_buttons(&h, &c).await;
    let reply = json!({"type": "button_reply", "button_reply": {"id": "ship-yes", "title": "Yes"}});
    let (_, value) = inbound(&h, &c, json!({"type": "interactive", "interactive": reply})).await;
    let m = message_of(&h, &value, &c, "interactive");
    assert_eq!(m["interactive"], reply);
    assert_eq!(m["context"], json!({"from": h.number_digits(), "id": buttons}));
}

#[tokio::test]
async fn a_list_reply_carries_the_chosen_row() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("menu please").await;
    let menu = h
        .send_ok(json!({"to": c, "type": "interactive", "interactive": {
            "type": "list",
            "body": {"text": "Pick a slot"},
            "action": {"button": "Slots", "sections": [{"title": "Morning", "rows": [
                {"id": "slot-9", "title": "9:00", "description": "Before the rush"}
            ]}]}
        }}))
        .await;
    let reply = json!({"type": "list_reply", "list_reply": {"id": "slot-9", "title": "9:00", "description": "Before the rush"}});
    let (_, value) =
        inbound(&h, &c, json!({"type": "interactive", "interactive": reply, "context": {"id": menu}})).await;
    let m = message_of(&h, &value, &c, "interactive");
    assert_eq!(m["interactive"], reply);
    assert_eq!(m["context"], json!({"from": h.number_digits(), "id": menu}));
}

#[tokio::test]
async fn a_flow_reply_carries_its_response_json_as_a_string() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("book me in").await;
    send_buttons(&h, &c).await;
    let answers = json!({"flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.", "date": "2025-06-01"});
    let reply = json!({"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": answers}});
    let (_, value) = inbound(&h, &c, json!({"type": "interactive", "interactive": reply})).await;
    let nfm = &message_of(&h, &value, &c, "interactive")["interactive"]["nfm_reply"];
    assert_eq!(nfm["name"], "flow");
    assert_eq!(nfm["body"], "Sent");
    let text = nfm["response_json"].as_str().expect("response_json is a string, as Meta sends it");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), answers);

    let given = r#"{"flow_token":"t-2","ok":true}"#;
    let reply = json!({"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": given}});
    let (_, value) = inbound(&h, &c, json!({"type": "interactive", "interactive": reply})).await;
    assert_eq!(value["messages"][0]["interactive"]["nfm_reply"]["response_json"], given);
}

#[tokio::test]
async fn a_template_quick_reply_arrives_as_a_button_message() {
    let h = Harness::start().await;
    let c = customer();
    let template = h
        .send_ok(
            json!({"to": c, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
        )
        .await;
    let (_, value) =
        inbound(&h, &c, json!({"type": "button", "button": {"payload": "Unsubscribe", "text": "Unsubscribe"}})).await;
    let m = message_of(&h, &value, &c, "button");
    assert_eq!(m["button"], json!({"payload": "Unsubscribe", "text": "Unsubscribe"}));
    assert_eq!(m["context"], json!({"from": h.number_digits(), "id": template}));
}

#[tokio::test]
async fn a_reaction_names_the_message_and_the_emoji() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let sent = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "Your order shipped"}})).await;
    let reaction = json!({"message_id": sent, "emoji": "👍"});
    let (_, value) = inbound(&h, &c, json!({"type": "reaction", "reaction": reaction})).await;
    assert_eq!(message_of(&h, &value, &c, "reaction")["reaction"], reaction);
}

#[tokio::test]
async fn an_order_arrives_with_its_items_and_prices_as_given() {
    let h = Harness::start().await;
    let c = customer();
    let order = json!({"catalog_id": "194836987003835", "text": "Love these!", "product_items": [
        {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
        {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 7.99, "currency": "USD"}
    ]});
    let (_, value) = inbound(&h, &c, json!({"type": "order", "order": order})).await;
    let got = &message_of(&h, &value, &c, "order")["order"];
    assert_eq!(got, &order);
    // A whole price stays a JSON integer, as in Meta's example, not 30.0.
    assert!(got["product_items"][0]["item_price"].is_u64(), "{got}");
}

#[tokio::test]
async fn a_number_change_arrives_as_a_system_message_without_contacts() {
    let h = Harness::start().await;
    let (old, new) = (customer(), customer());
    let body = json!({"phone_number_id": h.number(), "from": old, "name": "Sheena Nelson",
        "message": {"type": "system", "system": {"type": "user_changed_number", "new_wa_id": new}}});
    let (status, answer) = simulate(&h, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == answer["wamid"]).await;
    assert!(value.get("contacts").is_none(), "system messages have no contacts: {value}");
    let m = &value["messages"][0];
    assert_eq!(m["from"], old);
    assert_eq!(m["type"], "system");
    assert_eq!(
        m["system"],
        json!({"body": format!("User Sheena Nelson changed from {old} to {new}"), "wa_id": new, "type": "user_changed_number"})
    );
}

#[tokio::test]
async fn an_unsupported_message_carries_error_131051_and_what_was_sent() {
    let h = Harness::start().await;
    let c = customer();
    let (_, value) = inbound(&h, &c, json!({"type": "unsupported", "unsupported": {"type": "poll"}})).await;
    let m = message_of(&h, &value, &c, "unsupported");
    assert_eq!(m["unsupported"], json!({"type": "poll"}));
    assert_eq!(
        m["errors"],
        json!([{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."}}])
    );
}

#[tokio::test]
async fn an_unsupported_message_in_a_group_carries_error_130501() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.group_with(&[&c]).await;
    let body = json!({"phone_number_id": h.number(), "from": c, "name": "Ana", "group_id": group,
        "message": {"type": "unsupported"}});
    let (status, answer) = simulate(&h, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == answer["wamid"]).await;
    let m = message_of(&h, &value, &c, "unsupported");
    assert_eq!(m["group_id"], group);
    let e = &m["errors"][0];
    assert_eq!(e["code"], 130501);
    assert_eq!(e["title"], "Unsupported message type");
    assert_eq!(e["message"], "Message type is not currently supported", "as groups-messaging.mdx shows it");
}

#[tokio::test]
async fn a_welcome_request_has_no_content() {
    let h = Harness::start().await;
    let c = customer();
    let (_, value) = inbound(&h, &c, json!({"type": "request_welcome"})).await;
    let m = message_of(&h, &value, &c, "request_welcome");
    let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["from", "from_user_id", "id", "timestamp", "type"]);
}

#[tokio::test]
async fn a_reply_names_the_business_message_it_quotes() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("hi").await;
    let sent = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "Which size?"}})).await;
    let (_, value) =
        inbound(&h, &c, json!({"type": "text", "text": {"body": "Medium"}, "context": {"id": sent}})).await;
    assert_eq!(message_of(&h, &value, &c, "text")["context"], json!({"from": h.number_digits(), "id": sent}));
}

#[tokio::test]
async fn a_reply_to_a_message_sent_to_someone_else_is_refused() {
    let h = Harness::start().await;
    let (a, b) = (customer(), customer());
    h.customer_writes(&a, "hi").await;
    let to_a = h.send_ok(json!({"to": a, "type": "text", "text": {"body": "For A only"}})).await;
    let body = json!({"phone_number_id": h.number(), "from": b,
        "message": {"type": "text", "text": {"body": "?"}, "context": {"id": to_a}}});
    let (status, answer) = simulate(&h, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["path"], "message.context.id");
}

#[tokio::test]
async fn forwarded_messages_say_so_in_their_context() {
    let h = Harness::start().await;
    let c = customer();
    let (_, value) =
        inbound(&h, &c, json!({"type": "text", "text": {"body": "look"}, "context": {"forwarded": true}})).await;
    assert_eq!(message_of(&h, &value, &c, "text")["context"], json!({"forwarded": true}));
    let image = json!({"type": "image", "image": {}, "context": {"frequently_forwarded": true}});
    let (_, value) = inbound(&h, &c, image).await;
    assert_eq!(message_of(&h, &value, &c, "image")["context"], json!({"frequently_forwarded": true}));
}

#[tokio::test]
async fn a_message_from_an_ad_carries_its_referral() {
    let h = Harness::start().await;
    let c = customer();
    let referral = json!({
        "source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726", "source_type": "ad",
        "body": "Summer Succulents are here!", "headline": "Chat with us", "media_type": "image",
        "image_url": "https://scontent.xx.fbcdn.net/v/t45.1", "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e",
        "welcome_message": {"text": "Hi there! Let us know how we can help!"}
    });
    let message = json!({"type": "text", "text": {"body": "Can I get more info about this?"}, "referral": referral});
    let (_, value) = inbound(&h, &c, message).await;
    assert_eq!(message_of(&h, &value, &c, "text")["referral"], referral);
}

#[tokio::test]
async fn a_customer_with_a_business_scoped_user_id_carries_it() {
    let h = Harness::start().await;
    let c = customer();
    let body = json!({"phone_number_id": h.number(), "from": c, "name": "Ana", "user_id": "US.13491208655302741918",
        "message": {"type": "text", "text": {"body": "hi"}}});
    let (status, answer) = simulate(&h, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == answer["wamid"]).await;
    assert_eq!(value["contacts"][0]["user_id"], "US.13491208655302741918");
    assert_eq!(value["messages"][0]["from_user_id"], "US.13491208655302741918");
}

#[tokio::test]
async fn an_inbound_message_opens_the_24_hour_window() {
    let h = Harness::start().await;
    let c = customer();
    let before = text_fate(&h, &c).await;
    assert_eq!(before["status"], "failed", "{before}");
    assert_eq!(before["errors"][0]["code"], 131047);

    inbound(&h, &c, json!({"type": "request_welcome"})).await;
    let after = text_fate(&h, &c).await;
    assert_eq!(after["status"], "sent", "{after}");
    let wamid = after["id"].as_str().unwrap();
    let all = h.hooks.wait_statuses(wamid, 2).await;
    assert_eq!(all[1]["status"], "delivered");
}

#[tokio::test]
async fn bad_simulate_requests_are_refused_naming_the_field() {
    let h = Harness::start().await;
    let c = customer();
    let joined = customer();
    let group = h.group_with(&[&joined]).await;
    let never_sent = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA";
    let text = json!({"type": "text", "text": {"body": "hi"}});
    let number = h.number();
    let with = |from: &str, message: Value| json!({"phone_number_id": number, "from": from, "message": message});
    let cases = [
        (json!({"phone_number_id": "100000000000000", "from": c, "message": text}), "phone_number_id"),
        (with("not-a-number", text.clone()), "from"),
        (with("12", text.clone()), "from"),
        (with(&h.number_digits(), text.clone()), "from"),
        (with(&c, json!({"text": {"body": "hi"}})), "message.type"),
        (with(&c, json!({"type": "poll", "poll": {}})), "message.type"),
        (with(&c, json!({"type": "text"})), "message.text"),
        (with(&c, json!({"type": "text", "text": {}})), "message.text"),
        (with(&c, json!({"type": "text", "text": {"body": ""}})), "message.text.body"),
        (with(&c, json!({"type": "text", "text": {"body": "hi"}, "image": {}})), "message.image"),
        (with(&c, json!({"type": "image"})), "message.image"),
        (with(&c, json!({"type": "image", "image": {"content_base64": "%%%"}})), "message.image.content_base64"),
        (with(&c, json!({"type": "audio", "audio": {"caption": "no"}})), "message.audio.caption"),
        (
            with(&c, json!({"type": "location", "location": {"latitude": 91.0, "longitude": 0.0}})),
            "message.location.latitude",
        ),
        (with(&c, json!({"type": "contacts", "contacts": []})), "message.contacts"),
        (with(&c, json!({"type": "interactive", "interactive": {"type": "poll"}})), "message.interactive.type"),
        (
            with(
                &c,
                json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "a", "title": "A"}}}),
            ),
            "message.context.id",
        ),
        (with(&c, json!({"type": "button", "button": {"payload": "p", "text": "t"}})), "message.context.id"),
        (
            with(&c, json!({"type": "text", "text": {"body": "hi"}, "context": {"id": never_sent}})),
            "message.context.id",
        ),
        (
            with(
                &c,
                json!({"type": "text", "text": {"body": "hi"}, "context": {"forwarded": true, "frequently_forwarded": true}}),
            ),
            "message.context",
        ),
        (
            with(
                &c,
                json!({"type": "text", "text": {"body": "hi"}, "referral": {"source_url": "u", "source_id": "1", "source_type": "tv", "body": "b", "headline": "h", "media_type": "image"}}),
            ),
            "message.referral.source_type",
        ),
        (
            with(&c, json!({"type": "order", "order": {"catalog_id": "1", "product_items": []}})),
            "message.order.product_items",
        ),
        (
            with(&c, json!({"type": "system", "system": {"type": "user_left", "new_wa_id": "15550100001"}})),
            "message.system.type",
        ),
        (with(&c, json!({"type": "request_welcome", "request_welcome": {"x": 1}})), "message.request_welcome"),
        (
            json!({"phone_number_id": number, "from": c, "group_id": "Y2FwaV9ncm91cDpub25lZD", "message": text}),
            "group_id",
        ),
        (json!({"phone_number_id": number, "from": c, "group_id": group, "message": text}), "group_id"),
    ];
    for (body, path) in cases {
        let (status, answer) = simulate(&h, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["path"], path, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field");
    }
}

#[tokio::test]
async fn a_refused_simulate_request_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(Options { state_dir: Some(dir.path().into()), ..Options::default() }).await;
    let (known, stranger) = (customer(), customer());
    let (_, value) = inbound(&h, &known, json!({"type": "text", "text": {"body": "hi"}})).await;
    let bsuid = value["contacts"][0]["user_id"].clone();
    let png = STANDARD.encode(PNG);
    // Each is refused by a check that comes after the user, the file and the window are known.
    let refused = [
        json!({"type": "image", "image": {"content_base64": png}, "context": {"id": "wamid.never-sent"}}),
        json!({"type": "image", "image": {"content_base64": png}, "context": {"forwarded": true, "frequently_forwarded": true}}),
        json!({"type": "image", "image": {"content_base64": png}, "referral": {"source_url": "https://fb.me/x",
            "source_id": "1", "source_type": "billboard", "body": "b", "headline": "h", "media_type": "image"}}),
        json!({"type": "button", "button": {"payload": "p", "text": "t"}}),
    ];
    for (from, message) in [&known, &stranger].into_iter().flat_map(|f| refused.iter().map(move |m| (f, m))) {
        let body = json!({"phone_number_id": h.number(), "from": from, "name": "Mallory", "user_id": "ZZ.1",
            "message": message});
        let (status, answer) = simulate(&h, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}: {answer}");
    }
    // The known customer keeps their name and BSUID; the stranger's window never opened.
    let hello =
        json!({"to": known, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let wamid = h.send_ok(hello).await;
    h.hooks.wait_statuses(&wamid, 1).await;
    let status_value = h.hooks.wait_change("messages", |v| v["statuses"][0]["id"] == wamid).await;
    assert_eq!(status_value["contacts"][0]["user_id"], bsuid, "{status_value}");
    assert_eq!(status_value["contacts"][0]["profile"]["name"], "Ana", "{status_value}");
    let fate = text_fate(&h, &stranger).await;
    assert_eq!((&fate["status"], &fate["errors"][0]["code"]), (&json!("failed"), &json!(131047)), "{fate}");
    // No file and no user was kept for them.
    h.sandbox.shutdown();
    let saved: Value = serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["media"], json!([]), "no media stored");
    let users: Vec<&String> = saved["users"].as_object().unwrap().keys().collect();
    assert_eq!(users, [&known], "only the customer who wrote is known");
    assert!(!dir.path().join("media").exists() || std::fs::read_dir(dir.path().join("media")).unwrap().count() == 0);
}
