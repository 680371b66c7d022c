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

#[tokio::test]
async fn an_unknown_edge_gets_metas_2500_unknown_path_components() {
    let h = Harness::start().await;
    let token = h.seed.access_token.clone();
    for (path, unknown) in [
        (format!("v23.0/{}/foo", h.number()), "/foo"),
        (format!("v23.0/{}/messages/extra", h.number()), "/messages/extra"),
        (format!("v23.0/{}/message_templates/x/y", h.waba()), "/message_templates/x/y"),
    ] {
        for method in [Method::GET, Method::POST] {
            let url = format!("{}/{path}", h.url);
            let resp = h.http.request(method.clone(), url).bearer_auth(&token).send().await.unwrap();
            let status = resp.status().as_u16();
            let e: Value = resp.json().await.unwrap_or_else(|_| panic!("{method} {path}: not JSON"));
            assert_eq!(status, 400, "{method} {path}: {e}");
            assert_graph_error(&e, 2500);
            assert_eq!(e["error"]["type"], "OAuthException", "{e}");
            assert_eq!(e["error"]["message"], format!("Unknown path components: {unknown}"), "{e}");
        }
    }
}

#[tokio::test]
async fn query_parameters_that_do_not_parse_get_100_naming_the_parameter() {
    let h = Harness::start().await;
    for path in [
        format!("{}/message_templates?limit=abc", h.waba()),
        format!("{}/groups?limit=-1", h.number()),
        format!("{}/message_templates?limit=1.5&name=hello_world", h.waba()),
    ] {
        let (status, e) = h.graph(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert_graph_error(&e, 100);
        let details = e["error"]["error_data"]["details"].as_str().unwrap_or_else(|| panic!("{path}: {e}"));
        assert!(details.contains("limit"), "{path}: {details}");
    }
    let (status, e) = h.control(Method::GET, "control/messages?to=1&to=2", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "control answers in its own shape: {e}");
    assert!(e["error"]["message"].is_string(), "{e}");
}

#[tokio::test]
async fn unknown_control_and_simulate_paths_get_a_json_404() {
    let h = Harness::start().await;
    for path in ["control/nothing", "control/messages/extra", "simulate/outbound", "control"] {
        let (status, e) = h.control(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {e}");
        assert_eq!(e["error"]["code"], "not_found", "{path}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(path), "{path}: {e}");
    }
}

#[tokio::test]
async fn bodies_over_an_endpoints_limit_are_refused_in_metas_shape() {
    let h = Harness::start().await;
    let (_, list) = h.graph(Method::GET, &format!("{}/message_templates", h.waba()), None).await;
    let template = list["data"][0]["id"].as_str().unwrap().to_owned();
    // A template edit is small: 30 MB is refused, not read into memory, and answered as JSON.
    let huge = format!("{{\"components\": \"{}\"}}", "a".repeat(30 * 1024 * 1024));
    let megabytes =
        format!("{{\"messaging_product\": \"whatsapp\", \"subject\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    for (path, body) in [(template, huge), (format!("{}/groups", h.number()), megabytes)] {
        let resp = h
            .http
            .post(format!("{}/v23.0/{path}", h.url))
            .bearer_auth(&h.seed.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413, "{path}");
        let e: Value = resp.json().await.unwrap();
        assert_graph_error(&e, 100);
    }
}

#[tokio::test]
async fn a_rotated_access_token_gets_metas_session_expired_and_the_new_one_works() {
    let h = Harness::start().await;
    let old = h.seed.access_token.clone();
    let (status, rotated) = h.control(Method::PUT, "control/access-token", None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let (status, e) = h.graph_as(Some(&old), Method::GET, &h.number(), None).await;
    assert_eq!(
        (status, e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(190), Some(463)),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("Session has expired"), "{e}");
    let (status, _) = h.graph_as(Some(&new), Method::GET, &h.number(), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, accounts) = h.control(Method::GET, "control/accounts", None).await;
    assert_eq!(accounts["data"][0]["access_token"], new.as_str());
    // A chosen token, and a refused one.
    let chosen = "EAAGchosen-token-for-tests-0123456789";
    let (status, body) =
        h.control(Method::PUT, "control/access-token", Some(serde_json::json!({"access_token": chosen}))).await;
    assert_eq!((status, body["access_token"].as_str()), (StatusCode::OK, Some(chosen)));
    let (status, e) =
        h.control(Method::PUT, "control/access-token", Some(serde_json::json!({"access_token": "short"}))).await;
    assert_eq!((status, e["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("access_token")));
    let (status, e) = h.graph_as(Some(&new), Method::GET, &h.number(), None).await;
    assert_eq!((status, e["error"]["error_subcode"].as_i64()), (StatusCode::UNAUTHORIZED, Some(463)));
}
