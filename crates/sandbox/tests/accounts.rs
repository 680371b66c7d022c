//! Accounts, phone numbers and access tokens, as a bot developer meets them through Graph.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

/// A GET on a Graph path with the request built by `f` (for tokens in odd places).
async fn get_with(
    h: &Harness,
    path: &str,
    f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (StatusCode, Value) {
    let resp = f(h.http.get(format!("{}/{path}", h.url))).send().await.expect("the sandbox answers");
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn assert_graph_error(e: &Value, code: i64) {
    assert_eq!(e["error"]["code"], code, "{e}");
    assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    assert!(e["error"]["type"].is_string(), "{e}");
    assert!(e["error"]["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()), "{e}");
}

#[tokio::test]
async fn a_wabas_phone_numbers_are_listed_in_metas_shape() {
    let h = Harness::start().await;
    let (status, list) = h.graph(Method::GET, &format!("{}/phone_numbers", h.waba()), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), h.seed.phone_numbers.len(), "{list}");
    for (n, listed) in h.seed.phone_numbers.iter().zip(data) {
        assert_eq!(listed["id"], n.id.as_str());
        assert_eq!(listed["display_phone_number"], n.display_phone_number.as_str());
        assert_eq!(listed["verified_name"], n.verified_name.as_str());
        assert!(listed["quality_rating"].is_string(), "{listed}");
    }
    assert!(list["paging"]["cursors"].is_object(), "{list}");
}

#[tokio::test]
async fn a_wabas_phone_numbers_are_listed_with_only_the_fields_asked_for() {
    let h = Harness::start().await;
    let (status, list) =
        h.graph(Method::GET, &format!("{}/phone_numbers?fields=display_phone_number", h.waba()), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let expected: Vec<Value> = h
        .seed
        .phone_numbers
        .iter()
        .map(|n| json!({"id": n.id, "display_phone_number": n.display_phone_number}))
        .collect();
    assert_eq!(list["data"], json!(expected));
}

#[tokio::test]
async fn a_phone_number_answers_metas_default_fields() {
    let h = Harness::start().await;
    let n = &h.seed.phone_numbers[1];
    let (status, number) = h.graph(Method::GET, &n.id, None).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(number["id"], n.id.as_str());
    assert_eq!(number["display_phone_number"], n.display_phone_number.as_str());
    assert_eq!(number["verified_name"], n.verified_name.as_str());
    assert_eq!(number["quality_rating"], "GREEN");
}

#[tokio::test]
async fn a_phone_number_answers_only_the_fields_asked_for_and_its_id() {
    let h = Harness::start().await;
    let n = &h.seed.phone_numbers[0];
    let (status, number) = h.graph(Method::GET, &format!("{}?fields=verified_name,throughput", n.id), None).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(
        number,
        json!({"id": n.id, "verified_name": n.verified_name, "throughput": {"level": "STANDARD"}}),
        "Graph answers the fields asked for, and always the id"
    );
}

#[tokio::test]
async fn a_wrong_token_gets_metas_190_with_http_401() {
    let h = Harness::start().await;
    let (status, e) = h.graph_as(Some("EAAGnot-the-token"), Method::GET, &h.number(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    assert_graph_error(&e, 190);
    assert_eq!(e["error"]["type"], "OAuthException");
}

#[tokio::test]
async fn a_missing_token_gets_metas_190_with_http_401() {
    let h = Harness::start().await;
    let body = json!({"messaging_product": "whatsapp", "to": customer(), "type": "text", "text": {"body": "hi"}});
    let (status, e) = h.graph_as(None, Method::POST, &format!("{}/messages", h.number()), Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    assert_graph_error(&e, 190);
    assert_eq!(e["error"]["type"], "OAuthException");
    assert!(h.received().await.is_empty(), "an unauthenticated send reaches nothing");
}

#[tokio::test]
async fn the_token_is_taken_from_the_access_token_query_parameter() {
    let h = Harness::start().await;
    let token = h.seed.access_token.clone();
    let (status, number) =
        get_with(&h, &format!("v23.0/{}", h.number()), |r| r.query(&[("access_token", &token)])).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(number["id"], h.number());

    let (status, e) =
        get_with(&h, &format!("v23.0/{}", h.number()), |r| r.query(&[("access_token", "EAAGnot-the-token")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    assert_graph_error(&e, 190);
}

#[tokio::test]
async fn the_token_is_taken_from_a_bearer_header() {
    let h = Harness::start().await;
    let token = h.seed.access_token.clone();
    let (status, number) = get_with(&h, &format!("v23.0/{}", h.number()), |r| r.bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(number["id"], h.number());
}

#[tokio::test]
async fn an_unknown_node_gets_100_with_subcode_33() {
    let h = Harness::start().await;
    let (status, e) = h.graph(Method::GET, "100000000000001", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_graph_error(&e, 100);
    assert_eq!(e["error"]["error_subcode"], 33, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("100000000000001"), "{e}");

    let (status, e) = h.graph(Method::GET, "100000000000001/phone_numbers", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(100), Some(33)),
        "{e}"
    );

    let body = json!({"messaging_product": "whatsapp", "to": customer(), "type": "text", "text": {"body": "hi"}});
    let (status, e) = h.graph(Method::POST, "100000000000001/messages", Some(body)).await;
    assert_eq!(
        (status, e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(100), Some(33)),
        "{e}"
    );
}

#[tokio::test]
async fn a_path_without_a_graph_version_gets_2500() {
    let h = Harness::start().await;
    let token = h.seed.access_token.clone();
    for version in ["23.0", "v23", "latest", "vX.0"] {
        let (status, e) =
            get_with(&h, &format!("{version}/{}/phone_numbers", h.waba()), |r| r.bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{version}: {e}");
        assert_graph_error(&e, 2500);
    }
    // Any version-shaped path is answered, as Graph answers old and new versions alike.
    let (status, e) = get_with(&h, &format!("v21.0/{}", h.number()), |r| r.bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "{e}");
}

#[tokio::test]
async fn a_new_account_lists_its_own_numbers() {
    let h = Harness::start().await;
    let (status, account) =
        h.control(Method::POST, "control/accounts", Some(json!({"name": "Second Shop", "phone_numbers": 2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let waba = account["waba_id"].as_str().unwrap();
    assert_ne!(waba, h.waba());
    assert_eq!(account["access_token"], h.seed.access_token.as_str(), "one app, one token for all its WABAs");

    let (status, list) = h.graph(Method::GET, &format!("{waba}/phone_numbers"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed: Vec<&str> = list["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let made: Vec<&str> =
        account["phone_numbers"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(listed, made);
    assert_eq!(listed.len(), 2);
    for id in &listed {
        let (status, number) = h.graph(Method::GET, id, None).await;
        assert_eq!(status, StatusCode::OK, "{number}");
        assert_eq!(number["verified_name"], "Second Shop");
    }

    // The first WABA's list is unchanged.
    let (_, first) = h.graph(Method::GET, &format!("{}/phone_numbers", h.waba()), None).await;
    assert!(first["data"].as_array().unwrap().iter().all(|n| !listed.contains(&n["id"].as_str().unwrap())), "{first}");
}

#[tokio::test]
async fn a_new_account_starts_with_an_approved_hello_world() {
    let h = Harness::start().await;
    let (status, account) = h.control(Method::POST, "control/accounts", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let waba = account["waba_id"].as_str().unwrap();
    let (status, templates) = h.graph(Method::GET, &format!("{waba}/message_templates"), None).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    let data = templates["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{templates}");
    assert_eq!(data[0]["name"], "hello_world");
    assert_eq!(data[0]["language"], "en_US");
    assert_eq!(data[0]["status"], "APPROVED");
    assert!(data[0]["id"].is_string(), "{templates}");
}

#[tokio::test]
async fn a_new_accounts_number_sends_its_hello_world() {
    let h = Harness::start().await;
    let (_, account) = h.control(Method::POST, "control/accounts", None).await;
    let number = account["phone_numbers"][0]["id"].as_str().unwrap();
    let to = customer();
    let body = json!({"messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (status, answer) = h.graph(Method::POST, &format!("{number}/messages"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let statuses = h.hooks.wait_statuses(wamid, 3).await;
    assert!(statuses.iter().all(|s| s["status"] != "failed"), "{statuses:?}");
    // The webhook comes for the new account, about its number.
    let change = h
        .hooks
        .wait_change("messages", |v| v["statuses"][0]["id"] == wamid && v["statuses"][0]["status"] == "read")
        .await;
    assert_eq!(change["metadata"]["phone_number_id"], number);
    let entry_ids: Vec<Value> = h
        .hooks
        .deliveries()
        .iter()
        .flat_map(|d| d.json["entry"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["value"]["statuses"][0]["id"] == wamid)))
        .map(|e| e["id"].clone())
        .collect();
    assert!(!entry_ids.is_empty() && entry_ids.iter().all(|id| id == &account["waba_id"]), "{entry_ids:?}");
}

#[tokio::test]
async fn a_template_of_one_account_cannot_be_sent_from_anothers_number() {
    let h = Harness::start().await;
    let (_, account) = h.control(Method::POST, "control/accounts", None).await;
    let number = account["phone_numbers"][0]["id"].as_str().unwrap();
    let templates: Vec<Value> = serde_json::from_str(TEMPLATES).unwrap();
    let order_status = templates.iter().find(|t| t["name"] == "order_status_update").unwrap().clone();
    h.approved_template(order_status).await;
    let body = json!({"messaging_product": "whatsapp", "to": customer(), "type": "template",
        "template": {"name": "order_status_update", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Jessica"}, {"type": "text", "text": "SKBUP2"}]}]}});
    let (status, e) = h.graph(Method::POST, &format!("{number}/messages"), Some(body.clone())).await;
    assert_eq!((status, e["error"]["code"].as_i64()), (StatusCode::NOT_FOUND, Some(132001)), "{e}");
    let (status, answer) = h.send(body).await;
    assert_eq!(status, StatusCode::OK, "the first account's own number sends it: {answer}");
}
