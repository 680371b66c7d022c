//! Events to the business's endpoints. Fan-out turns newly stored events into a delivery per
//! endpoint that wants them; the deliverer claims each endpoint's due deliveries (up to its
//! concurrency, so a slow endpoint holds back no other), posts them signed as the endpoint's
//! format asks (`request`), and records each attempt: a 2xx completes the delivery, `410 Gone`
//! disables the endpoint, anything else is retried on the schedule in the domain, honouring
//! `Retry-After`. An endpoint failing for longer than `[events] disable_after_hours` is disabled.

mod request;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wagate_domain::event::{RETRY_SCHEDULE, retry_delay};
use wagate_domain::time::Timestamp;
use wagate_storage::{Attempt, EventDelivery, Leased, WebhookEndpoint};

use self::request::{NotPrepared, Prepared};
use crate::outbound::{AddressRefused, OutboundClient};
use crate::state::{AppState, Worker};

/// Events fanned out per transaction.
const FAN_OUT_BATCH: u32 = 1000;
/// The first KiB of an endpoint's answer is kept in the attempt log.
const RESPONSE_KEPT: usize = 1024;
/// How often the endpoints' settings are read again.
const ENDPOINTS_REFRESH: Duration = Duration::from_secs(1);
pub async fn run(state: AppState, cancel: CancellationToken) {
    let fan_out = tokio::spawn(fan_out(state.clone(), cancel.clone()));
    deliver(state, cancel).await;
    let _ = fan_out.await;
    tracing::info!("event deliverer stopped");
}

/// Turns new events into deliveries, as soon as they are found.
async fn fan_out(state: AppState, cancel: CancellationToken) {
    let poll = Duration::from_millis(state.config.events.poll_interval_ms);
    loop {
        let wait = match state.store.fan_out_events(FAN_OUT_BATCH, Timestamp::now()).await {
            Ok(0) => poll,
            Ok(n) => {
                state.signals.events_found();
                if n as u32 == FAN_OUT_BATCH { Duration::ZERO } else { poll }
            }
            Err(e) => {
                tracing::error!(error = %e, "fanning out events failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What became of one attempt.
struct Outcome {
    attempt: Attempt,
    /// The endpoint answered `410 Gone`: it wants no more.
    gone: bool,
    /// The delivery cannot be made at all ([`NotPrepared::Never`]): given up at once.
    unsendable: bool,
    /// How long the endpoint asked to be left alone (`Retry-After`).
    retry_after: Option<Duration>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.attempt.status.is_some_and(|s| (200..300).contains(&s))
    }
}

async fn deliver(state: AppState, cancel: CancellationToken) {
    let settings = state.config.events.clone();
    let client = match client(&state) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the event deliverer cannot build its HTTP client");
            return;
        }
    };
    // Long enough to answer and record; a holder that died leaves its deliveries to others then.
    let lease = settings.timeout() * 2 + Duration::from_secs(5);
    // Attempts are recorded by a task of their own, a batch at a time (what finished while the
    // last batch was written), while this loop claims more as posts end.
    let (done_tx, done) = mpsc::unbounded_channel::<Finished>();
    let recorder = tokio::spawn(record_all(state.clone(), done));
    // Each post's endpoint when it ends, and whether the endpoint answered `410 Gone`.
    let (freed_tx, mut freed) = mpsc::unbounded_channel::<(String, bool)>();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    // Claimed ahead, up to one more round of the endpoint's concurrency, so that a post that ends
    // is followed at once rather than after the next claim's round trips. Each waits at most
    // one post's timeout for its turn, well within its lease.
    let mut waiting: HashMap<String, Claimed> = HashMap::new();
    let poster = Poster { client, done: done_tx, freed: freed_tx };
    let concurrency = settings.endpoint_concurrency;
    let mut endpoints: HashMap<String, Arc<WebhookEndpoint>> = HashMap::new();
    let mut read_at: Option<Instant> = None;
    let poll = Duration::from_millis(settings.poll_interval_ms).max(Duration::from_millis(250));
    loop {
        state.health.beat(Worker::Events);
        if read_at.is_none_or(|at| at.elapsed() >= ENDPOINTS_REFRESH) {
            match state.store.list_endpoints().await {
                Ok(list) => {
                    endpoints = list.into_iter().filter(|e| e.enabled).map(|e| (e.id.clone(), Arc::new(e))).collect();
                    read_at = Some(Instant::now());
                    // What was claimed ahead for an endpoint disabled since waits for it, its
                    // leases lapsing.
                    waiting.retain(|id, _| endpoints.contains_key(id));
                }
                Err(e) => tracing::error!(error = %e, "reading the webhook endpoints failed"),
            }
        }
        // Only endpoints with something due are claimed from: no write per endpoint when idle.
        let due = match state.store.due_endpoints(Timestamp::now()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading which endpoints have deliveries due failed");
                Vec::new()
            }
        };
        for endpoint in due.iter().filter_map(|id| endpoints.get(id)) {
            let busy = in_flight.get(&endpoint.id).copied().unwrap_or(0);
            let ahead = waiting.get(&endpoint.id).map_or(0, VecDeque::len);
            let room = (2 * concurrency).saturating_sub(busy + ahead);
            // A claim is a transaction: not one for a few while enough wait.
            if room == 0 || (ahead > 0 && room < concurrency / 2) {
                continue;
            }
            let now = Timestamp::now();
            let claimed =
                match state.store.claim_event_deliveries(&endpoint.id, now, now.plus(lease), room as u32).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(endpoint = %endpoint.id, error = %e, "claiming event deliveries failed");
                        continue;
                    }
                };
            if claimed.is_empty() {
                continue;
            }
            // Signed with the endpoint as it is now: a secret rotated before these events were
            // made already signs them.
            let endpoint = match state.store.get_endpoint(&endpoint.id).await {
                Ok(Some(fresh)) => Arc::new(fresh),
                Ok(None) => endpoint.clone(),
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.id, error = %e, "rereading a webhook endpoint failed");
                    endpoint.clone()
                }
            };
            waiting.entry(endpoint.id.clone()).or_default().extend(claimed.into_iter().map(|d| (endpoint.clone(), d)));
        }
        for (id, queue) in &mut waiting {
            let busy = in_flight.entry(id.clone()).or_default();
            poster.start(&state, queue, busy, concurrency).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(first) = freed.recv() => {
                let mut ended = vec![first];
                while let Ok(more) = freed.try_recv() {
                    ended.push(more);
                }
                for (endpoint, gone) in ended {
                    let busy = in_flight.entry(endpoint.clone()).or_default();
                    *busy = busy.saturating_sub(1);
                    if gone {
                        // Disabled by the recorder: nothing more goes to it.
                        waiting.remove(&endpoint);
                        endpoints.remove(&endpoint);
                    } else if let Some(queue) = waiting.get_mut(&endpoint) {
                        poster.start(&state, queue, busy, concurrency).await;
                    }
                }
            }
            _ = state.signals.next_event_deliveries_queued() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // Deliveries in flight finish within their timeout and are recorded; those claimed ahead,
    // and any still in flight then, are claimed again once their lease lapses.
    drop(poster);
    let deadline = settings.timeout() + Duration::from_secs(2);
    if tokio::time::timeout(deadline, recorder).await.is_err() {
        tracing::warn!("event deliveries still in flight at shutdown will be sent again");
    }
}

/// An endpoint's deliveries claimed and not yet posted, with the endpoint as it was read then.
type Claimed = VecDeque<(Arc<WebhookEndpoint>, Leased<EventDelivery>)>;

/// Starts posts, each in a task of its own that reports its end.
struct Poster {
    client: OutboundClient,
    done: mpsc::UnboundedSender<Finished>,
    freed: mpsc::UnboundedSender<(String, bool)>,
}

impl Poster {
    /// Posts what waits in `queue` while its endpoint has fewer than `concurrency` in flight.
    async fn start(&self, state: &AppState, queue: &mut Claimed, busy: &mut usize, concurrency: usize) {
        while *busy < concurrency {
            let Some((endpoint, delivery)) = queue.pop_front() else { break };
            *busy += 1;
            let now = Timestamp::now();
            let prepared = request::prepare(state, &endpoint, &delivery.event, now).await;
            let (client, done, freed) = (self.client.clone(), self.done.clone(), self.freed.clone());
            tokio::spawn(async move {
                let outcome = match prepared {
                    Ok(prepared) => post(&client, &endpoint, prepared, now).await,
                    Err(NotPrepared::Never(why)) => Outcome::failed(now, Instant::now(), why, true),
                    Err(NotPrepared::NotNow(why)) => Outcome::failed(now, Instant::now(), why, false),
                };
                let _ = freed.send((endpoint.id.clone(), outcome.gone));
                let _ = done.send(Finished { delivery, outcome, failing_since: endpoint.failing_since });
            });
        }
    }
}

/// A post that ended, for the recorder.
struct Finished {
    delivery: Leased<EventDelivery>,
    outcome: Outcome,
    /// Since when its endpoint has been failing, when it was claimed.
    failing_since: Option<Timestamp>,
}

/// Records what ends, a batch at a time, until every sender is gone.
async fn record_all(state: AppState, mut done: mpsc::UnboundedReceiver<Finished>) {
    while let Some(first) = done.recv().await {
        let mut finished = vec![first];
        while let Ok(more) = done.try_recv() {
            finished.push(more);
        }
        record(&state, finished).await;
    }
}

fn client(state: &AppState) -> reqwest::Result<OutboundClient> {
    let settings = &state.config.events;
    let builder = reqwest::Client::builder()
        .timeout(settings.timeout())
        .pool_max_idle_per_host(settings.endpoint_concurrency)
        .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")));
    OutboundClient::new(builder, Some(Arc::new(state.config.network.policy())))
}

impl Outcome {
    /// An attempt that got no answer.
    fn failed(at: Timestamp, started: Instant, error: String, unsendable: bool) -> Self {
        Self {
            attempt: Attempt {
                at,
                status: None,
                latency_ms: started.elapsed().as_millis() as i64,
                response: None,
                error: Some(error),
            },
            gone: false,
            unsendable,
            retry_after: None,
        }
    }
}

/// Posts one prepared delivery to its endpoint.
async fn post(client: &OutboundClient, endpoint: &WebhookEndpoint, prepared: Prepared, now: Timestamp) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome::failed(now, started, error, false);
    // Checked when the endpoint was stored (`services::events`): valid, and none of wagate's own.
    let mut headers = HeaderMap::new();
    for (name, value) in &endpoint.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.expose())) {
            headers.insert(name, value);
        }
    }
    for (name, value) in prepared.headers {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
    let request = match client.request(Method::POST, &endpoint.url) {
        Ok(r) => r,
        Err(refused) => return failed(refused.to_string()),
    };
    let sent = request.headers(headers).header("content-type", "application/json").body(prepared.body).send().await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            let why = match AddressRefused::of(&e) {
                Some(refused) => refused.to_string(),
                None if e.is_timeout() => "the endpoint did not answer within [events] timeout_ms".to_owned(),
                None => format!("cannot reach the endpoint: {e}"),
            };
            return failed(why);
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_KEPT - kept.len())]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&kept).replace('\0', "\u{FFFD}");
    let error = (!(200..300).contains(&status)).then(|| format!("the endpoint answered {status}"));
    Outcome {
        attempt: Attempt {
            at: now,
            status: Some(status),
            latency_ms: started.elapsed().as_millis() as i64,
            response: (!text.is_empty()).then_some(text),
            error,
        },
        gone: status == 410,
        unsendable: false,
        retry_after,
    }
}

/// Records finished attempts: the successes in one transaction, each failure with its retry,
/// its give-up, or its endpoint disabled.
async fn record(state: &AppState, finished: Vec<Finished>) {
    let (delivered, failed): (Vec<_>, Vec<_>) = finished.into_iter().partition(|f| f.outcome.delivered());
    let done: Vec<(&Leased<EventDelivery>, Attempt)> =
        delivered.iter().map(|f| (&f.delivery, f.outcome.attempt.clone())).collect();
    if let Err(e) = state.store.complete_event_deliveries(&done).await {
        tracing::error!(error = %e, count = done.len(), "recording delivered events failed; they will be sent again");
    }
    let disable_after = state.config.events.disable_after();
    for Finished { delivery: d, outcome, failing_since } in failed {
        let now = Timestamp::now();
        let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
        let failing_long =
            failing_since.is_some_and(|since| now.as_millis() - since.as_millis() >= disable_after.as_millis() as i64);
        let random = getrandom::u32().unwrap_or(u32::MAX / 2);
        let next = retry_delay(attempts, random, outcome.retry_after);
        let queue = state.store.event_deliveries();
        let saved = match next {
            Some(delay) if !outcome.gone && !outcome.unsendable => {
                queue.retry(&d, now.plus(delay), &outcome.attempt, now).await
            }
            _ => queue.give_up(&d, &outcome.attempt, now).await,
        };
        if let Err(e) = saved {
            tracing::error!(delivery = d.id, error = %e, "recording a failed event delivery failed; the lease will lapse");
        }
        let reason = if outcome.gone {
            Some("the endpoint answered 410 Gone".to_owned())
        } else if failing_long {
            Some(format!("every delivery failed for {} hours", disable_after.as_secs() / 3600))
        } else {
            None
        };
        if let Some(reason) = reason {
            match state.store.disable_endpoint(&d.endpoint_id, &reason, now).await {
                Ok(true) => tracing::warn!(endpoint = %d.endpoint_id, %reason, "webhook endpoint disabled"),
                Ok(false) => {}
                Err(e) => tracing::error!(endpoint = %d.endpoint_id, error = %e, "disabling a webhook endpoint failed"),
            }
        } else if next.is_none() {
            tracing::warn!(
                endpoint = %d.endpoint_id,
                event = %d.event.id,
                attempts = RETRY_SCHEDULE.len() + 1,
                "an event delivery failed for good"
            );
        }
    }
}
