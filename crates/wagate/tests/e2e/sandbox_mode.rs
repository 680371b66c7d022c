//! Sandbox mode: the seeded account survives restarts, takes its secrets from configuration,
//! and its Graph paths check the access token as Meta does.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wagate_domain::secret::Secret;
use wagate_storage::Backend;

use crate::support::*;

async fn control_accounts(app: &TestApp) -> Value {
    let (status, body) = app.get("/sandbox/control/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0].clone()
}

async fn the_seeded_account_is_generated_once_and_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let first = control_accounts(&app).await;
    let numbers = first["phone_numbers"].as_array().unwrap();
    assert!(numbers.len() >= 2);
    assert!(numbers.iter().all(|n| n["id"].as_str().unwrap().len() >= 15));
    assert_eq!(first["app_secret"].as_str().unwrap().len(), 32);

    // Meta's token check on the Graph paths: a wrong token is code 190 with HTTP 401.
    let waba = first["waba_id"].as_str().unwrap();
    let url = format!("{}/sandbox/v23.0/{waba}/phone_numbers", app.url);
    let (status, e) = request(&app.http, Method::GET, &url, Some("EAAGwrong"), None).await;
    assert_eq!(
        (status, e["error"]["code"].as_i64(), e["error"]["type"].as_str()),
        (StatusCode::UNAUTHORIZED, Some(190), Some("OAuthException"))
    );
    let (status, listed) = request(&app.http, Method::GET, &url, first["access_token"].as_str(), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"].as_array().unwrap().len(), numbers.len());

    // Restarted on the same database: the same business, numbers and secrets.
    let restarted = app.restart_with(|c| c.sandbox.verify_token = Some(Secret::new("verify-from-env"))).await;
    let second = control_accounts(&restarted).await;
    assert_eq!(second["waba_id"], first["waba_id"]);
    assert_eq!(second["phone_numbers"], first["phone_numbers"]);
    assert_eq!(second["app_secret"], first["app_secret"]);
    assert_eq!(second["verify_token"], "verify-from-env", "configuration overrides the stored verify token");
    let (_, accounts) = restarted.get("/v1/accounts").await;
    assert_eq!(accounts["data"].as_array().unwrap().len(), 1, "still one sandbox account");
    restarted.stop().await;
}

on_each_backend!(the_seeded_account_is_generated_once_and_kept);
