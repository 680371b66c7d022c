//! Prometheus metrics. Labels carry routes, outcomes and business phone-number ids; never a
//! customer's number.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NumberOutcomeLabels {
    pub phone_number_id: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NumberLabels {
    pub phone_number_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub account_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Meta's error code, or the gateway's reason.
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub messages_enqueued: Counter,
    pub backpressure: Counter,
    pub dispatch: Family<NumberOutcomeLabels, Counter>,
    pub dispatch_failures: Family<FailureLabels, Counter>,
    pub possible_duplicates: Counter,
    pub graph_duration: Histogram,
    pub webhook_requests: Family<OutcomeLabels, Counter>,
    pub statuses: Family<OutcomeLabels, Counter>,
    pub inbound_messages: Family<OutcomeLabels, Counter>,
    pub webhook_events: Family<OutcomeLabels, Counter>,
    pub outbox_depth: Gauge,
    pub queue_depth: Family<NumberLabels, Gauge>,
    pub dispatching: Family<NumberLabels, Gauge>,
    pub send_latency: Histogram,
    pub account_paused: Family<AccountLabels, Gauge>,
    pub conversations_opened: Family<AccountLabels, Gauge>,
    pub messaging_limit: Family<AccountLabels, Gauge>,
    pub webhook_backlog: Gauge,
    /// Inbound media.
    pub media_downloads: Family<OutcomeLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wagate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", http_requests.clone());
        let http_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", http_duration.clone());
        let messages_enqueued = Counter::default();
        registry.register("messages_enqueued", "Outbound messages accepted into the outbox", messages_enqueued.clone());
        let backpressure = Counter::default();
        registry.register(
            "backpressure_refusals",
            "Sends refused with 429 because the backlog was over dispatcher.max_backlog",
            backpressure.clone(),
        );
        let dispatch = Family::<NumberOutcomeLabels, Counter>::default();
        registry.register(
            "dispatch",
            "Send attempts by number and outcome (accepted, retried, failed, paused)",
            dispatch.clone(),
        );
        let dispatch_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "dispatch_failures",
            "Send attempts that failed, by Meta code or gateway reason",
            dispatch_failures.clone(),
        );
        let possible_duplicates = Counter::default();
        registry.register(
            "possible_duplicates",
            "Sends retried after an outcome that could not be known (Meta may have the message twice)",
            possible_duplicates.clone(),
        );
        let graph_duration = latency_histogram();
        registry.register("graph_request_duration_seconds", "Time of Graph API send requests", graph_duration.clone());
        let webhook_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register("webhook_requests", "Meta webhook POSTs by outcome", webhook_requests.clone());
        let statuses = Family::<OutcomeLabels, Counter>::default();
        registry.register("statuses", "Status updates by outcome (applied, pending, duplicate)", statuses.clone());
        let webhook_events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_events",
            "Webhook changes other than messages kept as account events, by outcome (stored, duplicate)",
            webhook_events.clone(),
        );
        let inbound_messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "inbound_messages",
            "Inbound messages by outcome (stored, duplicate)",
            inbound_messages.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register("outbox_depth", "Messages waiting to be sent", outbox_depth.clone());
        let queue_depth = Family::<NumberLabels, Gauge>::default();
        registry.register("queue_depth", "Messages waiting to be sent, by business number", queue_depth.clone());
        let dispatching = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "dispatching",
            "1 while this instance holds the number's lease and sends its messages",
            dispatching.clone(),
        );
        // 1 ms to about 9 hours: a message may wait for its number's turn, a retry or a pause.
        let send_latency = Histogram::new(exponential_buckets(0.001, 2.5, 24));
        registry.register(
            "send_latency_seconds",
            "From accepting a send (202) to Meta accepting it (its wamid recorded)",
            send_latency.clone(),
        );
        let account_paused = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "account_paused",
            "1 while an account's sending is paused by an account-level error from Meta",
            account_paused.clone(),
        );
        let conversations_opened = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "conversations_opened_24h",
            "Unique users messaged outside the 24-hour window in the last 24 hours, by account",
            conversations_opened.clone(),
        );
        let messaging_limit = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "messaging_limit",
            "The account's messaging limit tier, in unique users per 24 hours (-1: unlimited)",
            messaging_limit.clone(),
        );
        let webhook_backlog = Gauge::default();
        registry.register(
            "webhook_backlog",
            "Webhook deliveries stored but not processed yet",
            webhook_backlog.clone(),
        );
        let media_downloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "media_downloads",
            "Inbound media download attempts by outcome (stored, retried, failed)",
            media_downloads.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            messages_enqueued,
            backpressure,
            dispatch,
            dispatch_failures,
            possible_duplicates,
            graph_duration,
            webhook_requests,
            statuses,
            inbound_messages,
            webhook_events,
            outbox_depth,
            queue_depth,
            dispatching,
            send_latency,
            account_paused,
            conversations_opened,
            messaging_limit,
            webhook_backlog,
            media_downloads,
        }
    }

    pub fn outcome(family: &Family<OutcomeLabels, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn dispatched(&self, phone_number_id: &str, outcome: &'static str) {
        self.dispatch
            .get_or_create(&NumberOutcomeLabels { phone_number_id: phone_number_id.to_owned(), outcome })
            .inc();
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
