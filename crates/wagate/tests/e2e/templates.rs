//! Templates through wagate: created, listed, edited and deleted at the sandbox's Meta; kept
//! current by Meta's template webhooks; and every template send checked against the template
//! before it is queued, with the exact error (path and rule) or the exact components Meta got.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_storage::Backend;

use crate::support::*;

on_each_backend!(
    templates_are_created_listed_edited_and_deleted,
    template_sends_are_checked_against_the_template,
    template_webhooks_keep_templates_current,
    an_unsynced_waba_passes_template_sends_through,
);

fn order_update() -> Value {
    json!({
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{order_id}}",
             "example": {"header_text_named_params": [{"param_name": "order_id", "example": "A-1"}]}},
            {"type": "BODY", "text": "Hi {{first_name}}, your order {{order_id}} ships on {{ship_date}}. Thank you for shopping with us.",
             "example": {"body_text_named_params": [
                 {"param_name": "first_name", "example": "Ana"},
                 {"param_name": "order_id", "example": "A-1"},
                 {"param_name": "ship_date", "example": "May 1"}]}},
            {"type": "FOOTER", "text": "Lucky Shrub"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://shop.test/track/{{1}}", "example": ["https://shop.test/track/A-1"]},
                {"type": "COPY_CODE", "example": "SAVE10"},
                {"type": "QUICK_REPLY", "text": "Stop updates"}]}
        ]
    })
}

fn shipping_notice() -> Value {
    let example: Vec<String> = (1..=10).map(|i| format!("v{i}")).collect();
    json!({
        "name": "shipping_notice",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2UvcG5n:ARYtS4"]}},
            {"type": "BODY", "text": "Dear {{1}}, item {{2}} and item {{3}} with item {{4}} plus item {{5}} then item {{6}} \
                also item {{7}} next item {{8}} with item {{9}} ref code {{10}} thanks for waiting.",
             "example": {"body_text": [example]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Help", "url": "https://shop.test/help"}]}
        ]
    })
}

fn summer_sale() -> Value {
    json!({
        "name": "summer_sale",
        "language": "en_US",
        "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "Hi {{1}}, our summer sale is on now.", "example": {"body_text": [["Ana"]]}}
        ]
    })
}

fn promo_carousel() -> Value {
    let card = json!({"components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2UvcG5n:ARYtS4"]}},
        {"type": "BODY", "text": "Card text {{1}} here now.", "example": {"body_text": [["x"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Like"}]}
    ]});
    json!({
        "name": "promo_carousel",
        "language": "en_US",
        "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "Look at these offers for you today."},
            {"type": "CAROUSEL", "cards": [card.clone(), card]}
        ]
    })
}

/// Creates a template through wagate; its id once Meta's review approved it.
async fn approved(app: &TestApp, body: Value) -> String {
    let (status, created) = app.post("/v1/templates", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    status_becomes(app, &id, "APPROVED").await;
    id
}

async fn status_becomes(app: &TestApp, id: &str, wanted: &str) -> Value {
    // A template made at Meta directly is not here until a webhook names it.
    eventually(&format!("template {id} to be {wanted}"), || async {
        let (status, t) = app.get(&format!("/v1/templates/{id}")).await;
        (status == StatusCode::OK && t["status"] == wanted).then_some(t)
    })
    .await
}

fn send(from: &str, to: &str, template: Value) -> Value {
    json!({"from": from, "to": to, "type": "template", "template": template})
}

/// The send is refused with `rule` at `path`.
async fn refused(app: &TestApp, body: Value, path: &str, rule: &str) -> Value {
    let (status, answer) = app.post("/v1/messages", body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
    assert_eq!(
        (answer["error"]["code"].as_str(), answer["error"]["path"].as_str()),
        (Some(rule), Some(path)),
        "{answer}"
    );
    answer
}

/// The send is accepted; the template object Meta received, and the message.
async fn delivered(app: &TestApp, body: Value) -> (Value, Value) {
    let (status, answer) = app.post("/v1/messages", body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body} → {answer}");
    let id = answer["id"].as_str().unwrap();
    let done =
        wait_for_message(&app.http, &app.url, &app.api_key, id, "the template sent", |m| m["wamid"].is_string()).await;
    let (_, received) = app.get("/sandbox/control/messages").await;
    let got = received["data"].as_array().unwrap().iter().find(|r| r["wamid"] == done["wamid"]).cloned();
    (got.expect("the sandbox got it")["body"]["template"].clone(), done)
}

async fn graph_send(app: &TestApp, from: &str, body: Value) -> (StatusCode, Value) {
    app.request(Method::POST, &format!("/graph/v23.0/{from}/messages"), Some(body)).await
}

async fn templates_are_created_listed_edited_and_deleted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    // Creation: checked here, then at Meta (PENDING until its review), then stored.
    let (status, body) =
        app.post("/v1/templates", json!({"language": "en_US", "category": "UTILITY", "components": []})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required"), Some("name"))
    );
    let (status, body) = app.post("/v1/templates", json!({"name": "Bad Name", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]})).await;
    assert_eq!((status, body["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")), "{body}");
    let (status, body) = app.post("/v1/templates", json!({"name": "n", "language": "en_US", "category": "PROMO", "components": [{"type": "BODY", "text": "x"}]})).await;
    assert_eq!(
        (status, body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("category")),
        "{body}"
    );
    let (status, created) = app.post("/v1/templates", summer_sale()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["status"].as_str(), created["category"].as_str()), (Some("PENDING"), Some("MARKETING")));
    assert_eq!(created["components"][0]["text"], "Hi {{1}}, our summer sale is on now.");
    let id = created["id"].as_str().unwrap().to_owned();
    // Meta's refusal comes back with Meta's code and message: the name is taken in that language.
    let (status, body) = app.post("/v1/templates", summer_sale()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("meta_rejected")),
        "{body}"
    );
    assert_eq!(
        (body["error"]["meta"]["code"].as_i64(), body["error"]["meta"]["error_subcode"].as_i64()),
        (Some(100), Some(2388024)),
        "{body}"
    );
    // Review (the sandbox approves after a moment) arrives by webhook.
    status_becomes(&app, &id, "APPROVED").await;
    // By id, by name and language, listed with filters and pages.
    let (status, by_name) = app.get("/v1/templates/summer_sale/en_US").await;
    assert_eq!((status, by_name["id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{by_name}");
    let (status, body) = app.get("/v1/templates/summer_sale/pt_BR").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
    let (status, body) = app.get("/v1/templates/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, rejected) = app.post("/v1/templates", json!({"name": "reject_me", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "Please reject this template now."}]})).await;
    let rejected_id = rejected["id"].as_str().unwrap().to_owned();
    let t = status_becomes(&app, &rejected_id, "REJECTED").await;
    assert_eq!(t["rejected_reason"], "PROMOTIONAL");
    let (_, page) = app.get("/v1/templates?limit=2").await;
    let names: Vec<&str> = page["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hello_world", "reject_me"], "{page}");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, rest) = app.get(&format!("/v1/templates?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["data"][0]["name"], "summer_sale", "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, only) = app.get("/v1/templates?status=rejected").await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1, "{only}");
    let (_, marketing) = app.get("/v1/templates?category=MARKETING&name=summer_sale").await;
    assert_eq!(marketing["data"][0]["id"].as_str(), Some(id.as_str()));
    // An edit goes to Meta and back to review; what cannot change is refused here.
    let (status, body) =
        app.request(Method::PATCH, &format!("/v1/templates/{id}"), Some(json!({"name": "other"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("immutable")),
        "{body}"
    );
    let new_body = json!({"components": [{"type": "BODY", "text": "Hello {{1}}, the summer sale ends soon.", "example": {"body_text": [["Ana"]]}}]});
    let (status, edited) = app.request(Method::PATCH, "/v1/templates/summer_sale/en_US", Some(new_body.clone())).await;
    assert_eq!((status, edited["status"].as_str()), (StatusCode::OK, Some("PENDING")), "{edited}");
    assert_eq!(edited["components"][0]["text"], "Hello {{1}}, the summer sale ends soon.");
    status_becomes(&app, &id, "APPROVED").await;
    // Meta allows one edit of an approved template a day: its refusal, with its code.
    let (status, body) = app.request(Method::PATCH, &format!("/v1/templates/{id}"), Some(new_body)).await;
    assert_eq!(
        (status, body["error"]["meta"]["code"].as_i64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(100)),
        "{body}"
    );
    // Deleted at Meta and here.
    let (status, _) = app.request(Method::DELETE, &format!("/v1/templates/{rejected_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/v1/templates/{rejected_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, synced) = app.post("/v1/templates/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(synced["data"][0]["templates"], 2, "hello_world and summer_sale: {synced}");
    let (status, body) = app.request(Method::DELETE, "/v1/templates/summer_sale/en_US", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, left) = app.get("/v1/templates").await;
    assert_eq!(left["data"].as_array().unwrap().len(), 1, "{left}");
    // A read-only key reads templates but does not make them.
    let (status, key) = app.post("/v1/api-keys", json!({"name": "reader", "scopes": ["read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let reader = key["key"].as_str().unwrap();
    let url = format!("{}/v1/templates", app.url);
    let (status, _) = request(&app.http, Method::GET, &url, Some(reader), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = request(&app.http, Method::POST, &url, Some(reader), Some(summer_sale())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn template_sends_are_checked_against_the_template(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let to = customer();
    app.customer_writes(&from, &to, "hello").await;
    approved(&app, order_update()).await;
    approved(&app, shipping_notice()).await;
    approved(&app, promo_carousel()).await;
    let sale = approved(&app, summer_sale()).await;
    let s = |template: Value| send(&from, &to, template);

    // 1. Named, simple form: Meta's components built in the template's order, rendered as seen.
    let (got, message) = delivered(
        &app,
        s(json!({"name": "order_update", "language": "en_US",
        "params": {"ship_date": "May 1", "first_name": "Ana", "order_id": "A-7"},
        "header": "A-7", "buttons": {"0": "A-7", "1": "SAVE10"}})),
    )
    .await;
    assert_eq!(
        got,
        json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "A-7", "parameter_name": "order_id"}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ana", "parameter_name": "first_name"},
                {"type": "text", "text": "A-7", "parameter_name": "order_id"},
                {"type": "text", "text": "May 1", "parameter_name": "ship_date"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-7"}]},
            {"type": "button", "sub_type": "copy_code", "index": "1", "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]}
        ]})
    );
    assert_eq!(message["rendered"]["header"], "Order A-7");
    assert_eq!(message["rendered"]["body"], "Hi Ana, your order A-7 ships on May 1. Thank you for shopping with us.");
    assert_eq!(message["rendered"]["footer"], "Lucky Shrub");
    assert_eq!(message["rendered"]["buttons"][0]["url"], "https://shop.test/track/A-7");
    assert_eq!(message["rendered"]["buttons"][1]["code"], "SAVE10");
    // A conversation's history shows it as the customer saw it.
    let (_, listed) = app.get(&format!("/v1/messages/{}", message["id"].as_str().unwrap())).await;
    assert_eq!(listed["rendered"], message["rendered"]);

    // 2. Named, Meta's form, passes as given.
    let meta_form = |body: Value| {
        json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "A-8", "parameter_name": "order_id"}]},
            {"type": "body", "parameters": body},
            {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "A-8"}]},
            {"type": "button", "sub_type": "copy_code", "index": 1, "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]}
        ]})
    };
    let good_body = json!([
        {"type": "text", "text": "Bo", "parameter_name": "first_name"},
        {"type": "text", "text": "A-8", "parameter_name": "order_id"},
        {"type": "text", "text": "June 2", "parameter_name": "ship_date"}]);
    let (got, _) = delivered(&app, s(meta_form(good_body.clone()))).await;
    assert_eq!(got, meta_form(good_body));

    // 3. A misspelled name.
    let misspelled = json!({"name": "order_update", "language": "en_US", "header": "A-1", "buttons": {"0": "A", "1": "C"},
        "params": {"frist_name": "Ana", "order_id": "A-1", "ship_date": "May 1"}});
    let e = refused(&app, s(misspelled), "template.params.frist_name", "unknown_parameter").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("first_name, order_id, ship_date"), "{e}");
    // 4. A variable left out (Meta's form).
    let two = json!([{"type": "text", "text": "Bo", "parameter_name": "first_name"}, {"type": "text", "text": "A-8", "parameter_name": "order_id"}]);
    let e = refused(&app, s(meta_form(two)), "template.components[1].parameters", "template_param_count").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("'ship_date' is not given"), "{e}");
    // 5. A value for a variable the template lacks.
    let extra = json!([
        {"type": "text", "text": "Bo", "parameter_name": "first_name"},
        {"type": "text", "text": "A-8", "parameter_name": "order_id"},
        {"type": "text", "text": "June 2", "parameter_name": "ship_date"},
        {"type": "text", "text": "x", "parameter_name": "coupon"}]);
    refused(&app, s(meta_form(extra)), "template.components[1].parameters[3].parameter_name", "unknown_parameter")
        .await;
    // 6. Positional values for named variables (simple form).
    refused(
        &app,
        s(json!({"name": "order_update", "language": "en_US", "params": ["Ana", "A-1", "May 1"]})),
        "template.params",
        "template_param_format",
    )
    .await;
    // 7. Named variables given without their names (Meta's form).
    let unnamed =
        json!([{"type": "text", "text": "Bo"}, {"type": "text", "text": "A-8"}, {"type": "text", "text": "June 2"}]);
    refused(
        &app,
        s(meta_form(unnamed)),
        "template.components[1].parameters[0].parameter_name",
        "template_param_format",
    )
    .await;

    // 8. Positional, {{10}} after {{2}}: ten values in order, the tenth where {{10}} stands.
    let ten: Vec<String> = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"].iter().map(|s| s.to_string()).collect();
    let (got, message) = delivered(
        &app,
        s(json!({"name": "shipping_notice", "language": "en_US", "params": ten,
        "header": {"link": "https://cdn.shop.test/parcel.png"}})),
    )
    .await;
    let body_params: Vec<Value> = ten.iter().map(|v| json!({"type": "text", "text": v})).collect();
    assert_eq!(
        got["components"],
        json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.shop.test/parcel.png"}}]},
            {"type": "body", "parameters": body_params}
        ])
    );
    let rendered = message["rendered"]["body"].as_str().unwrap();
    assert!(rendered.starts_with("Dear A, item B and item C") && rendered.contains("ref code J thanks"), "{rendered}");
    assert_eq!(
        message["rendered"]["header"],
        json!({"type": "image", "image": {"link": "https://cdn.shop.test/parcel.png"}})
    );
    let notice = |params: Value, header: Value| {
        s(json!({"name": "shipping_notice", "language": "en_US", "params": params, "header": header}))
    };
    let image = json!({"link": "https://cdn.shop.test/parcel.png"});
    // 9. Nine values for ten variables.
    let e = refused(&app, notice(json!(ten[..9]), image.clone()), "template.params", "template_param_count").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("10 variable(s)"), "{e}");
    // 10. Eleven: the extra one is named.
    let mut eleven = ten.clone();
    eleven.push("K".into());
    refused(&app, notice(json!(eleven), image.clone()), "template.params[10]", "template_param_count").await;
    // 11. Numbered values that skip one.
    refused(&app, notice(json!({"1": "A", "3": "C"}), image.clone()), "template.params.3", "template_param_count")
        .await;
    // 12. The image header left out.
    refused(&app, notice(json!(ten), Value::Null), "template.header", "template_param_count").await;
    // 13. A video where the template shows an image.
    refused(
        &app,
        notice(json!(ten), json!({"type": "video", "video": {"link": "https://cdn.shop.test/v.mp4"}})),
        "template.header.type",
        "template_param_format",
    )
    .await;
    // 14. A value for the static URL button.
    let mut with_button = notice(json!(ten), image.clone());
    with_button["template"]["buttons"] = json!({"0": "x"});
    refused(&app, with_button, "template.buttons.0", "template_param_count").await;
    // 15. New lines, tabs and runs of spaces in values.
    let mut newline = ten.clone();
    newline[1] = "two\nlines".into();
    refused(&app, notice(json!(newline), image.clone()), "template.params[1]", "template_param_text").await;
    let mut tab = ten.clone();
    tab[2] = "a\tb".into();
    refused(&app, notice(json!(tab), image.clone()), "template.params[2]", "template_param_text").await;
    let mut spaces = ten.clone();
    spaces[3] = "a     b".into();
    refused(&app, notice(json!(spaces), image.clone()), "template.params[3]", "template_param_text").await;
    let four = {
        let mut v = ten.clone();
        v[3] = "a    b".into();
        v
    };
    let (status, body) = app.post("/v1/messages", notice(json!(four), image.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "four spaces in a row are allowed: {body}");
    // 16. A value that makes the body longer than Meta shows.
    let mut long = ten.clone();
    long[0] = "x".repeat(1000);
    refused(&app, notice(json!(long), image.clone()), "template.params", "template_text_too_long").await;
    // 17. A header value longer than a header shows.
    let header_long = json!({"name": "order_update", "language": "en_US", "header": "y".repeat(60), "buttons": {"0": "A", "1": "C"},
        "params": {"first_name": "Ana", "order_id": "A-1", "ship_date": "May 1"}});
    refused(&app, s(header_long), "template.header", "template_text_too_long").await;

    // 18. The URL button's value left out.
    let no_url = json!({"name": "order_update", "language": "en_US", "header": "A-1", "buttons": {"1": "SAVE10"},
        "params": {"first_name": "Ana", "order_id": "A-1", "ship_date": "May 1"}});
    refused(&app, s(no_url), "template.buttons.0", "template_param_count").await;
    // 19. The copy-code button's value left out (Meta's form).
    let mut no_code = meta_form(json!([
        {"type": "text", "text": "Bo", "parameter_name": "first_name"},
        {"type": "text", "text": "A-8", "parameter_name": "order_id"},
        {"type": "text", "text": "June 2", "parameter_name": "ship_date"}]));
    no_code["components"].as_array_mut().unwrap().pop();
    let e = refused(&app, s(no_code.clone()), "template.components", "template_param_count").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("button 1"), "{e}");
    // 20. A button the template does not have.
    let no_such = json!({"name": "order_update", "language": "en_US", "header": "A-1", "buttons": {"0": "A", "1": "C", "7": "x"},
        "params": {"first_name": "Ana", "order_id": "A-1", "ship_date": "May 1"}});
    refused(&app, s(no_such), "template.buttons.7", "unknown_button").await;
    // 21. A button value of the wrong kind (Meta's form).
    let mut wrong_kind = no_code.clone();
    wrong_kind["components"][2]["sub_type"] = json!("quick_reply");
    wrong_kind["components"][2]["parameters"] = json!([{"type": "payload", "payload": "p"}]);
    refused(&app, s(wrong_kind), "template.components[2].sub_type", "template_param_format").await;

    // 22. A carousel, every card complete.
    let card = |n: &str| json!({"header": {"link": format!("https://cdn.shop.test/{n}.png")}, "params": [n], "buttons": {"0": format!("like-{n}")}});
    let (got, message) =
        delivered(&app, s(json!({"name": "promo_carousel", "language": "en_US", "cards": [card("a"), card("b")]})))
            .await;
    let meta_card = |i: u32, n: &str| {
        json!({"card_index": i, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": format!("https://cdn.shop.test/{n}.png")}}]},
            {"type": "body", "parameters": [{"type": "text", "text": n}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": format!("like-{n}")}]}
        ]})
    };
    assert_eq!(got["components"], json!([{"type": "carousel", "cards": [meta_card(0, "a"), meta_card(1, "b")]}]));
    assert_eq!(message["rendered"]["cards"][1]["body"], "Card text b here now.");
    // 23. A card short.
    refused(
        &app,
        s(json!({"name": "promo_carousel", "language": "en_US", "cards": [card("a")]})),
        "template.cards",
        "template_param_count",
    )
    .await;
    // 24. A card without its image.
    let bare = json!({"params": ["b"]});
    refused(
        &app,
        s(json!({"name": "promo_carousel", "language": "en_US", "cards": [card("a"), bare]})),
        "template.cards[1].header",
        "template_param_count",
    )
    .await;

    // 25. Not approved: rejected by Meta's review.
    let (_, rejected) = app.post("/v1/templates", json!({"name": "reject_me", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "Please reject this template now."}]})).await;
    status_becomes(&app, rejected["id"].as_str().unwrap(), "REJECTED").await;
    refused(
        &app,
        s(json!({"name": "reject_me", "language": {"code": "en_US"}})),
        "template.name",
        "template_not_approved",
    )
    .await;
    // 26. A language the template is not in.
    let e = refused(
        &app,
        s(json!({"name": "summer_sale", "language": "pt_BR", "params": ["Ana"]})),
        "template.language",
        "template_not_found",
    )
    .await;
    assert!(e["error"]["message"].as_str().unwrap().contains("it exists in en_US"), "{e}");
    refused(
        &app,
        s(json!({"name": "summer_sale", "language": {"code": "pt_BR"}})),
        "template.language.code",
        "template_not_found",
    )
    .await;
    // 27. A name no template has.
    refused(&app, s(json!({"name": "no_such_template", "language": "en_US"})), "template.name", "template_not_found")
        .await;
    // 28. Paused by Meta: refused until approved again.
    let (status, body) = app
        .request(Method::PUT, &format!("/sandbox/control/templates/{sale}/status"), Some(json!({"status": "PAUSED"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    status_becomes(&app, &sale, "PAUSED").await;
    refused(
        &app,
        s(json!({"name": "summer_sale", "language": "en_US", "params": ["Ana"]})),
        "template.name",
        "template_paused",
    )
    .await;
    let graph_sale = json!({"messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": "summer_sale", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}});
    let (status, body) = graph_send(&app, &from, graph_sale.clone()).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(132015)), "{body}");
    app.request(Method::PUT, &format!("/sandbox/control/templates/{sale}/status"), Some(json!({"status": "APPROVED"})))
        .await;
    status_becomes(&app, &sale, "APPROVED").await;
    // 29. Marketing to a customer who stopped marketing messages; a utility template still goes.
    let contact = app.contact_of(&to).await;
    let (status, body) =
        app.request(Method::PATCH, &format!("/v1/contacts/{contact}"), Some(json!({"marketing_opt_out": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused(&app, s(json!({"name": "summer_sale", "language": "en_US", "params": ["Ana"]})), "to", "marketing_opt_out")
        .await;
    let (status, body) = graph_send(&app, &from, graph_sale).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(131050)), "{body}");
    let (status, body) = app.post("/v1/messages", notice(json!(ten), image.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // 30. On the Meta-compatible surface, Meta's codes: a count mismatch is 132000, naming the
    // parameter as Meta does.
    let short = json!({"messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": "shipping_notice", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.shop.test/p.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "A"}]}]}});
    let (status, body) = graph_send(&app, &from, short).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(132000)), "{body}");
    let details = body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("template['components'][1]['parameters']"), "{details}");
    // Nothing refused reached Meta: only the sends that passed did.
    let (_, mine) = app.get(&format!("/v1/messages?to={}", to.replace('+', "%2B"))).await;
    let accepted = mine["data"].as_array().unwrap().len();
    assert_eq!(accepted, 6, "{mine}");
    eventually("every accepted send to reach the sandbox", || async {
        let received = sandbox_received(&app.http, &format!("{}/sandbox", app.url), Some(&app.api_key), &to).await;
        (received.len() == accepted).then_some(())
    })
    .await;
    app.stop().await;
}

async fn template_webhooks_keep_templates_current(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let id = approved(&app, summer_sale()).await;
    // Paused and disabled by Meta: each a webhook, each a template.updated event.
    for status in ["PAUSED", "DISABLED"] {
        let url = format!("/sandbox/control/templates/{id}/status");
        let (code, body) = app.request(Method::PUT, &url, Some(json!({"status": status}))).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        status_becomes(&app, &id, status).await;
    }
    let from = app.sandbox_numbers().await[0].clone();
    refused(
        &app,
        send(&from, &customer(), json!({"name": "summer_sale", "language": "en_US", "params": ["A"]})),
        "template.name",
        "template_disabled",
    )
    .await;
    // Quality and category, as Meta reports them.
    let account = sandbox_account(&app).await;
    let numeric: u64 = id.parse().unwrap();
    let change = |field: &str, value: Value| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": account.waba_id, "time": 1_800_000_000,
            "changes": [{"field": field, "value": value}]}]})
    };
    let quality = change(
        "message_template_quality_update",
        json!({"previous_quality_score": "GREEN",
        "new_quality_score": "RED", "message_template_id": numeric, "message_template_name": "summer_sale",
        "message_template_language": "en_US"}),
    );
    post_signed(&app, &account, quality.to_string().into_bytes()).await;
    let category = change(
        "template_category_update",
        json!({"message_template_id": numeric,
        "message_template_name": "summer_sale", "message_template_language": "en_US",
        "previous_category": "MARKETING", "new_category": "UTILITY"}),
    );
    post_signed(&app, &account, category.to_string().into_bytes()).await;
    all_processed(&app).await;
    let (_, t) = app.get(&format!("/v1/templates/{id}")).await;
    assert_eq!((t["quality_score"].as_str(), t["category"].as_str()), (Some("RED"), Some("UTILITY")), "{t}");
    // Events that are not statuses: flagged leaves it as it is, reinstated makes it sendable.
    for (event, status) in [("FLAGGED", "DISABLED"), ("REINSTATED", "APPROVED")] {
        let update = change(
            "message_template_status_update",
            json!({"event": event, "message_template_id": numeric,
            "message_template_name": "summer_sale", "message_template_language": "en_US", "reason": "NONE"}),
        );
        post_signed(&app, &account, update.to_string().into_bytes()).await;
        all_processed(&app).await;
        let (_, t) = app.get(&format!("/v1/templates/{id}")).await;
        assert_eq!(t["status"], status, "after {event}: {t}");
    }
    let (_, events) = app.get("/v1/events?type=template.updated").await;
    let about: Vec<&Value> =
        events["data"].as_array().unwrap().iter().filter(|e| e["data"]["id"] == id.as_str()).collect();
    // Created (PENDING), approved, paused, disabled, quality, category, reinstated (the flag
    // changed nothing).
    assert_eq!(about.len(), 7, "{events}");
    assert_eq!(about[0]["data"]["status"], "APPROVED", "newest first: {events}");
    // A template made at Meta without wagate is read when its review is announced.
    let sandbox = format!("{}/sandbox", app.url);
    let (status, made) = request(
        &app.http,
        Method::POST,
        &format!("{sandbox}/v23.0/{}/message_templates", account.waba_id),
        Some(&account.access_token),
        Some(json!({"name": "made_elsewhere", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Made at Meta directly."}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    status_becomes(&app, made["id"].as_str().unwrap(), "APPROVED").await;
    app.stop().await;
}

async fn an_unsynced_waba_passes_template_sends_through(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.templates.sync_interval_secs = 0).await else { return };
    let from = app.sandbox_numbers().await[0].clone();
    let to = customer();
    // hello_world has no variables: the value is wrong, but wagate has never read the WABA's
    // templates, so the send goes to Meta, which fails it.
    let wrong = send(
        &from,
        &to,
        json!({"name": "hello_world", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}]}),
    );
    let (status, body) = app.post("/v1/messages", wrong.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed =
        wait_for_message(&app.http, &app.url, &app.api_key, body["id"].as_str().unwrap(), "Meta's refusal", |m| {
            m["status"] == "failed"
        })
        .await;
    assert_eq!(failed["error"]["code"], 132000, "{failed}");
    let (_, none) = app.get("/v1/templates").await;
    assert!(none["data"].as_array().unwrap().is_empty(), "{none}");
    // Once read, the same send is refused before it is queued.
    let (status, synced) = app.post("/v1/templates/sync", json!({})).await;
    assert_eq!((status, synced["data"][0]["templates"].as_u64()), (StatusCode::OK, Some(1)), "{synced}");
    refused(&app, wrong, "template.components[0].parameters[0]", "template_param_count").await;
    let (got, _) = delivered(&app, send(&from, &to, json!({"name": "hello_world", "language": "en_US"}))).await;
    assert_eq!(got, json!({"name": "hello_world", "language": {"code": "en_US"}}));
    app.stop().await;
}
