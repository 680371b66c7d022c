//! Inbound media through HTTP: files customers send arrive in Meta's webhook
//! shape, are downloaded through the Graph media API, checked against Meta's SHA-256, retried
//! when downloads fail, and served by `GET /v1/media/{id}` and `…/content`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wagate_domain::id::MediaId;
use wagate_server::Config;
use wagate_storage::Backend;

use crate::support::*;

/// Quick retries, so failure tests take a second; three attempts before giving up.
fn quick_retries(c: &mut Config) {
    c.media.retry_base_ms = 50;
    c.media.retry_max_ms = 200;
    c.media.poll_interval_ms = 50;
    c.media.timeout_ms = 5_000;
    c.media.max_attempts = 3;
}

fn sha256_base64(bytes: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(bytes))
}

/// A small PNG-looking file, different every call.
fn png(tag: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(format!("wagate media test {tag} {}", wagate_domain::id::new_id("x")).as_bytes());
    bytes
}

/// Uploads a file to the built-in sandbox's Graph media API, as a business would: Meta's media id.
async fn upload(app: &TestApp, sb: &SandboxAccount, bytes: &[u8], mime: &str) -> String {
    upload_to(app, &format!("{}/sandbox", app.url), sb, bytes, mime).await
}

/// Uploads a file to the media API of the sandbox at `sandbox_url`.
async fn upload_to(app: &TestApp, sandbox_url: &str, sb: &SandboxAccount, bytes: &[u8], mime: &str) -> String {
    let part = Part::bytes(bytes.to_vec()).file_name("photo.png").mime_str(mime).unwrap();
    let form = Form::new().text("messaging_product", "whatsapp").text("type", mime.to_owned()).part("file", part);
    let url = format!("{sandbox_url}/v23.0/{}/media", sb.phone_number_id);
    let resp = app.http.post(url).bearer_auth(&sb.access_token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().expect("a media id").to_owned()
}

/// What the sandbox (Meta) holds for a media id, fetched as Meta's docs say: the URL, then the
/// bytes with the token.
async fn sandbox_bytes(app: &TestApp, sb: &SandboxAccount, media_id: &str) -> Vec<u8> {
    let info = format!("{}/sandbox/v23.0/{media_id}", app.url);
    let (status, info) = request(&app.http, Method::GET, &info, Some(&sb.access_token), None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let resp = app.http.get(info["url"].as_str().unwrap()).bearer_auth(&sb.access_token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

/// An inbound image webhook in the shape of Meta's example (`webhooks/reference/messages/image`).
fn image_webhook(sb: &SandboxAccount, wamid: &str, media_id: &str, sha256: &str) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": sb.waba_id,
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": sb.phone_number_id},
                    "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                    "messages": [{
                        "from": "16505551234",
                        "id": wamid,
                        "timestamp": "1744344496",
                        "type": "image",
                        "image": {
                            "caption": "Taj Mahal",
                            "mime_type": "image/png",
                            "sha256": sha256,
                            "id": media_id,
                            // Expired long ago: wagate must ask the Graph API for a fresh URL.
                            "url": "http://127.0.0.1:9/whatsapp_business/attachments/?mid=expired"
                        }
                    }]
                },
                "field": "messages"
            }]
        }]
    })
    .to_string()
    .into_bytes()
}

/// The media of the inbound message with this wamid, once recorded: its JSON through the API.
async fn media_of(app: &TestApp, wamid: &str) -> Value {
    let message_id = eventually("the inbound message to be stored", || async {
        app.store().find_message_by_wamid(wamid).await.unwrap().map(|m| m.id.to_string())
    })
    .await;
    eventually("its media to be recorded", || async {
        let (status, list) = app.get(&format!("/v1/media?message_id={message_id}")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let data = list["data"].as_array().unwrap();
        assert!(data.len() <= 1, "one media row per message: {list}");
        data.first().cloned()
    })
    .await
}

/// Polls a media item until its status is no longer `pending`.
async fn settled(app: &TestApp, id: &str) -> Value {
    eventually("the download to settle", || async {
        let (status, m) = app.get(&format!("/v1/media/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        (m["status"] != "pending").then_some(m)
    })
    .await
}

async fn content(app: &TestApp, id: &str) -> (StatusCode, Option<String>, Option<String>, Vec<u8>) {
    let resp =
        app.http.get(format!("{}/v1/media/{id}/content", app.url)).bearer_auth(&app.api_key).send().await.unwrap();
    let header = |h| resp.headers().get(h).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned());
    let (ctype, clen) = (header(reqwest::header::CONTENT_TYPE), header(reqwest::header::CONTENT_LENGTH));
    (resp.status(), ctype, clen, resp.bytes().await.unwrap().to_vec())
}

async fn inbound_media_is_downloaded_checked_and_served(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let sb = sandbox_account(&app).await;
    let customer = customer();
    let pdf = b"%PDF-1.4\nwagate receipt".to_vec();
    let ogg = b"OggS\x00\x02wagate voice note".to_vec();
    let cases = [
        ("image", png("image"), json!({"caption": "Taj Mahal", "mime_type": "image/png"}), "image/png"),
        (
            "document",
            pdf,
            json!({"caption": "my receipt", "filename": "receipt.pdf", "mime_type": "application/pdf"}),
            "application/pdf",
        ),
        ("audio", ogg, json!({"voice": true}), "audio/ogg; codecs=opus"),
    ];
    for (kind, bytes, mut object, mime) in cases {
        object["content_base64"] = json!(STANDARD.encode(&bytes));
        let mut message = json!({"type": kind});
        message[kind] = object.clone();
        let body = json!({"phone_number_id": sb.phone_number_id, "from": customer, "name": "Ana", "message": message});
        let (status, sim) = app.post("/sandbox/simulate/inbound", body).await;
        assert_eq!(status, StatusCode::OK, "{sim}");
        let (wamid, meta_id) = (sim["wamid"].as_str().unwrap(), sim["media_id"].as_str().unwrap());

        let recorded = media_of(&app, wamid).await;
        let m = settled(&app, recorded["id"].as_str().unwrap()).await;
        let message = app.store().find_message_by_wamid(wamid).await.unwrap().unwrap();
        assert_eq!(m["status"], "stored", "{kind}: {m}");
        assert_eq!(m["message_id"], message.id.as_str(), "{kind}");
        assert_eq!(m["phone_number_id"], sb.phone_number_id.as_str());
        assert_eq!((m["kind"].as_str(), m["meta_media_id"].as_str()), (Some(kind), Some(meta_id)));
        assert_eq!(m["mime_type"], mime, "{kind}");
        assert_eq!(m["sha256"], sha256_base64(&bytes), "{kind}: Meta's base64 SHA-256");
        assert_eq!(m["file_size"], bytes.len(), "{kind}");
        assert_eq!((m["attempts"].as_i64(), m["error"].is_null()), (Some(1), true), "{kind}: {m}");
        assert!(m["downloaded_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{m}");
        assert_eq!(m["caption"], object.get("caption").cloned().unwrap_or(Value::Null), "{kind}");
        assert_eq!(m["filename"], object.get("filename").cloned().unwrap_or(Value::Null), "{kind}");

        let (status, ctype, clen, served) = content(&app, m["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{kind}");
        assert_eq!(ctype.as_deref(), Some(mime), "{kind}");
        assert_eq!(clen, Some(bytes.len().to_string()), "{kind}");
        assert_eq!(served, bytes, "{kind}: the bytes the customer sent");
        assert_eq!(served, sandbox_bytes(&app, &sb, meta_id).await, "{kind}: the bytes Meta holds");
    }

    // Unknown and malformed ids, and a bad filter, are refused by name.
    let unknown = MediaId::generate();
    for path in [format!("/v1/media/{unknown}"), format!("/v1/media/{unknown}/content"), "/v1/media/nonsense".into()] {
        let (status, body) = app.get(&path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
    }
    let (status, body) = app.get("/v1/media?message_id=wamid.X").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["path"], "message_id");
    let (status, body) = app.get("/v1/media?limit=2").await;
    assert_eq!((status, body["data"].as_array().unwrap().len()), (StatusCode::OK, 2), "{body}");
    let (_, rest) = app.get(&format!("/v1/media?limit=2&cursor={}", body["next_cursor"].as_str().unwrap())).await;
    assert_eq!((rest["data"].as_array().unwrap().len(), &rest["next_cursor"]), (1, &Value::Null), "{rest}");
    // An API key is required, as on every /v1 route.
    let resp = app.http.get(format!("{}/v1/media", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wagate_media_downloads_total{outcome=\"stored\"} 3"), "{metrics}");
    let (_, doc) = request(&app.http, Method::GET, &format!("{}/openapi.json", app.url), None, None).await;
    for path in ["/v1/media", "/v1/media/{id}", "/v1/media/{id}/content"] {
        assert!(doc["paths"][path]["get"].is_object(), "GET {path} missing from /openapi.json");
    }
    app.stop().await;
}

async fn a_wrong_sha256_fails_the_download_and_serves_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let sb = sandbox_account(&app).await;
    let bytes = png("checksum");
    let meta_id = upload(&app, &sb, &bytes, "image/png").await;
    let wrong = sha256_base64(b"some other file");
    let body = image_webhook(&sb, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &meta_id, &wrong);
    post_signed(&app, &sb, body).await;

    let recorded = media_of(&app, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=").await;
    let m = settled(&app, recorded["id"].as_str().unwrap()).await;
    assert_eq!(m["status"], "failed", "{m}");
    let error = m["error"].as_str().unwrap();
    assert!(error.contains("sha256 mismatch") && error.contains(&wrong), "{error}");
    assert!(error.contains(&sha256_base64(&bytes)), "the error names the file's real digest: {error}");
    assert_eq!(m["attempts"], 1, "a checksum mismatch is not retried");
    assert_eq!(m["sha256"], wrong.as_str(), "what the webhook said is kept");

    let (status, ctype, _, served) = content(&app, m["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(ctype.as_deref(), Some("application/json"));
    let error: Value = serde_json::from_slice(&served).unwrap();
    assert_eq!(error["error"]["code"], "media_failed", "{error}");
    let file = app.db.data_dir().join("media").join(m["id"].as_str().unwrap());
    assert!(!file.exists(), "nothing kept on disk");
    app.stop().await;
}

async fn download_failures_are_retried_until_stored_or_given_up(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let sb = sandbox_account(&app).await;
    // Two failures then success (within 3 attempts), for an expired URL's 404 and for a 500;
    // endless 503s give up after the third attempt.
    let cases = [(404, 2, "stored"), (500, 2, "stored"), (503, 100, "failed")];
    for (i, (status, count, outcome)) in cases.into_iter().enumerate() {
        let bytes = png(&format!("retry {status}"));
        let meta_id = upload(&app, &sb, &bytes, "image/png").await;
        let knob = format!("/sandbox/control/media/{meta_id}/download-failures");
        let (s, body) = app.request(Method::PUT, &knob, Some(json!({"status": status, "count": count}))).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let wamid = format!("wamid.RETRY{i}");
        let body = image_webhook(&sb, &wamid, &meta_id, &sha256_base64(&bytes));
        post_signed(&app, &sb, body).await;

        let recorded = media_of(&app, &wamid).await;
        let id = recorded["id"].as_str().unwrap();
        let m = settled(&app, id).await;
        assert_eq!(m["status"], outcome, "HTTP {status}: {m}");
        let (s, _, _, served) = content(&app, id).await;
        if outcome == "stored" {
            assert_eq!((m["attempts"].as_i64(), m["error"].is_null()), (Some(count + 1), true), "{m}");
            assert_eq!((s, served), (StatusCode::OK, bytes), "HTTP {status}");
        } else {
            assert_eq!(m["attempts"], 3, "{m}");
            let error = m["error"].as_str().unwrap();
            assert!(error.contains("gave up after 3 attempts") && error.contains("503"), "{error}");
            assert_eq!(s, StatusCode::CONFLICT);
        }
    }
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for series in [
        "wagate_media_downloads_total{outcome=\"stored\"} 2",
        "wagate_media_downloads_total{outcome=\"retried\"} 6",
        "wagate_media_downloads_total{outcome=\"failed\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
    app.stop().await;
}

async fn pending_media_is_not_served_yet(backend: Backend) {
    // Every download fails at first and the retry waits long: the media stays pending.
    let Some(app) = TestApp::spawn_with(backend, |c| {
        quick_retries(c);
        c.media.retry_base_ms = 600_000;
        c.media.retry_max_ms = 600_000;
    })
    .await
    else {
        return;
    };
    let sb = sandbox_account(&app).await;
    let bytes = png("pending");
    let meta_id = upload(&app, &sb, &bytes, "image/png").await;
    let knob = format!("/sandbox/control/media/{meta_id}/download-failures");
    let (s, body) = app.request(Method::PUT, &knob, Some(json!({"status": 404, "count": 1}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let body = image_webhook(&sb, "wamid.PENDING", &meta_id, &sha256_base64(&bytes));
    post_signed(&app, &sb, body).await;
    let recorded = media_of(&app, "wamid.PENDING").await;
    let id = recorded["id"].as_str().unwrap();
    let m = eventually("the first attempt to fail", || async {
        let (_, m) = app.get(&format!("/v1/media/{id}")).await;
        (m["attempts"] == 1 && m["error"].is_string()).then_some(m)
    })
    .await;
    assert_eq!(m["status"], "pending");
    assert!(m["error"].as_str().unwrap().contains("404"), "{m}");
    assert!(m["next_attempt_at"].is_string(), "{m}");
    let (status, _, _, body) = content(&app, id).await;
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("media_not_ready")), "{error}");
    app.stop().await;
}

async fn the_same_media_delivered_twice_is_recorded_once(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let sb = sandbox_account(&app).await;
    let bytes = png("duplicate");
    let meta_id = upload(&app, &sb, &bytes, "image/png").await;
    let body = image_webhook(&sb, "wamid.TWICE", &meta_id, &sha256_base64(&bytes));
    // Meta delivers the same webhook twice (its retries, or two deliveries of one event).
    post_signed(&app, &sb, body.clone()).await;
    post_signed(&app, &sb, body).await;
    eventually("both deliveries processed", || async {
        let store = app.store();
        (store.count_deliveries().await.unwrap() == 2 && store.deliveries().pending().await.unwrap() == 0).then_some(())
    })
    .await;
    let recorded = media_of(&app, "wamid.TWICE").await;
    let m = settled(&app, recorded["id"].as_str().unwrap()).await;
    assert_eq!((m["status"].as_str(), m["attempts"].as_i64()), (Some("stored"), Some(1)), "{m}");
    let (status, all) = app.get("/v1/media").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "one media row: {all}");
    assert_eq!(content(&app, m["id"].as_str().unwrap()).await.3, bytes);
    app.stop().await;
}

/// A connected (live) account's media is fetched from its own Graph base URL with its own token.
async fn a_live_accounts_media_comes_from_its_own_graph_api(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let (sandbox_url, _) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (_, numbers) = app.connect_sandbox(&sandbox_url).await;
    let bytes = b"%PDF-1.4\nlive invoice".to_vec();
    let message =
        json!({"type": "document", "document": {"filename": "invoice.pdf", "content_base64": STANDARD.encode(&bytes)}});
    let body = json!({"phone_number_id": numbers[0], "from": customer(), "name": "Ana", "message": message});
    let (status, sim) =
        request(&app.http, Method::POST, &format!("{sandbox_url}/simulate/inbound"), None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{sim}");
    let recorded = media_of(&app, sim["wamid"].as_str().unwrap()).await;
    let m = settled(&app, recorded["id"].as_str().unwrap()).await;
    assert_eq!(
        (m["status"].as_str(), m["phone_number_id"].as_str()),
        (Some("stored"), Some(numbers[0].as_str())),
        "{m}"
    );
    assert_eq!(m["filename"], "invoice.pdf");
    let (status, ctype, _, served) = content(&app, m["id"].as_str().unwrap()).await;
    assert_eq!((status, ctype.as_deref(), served), (StatusCode::OK, Some("application/pdf"), bytes));
    app.stop().await;
}

/// A media URL that redirects (to an internal page here) is not followed, for the built-in
/// sandbox's account as for a live one, and what it answered is neither stored nor repeated.
async fn a_media_url_that_redirects_is_not_followed(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, quick_retries).await else { return };
    let marker = "internal-secret-93b2";
    let internal = Canned::start("200 OK", "", &format!("<html>{marker}</html>")).await;
    let built_in = sandbox_account(&app).await;
    let (standalone_url, seed) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    app.connect_sandbox(&standalone_url).await;
    let live = SandboxAccount {
        waba_id: seed.waba_id.clone(),
        app_secret: seed.app_secret.clone(),
        verify_token: seed.verify_token.clone(),
        access_token: seed.access_token.clone(),
        phone_number_id: seed.phone_numbers[0].id.clone(),
    };
    let cases =
        [(format!("{}/sandbox", app.url), &built_in, Some(app.api_key.as_str())), (standalone_url, &live, None)];
    for (i, (sandbox_url, sb, key)) in cases.into_iter().enumerate() {
        let bytes = png("redirect");
        let meta_id = upload_to(&app, &sandbox_url, sb, &bytes, "image/png").await;
        let knob = format!("{sandbox_url}/control/media/{meta_id}/download-failures");
        let location = format!("{}/internal?token={marker}", internal.url);
        let redirect = json!({"status": 302, "location": location, "count": 100});
        let (s, body) = request(&app.http, Method::PUT, &knob, key, Some(redirect)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let wamid = format!("wamid.REDIRECT{i}");
        post_signed(&app, sb, image_webhook(sb, &wamid, &meta_id, &sha256_base64(&bytes))).await;

        let recorded = media_of(&app, &wamid).await;
        let m = settled(&app, recorded["id"].as_str().unwrap()).await;
        assert_eq!((m["status"].as_str(), m["attempts"].as_i64()), (Some("failed"), Some(3)), "{m}");
        let error = m["error"].as_str().unwrap();
        assert!(error.contains("302") && error.contains("a redirect, not followed"), "{error}");
        assert!(!m.to_string().contains(marker), "the redirect's body or location was echoed: {m}");
        let (status, _, _, _) = content(&app, m["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::CONFLICT, "nothing is served");
        assert!(!app.db.data_dir().join("media").join(m["id"].as_str().unwrap()).exists(), "nothing stored");
    }
    assert_eq!(internal.hits(), 0, "no redirect was followed");
    app.stop().await;
}

on_each_backend!(
    a_media_url_that_redirects_is_not_followed,
    inbound_media_is_downloaded_checked_and_served,
    a_wrong_sha256_fails_the_download_and_serves_nothing,
    download_failures_are_retried_until_stored_or_given_up,
    pending_media_is_not_served_yet,
    the_same_media_delivered_twice_is_recorded_once,
    a_live_accounts_media_comes_from_its_own_graph_api,
);
