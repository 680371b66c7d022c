//! Files the business uploads to send: checked against Meta's types and limits, stored with
//! their SHA-256, sent by `media_id` (uploaded to Meta once per number, again once Meta's copy
//! has aged), deleted, shared by links that expire; and media served alike by every instance
//! on one PostgreSQL through an S3-compatible bucket.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wagate_domain::id::MediaId;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_server::config::MediaStoreKind;
use wagate_storage::{Backend, MetaCopy};

use crate::support::*;

on_each_backend!(uploads_are_checked_stored_served_linked_and_deleted, a_send_by_media_id_uploads_once_per_number);

fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(wagate_domain::id::new_id("png").as_bytes());
    bytes.resize(size.max(bytes.len()), 7);
    bytes
}

fn sha256_base64(bytes: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(bytes))
}

/// A multipart upload: the status and answer.
async fn upload(app: &TestApp, bytes: &[u8], mime: &str, filename: &str) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(filename.to_owned()).mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let resp =
        app.http.post(format!("{}/v1/media", app.url)).bearer_auth(&app.api_key).multipart(form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn refused(app: &TestApp, bytes: &[u8], mime: &str, rule: &str) {
    let (status, body) = upload(app, bytes, mime, "f").await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(rule), Some("file")),
        "{body}"
    );
}

async fn bytes_of(http: &reqwest::Client, url: &str, key: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

async fn uploads_are_checked_stored_served_linked_and_deleted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    // Meta's types and limits, and bytes that say what they are.
    refused(&app, &png(5 * 1024 * 1024 + 1), "image/png", "too_large").await;
    refused(&app, &png(100), "image/jpeg", "media_type_mismatch").await;
    refused(&app, b"GIF89a....", "image/gif", "unsupported_media_type").await;
    refused(&app, b"", "image/png", "empty_file").await;
    let mut sticker = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
    sticker.resize(150 * 1024, 1);
    refused(&app, &sticker, "image/webp", "too_large").await;
    // Stored with its SHA-256, served byte for byte.
    let bytes = png(5 * 1024 * 1024);
    let (status, up) = upload(&app, &bytes, "image/png", "photo.png").await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let id = up["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("med_"), "{up}");
    assert_eq!(
        (up["kind"].as_str(), up["mime_type"].as_str(), up["file_size"].as_u64(), up["filename"].as_str()),
        (Some("image"), Some("image/png"), Some(bytes.len() as u64), Some("photo.png"))
    );
    assert_eq!(up["sha256"], sha256_base64(&bytes));
    let (status, got) = app.get(&format!("/v1/media/{id}")).await;
    assert_eq!((status, got["sha256"].as_str()), (StatusCode::OK, up["sha256"].as_str()), "{got}");
    let (status, served) = bytes_of(&app.http, &format!("{}/v1/media/{id}/content", app.url), Some(&app.api_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_base64(&served), sha256_base64(&bytes), "the SHA-256 round trip");
    // Fetched from a URL, under the network rules (the tests allow loopback, not 10/8).
    let pdf = b"%PDF-1.7\nwagate invoice".to_vec();
    let server = Canned::start("200 OK", "Content-Type: application/pdf\r\n", std::str::from_utf8(&pdf).unwrap()).await;
    let (status, fetched) = app.post("/v1/media", json!({"url": format!("{}/invoices/inv-7.pdf", server.url)})).await;
    assert_eq!(status, StatusCode::CREATED, "{fetched}");
    assert_eq!((fetched["kind"].as_str(), fetched["filename"].as_str()), (Some("document"), Some("inv-7.pdf")));
    assert_eq!(fetched["sha256"], sha256_base64(&pdf));
    let (status, body) = app.post("/v1/media", json!({"url": "http://10.1.2.3/x.pdf"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("private_address")),
        "{body}"
    );
    // A link that needs no key, until it expires; a forged one serves nothing.
    let (status, link) = app.post(&format!("/v1/media/{id}/link"), json!({"expires_in": 2})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap().to_owned();
    let (status, public) = bytes_of(&app.http, &url, None).await;
    assert_eq!((status, public.len()), (StatusCode::OK, bytes.len()));
    let forged = url.replace("signature=", "signature=0");
    assert_eq!(bytes_of(&app.http, &forged, None).await.0, StatusCode::FORBIDDEN);
    let (status, body) = app.post(&format!("/v1/media/{id}/link"), json!({"expires_in": 0})).await;
    assert_eq!(
        (status, body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("expires_in")),
        "{body}"
    );
    eventually("the link to expire", || async {
        (bytes_of(&app.http, &url, None).await.0 == StatusCode::GONE).then_some(())
    })
    .await;
    // Deleted: not served, not linked, not sent.
    let (status, _) = app.request(Method::DELETE, &format!("/v1/media/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/media/{id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        bytes_of(&app.http, &format!("{}/v1/media/{id}/content", app.url), Some(&app.api_key)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.post(&format!("/v1/media/{id}/link"), json!({})).await.0, StatusCode::NOT_FOUND);
    let from = app.sandbox_numbers().await[0].clone();
    let send = json!({"from": from, "to": customer(), "type": "image", "image": {"media_id": id}});
    let (status, body) = app.post("/v1/messages", send).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_media"), Some("image.media_id")),
        "{body}"
    );
    app.stop().await;
}

/// The Meta media id the sandbox received for a message, once it is delivered.
async fn meta_id_sent(app: &TestApp, message_id: &str) -> String {
    let done = wait_for_message(&app.http, &app.url, &app.api_key, message_id, "the image delivered", |m| {
        m["status"] == "delivered" || m["status"] == "read" || m["status"] == "failed"
    })
    .await;
    assert_ne!(done["status"], "failed", "Meta had the file: {done}");
    let (_, received) = app.get("/sandbox/control/messages").await;
    let body =
        received["data"].as_array().unwrap().iter().find(|r| r["wamid"] == done["wamid"]).unwrap()["body"].clone();
    assert!(body["image"].get("media_id").is_none(), "Meta gets its own id: {body}");
    body["image"]["id"].as_str().unwrap().to_owned()
}

async fn a_send_by_media_id_uploads_once_per_number(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let numbers = app.sandbox_numbers().await;
    let to = customer();
    for n in &numbers[..2] {
        app.customer_writes(n, &to, "send me the picture").await;
    }
    let (_, up) = upload(&app, &png(2048), "image/png", "p.png").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let send =
        |from: &str| json!({"from": from, "to": to, "type": "image", "image": {"media_id": id, "caption": "Here"}});
    let mut sent = Vec::new();
    for from in [&numbers[0], &numbers[0], &numbers[1]] {
        let (status, body) = app.post("/v1/messages", send(from)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["image"]["media_id"], id.as_str(), "the message shows the upload: {body}");
        sent.push(body["id"].as_str().unwrap().to_owned());
        // One at a time, so that the second send finds the first one's copy.
        meta_id_sent(&app, sent.last().unwrap()).await;
    }
    let first = meta_id_sent(&app, &sent[0]).await;
    assert_eq!(meta_id_sent(&app, &sent[1]).await, first, "uploaded once for the number");
    let other = meta_id_sent(&app, &sent[2]).await;
    assert_ne!(other, first, "each number has its own copy");
    // A copy Meta has had for 30 days is gone there: uploaded again before it is used.
    let parsed = MediaId::parse(&id).unwrap();
    let month_ago = Timestamp::now().minus(Duration::from_secs(31 * 24 * 3600));
    let old = MetaCopy { meta_media_id: first.clone(), uploaded_at: month_ago };
    app.store().record_meta_copy(&parsed, &numbers[0], &old).await.unwrap();
    let (_, again) = app.post("/v1/messages", send(&numbers[0])).await;
    let renewed = meta_id_sent(&app, again["id"].as_str().unwrap()).await;
    assert!(renewed != first && renewed != other, "a new copy: {renewed}");
    let copy = app.store().meta_copy(&parsed, &numbers[0]).await.unwrap().unwrap();
    assert_eq!(copy.meta_media_id, renewed);
    // Meta lost its copy before then: the send fails with 131053, and the next one uploads again.
    let account = sandbox_account(&app).await;
    let url = format!("{}/sandbox/v23.0/{renewed}", app.url);
    let (status, body) = request(&app.http, Method::DELETE, &url, Some(&account.access_token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, lost) = app.post("/v1/messages", send(&numbers[0])).await;
    let failed =
        wait_for_message(&app.http, &app.url, &app.api_key, lost["id"].as_str().unwrap(), "Meta's 131053", |m| {
            m["status"] == "failed"
        })
        .await;
    assert_eq!(failed["error"]["code"], 131053, "{failed}");
    eventually("the lost copy forgotten", || async {
        app.store().meta_copy(&parsed, &numbers[0]).await.unwrap().is_none().then_some(())
    })
    .await;
    let (_, after) = app.post("/v1/messages", send(&numbers[0])).await;
    let fresh = meta_id_sent(&app, after["id"].as_str().unwrap()).await;
    assert!(fresh != renewed, "uploaded again: {fresh}");
    // An image is not a video.
    let video = json!({"from": numbers[0], "to": to, "type": "video", "video": {"media_id": id}});
    let (status, body) = app.post("/v1/messages", video).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("media_kind"), Some("video.media_id")),
        "{body}"
    );
    let (status, body) = app.post("/v1/messages", json!({"from": numbers[0], "to": to, "type": "image", "image": {"media_id": id, "link": "https://x.test/a.png"}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("one_of")), "{body}");
    app.stop().await;
}

/// An S3-compatible server (moto, from `WAGATE_PYTHON`'s environment) with one bucket; stopped
/// when dropped.
struct S3Server {
    _process: tokio::process::Child,
    endpoint: String,
}

impl S3Server {
    async fn start(python: &str, bucket: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = tokio::process::Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto's S3 server starts (clients/requirements.txt)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("the S3 server to answer", || async {
            http.get(&endpoint).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        let made = http.put(format!("{endpoint}/{bucket}")).send().await.unwrap();
        assert!(made.status().is_success(), "the bucket is made: {}", made.status());
        Self { _process: process, endpoint }
    }
}

/// Two instances on one PostgreSQL, each with its own data directory, share their media
/// through the bucket: a customer's file one downloaded, the other serves; an upload one took,
/// the other serves and sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_serve_the_same_files_from_s3() {
    let _turn = take_turn("two_instances_on_one_postgresql_serve_the_same_files_from_s3").await;
    let python = match std::env::var("WAGATE_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but WAGATE_PYTHON is not set"),
        Err(_) => return eprintln!("skipping the S3 test: WAGATE_PYTHON is not set"),
    };
    let s3 = S3Server::start(&python, "wagate-media").await;
    let key = Secret::new(wagate_domain::sealed::SecretKey::generate().to_base64().expose());
    let in_bucket = |c: &mut wagate_server::Config| {
        c.secret_key = Some(key.clone());
        c.media.store = MediaStoreKind::S3;
        c.media.s3_bucket = Some("wagate-media".into());
        c.media.s3_endpoint = Some(s3.endpoint.clone());
        c.media.s3_access_key_id = Some("test".into());
        c.media.s3_secret_access_key = Some(Secret::new("test"));
    };
    let Some(app) = TestApp::spawn_with(Backend::Postgres, in_bucket).await else { return };
    // A customer's photo, downloaded by the first instance's media worker.
    let sb = sandbox_account(&app).await;
    let photo = png(4096);
    let message =
        json!({"type": "image", "image": {"mime_type": "image/png", "content_base64": STANDARD.encode(&photo)}});
    let body = json!({"phone_number_id": sb.phone_number_id, "from": customer(), "name": "Ana", "message": message});
    let (status, sim) = app.post("/sandbox/simulate/inbound", body).await;
    assert_eq!(status, StatusCode::OK, "{sim}");
    let wamid = sim["wamid"].as_str().unwrap().to_owned();
    let media_id = eventually("the photo stored", || async {
        let m = app.store().find_message_by_wamid(&wamid).await.unwrap()?;
        let (_, list) = app.get(&format!("/v1/media?message_id={}", m.id)).await;
        let first = list["data"].get(0)?.clone();
        (first["status"] == "stored").then(|| first["id"].as_str().unwrap().to_owned())
    })
    .await;
    // Another instance, with a data directory of its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = app
        .another_instance(|c| {
            in_bucket(c);
            c.data_dir = elsewhere.path().to_owned();
            // Its own sandbox would take the numbers over; this one only serves.
            c.sandbox.enabled = false;
            c.dispatcher.enabled = false;
        })
        .await;
    for base in [&app.url, &other.url] {
        let (status, served) =
            bytes_of(&app.http, &format!("{base}/v1/media/{media_id}/content"), Some(&app.api_key)).await;
        assert_eq!(status, StatusCode::OK, "{base}");
        assert_eq!(served, photo, "{base} serves the customer's photo");
    }
    // An upload taken by the second instance is served by the first, and by a link either gives.
    let part = reqwest::multipart::Part::bytes(png(1000)).file_name("u.png").mime_str("image/png").unwrap();
    let resp = app
        .http
        .post(format!("{}/v1/media", other.url))
        .bearer_auth(&app.api_key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let up: Value = resp.json().await.unwrap();
    let id = up["id"].as_str().unwrap();
    let (status, served) = bytes_of(&app.http, &format!("{}/v1/media/{id}/content", app.url), Some(&app.api_key)).await;
    assert_eq!((status, sha256_base64(&served)), (StatusCode::OK, up["sha256"].as_str().unwrap().to_owned()));
    let (_, link) = app.post(&format!("/v1/media/{id}/link"), json!({})).await;
    let path = link["url"].as_str().unwrap().split_once("/media/").unwrap().1.to_owned();
    assert_eq!(bytes_of(&app.http, &format!("{}/media/{path}", other.url), None).await.0, StatusCode::OK);
    other.stop().await;
    app.stop().await;
    drop(s3);
}
