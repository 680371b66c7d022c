//! A row claimed by a process that died before sending is sent exactly once, after its lease;
//! a row whose lease still holds is left alone however often the dispatcher looks.

use std::time::Duration;

use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_server::state::Worker;
use wagate_storage::Backend;

use crate::support::*;

async fn a_dead_claim_is_sent_once_after_its_lease(backend: Backend) {
    let Some(built) = TestApp::build(backend, |_| {}).await else { return };
    let store = built.app.state().store.clone();
    let number = store.list_phone_numbers().await.unwrap().into_iter().find(|n| n.is_default).unwrap();
    let (held_to, lapsing_to) = (customer(), customer());

    // What a process that died mid-flight leaves behind: messages queued, their outbox rows
    // leased by that process, never sent. One lease is far from over, one ends soon.
    let held = enqueue_direct(store.as_ref(), &number.id, &held_to, "held").await;
    let now = Timestamp::now();
    let claim = store.outbox().claim(now, now.plus(Duration::from_secs(600)), 1).await.unwrap();
    assert_eq!(claim.iter().map(|d| &d.message_id).collect::<Vec<_>>(), [&held]);
    let lapsing = enqueue_direct(store.as_ref(), &number.id, &lapsing_to, "your code is 123456").await;
    let now = Timestamp::now();
    let claim = store.outbox().claim(now, now.plus(Duration::from_secs(2)), 1).await.unwrap();
    assert_eq!(claim.iter().map(|d| &d.message_id).collect::<Vec<_>>(), [&lapsing]);

    let app = built.started();
    let sandbox = format!("{}/sandbox", app.url);
    for to in [&held_to, &lapsing_to] {
        app.customer_writes(&number.id, to, "hello").await;
    }

    // The lapsed lease: claimed again, sent, and only once (nothing is left that could resend it).
    let done =
        wait_for_message(&app.http, &app.url, &app.api_key, lapsing.as_str(), "the orphaned message to be read", |m| {
            m["status"] == "read"
        })
        .await;
    let received = sandbox_received(&app.http, &sandbox, Some(&app.api_key), &lapsing_to).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["wamid"], done["wamid"]);

    // The held lease: untouched through many more dispatcher rounds.
    let from_round = app.state.health.rounds(Worker::Dispatcher);
    eventually("ten more dispatcher rounds", || async {
        (app.state.health.rounds(Worker::Dispatcher) >= from_round + 10).then_some(())
    })
    .await;
    assert!(sandbox_received(&app.http, &sandbox, Some(&app.api_key), &held_to).await.is_empty(), "sent while leased");
    assert_eq!(store.get_message(&held).await.unwrap().unwrap().status, MessageStatus::Sending);
    assert_eq!(store.outbox().pending().await.unwrap(), 1, "only the held row is left");
    app.stop().await;
}

on_each_backend!(a_dead_claim_is_sent_once_after_its_lease);
