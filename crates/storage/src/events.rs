//! What storage keeps for the business's own software: events in commit order, the webhook
//! endpoints that subscribe to them, each endpoint's deliveries (a leased queue) and every
//! attempt at one.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wagate_domain::event::{EventPattern, EventType};
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;

use crate::{Account, Contact, Delivery, Media, Message, MessageTemplate, StatusEntry, WebhookEvent};

/// A change to store as an event, in the transaction that makes the change.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: EventType,
    pub phone_number_id: Option<String>,
    /// The resource as the native API shows it.
    pub data: Value,
}

/// A webhook body as Meta sent it, kept as a `meta.webhook` event to be forwarded to the
/// endpoints of Meta's format.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaWebhook {
    /// The account whose app secret verified it.
    pub account_id: Option<String>,
    /// Byte for byte.
    pub body: Vec<u8>,
}

impl MetaWebhook {
    /// The event a verified delivery makes: about the one number its changes name (`None` when
    /// they name none, or several).
    pub fn event(delivery: &Delivery) -> NewEvent {
        let data = serde_json::json!({
            "account_id": delivery.account_id.as_ref().map(|a| a.as_str()),
            "body": STANDARD.encode(&delivery.body),
        });
        NewEvent { kind: EventType::MetaWebhook, phone_number_id: number_of(&delivery.body), data }
    }

    /// The body a `meta.webhook` event carries; `None` for any other event.
    pub fn of(event: &Event) -> Option<Self> {
        if event.kind != EventType::MetaWebhook.as_str() {
            return None;
        }
        let body = STANDARD.decode(event.data.get("body")?.as_str()?).ok()?;
        let account_id = event.data.get("account_id").and_then(Value::as_str).map(str::to_owned);
        Some(Self { account_id, body })
    }
}

/// The phone-number id every change of a Meta webhook body names in its `metadata`, if they
/// name exactly one.
fn number_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut numbers = value
        .get("entry")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("changes")?.as_array())
        .flatten()
        .map(|c| c.pointer("/value/metadata/phone_number_id").and_then(Value::as_str));
    let first = numbers.next()??;
    numbers.all(|n| n == Some(first)).then(|| first.to_owned())
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Commit order: an event committed after another has a greater `seq`.
    pub seq: i64,
    /// `evt_…`: the `webhook-id` of every delivery of it.
    pub id: String,
    pub kind: String,
    pub phone_number_id: Option<String>,
    pub data: Value,
    pub created_at: Timestamp,
}

/// Which events `list_events` returns.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Types or patterns (`message.*`); empty: every type.
    pub types: Vec<EventPattern>,
    pub phone_number_id: Option<String>,
    pub order: EventOrder,
}

impl EventFilter {
    /// Whether `event` is of a type and number this filter lists.
    pub fn wants(&self, event: &Event) -> bool {
        // Meta's bodies are kept only to be forwarded: the log shows wagate's own events.
        if event.kind == EventType::MetaWebhook.as_str() {
            return false;
        }
        let number_ok = self.phone_number_id.is_none() || self.phone_number_id == event.phone_number_id;
        number_ok && (self.types.is_empty() || self.types.iter().any(|p| p.matches(&event.kind)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOrder {
    /// Newest first, from before this `seq` (`None`: from the newest).
    Newest { before: Option<i64> },
    /// Oldest first, after this `seq`: how a consumer catches up.
    After(i64),
}

impl Default for EventOrder {
    fn default() -> Self {
        Self::Newest { before: None }
    }
}

/// How events show the resources they are about: the native API's views, which the server
/// defines. Storage calls them in the transaction that makes the change, so an event's data
/// is the resource as it was then.
pub trait EventViews: Send + Sync {
    fn message(&self, message: &Message, history: &[StatusEntry]) -> Value;
    fn contact(&self, contact: &Contact) -> Value;
    fn media(&self, media: &Media) -> Value;
    fn endpoint(&self, endpoint: &WebhookEndpoint) -> Value;
    fn account(&self, account: &Account) -> Value;
    fn webhook_event(&self, event: &WebhookEvent) -> Value;
    fn template(&self, template: &MessageTemplate) -> Value;
}

/// Ids and little else: what a store shows when no views were given (storage's own tests).
pub struct PlainViews;

impl EventViews for PlainViews {
    fn message(&self, m: &Message, history: &[StatusEntry]) -> Value {
        serde_json::json!({
            "id": m.id.as_str(),
            "status": m.status.as_str(),
            "wamid": m.wamid,
            "statuses": history.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(),
        })
    }

    fn contact(&self, c: &Contact) -> Value {
        serde_json::json!({ "id": c.id.as_str(), "wa_id": c.wa_id, "user_id": c.user_id })
    }

    fn media(&self, m: &Media) -> Value {
        serde_json::json!({ "id": m.id.as_str(), "state": m.state.as_str() })
    }

    fn endpoint(&self, e: &WebhookEndpoint) -> Value {
        serde_json::json!({ "id": e.id, "url": e.url, "enabled": e.enabled, "disabled_reason": e.disabled_reason })
    }

    fn account(&self, a: &Account) -> Value {
        serde_json::json!({ "id": a.id.as_str(), "paused": a.paused.is_some() })
    }

    fn webhook_event(&self, e: &WebhookEvent) -> Value {
        serde_json::json!({ "id": e.id, "account_id": e.account_id.as_str(), "field": e.field, "kind": e.kind })
    }

    fn template(&self, t: &MessageTemplate) -> Value {
        serde_json::json!({ "id": t.id, "name": t.name, "language": t.language, "status": t.status })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointFormat {
    /// wagate's events, signed as Standard Webhooks asks.
    Standard,
    /// Meta's webhook bodies as Meta sent them, signed with `X-Hub-Signature-256`.
    Meta,
}

impl EndpointFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Meta => "meta",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(Self::Standard),
            "meta" => Some(Self::Meta),
            _ => None,
        }
    }

    /// Whether an endpoint of this format can be sent events of type `kind`: Meta's format
    /// carries Meta's bodies, messages accepted (as Meta-shaped echoes) and pings; the standard
    /// one every event but Meta's bodies.
    pub fn carries(self, kind: &str) -> bool {
        let meta_body = kind == EventType::MetaWebhook.as_str();
        match self {
            Self::Standard => !meta_body,
            Self::Meta => meta_body || kind == EventType::MessageAccepted.as_str() || kind == EventType::Ping.as_str(),
        }
    }
}

/// A URL of the business's that events are posted to.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEndpoint {
    /// `wep_…`
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<EventPattern>,
    /// Only events of these numbers; `None`: of every number (and events of none).
    pub phone_number_ids: Option<Vec<String>>,
    /// Sent with every delivery (an `Authorization` the receiver wants, say); sealed at rest.
    pub headers: BTreeMap<String, Secret>,
    pub format: EndpointFormat,
    /// Meta's format: the app secret its `X-Hub-Signature-256` is made with; `None`: the
    /// secret of the account each body is about. Sealed at rest.
    pub app_secret: Option<Secret>,
    /// Meta's format: whether messages sent through wagate are also posted, as Meta-shaped
    /// `smb_message_echoes`.
    pub include_echoes: bool,
    pub enabled: bool,
    /// Why wagate disabled it (`410 Gone`, failing too long); `None` when enabled, or disabled
    /// through the API.
    pub disabled_reason: Option<String>,
    pub secret: Secret,
    /// The secret before the last rotation, which still signs until `previous_secret_until`.
    pub previous_secret: Option<(Secret, Timestamp)>,
    /// Since when every attempt has failed; `None` after a success.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether this endpoint subscribes to events of type `kind` about number `phone_number_id`
    /// (enabled or not).
    pub fn subscribes(&self, kind: &str, phone_number_id: Option<&str>) -> bool {
        self.subscription().wants(kind, phone_number_id)
    }

    pub fn subscription(&self) -> Subscription<'_> {
        Subscription {
            format: self.format,
            include_echoes: self.include_echoes,
            patterns: &self.events,
            numbers: self.phone_number_ids.as_deref(),
        }
    }

    /// The secrets a delivery at `now` is signed with: the current one, and the previous one
    /// while it still signs.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&Secret> {
        let mut secrets = vec![&self.secret];
        if let Some((previous, until)) = &self.previous_secret
            && *until > now
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// Which events an endpoint is sent.
#[derive(Clone, Copy, Debug)]
pub struct Subscription<'a> {
    pub format: EndpointFormat,
    pub include_echoes: bool,
    /// The standard format's types and patterns.
    pub patterns: &'a [EventPattern],
    /// Only events about these numbers; `None`: every number.
    pub numbers: Option<&'a [String]>,
}

impl Subscription<'_> {
    /// Whether events of type `kind` about number `phone_number_id` are sent (an event about no
    /// number, such as `endpoint.disabled`, goes to every endpoint that wants its type). An
    /// endpoint of Meta's format wants every body Meta sent, and with echoes every message
    /// accepted; its `events` are not used.
    pub fn wants(&self, kind: &str, phone_number_id: Option<&str>) -> bool {
        let number_ok = match (self.numbers, phone_number_id) {
            (Some(ids), Some(id)) => ids.iter().any(|i| i == id),
            _ => true,
        };
        let type_ok = match self.format {
            EndpointFormat::Standard => self.patterns.iter().any(|p| p.matches(kind)),
            EndpointFormat::Meta => {
                kind == EventType::MetaWebhook.as_str()
                    || (self.include_echoes && kind == EventType::MessageAccepted.as_str())
            }
        };
        number_ok && type_ok
    }
}

/// An event to deliver to an endpoint: a leased queue's item.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDelivery {
    pub id: i64,
    pub endpoint_id: String,
    pub event: Event,
}

/// One attempt at a delivery, as the log shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub at: Timestamp,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// The first KiB of the receiver's answer.
    pub response: Option<String>,
    /// Why the attempt failed, when it did (a status outside 2xx, a timeout, a refused address).
    pub error: Option<String>,
}

/// An attempt as logged, with what it was an attempt at.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedAttempt {
    pub id: i64,
    pub delivery_id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub attempt: Attempt,
}

/// Which events a replay queues again for an endpoint.
#[derive(Clone, Debug)]
pub enum Replay {
    /// Those created since, of the types and numbers the endpoint subscribes to.
    Since(Timestamp),
    /// These, whatever the endpoint subscribes to.
    Ids(Vec<String>),
}
