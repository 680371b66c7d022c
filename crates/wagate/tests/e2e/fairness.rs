//! Sends and status webhooks share one database and two cores: neither starves the other. The
//! dispatcher hands messages to Meta while the webhook processor works through a backlog, and
//! the processor applies a customer's messages while the dispatcher works through a queue.

use serde_json::json;
use wagate_domain::time::Timestamp;
use wagate_storage::{Backend, NewDelivery};

use crate::support::*;

/// A Meta delivery of `n` customers' text messages (`wamid.{tag}x{i}`): real work for the
/// processor (a contact, a conversation and a message each).
fn inbound_texts(waba_id: &str, phone_number_id: &str, tag: &str, n: usize) -> Vec<u8> {
    let from = |i: usize| format!("1555017{i:04}");
    let contacts: Vec<_> = (0..n).map(|i| json!({"profile": {"name": "Busy Customer"}, "wa_id": from(i)})).collect();
    let messages: Vec<_> = (0..n)
        .map(|i| {
            json!({"from": from(i), "id": format!("wamid.{tag}x{i}"), "timestamp": "1800000000", "type": "text",
                   "text": {"body": "anyone there?"}})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550100000", "phone_number_id": phone_number_id},
                  "contacts": contacts, "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

async fn sends_leave_while_the_processor_works_through_a_backlog(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let store = app.store();
    let number = store.get_phone_number(&account.phone_number_id).await.unwrap().unwrap();
    // Far more than the processor can apply before the sends below have left.
    const DELIVERIES: usize = 400;
    let mut writers = Vec::new();
    for w in 0..10 {
        let (store, waba, account_id, phone) =
            (app.state.store.clone(), account.waba_id.clone(), number.account_id.clone(), number.id.clone());
        writers.push(tokio::spawn(async move {
            for batch in (w..DELIVERIES).step_by(10) {
                let body = inbound_texts(&waba, &phone, &format!("BACKLOG{batch}"), 100);
                let delivery =
                    NewDelivery { account_id: Some(account_id.clone()), body, received_at: Timestamp::now() };
                store.insert_delivery(delivery).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let last = format!("wamid.BACKLOG{}x99", DELIVERIES - 1);
    let backlog = store.deliveries().pending().await.unwrap();

    let mut ids = Vec::new();
    for _ in 0..30 {
        let (status, m) = app
            .post(
                "/v1/messages",
                json!({"from": number.id, "to": customer(), "type": "template",
                       "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{m}");
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_for_message(&app.http, &app.url, &app.api_key, id, "each send handed to Meta", |m| m["wamid"].is_string())
            .await;
    }
    let left = store.deliveries().pending().await.unwrap();
    println!(
        "30 sends handed to Meta while {left} webhook deliveries were still waiting (a backlog of {backlog} and their statuses)"
    );
    assert!(
        store.find_message_by_wamid(&last).await.unwrap().is_none(),
        "the backlog was applied before the sends left: nothing was shown"
    );
    app.stop().await;
}

async fn a_customers_message_is_applied_while_the_dispatcher_works_through_a_queue(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let account = sandbox_account(&app).await;
    let store = app.store();
    let phone = account.phone_number_id.clone();
    let sandbox = format!("{}/sandbox", app.url);
    // Queued at a trickle, then let go at Meta's top rate: far more than the dispatcher can send
    // before the deliveries below are applied.
    set_throughput(&app, &sandbox, &phone, 1).await;
    let mut writers = Vec::new();
    for _ in 0..10 {
        let (store, phone) = (app.state.store.clone(), phone.clone());
        writers.push(tokio::spawn(async move {
            for _ in 0..300 {
                enqueue_direct(store.as_ref(), &phone, &customer(), "your order has shipped").await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    set_throughput(&app, &sandbox, &phone, 1_000).await;
    let depth = store.outbox().pending().await.unwrap();
    eventually("the dispatcher to be sending", || async {
        (store.outbox().pending().await.unwrap() < depth).then_some(())
    })
    .await;

    for i in 0..10 {
        post_signed(&app, &account, inbound_texts(&account.waba_id, &phone, &format!("BUSY{i}"), 5)).await;
    }
    eventually("every customer message applied", || async {
        for i in 0..10 {
            for j in 0..5 {
                store.find_message_by_wamid(&format!("wamid.BUSY{i}x{j}")).await.unwrap()?;
            }
        }
        Some(())
    })
    .await;
    let left = store.outbox().pending().await.unwrap();
    println!("50 customer messages applied while {left} of {depth} sends were still queued");
    assert!(left > 0, "the queue was empty before the messages were applied: nothing was shown");
    app.stop().await;
}

on_each_backend!(
    sends_leave_while_the_processor_works_through_a_backlog,
    a_customers_message_is_applied_while_the_dispatcher_works_through_a_queue
);
