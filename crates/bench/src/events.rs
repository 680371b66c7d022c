//! The events phase (`--events`): sends paced at a number's top rate, every event they make (a
//! send's `accepted`, `sent`, `delivered` and `read`) posted to a receiver in this process, and
//! whether the event pipeline keeps up: events delivered per second, the backlog of deliveries
//! sampled each second, and how long after the sends stop the last event arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use wagate_storage::Store;

/// What the phase measured.
pub struct EventsReport {
    pub rate: u32,
    pub sends: u64,
    pub sends_per_sec: f64,
    /// Events the receiver took while the sends ran, per second.
    pub delivered_per_sec: f64,
    /// Events the receiver took in all.
    pub delivered: u64,
    /// The most deliveries waiting at one sample.
    pub max_backlog: i64,
    /// The backlog at the end of the sends.
    pub backlog_at_end: i64,
    /// Upstream of the events, at the end of the sends: messages accepted but not yet sent to
    /// Meta, and Meta's webhooks stored but not yet processed.
    pub outbox_at_end: i64,
    pub webhooks_at_end: i64,
    /// From the end of the sends until the last event was taken.
    pub caught_up_after: Duration,
}

/// Sends at `rate` a second for `duration` from the sandbox number `number`, with an endpoint
/// subscribed to every event, and follows the deliveries.
pub async fn measure(
    addr: SocketAddr,
    api_key: &str,
    number: &str,
    store: Arc<dyn Store>,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<EventsReport> {
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let (receiver, taken) = receiver().await?;
    let call = |method: reqwest::Method, path: String, body: Value| {
        http.request(method, format!("{base}{path}")).bearer_auth(api_key).json(&body).send()
    };
    let settings =
        call(reqwest::Method::PATCH, "/sandbox/control/settings".into(), json!({"throughput_mps": rate * 2}));
    ensure!(settings.await?.status().is_success(), "raising the sandbox's throughput failed");
    let limit =
        call(reqwest::Method::PATCH, format!("/v1/phone-numbers/{number}"), json!({"messages_per_second": rate}));
    ensure!(limit.await?.status().is_success(), "setting the number's rate failed");
    let endpoint =
        call(reqwest::Method::POST, "/v1/webhook-endpoints".into(), json!({"url": receiver, "events": ["*"]}));
    let endpoint = endpoint.await?;
    ensure!(endpoint.status().as_u16() == 201, "creating the endpoint answered {}", endpoint.status());

    // Paced: `SENDERS` tasks, each sending once a period, so the rate holds whatever the latency.
    const SENDERS: u32 = 64;
    let period = Duration::from_secs_f64(f64::from(SENDERS) / f64::from(rate));
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for task in 0..SENDERS {
        let (http, base, key, number, accepted) =
            (http.clone(), base.clone(), api_key.to_owned(), number.to_owned(), accepted.clone());
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut n = u64::from(task);
            while started.elapsed() < duration {
                tick.tick().await;
                let to = format!("+1555020{:04}", n % 10_000);
                n += u64::from(SENDERS);
                let body = json!({"from": number, "to": to, "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}}});
                let sent = http.post(format!("{base}/v1/messages")).bearer_auth(&key).json(&body).send().await;
                if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // The backlog, sampled once a second while the sends run.
    let (mut max_backlog, mut backlog) = (0, 0);
    let mut sample =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    while started.elapsed() < duration {
        sample.tick().await;
        backlog = store.event_deliveries().pending().await?;
        max_backlog = max_backlog.max(backlog);
    }
    for s in senders {
        s.await.context("a sender panicked")?;
    }
    let (outbox_at_end, webhooks_at_end) = (store.outbox().pending().await?, store.deliveries().pending().await?);
    let window = started.elapsed();
    let during = taken.load(Ordering::Relaxed);
    let sends = accepted.load(Ordering::Relaxed);

    // Caught up: every send done (accepted … read take the sandbox's delays), no delivery
    // waiting, and nothing new for a second.
    let ended = Instant::now();
    let deadline = ended + Duration::from_secs(600);
    let mut last = (taken.load(Ordering::Relaxed), Instant::now());
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        poll.tick().await;
        ensure!(Instant::now() < deadline, "events were still arriving after 10 minutes");
        let now = taken.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let idle = store.outbox().pending().await? == 0 && store.event_deliveries().pending().await? == 0;
        if idle && last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    Ok(EventsReport {
        rate,
        sends,
        sends_per_sec: sends as f64 / window.as_secs_f64(),
        delivered_per_sec: during as f64 / window.as_secs_f64(),
        delivered: last.0,
        max_backlog,
        backlog_at_end: backlog,
        outbox_at_end,
        webhooks_at_end,
        caught_up_after: last.1.duration_since(ended),
    })
}

/// A receiver on loopback that takes every delivery (`204`) and counts them.
async fn receiver() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let taken = Arc::new(AtomicU64::new(0));
    let counted = taken.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, taken))
}
