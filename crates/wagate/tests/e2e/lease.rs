//! A row claimed by a process that died before sending is sent exactly once, after its lease.

use std::time::Duration;

use reqwest::StatusCode;
use wagate_domain::time::Timestamp;
use wagate_storage::Backend;

use crate::support::*;

const DEAD_LEASE: Duration = Duration::from_secs(3);

async fn a_dead_claim_is_sent_once_after_its_lease(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let number = store.list_phone_numbers().await.unwrap().into_iter().find(|n| n.is_default).unwrap();
    let customer = customer();

    // What a process that died mid-flight leaves behind: the message queued and its outbox row
    // leased by that process, never sent.
    let id = enqueue_direct(store.as_ref(), &number.id, &customer, "your code is 123456").await;
    let lease_end = Timestamp::now().plus(DEAD_LEASE);
    let dead = store.claim_outbox(Timestamp::now(), lease_end, 10).await.unwrap();
    assert_eq!(dead.len(), 1);

    let app = built.started();
    let sandbox = format!("{}/sandbox", app.url);
    simulate_inbound(&app.http, &sandbox, Some(&app.api_key), &number.id, &customer, "code please").await;

    // While the dead lease holds, the live dispatcher leaves the row alone. (A wait, not a
    // poll: it checks that something does not happen over several dispatcher rounds.)
    eventually("the app to be ready", || async { (app.get("/readyz").await.0 == StatusCode::OK).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if Timestamp::now().as_millis() + 1_000 < lease_end.as_millis() {
        assert!(
            sandbox_received(&app.http, &sandbox, Some(&app.api_key), &customer).await.is_empty(),
            "sent during the lease"
        );
        assert_eq!(store.get_message(&id).await.unwrap().unwrap().status.as_str(), "sending");
    }

    // After it, the row is claimed again and sent.
    let done =
        wait_for_message(&app.http, &app.url, &app.api_key, id.as_str(), "the orphaned message to be read", |m| {
            m["status"] == "read"
        })
        .await;
    assert!(done["wamid"].as_str().unwrap().starts_with("wamid."));
    // Exactly once: nothing is left in the outbox that could send it again.
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let received = sandbox_received(&app.http, &sandbox, Some(&app.api_key), &customer).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["wamid"], done["wamid"]);
    app.stop().await;
}

on_each_backend!(a_dead_claim_is_sent_once_after_its_lease);
