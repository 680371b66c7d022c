//! Existing Cloud API client libraries, used as their users use them with only the base URL
//! changed, against wagate's Meta-compatible surface.
//!
//! They run in the Python environment `WAGATE_PYTHON` names (`.ci/run` makes one from
//! `clients/requirements.txt`); without it they are skipped, except with `CI=true`.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::process::Command;
use wagate_storage::Backend;

use crate::support::*;

fn client_python() -> Option<PathBuf> {
    match std::env::var_os("WAGATE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but WAGATE_PYTHON is not set: the client-library tests must run in CI")
        }
        None => {
            eprintln!("skipping client-library tests: WAGATE_PYTHON is not set");
            None
        }
    }
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients")
}

async fn pywa_drives_the_meta_compatible_surface(backend: Backend) {
    let Some(python) = client_python() else { return };
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = format!("{}/sandbox", app.url);
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    let inbound = app.customer_writes(&phone, &customer, "hello pywa").await;
    // A user who also has a business-scoped user id, replied to by it.
    let user = "US.13491208655302741918";
    let body = json!({"phone_number_id": phone, "from": crate::support::customer(), "user_id": user,
        "name": "Una User", "message": {"type": "text", "text": {"body": "hello from a username"}}});
    let (status, wrote) = app.post("/sandbox/simulate/inbound", body).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{wrote}");
    let user_wamid = wrote["wamid"].as_str().unwrap().to_owned();
    let waba = sandbox_account(&app).await.waba_id;

    let out = Command::new(&python)
        .arg(clients_dir().join("pywa/graph_surface.py"))
        .env("WAGATE_URL", &app.url)
        .env("WAGATE_API_KEY", &app.api_key)
        .env("PHONE_ID", &phone)
        .env("WABA_ID", &waba)
        .env("CUSTOMER", &customer)
        .env("INBOUND_WAMID", &inbound)
        .env("USER_ID", user)
        .env("USER_WAMID", &user_wamid)
        .output()
        .await
        .expect("the client environment's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pywa run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sent = lines.last().unwrap()["sent"].as_u64().unwrap();
    assert_eq!(sent, 16);

    // Every message pywa sent reached "Meta" once, with the wamid pywa was given.
    let received = sandbox_received(&app.http, &sandbox, Some(&app.api_key), &customer).await;
    let wamids: Vec<&str> = lines.iter().filter_map(|l| l["wamid"].as_str()).collect();
    assert_eq!(received.len(), wamids.len(), "{received:?}");
    for w in wamids {
        assert_eq!(received.iter().filter(|r| r["wamid"] == w).count(), 1, "{w}");
    }
    let (_, all) = app.get("/sandbox/control/messages").await;
    let receipts =
        all["data"].as_array().unwrap().iter().filter(|r| r["body"]["message_id"] == inbound.as_str()).count();
    assert_eq!(receipts, 2, "mark as read and the typing indicator");

    // What pywa did through the Graph surface is wagate's own: the upload was sent as a file
    // Meta was given for the number, then deleted; the template is wagate's; the reply to the
    // user id (pywa names them in `recipient`) went to them, in context.
    let line = |call: &str| lines.iter().find(|l| l["call"] == call).unwrap_or_else(|| panic!("{call}: {stdout}"));
    let digits = line("media")["id"].as_str().unwrap();
    let upload = wagate_domain::id::MediaId::from_digits(digits).expect("an upload's id, in digits as Meta's are");
    let (status, _) = app.get(&format!("/v1/media/{upload}")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "deleted");
    let image = lines.iter().find(|l| l["call"] == "image by uploaded id").unwrap()["wamid"].as_str().unwrap();
    let got = received.iter().find(|r| r["wamid"] == image).unwrap();
    let meta_media_id = got["body"]["image"]["id"].as_str().unwrap();
    assert!(!meta_media_id.starts_with("med_"), "Meta was given its own media id: {got}");
    let template = line("template");
    let (status, stored) = app.get(&format!("/v1/templates/{}", template["id"].as_str().unwrap())).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{stored}");
    assert_eq!(stored["name"], template["name"]);
    let user_wamid_sent = line("reply to a user id")["user_wamid"].as_str().unwrap();
    let to_user = sandbox_received(&app.http, &sandbox, Some(&app.api_key), user).await;
    let reply = to_user.iter().find(|r| r["wamid"] == user_wamid_sent).unwrap();
    assert_eq!(reply["body"]["context"]["message_id"], user_wamid.as_str(), "{reply}");
    app.stop().await;
}

on_each_backend!(pywa_drives_the_meta_compatible_surface);

/// pywa against the standalone sandbox as against Meta: it sends, uploads and downloads media,
/// and takes the sandbox's webhooks through its own signature verifier and parser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywa_drives_the_standalone_sandbox() {
    let _turn = crate::support::take_turn("pywa_drives_the_standalone_sandbox").await;
    let Some(python) = client_python() else { return };
    let sandbox = standalone_sandbox(None).await;
    let http = reqwest::Client::new();
    let (_, accounts) =
        request(&http, reqwest::Method::GET, &format!("{}/control/accounts", sandbox.url), None, None).await;
    let a = &accounts["data"][0];
    let phone = a["phone_numbers"][0]["id"].as_str().unwrap();
    let customer = customer().trim_start_matches('+').to_owned();

    let out = Command::new(&python)
        .arg(clients_dir().join("pywa/sandbox.py"))
        .env("SANDBOX_URL", &sandbox.url)
        .env("PHONE_ID", phone)
        .env("ACCESS_TOKEN", a["access_token"].as_str().unwrap())
        .env("APP_SECRET", a["app_secret"].as_str().unwrap())
        .env("VERIFY_TOKEN", a["verify_token"].as_str().unwrap())
        .env("CUSTOMER", &customer)
        .output()
        .await
        .expect("the client environment's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pywa run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "inbound verified and parsed",
            "text sent, statuses received",
            "marked read",
            "media uploaded and downloaded",
            "image sent by media id",
            "template sent",
            "unknown template refused",
            "wrong app secret refused",
        ]
    );

    // What pywa sent reached the sandbox as Meta's documented bodies.
    let received = sandbox_received(&http, &sandbox.url, None, &customer).await;
    let kinds: Vec<(&str, bool)> =
        received.iter().map(|r| (r["body"]["type"].as_str().unwrap(), r["wamid"].is_string())).collect();
    assert_eq!(kinds, [("text", true), ("image", true), ("template", true), ("template", false)]);
    let image = &received[1]["body"]["image"];
    assert_eq!(image["id"], steps[3]["media_id"]);
    assert_eq!(received[3]["error"]["code"], 132001);
    assert_eq!(sandbox.terminate().await, Some(0));
}
