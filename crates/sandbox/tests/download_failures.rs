//! `PUT /control/media/{id}/download-failures`: the next N downloads of a
//! media file answer the status asked for (or redirect), then downloads work again.

mod support;

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use support::*;

#[tokio::test]
async fn downloads_fail_as_often_as_asked_then_work() {
    let h = Harness::start().await;
    let bytes = b"\x89PNG\r\n\x1a\nfailing download".to_vec();
    let part = Part::bytes(bytes.clone()).file_name("x.png").mime_str("image/png").unwrap();
    let (status, up) = h.upload(Form::new().text("messaging_product", "whatsapp").part("file", part)).await;
    assert_eq!(status, StatusCode::OK, "{up}");
    let id = up["id"].as_str().unwrap();
    let knob = format!("control/media/{id}/download-failures");

    // Refused: other statuses, no count, a redirect without a location, a location without a redirect,
    // unknown media.
    for (body, field) in [
        (json!({"status": 403, "count": 1}), "status"),
        (json!({"status": 500, "count": 0}), "count"),
        (json!({"status": 302, "count": 1}), "location"),
        (json!({"status": 302, "count": 1, "location": "/relative"}), "location"),
        (json!({"status": 404, "count": 1, "location": "http://127.0.0.1:9/"}), "location"),
    ] {
        let (status, answer) = h.control(Method::PUT, &knob, Some(body)).await;
        assert_eq!((status, answer["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)));
    }
    let (status, _) =
        h.control(Method::PUT, "control/media/123/download-failures", Some(json!({"status": 404, "count": 1}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, answer) = h.control(Method::PUT, &knob, Some(json!({"status": 503, "count": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let get = || async {
        let (status, info) = h.graph(Method::GET, id, None).await;
        assert_eq!(status, StatusCode::OK, "{info}");
        let resp = h.http.get(info["url"].as_str().unwrap()).bearer_auth(&h.seed.access_token).send().await.unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    };
    assert_eq!(get().await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get().await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get().await, (StatusCode::OK, bytes.clone()), "after two failures, the file");

    // DELETE clears failures set and not yet used up.
    h.control(Method::PUT, &knob, Some(json!({"status": 404, "count": 5}))).await;
    assert_eq!(get().await.0, StatusCode::NOT_FOUND);
    let (status, _) = h.control(Method::DELETE, &knob, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(get().await, (StatusCode::OK, bytes.clone()));
    let (status, _) = h.control(Method::DELETE, &knob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to clear");

    // A redirect, for testing that a downloader follows none.
    let location = "http://127.0.0.1:9/internal";
    let (status, answer) =
        h.control(Method::PUT, &knob, Some(json!({"status": 302, "location": location, "count": 1}))).await;
    assert_eq!((status, &answer["location"]), (StatusCode::OK, &json!(location)), "{answer}");
    let (_, info) = h.graph(Method::GET, id, None).await;
    let not_following = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = not_following.get(info["url"].as_str().unwrap()).bearer_auth(&h.seed.access_token).send().await.unwrap();
    assert_eq!((resp.status(), resp.headers()["location"].to_str().unwrap()), (StatusCode::FOUND, location));
    assert_eq!(get().await, (StatusCode::OK, bytes), "once, then the file");
}
