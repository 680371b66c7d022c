//! `PUT /control/media/{id}/download-failures` (wagate issue 6): the next N downloads of a
//! media file answer the status asked for, then downloads work again.

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

    // Refused: other statuses, no count, unknown media.
    for (body, field) in [(json!({"status": 403, "count": 1}), "status"), (json!({"status": 500, "count": 0}), "count")]
    {
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
    assert_eq!(get().await, (StatusCode::OK, bytes));
    let (status, _) = h.control(Method::DELETE, &knob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to clear");
}
