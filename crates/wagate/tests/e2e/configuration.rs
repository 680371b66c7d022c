//! Configuration through the real binary: a setting given only as its `WAGATE_<SECTION>__<KEY>`
//! variable takes effect, a bad value stops the start naming the variable, and a variable that
//! names no setting is warned about.

use reqwest::StatusCode;

use crate::support::{Process, run_binary_with, take_turn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_section_key_set_only_by_its_variable_takes_effect() {
    let _turn = take_turn("a_section_key_set_only_by_its_variable_takes_effect").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let key = "configuration-test-key";
    let server = Process::start(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("WAGATE_METRICS__REQUIRE_KEY", "true"), ("WAGATE_BOOTSTRAP_API_KEY", key)],
    )
    .await;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", server.url);
    let status = http.get(&metrics).send().await.unwrap().status();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "WAGATE_METRICS__REQUIRE_KEY=true puts /metrics behind a key");
    let answer = http.get(&metrics).bearer_auth(key).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("wagate_"), "the metrics themselves");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_stops_the_start_and_an_unknown_variable_is_warned_about() {
    let _turn = take_turn("a_bad_value_stops_the_start_and_an_unknown_variable_is_warned_about").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = run_binary_with(&["serve", "--data-dir", data], &[("WAGATE_DISPATCHER__MAX_ATTEMPTS", "many")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WAGATE_DISPATCHER__MAX_ATTEMPTS (dispatcher.max_attempts): must be an integer"),
        "{stderr}"
    );
    assert!(!stderr.contains("many"), "{stderr}");

    let out =
        run_binary_with(&["keys", "list", "--data-dir", data], &[("WAGATE_METRICS_REQUIRE_KEY", "hunter2")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("variable=WAGATE_METRICS_REQUIRE_KEY")
            && stderr.contains("did_you_mean=WAGATE_METRICS__REQUIRE_KEY")
            && !stderr.contains("hunter2"),
        "{stderr}"
    );
}
