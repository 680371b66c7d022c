//! Message templates: `/{waba-id}/message_templates` and `/{template-id}` (create, review,
//! list, get, edit, delete), their status webhooks, and the checks a template send must pass
//! (`templates/*`, `webhooks/reference/message_template_status_update.mdx`, `error-codes.mdx`).

mod support;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

/// Long enough that no review ends while a test looks.
const NEVER_MS: u64 = 600_000;

fn utility(name: &str, body: &str) -> Value {
    json!({"name": name, "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": body}]})
}

/// A positional template with two body variables.
fn shipped(name: &str) -> Value {
    json!({"name": name, "language": "en_US", "category": "UTILITY", "components": [{
        "type": "BODY",
        "text": "Hi {{1}}, your order {{2}} has shipped and arrives soon.",
        "example": {"body_text": [["Ana", "A-1001"]]}
    }]})
}

async fn create(h: &Harness, definition: Value) -> (StatusCode, Value) {
    h.graph(Method::POST, &format!("{}/message_templates", h.waba()), Some(definition)).await
}

/// Creates a template and returns its id.
async fn create_ok(h: &Harness, definition: Value) -> String {
    let (status, body) = create(h, definition).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().expect("an id").to_owned()
}

async fn set_status(h: &Harness, id: &str, status: &str) {
    let (code, body) =
        h.control(Method::PUT, &format!("control/templates/{id}/status"), Some(json!({"status": status}))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

async fn get(h: &Harness, id: &str) -> Value {
    let (status, body) = h.graph(Method::GET, id, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn list(h: &Harness, query: &str) -> (StatusCode, Value) {
    h.graph(Method::GET, &format!("{}/message_templates?{query}", h.waba()), None).await
}

async fn listed(h: &Harness, query: &str) -> Vec<String> {
    let (status, page) = list(h, query).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    names(&page)
}

fn names(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|t| format!("{}/{}", t["name"], t["language"])).collect()
}

/// The status webhooks delivered for template `id`, in arrival order.
fn status_updates(h: &Harness, id: &str) -> Vec<Value> {
    let id: u64 = id.parse().unwrap();
    h.hooks
        .changes()
        .into_iter()
        .filter(|(f, v)| f == "message_template_status_update" && v["message_template_id"] == id)
        .map(|(_, v)| v)
        .collect()
}

async fn wait_updates(h: &Harness, id: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} status updates of template {id}"), || async {
        let got = status_updates(h, id);
        (got.len() >= n).then_some(got)
    })
    .await
}

/// Sends template `name` in `language` with `components` to a new customer.
async fn send_template(h: &Harness, name: &str, language: &str, components: Value) -> (StatusCode, Value) {
    let mut template = json!({"name": name, "language": {"code": language}});
    if !components.is_null() {
        template["components"] = components;
    }
    h.send(json!({"to": customer(), "type": "template", "template": template})).await
}

fn assert_graph_error(status: StatusCode, body: &Value, http: u16, code: i64) {
    assert_eq!((status.as_u16(), &body["error"]["code"]), (http, &json!(code)), "{body}");
}

#[tokio::test]
async fn creating_a_template_answers_pending_with_its_category() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let mut definition = shipped("order_shipped");
    definition["category"] = json!("utility");
    let (status, body) = create(&h, definition).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "{body}");
    assert_eq!(body, json!({"id": id, "status": "PENDING", "category": "UTILITY"}));
    assert_eq!(get(&h, id).await["status"], "PENDING");
}

#[tokio::test]
async fn a_template_is_approved_after_review_and_announced() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let id = create_ok(&h, shipped("order_shipped")).await;
    let update = wait_updates(&h, &id, 1).await.remove(0);
    assert_eq!(
        update,
        json!({"event": "APPROVED", "message_template_id": id.parse::<u64>().unwrap(),
            "message_template_name": "order_shipped", "message_template_language": "en_US",
            "reason": "NONE", "message_template_category": "UTILITY"})
    );
    // Template entries carry `time`, unlike messages entries.
    let delivery =
        h.hooks.deliveries().into_iter().find(|d| d.json.to_string().contains("message_template_status_update"));
    let entry = &delivery.unwrap().json["entry"][0];
    assert_eq!(entry["id"], h.waba());
    assert!(entry["time"].is_u64(), "{entry}");
    assert_eq!(get(&h, &id).await["status"], "APPROVED");
}

#[tokio::test]
async fn a_body_with_the_word_reject_is_rejected_as_promotional() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let id = create_ok(&h, utility("please_reject", "Please reject this template, reviewer.")).await;
    let update = wait_updates(&h, &id, 1).await.remove(0);
    assert_eq!((&update["event"], &update["reason"]), (&json!("REJECTED"), &json!("PROMOTIONAL")), "{update}");
    assert!(update.get("rejection_info").is_none(), "only INVALID_FORMAT explains itself: {update}");
    assert_eq!(get(&h, &id).await["status"], "REJECTED");
}

#[tokio::test]
async fn a_reject_button_alone_does_not_get_a_template_rejected() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let definition = json!({"name": "confirm_visit", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Can you confirm your visit on Monday?"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Accept"}, {"type": "QUICK_REPLY", "text": "Reject"}]}
    ]});
    let id = create_ok(&h, definition).await;
    let update = wait_updates(&h, &id, 1).await.remove(0);
    assert_eq!(update["event"], "APPROVED", "{update}");
}

#[tokio::test]
async fn adjacent_variables_are_rejected_as_invalid_format_with_an_explanation() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let definition = json!({"name": "adjacent", "language": "en", "category": "MARKETING", "components": [{
        "type": "BODY", "text": "Hello {{1}}{{2}}, your weekly offer is waiting for you in the app.",
        "example": {"body_text": [["Ana", "Silva"]]}
    }]});
    let id = create_ok(&h, definition).await;
    let update = wait_updates(&h, &id, 1).await.remove(0);
    assert_eq!((&update["event"], &update["reason"]), (&json!("REJECTED"), &json!("INVALID_FORMAT")), "{update}");
    assert_eq!(update["message_template_category"], "MARKETING");
    assert_eq!(update["message_template_language"], "en");
    let info = &update["rejection_info"];
    assert!(info["reason"].as_str().is_some_and(|r| r.contains("{{1}}{{2}}")), "{update}");
    assert!(info["recommendation"].as_str().is_some_and(|r| !r.is_empty()), "{update}");
}

#[tokio::test]
async fn variables_separated_only_by_a_space_are_rejected_as_adjacent() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let definition = json!({"name": "spaced", "language": "en", "category": "MARKETING", "components": [{
        "type": "BODY", "text": "Hello {{1}} {{2}}, your weekly offer is waiting for you in the app.",
        "example": {"body_text": [["Ana", "Silva"]]}
    }]});
    let id = create_ok(&h, definition).await;
    let update = wait_updates(&h, &id, 1).await.remove(0);
    assert_eq!(update["reason"], "INVALID_FORMAT", "{update}");
}

#[tokio::test]
async fn creation_errors_carry_metas_subcodes() {
    let h = Harness::start().await;
    let body = |text: &str| json!({"type": "BODY", "text": text, "example": {"body_text": [["a", "b", "c"]]}});
    let long = "word ".repeat(210);
    let cases = [
        (vec![body(&long)], 2_388_040),
        (vec![json!({"type": "HEADER", "format": "TEXT", "text": "x".repeat(61)}), body("Hello there.")], 2_388_040),
        (
            vec![json!({"type": "HEADER", "format": "TEXT", "text": "Hi {{1}} and {{2}}"}), body("Hello there.")],
            2_388_047,
        ),
        (vec![json!({"type": "HEADER", "format": "AUDIO"}), body("Hello there.")], 2_388_047),
        (
            vec![
                json!({"type": "BODY", "text": "Hi {{1}}, your {{3}} is ready.", "example": {"body_text": [["a", "b"]]}}),
            ],
            2_388_072,
        ),
        (vec![json!({"type": "BODY", "text": "Hi {{1}}, your order is ready."})], 2_388_072),
        (vec![body("Hello there."), json!({"type": "FOOTER", "text": "Reply {{1}} to stop"})], 2_388_073),
        (vec![body("Hello there."), json!({"type": "FOOTER", "text": ""})], 2_388_073),
        (vec![body("Hi {{1}} {{2}} {{3}} ok")], 2_388_293),
        (vec![body("{{1}} is your code for today.")], 2_388_299),
        (vec![body("Your code for today is {{1}}")], 2_388_299),
    ];
    for (components, subcode) in cases {
        let definition =
            json!({"name": "bad_one", "language": "en_US", "category": "UTILITY", "components": components});
        let (status, answer) = create(&h, definition).await;
        assert_graph_error(status, &answer, 400, 100);
        assert_eq!(answer["error"]["error_subcode"], subcode, "{components:?}: {answer}");
        assert!(answer["error"]["error_user_title"].as_str().is_some_and(|t| !t.is_empty()), "{answer}");
    }
}

#[tokio::test]
async fn a_second_template_with_the_same_name_and_language_is_refused_with_2388024() {
    let h = Harness::start().await;
    create_ok(&h, shipped("order_shipped")).await;
    let (status, answer) = create(&h, shipped("order_shipped")).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(answer["error"]["error_subcode"], 2_388_024);
    let mut spanish = shipped("order_shipped");
    spanish["language"] = json!("es");
    create_ok(&h, spanish).await;
}

#[tokio::test]
async fn templates_are_listed_by_name_status_category_and_language() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let english = create_ok(&h, shipped("order_update")).await;
    let mut spanish = shipped("order_update");
    spanish["language"] = json!("es");
    create_ok(&h, spanish).await;
    let mut sale = utility("spring_sale", "Our spring sale starts on Monday.");
    sale["category"] = json!("MARKETING");
    let sale = create_ok(&h, sale).await;
    set_status(&h, &english, "APPROVED").await;
    set_status(&h, &sale, "REJECTED").await;

    let (status, all) = list(&h, "").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["data"].as_array().unwrap().len(), 4, "three made and hello_world: {all}");
    let by = |query: &'static str| listed(&h, query);
    assert_eq!(by("name=order_update").await, [r#""order_update"/"en_US""#, r#""order_update"/"es""#]);
    let mut approved = by("status=APPROVED").await;
    approved.sort();
    assert_eq!(approved, [r#""hello_world"/"en_US""#, r#""order_update"/"en_US""#]);
    assert_eq!(by("status=approved").await.len(), 2, "status is matched case-insensitively");
    assert_eq!(by("status=REJECTED").await, [r#""spring_sale"/"en_US""#]);
    assert_eq!(by("status=PENDING").await, [r#""order_update"/"es""#]);
    assert_eq!(by("category=MARKETING").await, [r#""spring_sale"/"en_US""#]);
    assert_eq!(by("language=es").await, [r#""order_update"/"es""#]);
    assert_eq!(by("name=order_update&status=APPROVED").await, [r#""order_update"/"en_US""#]);
}

#[tokio::test]
async fn listing_with_fields_returns_those_fields_and_the_id() {
    let h = Harness::start().await;
    let (status, page) = list(&h, "fields=name,status").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for t in page["data"].as_array().unwrap() {
        let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "name", "status"], "{t}");
    }
    let (_, full) = list(&h, "").await;
    let hello = &full["data"][0];
    for key in ["name", "parameter_format", "components", "language", "status", "category", "id"] {
        assert!(hello.get(key).is_some(), "the default fields include {key}: {hello}");
    }
}

#[tokio::test]
async fn template_lists_page_forward_and_back_with_cursors() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    for i in 0..5 {
        create_ok(&h, utility(&format!("notice_{i}"), "Your account notice is ready.")).await;
    }
    let (_, everything) = list(&h, "limit=100").await;
    let all = names(&everything);
    assert_eq!(all.len(), 6);

    let mut pages = Vec::new();
    let (_, mut page) = list(&h, "limit=2").await;
    loop {
        assert!(page["data"].as_array().unwrap().len() <= 2);
        pages.push(page.clone());
        if page["paging"].get("next").is_none() {
            break;
        }
        let after = page["paging"]["cursors"]["after"].as_str().unwrap().to_owned();
        page = list(&h, &format!("limit=2&after={after}")).await.1;
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages.iter().flat_map(names).collect::<Vec<_>>(), all);
    assert!(pages[0]["paging"].get("previous").is_none(), "{}", pages[0]);

    let last = pages.last().unwrap();
    assert!(last["paging"].get("previous").is_some(), "{last}");
    let before = last["paging"]["cursors"]["before"].as_str().unwrap();
    let (_, back) = list(&h, &format!("limit=2&before={before}")).await;
    assert_eq!(names(&back), names(&pages[pages.len() - 2]));
}

#[tokio::test]
async fn next_links_are_absolute_and_keep_the_filters_as_sdks_follow_them() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    for i in 0..5 {
        create_ok(&h, utility(&format!("notice_{i}"), "Your account notice is ready.")).await;
    }
    let (_, mut page) = list(&h, "status=PENDING&fields=name,status&limit=2").await;
    let mut seen = names(&page);
    while let Some(next) = page["paging"]["next"].as_str() {
        assert!(next.starts_with(&h.url) && next.contains("status=PENDING") && next.contains("fields="), "{next}");
        // Followed as it is, with only the token added, as SDKs do.
        page = h.http.get(next).bearer_auth(&h.seed.access_token).send().await.unwrap().json().await.unwrap();
        seen.extend(names(&page));
        assert!(seen.len() <= 5, "{seen:?}");
    }
    assert_eq!(seen.len(), 5, "every PENDING template once, hello_world left out: {seen:?}");
    let previous = page["paging"]["previous"].as_str().expect("the last page links back");
    let back: Value =
        h.http.get(previous).bearer_auth(&h.seed.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(names(&back), seen[2..4]);

    let (_, first) = list(&h, "limit=2").await;
    let before = first["paging"]["cursors"]["before"].as_str().unwrap();
    let (status, nothing) = list(&h, &format!("limit=2&before={before}")).await;
    assert_eq!(
        (status, nothing["data"].as_array().unwrap().len()),
        (StatusCode::OK, 0),
        "nothing comes before the first page"
    );
}

#[tokio::test]
async fn a_template_is_fetched_with_only_the_fields_asked_for() {
    let h = Harness::start().await;
    let (_, all) = list(&h, "name=hello_world").await;
    let id = all["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, t) = h.graph(Method::GET, &format!("{id}?fields=status"), None).await;
    assert_eq!((status, t), (StatusCode::OK, json!({"status": "APPROVED", "id": id})));
}

#[tokio::test]
async fn a_cursor_the_api_never_gave_is_refused_with_131059() {
    let h = Harness::start().await;
    // The last two decode to indexes no list reaches (`usize::MAX` and just under it), which
    // once overflowed the page arithmetic.
    let huge = |i: usize| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, i.to_string());
    assert_eq!(huge(usize::MAX), "MTg0NDY3NDQwNzM3MDk1NTE2MTU");
    let queries = ["after=not*a*cursor".to_owned(), "before=%%%".into(), format!("after={}", huge(usize::MAX))];
    for query in queries.iter().chain([&format!("after={}&limit=25", huge(usize::MAX - 3))]) {
        let (status, body) = list(&h, query).await;
        assert_graph_error(status, &body, 400, 131_059);
    }
    let (status, body) =
        h.graph(Method::GET, &format!("{}/groups?after={}", h.number(), huge(usize::MAX - 3)), None).await;
    assert_graph_error(status, &body, 400, 131_059);
}

#[tokio::test]
async fn a_template_can_be_fetched_by_its_id() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let id = create_ok(&h, shipped("order_shipped")).await;
    let t = get(&h, &id).await;
    assert_eq!(t["id"], id);
    assert_eq!(t["name"], "order_shipped");
    assert_eq!(t["language"], "en_US");
    assert_eq!(t["category"], "UTILITY");
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["parameter_format"], "POSITIONAL");
    assert_eq!(t["components"][0]["text"], "Hi {{1}}, your order {{2}} has shipped and arrives soon.");
}

#[tokio::test]
async fn editing_an_approved_template_sends_it_back_to_review() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let id = h.approved_template(shipped("order_shipped")).await;
    wait_updates(&h, &id, 1).await;
    let components = json!([{"type": "BODY", "text": "Hello {{1}}, order {{2}} is on its way to you.",
        "example": {"body_text": [["Ana", "A-1"]]}}]);
    let (status, answer) = h.graph(Method::POST, &id, Some(json!({"components": components}))).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_eq!(get(&h, &id).await["status"], "PENDING");
    let updates = wait_updates(&h, &id, 2).await;
    assert_eq!(updates[1]["event"], "APPROVED", "{updates:?}");
    let t = get(&h, &id).await;
    assert_eq!(t["status"], "APPROVED");
    assert_eq!(t["components"][0]["text"], "Hello {{1}}, order {{2}} is on its way to you.");
}

#[tokio::test]
async fn an_approved_template_is_edited_at_most_once_a_day_while_rejected_ones_have_no_limit() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let components = |n: u32| {
        json!({"components": [{"type": "BODY", "text": format!("Hello {{{{1}}}}, order {{{{2}}}} ships in {n} days."),
            "example": {"body_text": [["Ana", "A-1"]]}}]})
    };
    let id = h.approved_template(shipped("order_shipped")).await;
    assert_eq!(h.graph(Method::POST, &id, Some(components(1))).await.0, StatusCode::OK);
    set_status(&h, &id, "APPROVED").await;
    let (status, answer) = h.graph(Method::POST, &id, Some(components(2))).await;
    assert_graph_error(status, &answer, 400, 100);
    assert!(answer["error"]["error_data"]["details"].as_str().unwrap().contains("24 hours"), "{answer}");

    let rejected = create_ok(&h, shipped("order_delayed")).await;
    set_status(&h, &rejected, "REJECTED").await;
    for n in 0..3 {
        assert_eq!(h.graph(Method::POST, &rejected, Some(components(n))).await.0, StatusCode::OK);
        set_status(&h, &rejected, "REJECTED").await;
    }
}

/// Many edits of one approved template at once, on several threads: one passes the once-a-day
/// limit, the others are refused, however they interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_an_approved_template_let_only_one_through() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    // Enough components that checking them takes a while, as a real edit's might.
    let edit = |n: usize| {
        let buttons: Vec<Value> =
            (0..10).map(|i| json!({"type": "QUICK_REPLY", "text": format!("Option {i} of {n}")})).collect();
        json!({"components": [
            {"type": "HEADER", "format": "TEXT", "text": format!("Edit {n}")},
            {"type": "BODY", "text": format!("Hello {{{{1}}}}, order {{{{2}}}} ships in {n} days. {}", "More words. ".repeat(80)),
                "example": {"body_text": [["Ana", "A-1"]]}},
            {"type": "FOOTER", "text": "Thanks"},
            {"type": "BUTTONS", "buttons": buttons}
        ]})
    };
    let (status, answer) = create(
        &h,
        json!({"name": "probe_edit", "language": "en_US", "category": "UTILITY", "components": edit(0)["components"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the edit body is a valid template: {answer}");
    for round in 0..20 {
        let id = h.approved_template(shipped(&format!("order_shipped_{round}"))).await;
        let url = format!("{}/v23.0/{id}", h.url);
        let edits = (0..24).map(|n| {
            let req = h.http.post(url.clone()).bearer_auth(&h.seed.access_token).json(&edit(n));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        });
        let mut passed = 0;
        for e in edits.collect::<Vec<_>>() {
            if e.await.unwrap() == 200 {
                passed += 1;
            }
        }
        assert_eq!(passed, 1, "round {round}: {passed} edits passed");
    }
}

#[tokio::test]
async fn the_name_of_a_deleted_approved_template_cannot_be_reused_for_30_days() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    h.approved_template(shipped("order_shipped")).await;
    let path = format!("{}/message_templates?name=order_shipped", h.waba());
    assert_eq!(h.graph(Method::DELETE, &path, None).await.0, StatusCode::OK);
    let (status, answer) = create(&h, shipped("order_shipped")).await;
    assert_graph_error(status, &answer, 400, 100);
    assert!(answer["error"]["error_data"]["details"].as_str().unwrap().contains("30 days"), "{answer}");
    // A template deleted before approval leaves its name free.
    create_ok(&h, shipped("order_pending")).await;
    let path = format!("{}/message_templates?name=order_pending", h.waba());
    assert_eq!(h.graph(Method::DELETE, &path, None).await.0, StatusCode::OK);
    create_ok(&h, shipped("order_pending")).await;
}

#[tokio::test]
async fn a_pending_template_cannot_be_edited() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let id = create_ok(&h, shipped("order_shipped")).await;
    let (status, answer) = h.graph(Method::POST, &id, Some(json!({"category": "MARKETING"}))).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(get(&h, &id).await["category"], "UTILITY");
}

#[tokio::test]
async fn only_a_template_that_is_not_approved_may_change_category() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let approved = h.approved_template(shipped("order_shipped")).await;
    let (status, answer) = h.graph(Method::POST, &approved, Some(json!({"category": "MARKETING"}))).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(get(&h, &approved).await["category"], "UTILITY");

    let rejected = create_ok(&h, shipped("order_notice")).await;
    set_status(&h, &rejected, "REJECTED").await;
    let (status, answer) = h.graph(Method::POST, &rejected, Some(json!({"category": "MARKETING"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let t = get(&h, &rejected).await;
    assert_eq!((&t["category"], &t["status"]), (&json!("MARKETING"), &json!("PENDING")));
}

#[tokio::test]
async fn deleting_by_name_removes_every_language() {
    let h = Harness::start().await;
    create_ok(&h, shipped("promo")).await;
    let mut spanish = shipped("promo");
    spanish["language"] = json!("es");
    create_ok(&h, spanish).await;
    let path = format!("{}/message_templates?name=promo", h.waba());
    let (status, answer) = h.graph(Method::DELETE, &path, None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert!(names(&list(&h, "name=promo").await.1).is_empty());
    assert_eq!(names(&list(&h, "").await.1), [r#""hello_world"/"en_US""#]);
}

#[tokio::test]
async fn deleting_by_name_and_hsm_id_removes_only_that_template() {
    let h = Harness::start().await;
    let english = create_ok(&h, shipped("promo")).await;
    let mut spanish = shipped("promo");
    spanish["language"] = json!("es");
    create_ok(&h, spanish).await;
    let path = format!("{}/message_templates?name=promo&hsm_id={english}", h.waba());
    let (status, answer) = h.graph(Method::DELETE, &path, None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_eq!(names(&list(&h, "name=promo").await.1), [r#""promo"/"es""#]);
    let (status, _) = h.graph(Method::GET, &english, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a deleted template is an unknown node");
}

#[tokio::test]
async fn sending_a_template_that_does_not_exist_in_that_language_fails_with_132001() {
    let h = Harness::start().await;
    let (status, answer) = send_template(&h, "hello_world", "es", Value::Null).await;
    assert_graph_error(status, &answer, 404, 132_001);
    let (status, answer) = send_template(&h, "no_such_template", "en_US", Value::Null).await;
    assert_graph_error(status, &answer, 404, 132_001);
}

#[tokio::test]
async fn sending_a_template_still_in_review_fails_with_132001() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    create_ok(&h, utility("welcome_note", "Welcome to the shop, we are glad you are here.")).await;
    let (status, answer) = send_template(&h, "welcome_note", "en_US", Value::Null).await;
    assert_graph_error(status, &answer, 404, 132_001);
}

#[tokio::test]
async fn sending_a_paused_template_fails_with_132015() {
    let h = Harness::start().await;
    let id = h.approved_template(utility("welcome_note", "Welcome to the shop, we are glad you are here.")).await;
    set_status(&h, &id, "PAUSED").await;
    let (status, answer) = send_template(&h, "welcome_note", "en_US", Value::Null).await;
    assert_graph_error(status, &answer, 400, 132_015);
}

#[tokio::test]
async fn sending_a_disabled_template_fails_with_132016() {
    let h = Harness::start().await;
    let id = h.approved_template(utility("welcome_note", "Welcome to the shop, we are glad you are here.")).await;
    set_status(&h, &id, "DISABLED").await;
    let (status, answer) = send_template(&h, "welcome_note", "en_US", Value::Null).await;
    assert_graph_error(status, &answer, 400, 132_016);
}

#[tokio::test]
async fn sending_the_wrong_number_of_values_fails_with_132000() {
    let h = Harness::start().await;
    h.approved_template(shipped("order_shipped")).await;
    let one = json!([{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]);
    let (status, answer) = send_template(&h, "order_shipped", "en_US", one).await;
    assert_graph_error(status, &answer, 400, 132_000);
    let (status, answer) = send_template(&h, "order_shipped", "en_US", Value::Null).await;
    assert_graph_error(status, &answer, 400, 132_000);
}

#[tokio::test]
async fn values_in_the_wrong_form_fail_with_132012() {
    let h = Harness::start().await;
    h.approved_template(shipped("order_shipped")).await;
    h.approved_template(json!({"name": "named_greeting", "language": "en_US", "category": "UTILITY",
        "parameter_format": "named", "components": [{"type": "BODY", "text": "Hello {{first_name}}, thanks for shopping.",
        "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]}))
        .await;
    h.approved_template(json!({"name": "with_picture", "language": "en_US", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2UvcG5n:ARYpf5"]}},
        {"type": "BODY", "text": "Our new collection has arrived."}]}))
        .await;

    let named_values = json!([{"type": "body", "parameters": [
        {"type": "text", "text": "Ana", "parameter_name": "first_name"},
        {"type": "text", "text": "A-1", "parameter_name": "order"}]}]);
    let (status, answer) = send_template(&h, "order_shipped", "en_US", named_values).await;
    assert_graph_error(status, &answer, 400, 132_012);

    let positional_values = json!([{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]);
    let (status, answer) = send_template(&h, "named_greeting", "en_US", positional_values).await;
    assert_graph_error(status, &answer, 400, 132_012);

    let video =
        json!([{"type": "header", "parameters": [{"type": "video", "video": {"link": "https://example.com/a.mp4"}}]}]);
    let (status, answer) = send_template(&h, "with_picture", "en_US", video).await;
    assert_graph_error(status, &answer, 400, 132_012);
}

#[tokio::test]
async fn a_template_sent_with_fitting_values_is_delivered() {
    let h = Harness::start().await;
    h.approved_template(shipped("order_shipped")).await;
    let values =
        json!([{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-1"}]}]);
    let (status, answer) = send_template(&h, "order_shipped", "en_US", values).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["messages"][0]["message_status"], "accepted");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let statuses = h.hooks.wait_statuses(wamid, 2).await;
    assert_eq!((&statuses[0]["status"], &statuses[1]["status"]), (&json!("sent"), &json!("delivered")));
}

#[tokio::test]
async fn every_new_account_starts_with_an_approved_hello_world_that_sends() {
    let h = Harness::start().await;
    let (status, account) = h.control(Method::POST, "control/accounts", Some(json!({"name": "Second Shop"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let waba = account["waba_id"].as_str().unwrap();
    let number = account["phone_numbers"][0]["id"].as_str().unwrap();

    let (status, templates) = h.graph(Method::GET, &format!("{waba}/message_templates"), None).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    let data = templates["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{templates}");
    let hello = &data[0];
    assert_eq!(
        (&hello["name"], &hello["language"], &hello["status"]),
        (&json!("hello_world"), &json!("en_US"), &json!("APPROVED"))
    );

    let body = json!({"messaging_product": "whatsapp", "to": customer(), "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (status, answer) = h.graph(Method::POST, &format!("{number}/messages"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let statuses = h.hooks.wait_statuses(wamid, 2).await;
    assert_eq!(statuses[1]["status"], "delivered", "{statuses:?}");
}

#[tokio::test]
async fn pausing_unpausing_and_disabling_are_announced_with_their_details() {
    let h = Harness::start().await;
    let id = h.approved_template(utility("welcome_note", "Welcome to the shop, we are glad you are here.")).await;
    set_status(&h, &id, "PAUSED").await;
    set_status(&h, &id, "APPROVED").await;
    set_status(&h, &id, "DISABLED").await;
    // Webhooks may arrive in any order; each is told apart by what it carries.
    let updates = wait_updates(&h, &id, 4).await;
    let of = |event: &str| updates.iter().filter(|u| u["event"] == event).cloned().collect::<Vec<_>>();
    let paused = of("PAUSED");
    assert_eq!(paused.len(), 1, "{updates:?}");
    assert_eq!(paused[0]["other_info"]["title"], "FIRST_PAUSE", "{}", paused[0]);
    let mut approvals: Vec<Value> = of("APPROVED").iter().map(|u| u["other_info"]["title"].clone()).collect();
    approvals.sort_by_key(Value::to_string);
    assert_eq!(approvals, [json!("UNPAUSE"), Value::Null], "only the approval after the pause is an unpause");
    let disabled = of("DISABLED");
    assert!(disabled[0]["disable_info"]["disable_date"].is_u64(), "{updates:?}");
}

#[tokio::test]
async fn a_disabled_template_cannot_be_deleted() {
    let h = Harness::start().await;
    let id = h.approved_template(utility("welcome_note", "Welcome to the shop, we are glad you are here.")).await;
    set_status(&h, &id, "DISABLED").await;
    let path = format!("{}/message_templates?name=welcome_note", h.waba());
    let (status, answer) = h.graph(Method::DELETE, &path, None).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(get(&h, &id).await["status"], "DISABLED");
}

#[tokio::test]
async fn an_edit_of_the_components_is_announced_with_the_new_texts() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": NEVER_MS})).await;
    let id = h.approved_template(shipped("order_shipped")).await;
    let components = json!([
        {"type": "HEADER", "format": "TEXT", "text": "Your order is confirmed!"},
        {"type": "BODY", "text": "Thank you, {{1}}! Your order number is {{2}}. Thanks again!",
            "example": {"body_text": [["Ana", "A-1"]]}},
        {"type": "FOOTER", "text": "Lucky Shrub"},
        {"type": "BUTTONS", "buttons": [
            {"type": "PHONE_NUMBER", "text": "Phone support", "phone_number": "+15550783881"},
            {"type": "URL", "text": "Email support", "url": "https://www.luckyshrub.com/support"},
            {"type": "QUICK_REPLY", "text": "Stop"}
        ]}
    ]);
    let (status, answer) = h.graph(Method::POST, &id, Some(json!({"components": components}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let numeric: u64 = id.parse().unwrap();
    let update =
        h.hooks.wait_change("message_template_components_update", |v| v["message_template_id"] == numeric).await;
    assert_eq!(
        update,
        json!({
            "message_template_id": numeric,
            "message_template_name": "order_shipped",
            "message_template_language": "en_US",
            "message_template_title": "Your order is confirmed!",
            "message_template_element": "Thank you, {{1}}! Your order number is {{2}}. Thanks again!",
            "message_template_footer": "Lucky Shrub",
            "message_template_buttons": [
                {"message_template_button_type": "PHONE_NUMBER", "message_template_button_text": "Phone support",
                    "message_template_button_phone_number": "+15550783881"},
                {"message_template_button_type": "URL", "message_template_button_text": "Email support",
                    "message_template_button_url": "https://www.luckyshrub.com/support"}
            ]
        })
    );
}

#[tokio::test]
async fn a_new_category_is_announced_once_the_template_passes_review() {
    let h = Harness::start().await;
    h.patch_settings(json!({"template_review_ms": 50})).await;
    let id = create_ok(&h, shipped("order_notice")).await;
    wait_updates(&h, &id, 1).await;
    set_status(&h, &id, "REJECTED").await;
    let (status, answer) = h.graph(Method::POST, &id, Some(json!({"category": "marketing"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let numeric: u64 = id.parse().unwrap();
    let update = h.hooks.wait_change("template_category_update", |v| v["message_template_id"] == numeric).await;
    assert_eq!(
        update,
        json!({"message_template_id": numeric, "message_template_name": "order_notice",
            "message_template_language": "en_US", "previous_category": "UTILITY", "new_category": "MARKETING"})
    );
    assert_eq!(get(&h, &id).await["status"], "APPROVED");

    set_status(&h, &id, "REJECTED").await;
    let (status, answer) = h.graph(Method::POST, &id, Some(json!({"category": "PROMOTIONS"}))).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(get(&h, &id).await["category"], "MARKETING");
}
