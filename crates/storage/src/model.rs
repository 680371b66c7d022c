//! What storage reads and writes. Plain data; the rules that produce it live in the domain crate.

use serde_json::{Map, Value};
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, ConversationId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::secret::Secret;
use wagate_domain::status::{DeliveryStatus, MessageStatus};
use wagate_domain::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountMode {
    /// The built-in sandbox, seeded by `wagate serve`.
    Sandbox,
    /// Connected with `POST /v1/accounts`, whatever its Graph base URL.
    Live,
}

impl AccountMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox" => Some(Self::Sandbox),
            "live" => Some(Self::Live),
            _ => None,
        }
    }
}

/// A Meta account: one WABA and the credentials to act for it.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub mode: AccountMode,
    pub graph_base_url: String,
    pub api_version: String,
    pub waba_id: String,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
    /// Set while Meta refuses the account for an account-level reason: its messages wait.
    pub paused: Option<Pause>,
    /// Meta's messaging limit tier, when known or set.
    pub messaging_tier: Option<MessagingTier>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Why and since when an account's sending is paused.
#[derive(Clone, Debug, PartialEq)]
pub struct Pause {
    pub since: Timestamp,
    pub error: MessageError,
}

/// A business phone number, identified by Meta's phone-number id.
#[derive(Clone, Debug, PartialEq)]
pub struct PhoneNumber {
    pub id: String,
    pub account_id: AccountId,
    pub waba_id: String,
    pub display_phone_number: String,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    /// The sender used when a send names none.
    pub is_default: bool,
    /// The owning account's mode (read from the account).
    pub mode: AccountMode,
    /// Since when wagate has seen this number's webhooks (when it can know the 24-hour window).
    pub webhooks_since: Option<Timestamp>,
    /// Meta's throughput level for the number, when read.
    pub throughput_level: Option<ThroughputLevel>,
    /// The limit set through the API; wins over the level.
    pub messages_per_second: Option<u32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Scopes,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "outbound" => Some(Self::Outbound),
            "inbound" => Some(Self::Inbound),
            _ => None,
        }
    }
}

/// An outbound message to write together with its outbox row.
#[derive(Clone, Debug)]
pub struct NewOutbound {
    pub id: MessageId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    /// The recipient as given (E.164).
    pub recipient: String,
    pub kind: String,
    /// The type's own content object, as Meta takes it.
    pub content: Value,
    pub metadata: Option<Map<String, Value>>,
    pub created_at: Timestamp,
    /// When the dispatcher may first take it.
    pub due_at: Timestamp,
    /// When the caller asked it to go, for a scheduled message (`due_at` then).
    pub send_at: Option<Timestamp>,
    /// After this it fails instead of going out late.
    pub expires_at: Option<Timestamp>,
    /// The customer-service window to judge in the transaction that stores the message; `None`
    /// when wagate cannot know it (the send then counts as opening no conversation).
    pub window: Option<WindowCheck>,
    /// The idempotency key the send came with, stored in the same transaction.
    pub idempotency: Option<NewIdempotencyKey>,
    /// A template message as the customer will see it.
    pub rendered: Option<Value>,
}

/// A send's 24-hour window, judged where the message is stored: on SQLite by the writer that
/// stores it (its pages are warm there, and a read beside it would miss the cache each time).
#[derive(Clone, Debug)]
pub struct WindowCheck {
    /// The conversation's customer, as `conversations.customer` (`+` and digits).
    pub customer: String,
    /// Outside the window the message is refused (a non-template, with `outside = "refuse"`),
    /// rather than stored as opening a conversation, which counts against the messaging tier.
    pub refuse_outside: bool,
}

impl WindowCheck {
    /// Whether a message sent `at` opens a conversation, given the customer's latest message;
    /// `Err` when it must be refused.
    pub fn judge(&self, last_inbound: Option<Timestamp>, at: Timestamp) -> std::result::Result<bool, Enqueued> {
        if wagate_domain::window::is_open(last_inbound, at) {
            return Ok(false);
        }
        if self.refuse_outside {
            return Err(Enqueued::OutsideWindow { customer: self.customer.clone(), last_inbound });
        }
        Ok(true)
    }
}

/// An idempotency key to keep with the answer it got.
#[derive(Clone, Debug)]
pub struct NewIdempotencyKey {
    pub api_key_id: ApiKeyId,
    pub key: String,
    /// A hash of the request, to tell a retry from a different request reusing the key.
    pub request_hash: String,
    /// The answer given, returned again to a retry.
    pub response: Value,
    pub expires_at: Timestamp,
}

/// An idempotency key that was used: for which request, which message, what answer.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: String,
    pub message_id: MessageId,
    pub response: Value,
    pub created_at: Timestamp,
}

/// What `enqueue_message` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Enqueued {
    Stored,
    /// The idempotency key was used already (by a concurrent request, perhaps): nothing stored.
    KeyUsed(IdempotencyRecord),
    /// A message [`WindowCheck::refuse_outside`] outside the customer-service window: nothing stored.
    OutsideWindow {
        customer: String,
        last_inbound: Option<Timestamp>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub contact_id: Option<ContactId>,
    /// The customer: the recipient of an outbound message, the sender of an inbound one.
    pub counterpart: String,
    pub kind: String,
    pub content: Value,
    pub status: MessageStatus,
    pub wamid: Option<String>,
    pub error: Option<MessageError>,
    pub metadata: Option<Map<String, Value>>,
    /// When the caller asked it to go, for a scheduled message.
    pub send_at: Option<Timestamp>,
    /// After this it fails instead of going out late.
    pub expires_at: Option<Timestamp>,
    /// The wamid of the message this one replies or reacts to, as Meta gave it.
    pub reply_to_wamid: Option<String>,
    /// That message, when wagate has it.
    pub reply_to: Option<MessageId>,
    /// Sent from the WhatsApp Business app on a coexistence number (a message echo).
    pub from_app: bool,
    /// A template message as the customer saw it (`header`, `body`, `footer`, `buttons`,
    /// `cards`), when wagate checked it against the template.
    pub rendered: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One entry of a message's status history.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusEntry {
    pub status: MessageStatus,
    /// The group participant this status is about (`recipient_participant_id`).
    pub participant: Option<String>,
    pub occurred_at: Timestamp,
    /// True for a `delivered` that Meta skipped and a `read` implied.
    pub implied: bool,
    pub error: Option<MessageError>,
    /// Meta's status object as received (conversation, pricing, …), for Meta's statuses.
    pub detail: Option<Value>,
}

/// An outbox row as the dispatcher claims it (see [`crate::Leased`]): what sending needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub message_id: MessageId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub recipient: String,
    pub kind: String,
    pub content: Value,
    /// When it was accepted (retries stop at a deadline counted from here).
    pub created_at: Timestamp,
}

/// The first due message to one recipient of a number: the only one of theirs that may go.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxHead {
    pub message_id: MessageId,
    pub recipient: String,
    pub expires_at: Option<Timestamp>,
}

/// A status webhook entry, parsed.
#[derive(Clone, Debug)]
pub struct StatusUpdate {
    /// The account whose signed webhook reported it.
    pub account_id: AccountId,
    pub wamid: String,
    pub status: DeliveryStatus,
    /// For a group message, the participant it is about.
    pub participant: Option<String>,
    pub occurred_at: Timestamp,
    pub error: Option<MessageError>,
    pub detail: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    /// Applied to a known message.
    Applied,
    /// Stored for a wamid not recorded yet; applied when the send's result is recorded.
    Pending,
    /// Seen before; nothing changed.
    Duplicate,
}

/// An inbound message with its sender, from a `messages` webhook.
#[derive(Clone, Debug)]
pub struct NewInbound {
    pub id: MessageId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub wamid: String,
    /// The sender as the API shows it: `+` and the digits of a phone-number wa_id, or the
    /// BSUID when Meta sent no phone number.
    pub from: String,
    /// Meta's phone-number id of the sender (`wa_id`); None when Meta sent it empty.
    pub wa_id: Option<String>,
    /// The sender's business-scoped user id (`from_user_id` / `user_id`), when Meta sent one.
    pub user_id: Option<String>,
    pub profile_name: Option<String>,
    pub kind: String,
    pub content: Value,
    /// The wamid of the message it replies (`context.id`) or reacts (`reaction.message_id`) to.
    pub reply_to_wamid: Option<String>,
    /// Why Meta could not show it (an `unsupported` message's first error).
    pub error: Option<MessageError>,
    /// Meta's timestamp of the message.
    pub sent_at: Timestamp,
    pub received_at: Timestamp,
}

/// A message the business sent from the WhatsApp Business app (`smb_message_echoes`).
#[derive(Clone, Debug)]
pub struct NewEcho {
    pub id: MessageId,
    pub account_id: AccountId,
    pub phone_number_id: String,
    pub wamid: String,
    /// The customer, as the API shows recipients.
    pub to: String,
    pub kind: String,
    pub content: Value,
    pub sent_at: Timestamp,
    pub received_at: Timestamp,
}

/// A webhook change other than messages and statuses, kept as it came.
#[derive(Clone, Debug)]
pub struct NewWebhookEvent {
    pub account_id: AccountId,
    pub delivery_id: i64,
    /// What makes two deliveries of it one event (see `change_fingerprint`).
    pub dedup_key: String,
    pub field: String,
    /// Meta's `event` (`APPROVED`, `THROUGHPUT_UPGRADE`…), `error`, or the field itself.
    pub kind: String,
    /// What it is about: a template id, a display phone number, an error code.
    pub subject: Option<String>,
    pub payload: Value,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    pub id: i64,
    pub account_id: AccountId,
    pub field: String,
    pub kind: String,
    pub subject: Option<String>,
    pub payload: Value,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
}

/// A customer, known by phone (`wa_id`), by business-scoped user id (`user_id`), or both.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub profile_name: Option<String>,
    /// The business's own fields.
    pub attributes: Map<String, Value>,
    pub tags: Vec<String>,
    /// The customer's latest marketing stop (a `user_preferences` stop, a 131050 failure, or the
    /// API); see [`Contact::marketing_opted_out`].
    pub marketing_opt_out_at: Option<Timestamp>,
    /// When the customer last resumed marketing messages.
    pub marketing_opt_in_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Contact {
    /// Opted out of marketing: the latest stop is newer than the latest resume (or there is none).
    pub fn marketing_opted_out(&self) -> bool {
        wagate_domain::contact::marketing_opted_out(self.marketing_opt_out_at, self.marketing_opt_in_at)
    }
}

/// A webhook delivery exactly as received.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub account_id: Option<AccountId>,
    pub body: Vec<u8>,
    pub received_at: Timestamp,
}

/// A stored delivery, as the processor claims it (see [`crate::Leased`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub account_id: Option<AccountId>,
    pub body: Vec<u8>,
    pub received_at: Timestamp,
}

/// Which events `list_webhook_events` returns: an account's, optionally of one field, older
/// than `before` (an event id) when given.
#[derive(Clone, Debug)]
pub struct WebhookEventFilter {
    pub account_id: AccountId,
    pub field: Option<String>,
    pub before: Option<i64>,
}

/// Which messages `list_messages` returns. `to` and `from` mean what the API shows: for an
/// outbound message `from` is the business number and `to` the customer, inbound the reverse.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub since: Option<Timestamp>,
    /// Only messages with ids below this one (the previous page's last id).
    pub before: Option<MessageId>,
}

// Contacts and conversations.

/// Meta's ids of a customer as a webhook gave them (empty strings already dropped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactIds {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
}

/// Which contacts `list_contacts` returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct ContactFilter {
    /// Part of the profile name (any case) or of the wa_id, a whole user_id, or a whole tag
    /// (any case).
    pub q: Option<String>,
    /// Only contacts with exactly this tag.
    pub tag: Option<String>,
    /// Only contacts with ids below this one (the previous page's last id).
    pub before: Option<ContactId>,
}

/// A change to a contact's own fields.
#[derive(Clone, Debug)]
pub struct ContactUpdate {
    /// Attributes to set, merged into the stored ones in the same transaction (a `null` deletes
    /// the key; see `wagate_domain::contact::merge_attributes`).
    pub attributes: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    /// True: opted out of marketing now; false: opted in now.
    pub marketing_opt_out: Option<bool>,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContactUpdated {
    Updated,
    NotFound,
    /// The merged attributes would break a limit; nothing was changed.
    Invalid(wagate_domain::validation::FieldError),
}

/// A conversation: one business number and one contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub phone_number_id: String,
    pub contact_id: ContactId,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub profile_name: Option<String>,
    /// The newest message either way, and its time.
    pub last_message_id: Option<MessageId>,
    pub last_message_at: Option<Timestamp>,
    /// Meta's time of the customer's newest message (the 24-hour window's start).
    pub last_inbound_at: Option<Timestamp>,
    /// Inbound messages after the newest one marked read.
    pub unread_count: i64,
    pub read_through: Option<MessageId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which conversations `list_conversations` returns, by last message, newest first.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    pub phone_number_id: Option<String>,
    pub contact_id: Option<ContactId>,
    /// Only conversations after this one in the list's order (the previous page's last).
    pub before: Option<ConversationCursor>,
}

/// A conversation's place in the list's order: by last message (none sorts last), then by id,
/// so every conversation has one, with or without messages.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationCursor {
    pub last_message_id: Option<MessageId>,
    pub id: ConversationId,
}

/// A page of a conversation's messages: newest first, below `before` or just above `after`.
#[derive(Clone, Debug, Default)]
pub struct ConversationPage {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
}

/// One page of a list paged by number, and how many items the whole list has.
#[derive(Clone, Debug, PartialEq)]
pub struct Numbered<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A message template as Meta keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageTemplate {
    /// Meta's template id.
    pub id: String,
    pub account_id: AccountId,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, …
    pub status: String,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: String,
    /// Meta's components.
    pub components: Value,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`, as Meta last rated it.
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl MessageTemplate {
    /// Whether `other` says something different of the template (not counting when it was read).
    pub fn differs(&self, other: &MessageTemplate) -> bool {
        let key = |t: &MessageTemplate| {
            (
                t.category.clone(),
                t.status.clone(),
                t.parameter_format.clone(),
                t.components.clone(),
                t.quality_score.clone(),
                t.rejected_reason.clone(),
            )
        };
        key(self) != key(other)
    }
}

/// Which templates to list.
#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub account_id: Option<AccountId>,
    pub waba_id: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
    /// Only templates after this one in (name, language, id) order: the previous page's last.
    pub after: Option<(String, String, String)>,
}

/// A group of a business number, as Meta's answers and group webhooks showed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Meta's group id.
    pub id: String,
    pub account_id: AccountId,
    pub phone_number_id: String,
    /// The creation request wagate made (Meta announces the group with it).
    pub request_id: Option<String>,
    pub subject: String,
    pub description: Option<String>,
    pub invite_link: Option<String>,
    /// `auto_approve` or `approval_required`, when known.
    pub join_approval_mode: Option<String>,
    /// `[{"wa_id", "user_id"}]`.
    pub participants: Value,
    /// Open requests to join: `[{"join_request_id", "wa_id", "user_id", "created_at"}]`.
    pub join_requests: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which groups to list.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    pub phone_number_id: Option<String>,
    /// Only groups after this id (the previous page's last).
    pub after: Option<String>,
}
