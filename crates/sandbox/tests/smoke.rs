mod support;

use reqwest::Method;
use serde_json::json;
use support::*;

#[tokio::test]
async fn harness_sends_and_receives_statuses() {
    let h = Harness::start().await;
    let c = customer();
    h.customer_writes(&c, "hi").await;
    let wamid = h.send_ok(json!({"to": c, "type": "text", "text": {"body": "hello"}})).await;
    let statuses = h.hooks.wait_statuses(&wamid, 3).await;
    assert_eq!(
        statuses.iter().map(|s| s["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["sent", "delivered", "read"]
    );
    let (status, _) = h.graph(Method::GET, &h.number(), None).await;
    assert_eq!(status, 200);
}
