//! Events for the business's own software: what changed (`message.read`, `contact.created`, …),
//! which endpoints want it (types and `prefix.*` patterns), and how a delivery is signed
//! (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::status::MessageStatus;

/// Every kind of event wagate emits. `ping` is only sent by an endpoint's test; `meta.webhook`
/// (a webhook body as Meta sent it) only to endpoints that take Meta's format, and neither is
/// subscribed to by pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    MessageReceived,
    MessageAccepted,
    MessageSent,
    MessageDelivered,
    MessageRead,
    MessagePlayed,
    MessageFailed,
    MessageCanceled,
    MessageExpired,
    ContactCreated,
    ContactUpdated,
    MediaStored,
    MediaFailed,
    TemplateUpdated,
    AccountPaused,
    AccountResumed,
    AccountEvent,
    EndpointDisabled,
    CampaignStarted,
    CampaignProgress,
    CampaignPaused,
    CampaignResumed,
    CampaignCompleted,
    CampaignCanceled,
    Ping,
    MetaWebhook,
}

impl EventType {
    pub const ALL: [EventType; 26] = [
        Self::MessageReceived,
        Self::MessageAccepted,
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageRead,
        Self::MessagePlayed,
        Self::MessageFailed,
        Self::MessageCanceled,
        Self::MessageExpired,
        Self::ContactCreated,
        Self::ContactUpdated,
        Self::MediaStored,
        Self::MediaFailed,
        Self::TemplateUpdated,
        Self::AccountPaused,
        Self::AccountResumed,
        Self::AccountEvent,
        Self::EndpointDisabled,
        Self::CampaignStarted,
        Self::CampaignProgress,
        Self::CampaignPaused,
        Self::CampaignResumed,
        Self::CampaignCompleted,
        Self::CampaignCanceled,
        Self::Ping,
        Self::MetaWebhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageReceived => "message.received",
            Self::MessageAccepted => "message.accepted",
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageRead => "message.read",
            Self::MessagePlayed => "message.played",
            Self::MessageFailed => "message.failed",
            Self::MessageCanceled => "message.canceled",
            Self::MessageExpired => "message.expired",
            Self::ContactCreated => "contact.created",
            Self::ContactUpdated => "contact.updated",
            Self::MediaStored => "media.stored",
            Self::MediaFailed => "media.failed",
            Self::TemplateUpdated => "template.updated",
            Self::AccountPaused => "account.paused",
            Self::AccountResumed => "account.resumed",
            Self::AccountEvent => "account.event",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::CampaignStarted => "campaign.started",
            Self::CampaignProgress => "campaign.progress",
            Self::CampaignPaused => "campaign.paused",
            Self::CampaignResumed => "campaign.resumed",
            Self::CampaignCompleted => "campaign.completed",
            Self::CampaignCanceled => "campaign.canceled",
            Self::Ping => "ping",
            Self::MetaWebhook => "meta.webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether an endpoint's `events` may name it: every type but `ping` and `meta.webhook`.
    pub fn subscribable(self) -> bool {
        !matches!(self, Self::Ping | Self::MetaWebhook)
    }

    /// The event an outbound message's new status makes; `None` for statuses that make none
    /// (`queued`, `scheduled`, `sending`: the answer to the send says those).
    pub fn of_status(status: MessageStatus) -> Option<Self> {
        Some(match status {
            MessageStatus::Accepted => Self::MessageAccepted,
            MessageStatus::Sent => Self::MessageSent,
            MessageStatus::Delivered => Self::MessageDelivered,
            MessageStatus::Read => Self::MessageRead,
            MessageStatus::Played => Self::MessagePlayed,
            MessageStatus::Failed => Self::MessageFailed,
            MessageStatus::Canceled => Self::MessageCanceled,
            MessageStatus::Queued | MessageStatus::Scheduled | MessageStatus::Sending | MessageStatus::Received => {
                return None;
            }
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an endpoint subscribes to: one type, every type under a prefix (`message.*`), or all (`*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPattern(String);

impl EventPattern {
    /// Accepts an event type, `<prefix>.*` for a prefix of one, or `*`; the error says why not.
    pub fn parse(s: &str) -> Result<Self, String> {
        let subscribable = || EventType::ALL.into_iter().filter(|t| t.subscribable());
        if s == "*" || EventType::parse(s).is_some_and(EventType::subscribable) {
            return Ok(Self(s.to_owned()));
        }
        if let Some(prefix) = s.strip_suffix(".*")
            && subscribable().any(|t| t.as_str().split_once('.').is_some_and(|(p, _)| p == prefix))
        {
            return Ok(Self(s.to_owned()));
        }
        Err(format!(
            "'{s}' is not an event type, a prefix pattern such as 'message.*', or '*'; the types: {}",
            subscribable().map(EventType::as_str).collect::<Vec<_>>().join(", ")
        ))
    }

    /// Wraps a pattern read back from storage, where it was written after `parse`.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether events of type `t` match. `ping` and `meta.webhook` match nothing: a ping goes
    /// only to the endpoint tested, Meta's bodies only to endpoints of Meta's format.
    pub fn matches(&self, t: &str) -> bool {
        if EventType::parse(t).is_some_and(|t| !t.subscribable()) {
            return false;
        }
        match self.0.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => self.0 == t,
        }
    }
}

/// Headers wagate sets on every delivery, which an endpoint's own headers may not name
/// (lowercase `name`).
pub fn is_reserved_header(name: &str) -> bool {
    name.starts_with("webhook-") || matches!(name, "content-type" | "content-length" | "host" | "x-hub-signature-256")
}

/// A signing secret as Standard Webhooks writes it: `whsec_` and the base64 of its bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new endpoint secret, from the operating system's random source.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret `new_secret` made; `None` for anything else.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok().filter(|k| !k.is_empty())
}

/// One `webhook-signature` entry: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// When a failed delivery is tried again: the first attempt is made at once, and after each
/// failed one the next delay of this schedule (jittered by up to a tenth either way), a little
/// over three days in all; when the last retry fails too, the delivery is given up.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The longest `Retry-After` a receiver's answer may ask for; longer asks wait this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait after `attempts` failed attempts: `None` when the schedule is done (give up).
/// `random` is a uniform draw over `u32` for the jitter; `retry_after`, the receiver's ask,
/// is honoured when longer than the schedule's delay.
pub fn retry_delay(attempts: u32, random: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let scheduled = *RETRY_SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let factor = 0.9 + 0.2 * (f64::from(random) / f64::from(u32::MAX));
    let jittered = Duration::from_millis((scheduled.as_millis() as f64 * factor) as u64);
    Some(match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_and_prefixes() {
        let all = EventPattern::parse("*").unwrap();
        let messages = EventPattern::parse("message.*").unwrap();
        let read = EventPattern::parse("message.read").unwrap();
        assert!(all.matches("contact.created") && all.matches("message.read"));
        assert!(messages.matches("message.read") && !messages.matches("media.stored"));
        assert!(read.matches("message.read") && !read.matches("message.received"));
        assert!(!all.matches("ping"), "a ping goes only to the endpoint tested");
        assert!(!all.matches("meta.webhook"), "Meta's bodies go only to endpoints of Meta's format");
        for bad in
            ["message", "message.", "messages.*", "message.reads", "ping", "", "*.read", "meta.webhook", "meta.*"]
        {
            assert!(EventPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_type_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn signs_as_standard_webhooks_does() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(secret_key(&new_secret()).is_some_and(|k| k.len() == SECRET_BYTES));
        assert_eq!(secret_key("whsec_"), None);
        assert_eq!(secret_key("sk_abc"), None);
    }

    #[test]
    fn the_schedule_reaches_three_days_then_gives_up() {
        let total: Duration = (1..=9).map(|a| retry_delay(a, u32::MAX / 2, None).unwrap()).sum();
        assert!(total >= Duration::from_secs(3 * 24 * 3600), "{total:?}");
        assert_eq!(retry_delay(10, 0, None), None, "ten attempts in all");
        assert_eq!(retry_delay(0, 0, None), None);
        let low = retry_delay(1, 0, None).unwrap();
        let high = retry_delay(1, u32::MAX, None).unwrap();
        assert!(low >= Duration::from_millis(4500) && high <= Duration::from_millis(5500), "{low:?} {high:?}");
        assert_eq!(retry_delay(1, 0, Some(Duration::from_secs(60))), Some(Duration::from_secs(60)));
        assert_eq!(retry_delay(1, 0, Some(Duration::from_secs(10 * 86400))), Some(MAX_RETRY_AFTER));
    }
}
