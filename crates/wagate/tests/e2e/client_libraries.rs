//! Existing Cloud API client libraries, used as their users use them with only the base URL
//! changed, against wagate's Meta-compatible surface.
//!
//! They run in the Python environment `WAGATE_PYTHON` names (`.ci/run` makes one from
//! `clients/requirements.txt`); without it they are skipped, except with `CI=true`.

use std::path::PathBuf;

use serde_json::Value;
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

    let out = Command::new(&python)
        .arg(clients_dir().join("pywa/graph_surface.py"))
        .env("WAGATE_URL", &app.url)
        .env("WAGATE_API_KEY", &app.api_key)
        .env("PHONE_ID", &phone)
        .env("CUSTOMER", &customer)
        .env("INBOUND_WAMID", &inbound)
        .output()
        .await
        .expect("the client environment's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pywa run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sent = lines.last().unwrap()["sent"].as_u64().unwrap();
    assert_eq!(sent, 15);

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
    app.stop().await;
}

on_each_backend!(pywa_drives_the_meta_compatible_surface);
