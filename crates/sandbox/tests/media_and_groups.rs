//! Media (`business-phone-numbers/media.md`), groups (`groups/*`, their webhooks) and the Flows
//! business public key (`/{phone-number-id}/whatsapp_business_encryption`), over HTTP.

mod support;

use axum::http::StatusCode;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR uploaded test image";
const PDF: &[u8] = b"%PDF-1.4\n uploaded test document";

/// 2048-bit RSA public keys made with `openssl genrsa 2048 | openssl rsa -pubout`, for machines
/// without `openssl`, and a 1024-bit one.
const KEY_2048: &str = include_str!("../../../testdata/flows-public-key-2048.pem");

const KEY_1024: &str = include_str!("../../../testdata/flows-public-key-1024.pem");

// ---------------------------------------------------------------------------------------------
// Media

/// Uploads `bytes` as a `mime` file part, with `type` when given.
async fn upload(h: &Harness, bytes: &[u8], mime: &str, declared: Option<&str>) -> (StatusCode, Value) {
    let part = Part::bytes(bytes.to_vec()).file_name("upload.bin").mime_str(mime).unwrap();
    let mut form = Form::new().text("messaging_product", "whatsapp").part("file", part);
    if let Some(t) = declared {
        form = form.text("type", t.to_owned());
    }
    post_form(h, form).await
}

async fn post_form(h: &Harness, form: Form) -> (StatusCode, Value) {
    h.upload(form).await
}

async fn upload_ok(h: &Harness, bytes: &[u8], mime: &str) -> String {
    let (status, body) = upload(h, bytes, mime, Some(mime)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().expect("a media id").to_owned()
}

/// The media URL `GET /{media-id}` gives.
async fn media_url(h: &Harness, id: &str) -> String {
    let (status, info) = h.graph(Method::GET, id, None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    info["url"].as_str().unwrap().to_owned()
}

async fn download(h: &Harness, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = h.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn assert_graph_error(status: StatusCode, body: &Value, http: u16, code: i64) {
    assert_eq!((status.as_u16(), &body["error"]["code"]), (http, &json!(code)), "{body}");
}

#[tokio::test]
async fn an_uploaded_file_is_described_and_downloads_byte_for_byte() {
    let h = Harness::start().await;
    let (status, answer) = upload(&h, PNG, "image/png", Some("image/png")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["id"].as_str().unwrap();
    assert_eq!(answer, json!({"id": id}));

    let (status, info) = h.graph(Method::GET, &format!("{id}?phone_number_id={}", h.number()), None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let url = info["url"].as_str().unwrap();
    assert_eq!(
        info,
        json!({"messaging_product": "whatsapp", "url": url, "mime_type": "image/png",
            "sha256": hex::encode(Sha256::digest(PNG)), "file_size": PNG.len().to_string(), "id": id})
    );
    let resp = download(&h, url, Some(&h.seed.access_token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap(), PNG);
}

#[tokio::test]
async fn the_file_parts_type_stands_in_for_a_missing_type_field() {
    let h = Harness::start().await;
    let (status, answer) = upload(&h, PDF, "application/pdf", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, info) = h.graph(Method::GET, answer["id"].as_str().unwrap(), None).await;
    assert_eq!(info["mime_type"], "application/pdf");
}

#[tokio::test]
async fn uploads_of_unsupported_types_are_refused_with_131053() {
    let h = Harness::start().await;
    let (status, answer) = upload(&h, b"GIF89a a gif", "image/gif", Some("image/gif")).await;
    assert_graph_error(status, &answer, 400, 131_053);
}

#[tokio::test]
async fn uploads_whose_content_contradicts_their_type_are_refused_with_131053() {
    let h = Harness::start().await;
    let (status, answer) = upload(&h, PDF, "image/jpeg", Some("image/jpeg")).await;
    assert_graph_error(status, &answer, 400, 131_053);
    let (status, answer) = upload(&h, PNG, "image/png", Some("video/mp4")).await;
    assert_graph_error(status, &answer, 400, 131_053);
}

#[tokio::test]
async fn an_upload_without_a_file_is_refused_with_131008() {
    let h = Harness::start().await;
    let form = Form::new().text("messaging_product", "whatsapp").text("type", "image/png");
    let (status, answer) = post_form(&h, form).await;
    assert_graph_error(status, &answer, 400, 131_008);
}

#[tokio::test]
async fn an_image_over_5_mb_is_refused_with_131053() {
    let h = Harness::start().await;
    let mut big = PNG.to_vec();
    big.resize(6 * 1024 * 1024, 0);
    let (status, answer) = upload(&h, &big, "image/png", Some("image/png")).await;
    assert_graph_error(status, &answer, 400, 131_053);
    // The same size is fine for a document.
    let mut doc = PDF.to_vec();
    doc.resize(6 * 1024 * 1024, b' ');
    let (status, answer) = upload(&h, &doc, "application/pdf", Some("application/pdf")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn media_is_refused_to_another_phone_number_of_the_business() {
    let h = Harness::start().await;
    let id = upload_ok(&h, PNG, "image/png").await;
    let other = &h.seed.phone_numbers[1].id;
    let (status, answer) = h.graph(Method::GET, &format!("{id}?phone_number_id={other}"), None).await;
    assert_graph_error(status, &answer, 400, 100);
    let (status, answer) = h.graph(Method::DELETE, &format!("{id}?phone_number_id={other}"), None).await;
    assert_graph_error(status, &answer, 400, 100);
    let (status, _) = h.graph(Method::GET, &id, None).await;
    assert_eq!(status, StatusCode::OK, "a refused delete leaves the media");
}

#[tokio::test]
async fn a_media_download_needs_the_access_token() {
    let h = Harness::start().await;
    let id = upload_ok(&h, PNG, "image/png").await;
    let url = media_url(&h, &id).await;
    let resp = download(&h, &url, None).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
}

#[tokio::test]
async fn an_altered_or_expired_media_url_is_not_found() {
    let h = Harness::start().await;
    let id = upload_ok(&h, PNG, "image/png").await;
    let url = reqwest::Url::parse(&media_url(&h, &id).await).unwrap();
    let token = h.seed.access_token.clone();
    let with_query = |expires: u64, hash: &str| {
        let mut u = url.clone();
        u.set_query(Some(&format!("expires={expires}&hash={hash}")));
        u.to_string()
    };
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let expires: u64 = query["expires"].parse().unwrap();
    let hash = &query["hash"];

    let altered = [
        with_query(expires + 3600, hash),
        with_query(expires, &"0".repeat(hash.len())),
        url.as_str().replace(&format!("/media-download/{id}"), "/media-download/1000000000000000"),
    ];
    for u in altered {
        assert_eq!(download(&h, &u, Some(&token)).await.status(), 404, "{u}");
    }

    // An expired URL, signed as the sandbox signs its URLs (HMAC of id and expiry with the app
    // secret); the same signature with a future expiry downloads, so only the expiry differs.
    let signed = |expires: u64| {
        let mut mac = Hmac::<Sha256>::new_from_slice(h.seed.app_secret.as_bytes()).unwrap();
        mac.update(format!("{id}:{expires}").as_bytes());
        with_query(expires, &hex::encode(&mac.finalize().into_bytes()[..16]))
    };
    assert_eq!(download(&h, &signed(expires + 60), Some(&token)).await.status(), 200);
    assert_eq!(download(&h, &signed(expires - 3600), Some(&token)).await.status(), 404);
}

#[tokio::test]
async fn deleted_media_is_gone_and_its_url_stops_working() {
    let h = Harness::start().await;
    let id = upload_ok(&h, PNG, "image/png").await;
    let url = media_url(&h, &id).await;
    let (status, answer) = h.graph(Method::DELETE, &id, None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let (status, answer) = h.graph(Method::GET, &id, None).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(answer["error"]["error_subcode"], 33, "an unknown node: {answer}");
    assert_eq!(download(&h, &url, Some(&h.seed.access_token)).await.status(), 404);
}

#[tokio::test]
async fn an_image_sent_by_an_id_never_uploaded_fails_with_131053() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("send me the picture").await;
    let wamid = h.send_ok(json!({"to": c, "type": "image", "image": {"id": "1000000000000001"}})).await;
    let status = h.hooks.wait_statuses(&wamid, 1).await.remove(0);
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["errors"][0]["code"], 131_053);
}

#[tokio::test]
async fn an_image_sent_by_an_uploaded_id_is_delivered() {
    let h = Harness::start().await;
    let c = h.customer_who_wrote("send me the picture").await;
    let id = upload_ok(&h, PNG, "image/png").await;
    let wamid = h.send_ok(json!({"to": c, "type": "image", "image": {"id": id, "caption": "Here"}})).await;
    let statuses = h.hooks.wait_statuses(&wamid, 2).await;
    assert_eq!((&statuses[0]["status"], &statuses[1]["status"]), (&json!("sent"), &json!("delivered")));
}

// ---------------------------------------------------------------------------------------------
// Groups

/// Creates a group of the first number; its id and the `group_create` event.
async fn create_group(h: &Harness, body: Value) -> (String, Value) {
    let mut body = body;
    body["messaging_product"] = json!("whatsapp");
    let (status, answer) = h.graph(Method::POST, &format!("{}/groups", h.number()), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let request = answer["request_id"].as_str().expect("a request id").to_owned();
    let value = h.hooks.wait_change("group_lifecycle_update", |v| v["groups"][0]["request_id"] == request).await;
    let event = value["groups"][0].clone();
    (event["group_id"].as_str().unwrap().to_owned(), event)
}

async fn open_group(h: &Harness) -> String {
    create_group(h, json!({"subject": "Open group"})).await.0
}

/// Waits for a group event of `kind` about `group` that satisfies `pick`.
async fn group_event(h: &Harness, field: &str, group: &str, kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let value = h
        .hooks
        .wait_change(field, |v| {
            v["groups"].as_array().into_iter().flatten().any(|e| e["group_id"] == group && e["type"] == kind && pick(e))
        })
        .await;
    value["groups"].as_array().unwrap().iter().find(|e| e["group_id"] == group && e["type"] == kind).unwrap().clone()
}

async fn join(h: &Harness, group: &str, wa_id: &str) -> (StatusCode, Value) {
    h.control(Method::POST, &format!("simulate/groups/{group}/join"), Some(json!({"wa_id": wa_id}))).await
}

async fn group_info(h: &Harness, group: &str, fields: &str) -> Value {
    let (status, info) = h.graph(Method::GET, &format!("{group}?fields={fields}"), None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    info
}

async fn members(h: &Harness, group: &str) -> Vec<String> {
    let info = group_info(h, group, "participants").await;
    info["participants"].as_array().unwrap().iter().map(|p| p["wa_id"].as_str().unwrap().to_owned()).collect()
}

/// How group webhooks and answers show a participant: number, BSUID and country
/// (`business-scoped-user-ids.mdx`); the BSUID is checked against what the user's messages carry.
fn assert_participant(p: &Value, wa_id: &str) {
    assert_eq!(p["wa_id"], wa_id, "{p}");
    assert!(p["user_id"].as_str().is_some_and(|u| u.starts_with("US.")), "a BSUID: {p}");
    assert_eq!(p["country_code"], "US", "{p}");
    assert_eq!(p.as_object().unwrap().len(), 3, "{p}");
}

/// The BSUID a customer's messages carry.
async fn bsuid_of(h: &Harness, wa_id: &str) -> String {
    let wamid = h.customer_writes(wa_id, "hello").await;
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == wamid).await;
    value["messages"][0]["from_user_id"].as_str().unwrap().to_owned()
}

/// A JPEG of `size` bytes.
fn jpeg(size: usize) -> Vec<u8> {
    let mut bytes = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".to_vec();
    bytes.resize(size, 0);
    bytes
}

/// `POST /{group-id}` with a profile picture, as multipart.
async fn set_picture(h: &Harness, group: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let part = Part::bytes(bytes).file_name("picture.jpg").mime_str("image/jpeg").unwrap();
    let form = Form::new().text("messaging_product", "whatsapp").part("file", part);
    let resp = h.http.post(format!("{}/v23.0/{group}", h.url)).bearer_auth(&h.seed.access_token).multipart(form);
    let resp = resp.send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text}")))
}

async fn remove(h: &Harness, group: &str, users: &[&str]) -> (StatusCode, Value) {
    let participants: Vec<Value> = users.iter().map(|u| json!({"user": u})).collect();
    let body = json!({"messaging_product": "whatsapp", "participants": participants});
    h.graph(Method::DELETE, &format!("{group}/participants"), Some(body)).await
}

#[tokio::test]
async fn creating_a_group_answers_a_request_id_and_announces_the_group() {
    let h = Harness::start().await;
    let body = json!({"messaging_product": "whatsapp", "subject": "Spring launch", "description": "Early access"});
    let (status, answer) = h.graph(Method::POST, &format!("{}/groups", h.number()), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let request = answer["request_id"].as_str().unwrap();
    assert_eq!(answer, json!({"messaging_product": "whatsapp", "request_id": request}));

    let value = h.hooks.wait_change("group_lifecycle_update", |v| v["groups"][0]["request_id"] == request).await;
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(value["metadata"], json!({"display_phone_number": h.number_digits(), "phone_number_id": h.number()}));
    let event = &value["groups"][0];
    assert_eq!(event["type"], "group_create");
    assert_eq!(event["subject"], "Spring launch");
    assert_eq!(event["description"], "Early access");
    assert!(event["invite_link"].as_str().is_some_and(|l| l.starts_with("https://chat.whatsapp.com/")), "{event}");
    let group = event["group_id"].as_str().unwrap();
    assert_eq!(group_info(&h, group, "subject").await["subject"], "Spring launch");
}

#[tokio::test]
async fn groups_are_listed_in_pages() {
    let h = Harness::start().await;
    let mut made = Vec::new();
    for subject in ["One", "Two", "Three"] {
        made.push(create_group(&h, json!({"subject": subject})).await.0);
    }
    let path = format!("{}/groups?limit=2", h.number());
    let (status, first) = h.graph(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let groups = first["data"]["groups"].as_array().expect("data.groups");
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert!(g["created_at"].is_string() && g["subject"].is_string() && g["id"].is_string(), "{g}");
    }
    assert!(first["paging"]["next"].is_string(), "{first}");
    let after = first["paging"]["cursors"]["after"].as_str().unwrap();
    let (_, second) = h.graph(Method::GET, &format!("{path}&after={after}"), None).await;
    let mut seen: Vec<Value> =
        groups.iter().chain(second["data"]["groups"].as_array().unwrap()).map(|g| g["id"].clone()).collect();
    seen.sort_by_key(Value::to_string);
    made.sort();
    assert_eq!(seen, made.iter().map(|g| json!(g)).collect::<Vec<_>>());

    let (status, answer) = h.graph(Method::GET, &format!("{path}&after=bogus!"), None).await;
    assert_graph_error(status, &answer, 400, 131_059);
}

#[tokio::test]
async fn group_info_has_only_the_id_without_fields_and_what_was_asked_with_them() {
    let h = Harness::start().await;
    let (group, _) = create_group(
        &h,
        json!({"subject": "Members", "description": "Our regulars",
        "join_approval_mode": "approval_required"}),
    )
    .await;
    let (status, bare) = h.graph(Method::GET, &group, None).await;
    assert_eq!((status, bare), (StatusCode::OK, json!({"messaging_product": "whatsapp", "id": group})));

    let info = group_info(
        &h,
        &group,
        "subject,description,participants,total_participant_count,join_approval_mode,suspended,creation_timestamp",
    )
    .await;
    assert_eq!(info["subject"], "Members");
    assert_eq!(info["description"], "Our regulars");
    assert_eq!(info["participants"], json!([]));
    assert_eq!(info["total_participant_count"], 0);
    assert_eq!(info["join_approval_mode"], "approval_required");
    assert_eq!(info["suspended"], false);
    assert!(info["creation_timestamp"].is_u64(), "{info}");

    let (status, answer) = h.graph(Method::GET, &format!("{group}?fields=colour"), None).await;
    assert_graph_error(status, &answer, 400, 100);
}

#[tokio::test]
async fn a_new_subject_and_description_are_announced() {
    let h = Harness::start().await;
    let group = open_group(&h).await;
    let body = json!({"messaging_product": "whatsapp", "subject": "Renamed", "description": "Now with news"});
    let (status, answer) = h.graph(Method::POST, &group, Some(body)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let event = group_event(&h, "group_settings_update", &group, "group_settings_update", |_| true).await;
    assert_eq!((&event["subject"], &event["description"]), (&json!("Renamed"), &json!("Now with news")), "{event}");
    assert!(event["request_id"].is_string(), "{event}");
    let info = group_info(&h, &group, "subject,description").await;
    assert_eq!((&info["subject"], &info["description"]), (&json!("Renamed"), &json!("Now with news")));
}

#[tokio::test]
async fn an_invite_link_can_be_read_reset_and_deleted() {
    let h = Harness::start().await;
    let (group, created) = create_group(&h, json!({"subject": "Links"})).await;
    let path = format!("{group}/invite_link");
    let (status, first) = h.graph(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first, json!({"messaging_product": "whatsapp", "invite_link": created["invite_link"]}));

    let (status, reset) = h.graph(Method::POST, &path, Some(json!({"messaging_product": "whatsapp"}))).await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    let new_link = reset["invite_link"].as_str().unwrap();
    assert!(new_link.starts_with("https://chat.whatsapp.com/"));
    assert_ne!(reset["invite_link"], first["invite_link"], "the old link is replaced");
    assert_eq!(h.graph(Method::GET, &path, None).await.1["invite_link"], new_link);

    let (status, deleted) = h.graph(Method::DELETE, &path, Some(json!({"messaging_product": "whatsapp"}))).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, answer) = join(&h, &group, &customer()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "without a link nobody joins: {answer}");
    h.graph(Method::POST, &path, Some(json!({"messaging_product": "whatsapp"}))).await;
    let (status, answer) = join(&h, &group, &customer()).await;
    assert_eq!(status, StatusCode::OK, "a new link lets people in again: {answer}");
}

#[tokio::test]
async fn a_customer_joining_an_open_group_is_added() {
    let h = Harness::start().await;
    let group = open_group(&h).await;
    let c = customer();
    let (status, answer) = join(&h, &group, &c).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"joined": true})));
    let event = group_event(&h, "group_participants_update", &group, "group_participants_add", |_| true).await;
    assert_eq!(event["reason"], "invite_link");
    let added = event["added_participants"].as_array().unwrap();
    assert_eq!(added.len(), 1, "{event}");
    assert_participant(&added[0], &c);
    assert_eq!(members(&h, &group).await, std::slice::from_ref(&c));
    let info = group_info(&h, &group, "participants").await;
    assert_eq!(info["participants"][0], added[0], "group info shows the participant the same way");
    assert_eq!(added[0]["user_id"], bsuid_of(&h, &c).await, "the BSUID the user's messages carry");
}

#[tokio::test]
async fn a_join_request_is_listed_and_once_approved_adds_the_customer() {
    let h = Harness::start().await;
    let (group, _) = create_group(&h, json!({"subject": "Closed", "join_approval_mode": "approval_required"})).await;
    let c = customer();
    let (status, answer) = join(&h, &group, &c).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["joined"], false);
    let request = answer["join_request_id"].as_str().unwrap();
    let event = group_event(&h, "group_participants_update", &group, "group_join_request_created", |_| true).await;
    assert_eq!(event["join_request_id"], request);
    let mut who = event.clone();
    for k in ["join_request_id", "group_id", "type", "timestamp"] {
        who.as_object_mut().unwrap().remove(k);
    }
    assert_participant(&who, &c);
    assert!(members(&h, &group).await.is_empty(), "a request is not membership");
    let (status, again) = join(&h, &group, &c).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "one open request per customer: {again}");

    let path = format!("{group}/join_requests");
    let (status, pending) = h.graph(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let listed = &pending["data"].as_array().unwrap()[..];
    assert_eq!(listed.len(), 1, "{pending}");
    assert_eq!((&listed[0]["join_request_id"], &listed[0]["wa_id"]), (&json!(request), &json!(c)));
    assert!(listed[0]["creation_timestamp"].is_u64(), "{pending}");

    let body = json!({"messaging_product": "whatsapp", "join_requests": [request]});
    let (status, approved) = h.graph(Method::POST, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved, json!({"messaging_product": "whatsapp", "approved_join_requests": [request]}));
    let added = group_event(&h, "group_participants_update", &group, "group_participants_add", |_| true).await;
    assert_participant(&added["added_participants"][0], &c);
    assert_eq!(added["added_participants"].as_array().unwrap().len(), 1);
    assert_eq!(members(&h, &group).await, [c]);
    assert_eq!(h.graph(Method::GET, &path, None).await.1["data"], json!([]));
}

#[tokio::test]
async fn a_rejected_join_request_leaves_the_customer_out() {
    let h = Harness::start().await;
    let (group, _) = create_group(&h, json!({"subject": "Closed", "join_approval_mode": "approval_required"})).await;
    let (_, answer) = join(&h, &group, &customer()).await;
    let request = answer["join_request_id"].as_str().unwrap();
    let path = format!("{group}/join_requests");
    let body = json!({"messaging_product": "whatsapp", "join_requests": [request]});
    let (status, rejected) = h.graph(Method::DELETE, &path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected, json!({"messaging_product": "whatsapp", "rejected_join_requests": [request]}));
    assert!(members(&h, &group).await.is_empty());
    assert_eq!(h.graph(Method::GET, &path, None).await.1["data"], json!([]));
}

#[tokio::test]
async fn unknown_join_requests_are_reported_as_failed_with_131213() {
    let h = Harness::start().await;
    let (group, _) = create_group(&h, json!({"subject": "Closed", "join_approval_mode": "approval_required"})).await;
    let c = customer();
    let (_, answer) = join(&h, &group, &c).await;
    let request = answer["join_request_id"].as_str().unwrap();
    let path = format!("{group}/join_requests");
    for method in [Method::POST, Method::DELETE] {
        let body = json!({"messaging_product": "whatsapp", "join_requests": ["MTU1NTAxMDAwMDA6MQ"]});
        let (status, answer) = h.graph(method.clone(), &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let failed = &answer["failed_join_requests"][0];
        assert_eq!(failed["join_request_id"], "MTU1NTAxMDAwMDA6MQ", "{method}: {answer}");
        assert_eq!(failed["errors"][0]["code"], 131_213, "{answer}");
    }
    let body = json!({"messaging_product": "whatsapp", "join_requests": [request, "MTU1NTAxMDAwMDA6MQ"]});
    let (_, answer) = h.graph(Method::POST, &path, Some(body)).await;
    assert_eq!(answer["approved_join_requests"], json!([request]), "{answer}");
    assert_eq!(answer["failed_join_requests"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(members(&h, &group).await, [c]);
}

#[tokio::test]
async fn removing_participants_is_announced_as_initiated_by_the_business() {
    let h = Harness::start().await;
    let (a, b) = (customer(), customer());
    let group = h.group_with(&[&a, &b]).await;
    let (status, answer) = remove(&h, &group, &[&format!("+{a}")]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let event = group_event(&h, "group_participants_update", &group, "group_participants_remove", |_| true).await;
    assert_eq!(event["initiated_by"], "business");
    assert_eq!(event["removed_participants"], json!([{"input": format!("+{a}"), "wa_id": a}]));
    assert!(event["request_id"].is_string(), "{event}");
    assert_eq!(members(&h, &group).await, [b]);
}

#[tokio::test]
async fn participants_can_be_removed_by_their_business_scoped_user_id() {
    let h = Harness::start().await;
    let (wrote, silent, stays) = (customer(), customer(), customer());
    let group = h.group_with(&[&wrote, &silent, &stays]).await;
    // One BSUID from the user's own messages, one from the webhook that announced the member.
    let wrote_id = bsuid_of(&h, &wrote).await;
    let added = group_event(&h, "group_participants_update", &group, "group_participants_add", |e| {
        e["added_participants"][0]["wa_id"] == silent
    })
    .await;
    let silent_id = added["added_participants"][0]["user_id"].as_str().unwrap().to_owned();
    let (status, answer) = remove(&h, &group, &[&wrote_id, &silent_id]).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let event = group_event(&h, "group_participants_update", &group, "group_participants_remove", |_| true).await;
    assert_eq!(
        event["removed_participants"],
        json!([{"input": wrote_id, "wa_id": wrote}, {"input": silent_id, "wa_id": silent}])
    );
    assert_eq!(members(&h, &group).await, std::slice::from_ref(&stays));
    // The same user named twice, by number and BSUID, is a duplicate.
    let stays_id = bsuid_of(&h, &stays).await;
    let (status, answer) = remove(&h, &group, &[&stays, &stays_id]).await;
    assert_graph_error(status, &answer, 400, 131_202);
}

#[tokio::test]
async fn a_group_picture_of_3_mb_is_taken_and_one_over_5_mb_refused_in_metas_shape() {
    let h = Harness::start().await;
    let group = open_group(&h).await;
    // Over axum's default 2 MB body limit, under the 5 MB a group picture may have.
    let picture = jpeg(3 * 1024 * 1024);
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&picture));
    let (status, answer) = set_picture(&h, &group, picture).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let event = group_event(&h, "group_settings_update", &group, "group_settings_update", |_| true).await;
    assert_eq!(event["profile_picture"], json!({"mime_type": "image/jpeg", "sha256": sha}));
    let (status, answer) = set_picture(&h, &group, jpeg(6 * 1024 * 1024)).await;
    assert_graph_error(status, &answer, 413, 100);
}

#[tokio::test]
async fn a_removed_participant_cannot_rejoin_through_the_invite_link() {
    let h = Harness::start().await;
    let (a, b) = (customer(), customer());
    let group = h.group_with(&[&a, &b]).await;
    assert_eq!(remove(&h, &group, &[&a]).await.0, StatusCode::OK);
    let (status, refused) =
        h.control(Method::POST, &format!("simulate/groups/{group}/join"), Some(json!({"wa_id": a}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("removed"), "{refused}");
    assert_eq!(members(&h, &group).await, std::slice::from_ref(&b));
    // Someone who left on their own may come back.
    let (status, _) =
        h.control(Method::POST, &format!("simulate/groups/{group}/leave"), Some(json!({"wa_id": b}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, joined) =
        h.control(Method::POST, &format!("simulate/groups/{group}/join"), Some(json!({"wa_id": b}))).await;
    assert_eq!((status, &joined["joined"]), (StatusCode::OK, &json!(true)), "{joined}");
}

#[tokio::test]
async fn removing_partly_unknown_participants_answers_206_with_131201() {
    let h = Harness::start().await;
    let (a, stranger) = (customer(), customer());
    let group = h.group_with(&[&a]).await;
    let (status, answer) = remove(&h, &group, &[&a, &stranger]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{answer}");
    assert_eq!(answer["error"]["code"], 131_201);
    let failed = answer["error"]["error_data"]["failed_participants"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{answer}");
    assert_eq!(failed[0]["code"], 131_212);
    assert!(members(&h, &group).await.is_empty(), "the known participant is removed");
}

#[tokio::test]
async fn removing_only_unknown_participants_fails_with_131212() {
    let h = Harness::start().await;
    let a = customer();
    let group = h.group_with(&[&a]).await;
    let (status, answer) = remove(&h, &group, &[&customer(), &customer()]).await;
    assert_graph_error(status, &answer, 400, 131_212);
    assert_eq!(members(&h, &group).await, [a]);
}

#[tokio::test]
async fn removing_more_than_8_participants_at_once_is_refused() {
    let h = Harness::start().await;
    let a = customer();
    let group = h.group_with(&[&a]).await;
    let mut users: Vec<String> = (0..8).map(|_| customer()).collect();
    users.push(a.clone());
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let (status, answer) = remove(&h, &group, &refs).await;
    assert_graph_error(status, &answer, 400, 100);
    let (status, answer) = remove(&h, &group, &[]).await;
    assert_graph_error(status, &answer, 400, 100);
    assert_eq!(members(&h, &group).await, [a]);
}

#[tokio::test]
async fn a_customer_leaving_is_announced_as_initiated_by_the_participant() {
    let h = Harness::start().await;
    let (a, b) = (customer(), customer());
    let group = h.group_with(&[&a, &b]).await;
    let (status, answer) =
        h.control(Method::POST, &format!("simulate/groups/{group}/leave"), Some(json!({"wa_id": a}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let event = group_event(&h, "group_participants_update", &group, "group_participants_remove", |_| true).await;
    assert_eq!(event["initiated_by"], "participant");
    assert_eq!(event["removed_participants"].as_array().unwrap().len(), 1, "{event}");
    assert_participant(&event["removed_participants"][0], &a);
    assert_eq!(members(&h, &group).await, [b]);
    let (status, _) =
        h.control(Method::POST, &format!("simulate/groups/{group}/leave"), Some(json!({"wa_id": a}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "one cannot leave twice");
}

#[tokio::test]
async fn a_deleted_group_is_announced_and_can_no_longer_be_messaged() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.group_with(&[&c]).await;
    let text = json!({"recipient_type": "group", "to": group, "type": "text", "text": {"body": "Hello all"}});
    h.send_ok(text.clone()).await;

    let (status, answer) = h.graph(Method::DELETE, &group, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let event = group_event(&h, "group_lifecycle_update", &group, "group_delete", |_| true).await;
    assert!(event["request_id"].is_string(), "{event}");
    let (status, answer) = h.send(text).await;
    assert_graph_error(status, &answer, 400, 131_041);
    let (status, _) = h.graph(Method::GET, &group, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a deleted group is an unknown node");
}

#[tokio::test]
async fn a_customers_message_in_a_group_carries_the_group_id() {
    let h = Harness::start().await;
    let c = customer();
    let group = h.group_with(&[&c]).await;
    let body = json!({"phone_number_id": h.number(), "from": c, "name": "Tiago", "group_id": group,
        "message": {"type": "text", "text": {"body": "What does everyone think?"}}});
    let (status, answer) = h.control(Method::POST, "simulate/inbound", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let value = h.hooks.wait_change("messages", |v| v["messages"][0]["id"] == answer["wamid"]).await;
    let contact = &value["contacts"][0];
    assert_eq!((&contact["profile"]["name"], &contact["wa_id"]), (&json!("Tiago"), &json!(c)));
    assert_eq!(value["messages"][0]["from_user_id"], contact["user_id"], "the participant's BSUID");
    let m = &value["messages"][0];
    assert_eq!((&m["group_id"], &m["from"], &m["type"]), (&json!(group), &json!(c), &json!("text")));
    assert_eq!(m["text"]["body"], "What does everyone think?");
}

// ---------------------------------------------------------------------------------------------
// Flows business public key

/// A fresh 2048-bit RSA public key in PEM from the `openssl` CLI, or the kept one without it.
fn public_key_2048() -> String {
    let generated = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|private| {
            let mut child = std::process::Command::new("openssl")
                .args(["pkey", "-pubout"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .ok()?;
            use std::io::Write as _;
            child.stdin.take()?.write_all(&private.stdout).ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then(|| String::from_utf8(out.stdout).ok()).flatten()
        });
    generated.filter(|k| k.starts_with("-----BEGIN PUBLIC KEY-----")).unwrap_or_else(|| KEY_2048.to_owned())
}

fn encryption_url(h: &Harness) -> String {
    format!("{}/v23.0/{}/whatsapp_business_encryption", h.url, h.number())
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn answer_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.json().await.unwrap())
}

async fn set_key_multipart(h: &Harness, key: &str) -> (StatusCode, Value) {
    let form = Form::new().text("business_public_key", key.to_owned());
    answer_of(h.http.post(encryption_url(h)).bearer_auth(&h.seed.access_token).multipart(form).send().await.unwrap())
        .await
}

async fn stored_key(h: &Harness) -> Value {
    let (status, body) = h.graph(Method::GET, &format!("{}/whatsapp_business_encryption", h.number()), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn assert_holds(stored: &Value, key: &str) {
    let data = stored["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{stored}");
    assert_eq!(data[0]["business_public_key"].as_str().map(str::trim), Some(key.trim()), "{stored}");
    assert_eq!(data[0]["business_public_key_signature_status"], "VALID");
}

#[tokio::test]
async fn a_number_without_a_business_public_key_lists_none() {
    let h = Harness::start().await;
    assert_eq!(stored_key(&h).await, json!({"data": []}));
}

#[tokio::test]
async fn a_2048_bit_business_public_key_is_taken_as_multipart() {
    let h = Harness::start().await;
    let key = public_key_2048();
    let (status, answer) = set_key_multipart(&h, &key).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_holds(&stored_key(&h).await, &key);
}

#[tokio::test]
async fn a_2048_bit_business_public_key_is_taken_as_a_form_or_json() {
    let h = Harness::start().await;
    let key = public_key_2048();
    let req = h.http.post(encryption_url(&h)).bearer_auth(&h.seed.access_token);
    let form = format!("business_public_key={}", url_encode(&key));
    let req = req.header("content-type", "application/x-www-form-urlencoded").body(form);
    let (status, answer) = answer_of(req.send().await.unwrap()).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_holds(&stored_key(&h).await, &key);

    // Uploading again replaces the number's one key.
    let (status, answer) = h
        .graph(
            Method::POST,
            &format!("{}/whatsapp_business_encryption", h.number()),
            Some(json!({"business_public_key": KEY_2048})),
        )
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_holds(&stored_key(&h).await, KEY_2048);
}

#[tokio::test]
async fn a_1024_bit_or_malformed_public_key_is_refused() {
    let h = Harness::start().await;
    let key = public_key_2048();
    set_key_multipart(&h, &key).await;
    let truncated = KEY_2048.replace("gQIDAQAB\n", "");
    for bad in [KEY_1024, "not a key at all", truncated.as_str()] {
        let (status, answer) = set_key_multipart(&h, bad).await;
        assert_graph_error(status, &answer, 400, 100);
        assert_eq!(answer["error"]["message"], "Business public key is invalid", "{answer}");
    }
    assert_holds(&stored_key(&h).await, &key);
    let (status, answer) = answer_of(
        h.http.post(encryption_url(&h)).bearer_auth(&h.seed.access_token).multipart(Form::new()).send().await.unwrap(),
    )
    .await;
    assert_graph_error(status, &answer, 400, 100);
}
