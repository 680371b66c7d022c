//! wagate's storage: one interface ([`Store`]), two implementations (SQLite for the embedded
//! default, PostgreSQL for production and clusters), one conformance suite run against both.

mod campaigns;
mod events;
mod jobs;
mod media;
mod migrate;
pub mod model;
mod people;
mod postgres;
mod queue;
mod shared;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use wagate_domain::id::{
    AccountId, ApiKeyId, CampaignId, ContactId, ConversationId, JobId, MediaId, MessageId, TeamId, UserId,
};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::sealed::{Cipher, OpenError};
use wagate_domain::time::Timestamp;

pub use campaigns::*;
pub use events::*;
pub use jobs::*;
pub use media::*;
pub use model::*;
pub use people::*;
pub use postgres::PgStore;
pub use queue::{Leased, LeasedQueue};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration { version: i64, name: &'static str, reason: String },
    /// The store was closed (the server is stopping).
    #[error("the database is closed")]
    Closed,
    /// The database could not be opened or set up (its file, its directory, a thread).
    #[error("cannot open the database: {0}")]
    Setup(String),
    #[error("stored value is not what wagate wrote: {0}")]
    Corrupt(String),
    /// A stored secret does not open with the key given.
    #[error("the {column} of account {account} cannot be opened: {source}")]
    Unsealable { account: String, column: &'static str, source: OpenError },
    /// A uniqueness rule refused the write (an id already taken, a number owned elsewhere).
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything wagate keeps, as the server holds it: one trait per aggregate, and the queues.
/// Implementations hold their own connections; every method is one unit of work (one
/// transaction where it writes several rows).
#[async_trait]
pub trait Store:
    Queues
    + Accounts
    + ApiKeys
    + Outbox
    + Messages
    + Inbound
    + Contacts
    + MediaFiles
    + Uploads
    + Templates
    + Groups
    + Events
    + Campaigns
    + Jobs
    + People
    + Testing
    + 'static
{
    fn backend(&self) -> Backend;
    async fn ping(&self) -> Result<()>;
    async fn close(&self);
}

/// The queues of a store, each of which the store is itself.
pub trait Queues {
    /// Webhook deliveries waiting to be processed.
    fn deliveries(&self) -> &dyn LeasedQueue<Delivery>;
    /// Media customers sent, waiting to be downloaded.
    fn media_downloads(&self) -> &dyn LeasedQueue<Media>;
    /// Messages waiting to be sent. Holders record a send's result with [`Outbox`]'s
    /// `record_accepted` and `record_failed`.
    fn outbox(&self) -> &dyn LeasedQueue<Dispatch, MessageError>;
    /// Events waiting to be delivered to an endpoint; each attempt that fails is logged with
    /// its retry. Holders record a success with [`Events`]'s `complete_event_deliveries`.
    fn event_deliveries(&self) -> &dyn LeasedQueue<EventDelivery, Attempt>;
}

impl<S> Queues for S
where
    S: LeasedQueue<Delivery>
        + LeasedQueue<Media>
        + LeasedQueue<Dispatch, MessageError>
        + LeasedQueue<EventDelivery, Attempt>,
{
    fn deliveries(&self) -> &dyn LeasedQueue<Delivery> {
        self
    }

    fn media_downloads(&self) -> &dyn LeasedQueue<Media> {
        self
    }

    fn outbox(&self) -> &dyn LeasedQueue<Dispatch, MessageError> {
        self
    }

    fn event_deliveries(&self) -> &dyn LeasedQueue<EventDelivery, Attempt> {
        self
    }
}

/// Meta accounts, their phone numbers, and what limits their sending.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Inserts an account with the phone numbers read from its WABA. `Conflict` when a number
    /// belongs to another account, or when a second sandbox account is inserted.
    async fn insert_account(&self, account: &Account, numbers: &[PhoneNumber]) -> Result<()>;
    /// Updates an account's name, URL and credentials, if it was last updated at
    /// `last_updated_at` (false otherwise: someone else changed it meanwhile). When `numbers`
    /// is given they replace the account's phone numbers; `Conflict` when one belongs to
    /// another account.
    async fn update_account(
        &self,
        account: &Account,
        last_updated_at: Timestamp,
        numbers: Option<&[PhoneNumber]>,
    ) -> Result<bool>;
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>>;
    async fn list_accounts(&self) -> Result<Vec<Account>>;
    async fn accounts_by_waba(&self, waba_id: &str) -> Result<Vec<Account>>;
    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>>;
    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>>;
    /// Makes `id` the default sender among the numbers of its mode; false when there is no such number.
    async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> Result<bool>;
    /// Pauses an account's sending, unless it was paused already or has changed since
    /// `as_of` (its `updated_at` when the refused send was made: new credentials may fix it).
    async fn pause_account(&self, id: &AccountId, as_of: Timestamp, pause: &Pause) -> Result<bool>;
    /// False when it was not paused.
    async fn resume_account(&self, id: &AccountId) -> Result<bool>;
    /// A number's own throughput limit (None: Meta's level decides); false for an unknown number.
    async fn set_number_rate(&self, id: &str, messages_per_second: Option<u32>, at: Timestamp) -> Result<bool>;
    async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> Result<bool>;
    /// Meta's messaging limit tier for an account, as a webhook reported it.
    async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> Result<bool>;
    /// Records that this number's webhooks are being seen, the first time only.
    async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> Result<()>;
    /// How many distinct users an account's messages outside the 24-hour window went to since.
    async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> Result<i64>;
    /// Of the users `count_conversations_opened` counts, when the one `nth` (from 0) to stop
    /// counting was last reached: each counts until a window after their latest such message.
    /// None when fewer are counted.
    async fn conversation_opened_at(
        &self,
        account_id: &AccountId,
        since: Timestamp,
        nth: i64,
    ) -> Result<Option<Timestamp>>;
}

/// Keys for wagate's own API, stored by hash.
#[async_trait]
pub trait ApiKeys: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// Inserts the key unless its hash is known; the stored key either way. A known key stays
    /// as it is: revoked, it stays revoked.
    async fn ensure_api_key(&self, key: &ApiKey) -> Result<ApiKey>;
    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Revokes a key by id; false when there is no such unrevoked key.
    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool>;
    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()>;
}

/// Sending: new messages into the outbox (see [`Store::outbox`] for the queue itself), what the
/// dispatcher claims and records, and who may dispatch a number.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores the message, its outbox row and its idempotency key in one transaction (grouped
    /// with other sends into one commit); its first history entry (`queued` or `scheduled`) is
    /// the message's own. A used idempotency key stores nothing and answers what it was used for.
    async fn enqueue_message(&self, message: NewOutbound) -> Result<Enqueued>;
    /// The unexpired use of an idempotency key by an API key.
    async fn find_idempotency_key(
        &self,
        api_key_id: &ApiKeyId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>>;
    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64>;
    /// A number's due messages that head their recipient's queue, in (due, acceptance) order:
    /// a recipient's next message becomes a head only when the one before it is done.
    async fn outbox_heads(&self, phone_number_id: &str, now: Timestamp, limit: u32) -> Result<Vec<OutboxHead>>;
    /// Leases these outbox rows (those still due and unleased) until `lease_until` and marks
    /// their messages `sending`. The ids are heads `outbox_heads` gave: what keeps a recipient's
    /// messages in order is that only heads are claimed.
    async fn claim_messages(
        &self,
        ids: &[MessageId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<Leased<Dispatch>>>;
    /// Fails up to `limit` queued messages whose `expires_at` has passed; their ids.
    async fn expire_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<MessageId>>;
    /// Meta accepted the message: record its wamid (and Meta's answer, kept in the history),
    /// drop the outbox row, apply any statuses that arrived for that wamid first. False when
    /// another attempt recorded its result first.
    async fn record_accepted(
        &self,
        dispatch: &Leased<Dispatch>,
        wamid: &str,
        response: &Value,
        at: Timestamp,
    ) -> Result<bool>;
    /// The send failed for good; `detail` keeps Meta's answer as it came.
    async fn record_failed(
        &self,
        dispatch: &Leased<Dispatch>,
        error: &MessageError,
        detail: Option<&Value>,
        at: Timestamp,
    ) -> Result<bool>;
    /// Cancels a message no dispatcher holds (queued, scheduled, or waiting to be retried).
    /// False when it is being sent or already done.
    async fn cancel_unclaimed(&self, id: &MessageId, reason: &MessageError, at: Timestamp) -> Result<bool>;
    /// Gives the row back, due again at `due_at`, without counting the attempt (it never
    /// reached Meta for a reason not the message's: a paused account).
    async fn give_back(&self, dispatch: &Leased<Dispatch>, due_at: Timestamp, error: &MessageError) -> Result<bool>;
    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>>;
    /// Takes or renews the lease on dispatching a number's messages; false while another
    /// holder's lease runs.
    async fn acquire_number_lease(
        &self,
        phone_number_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;
    async fn release_number_lease(&self, phone_number_id: &str, holder: &str) -> Result<()>;
    /// Announces `holder` as dispatching until `until`; how many dispatchers are live at `now`,
    /// this one included. Those whose announcement lapsed are forgotten.
    async fn announce_dispatcher(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<u64>;
    /// Gives up every lease of `holder` and its place among the live dispatchers.
    async fn retire_dispatcher(&self, holder: &str) -> Result<()>;
}

/// Messages of both directions and their statuses.
#[async_trait]
pub trait Messages: Send + Sync {
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>>;
    async fn find_message_by_wamid(&self, wamid: &str) -> Result<Option<Message>>;
    async fn message_history(&self, id: &MessageId) -> Result<Vec<StatusEntry>>;
    /// Messages matching `filter`, newest first, at most `limit`.
    async fn list_messages(&self, filter: &MessageFilter, limit: u32) -> Result<Vec<Message>>;
    /// Applies statuses in one transaction (one flush for a whole batch of webhook
    /// deliveries), each to the message of its account with that wamid, or kept for when that
    /// account records the wamid. The outcomes are in the order of `updates`.
    async fn apply_statuses(&self, updates: &[StatusUpdate], at: Timestamp) -> Result<Vec<StatusOutcome>>;
    /// Removes up to `limit` statuses that never found their message (their wamid is no message
    /// of this database's) recorded before `before`; how many it removed.
    async fn delete_orphan_statuses(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// Stores a message the business sent from the WhatsApp Business app; false for a known wamid.
    async fn record_echo(&self, echo: &NewEcho) -> Result<bool>;
}

/// What Meta's webhooks bring: deliveries as received (see [`Store::deliveries`] for the queue),
/// the inbound messages they carry, and the events of other fields.
#[async_trait]
pub trait Inbound: Send + Sync {
    /// Stores a delivery as received (grouped with other writes into one commit); its id.
    async fn insert_delivery(&self, delivery: NewDelivery) -> Result<i64>;
    /// Marks deliveries processed (each with the error that made it unprocessable, if any), in
    /// one transaction: one flush for a whole batch. Those whose lease was lost are left alone.
    async fn finish_deliveries(&self, finished: &[(&Leased<Delivery>, Option<String>)], at: Timestamp) -> Result<()>;
    /// Removes up to `limit` deliveries processed (or set aside) before `before`; how many.
    async fn delete_processed_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// Stores inbound messages in one transaction, in order (one flush for a whole batch of
    /// webhook deliveries): each with its contact upserted and its conversation's window moved.
    /// Whether each was new: a duplicate wamid changes nothing.
    async fn record_inbounds(&self, messages: &[NewInbound]) -> Result<Vec<bool>>;
    /// Stores a webhook change as an event, once per account and `dedup_key`; false when stored already.
    async fn record_webhook_event(&self, event: &NewWebhookEvent) -> Result<bool>;
    /// Events matching `filter`, newest first, at most `limit`.
    async fn list_webhook_events(&self, filter: &WebhookEventFilter, limit: u32) -> Result<Vec<WebhookEvent>>;
}

/// Customers and the conversations business numbers have with them.
#[async_trait]
pub trait Contacts: Send + Sync {
    /// The contact with these ids, made or linked: a contact found by `wa_id` and another found
    /// by `user_id` are merged into the older one (see `record_inbounds`); the ids, and the
    /// profile name when given, are recorded on it.
    async fn upsert_contact(&self, ids: &ContactIds, profile_name: Option<&str>, at: Timestamp) -> Result<ContactId>;
    /// A customer's ids changed (`user_changed_number`, `user_changed_user_id`): the contact
    /// known by `old` takes the `new` ids (merging with a contact that had them) and keeps its
    /// conversations and their messages, and its old ids as identities. None, and nothing
    /// changes, when no contact has or had either the old or the new ids.
    async fn change_contact_ids(&self, old: &ContactIds, new: &ContactIds, at: Timestamp) -> Result<Option<ContactId>>;
    async fn get_contact(&self, id: &ContactId) -> Result<Option<Contact>>;
    /// The contact whose phone is `wa_id` (digits), if any.
    async fn get_contact_by_wa_id(&self, wa_id: &str) -> Result<Option<Contact>>;
    /// The contacts whose phones are these `wa_id`s (digits), in no order.
    async fn contacts_by_wa_ids(&self, wa_ids: &[String]) -> Result<Vec<Contact>>;
    /// Contacts matching `filter`, newest first, at most `limit`.
    async fn list_contacts(&self, filter: &ContactFilter, limit: u32) -> Result<Vec<Contact>>;
    /// Contacts matching `filter`, newest first: `limit` of them after the first `offset`, and
    /// how many match in all.
    async fn contacts_numbered(&self, filter: &ContactFilter, offset: u32, limit: u32) -> Result<Numbered<Contact>>;
    async fn update_contact(&self, id: &ContactId, update: &ContactUpdate) -> Result<ContactUpdated>;
    /// Records a marketing stop (`opted_out`) or resume that happened at `at`. The contact keeps
    /// its latest stop and latest resume, and is opted out while the stop is newer
    /// (`Contact::marketing_opted_out`): the same outcome in any order webhooks come in.
    /// False for an unknown contact.
    async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> Result<bool>;
    /// Records that the customer stopped marketing messages at `at` (Meta's time of the 131050
    /// failure), as a stop of `set_marketing_preference`; the contact is made if unknown.
    async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> Result<()>;
    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>>;
    /// Conversations matching `filter`, by last message, newest first, at most `limit`.
    async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> Result<Vec<Conversation>>;
    /// A conversation's messages, both directions, newest first, at most `limit`.
    async fn conversation_messages(
        &self,
        id: &ConversationId,
        page: &ConversationPage,
        limit: u32,
    ) -> Result<Vec<Message>>;
    /// A contact's messages with every business number, both directions, within `page`'s
    /// bounds, newest first: `limit` of them after the first `offset`, and how many there are.
    async fn contact_messages(
        &self,
        id: &ContactId,
        page: &ConversationPage,
        offset: u32,
        limit: u32,
    ) -> Result<Numbered<Message>>;
    /// The newest message the customer sent in a conversation.
    async fn newest_inbound(&self, id: &ConversationId) -> Result<Option<Message>>;
    /// Marks the conversation read up to message `through`: unread counts only what came after
    /// it. False for an unknown conversation.
    async fn mark_conversation_read(&self, id: &ConversationId, through: &MessageId, at: Timestamp) -> Result<bool>;
}

/// Media files customers sent (see [`Store::media_downloads`] for the downloads' queue).
#[async_trait]
pub trait MediaFiles: Send + Sync {
    /// Records a media file to download; false (nothing changes) when the account already has
    /// a row for that Meta media id.
    async fn insert_media(&self, media: &NewMedia) -> Result<bool>;
    /// The file is written: `stored`. False when the lease was lost (another worker took it).
    async fn media_stored(&self, job: &Leased<Media>, stored: &StoredMedia) -> Result<bool>;
    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>>;
    /// Media matching `filter`, newest first, at most `limit`.
    async fn list_media(&self, filter: &MediaFilter, limit: u32) -> Result<Vec<Media>>;
}

/// Files the business uploads to send (their bytes are in the media store), and Meta's copy of
/// each on the numbers that sent it.
#[async_trait]
pub trait Uploads: Send + Sync {
    async fn insert_upload(&self, upload: &Upload) -> Result<()>;
    async fn get_upload(&self, id: &MediaId) -> Result<Option<Upload>>;
    /// Removes an upload with its Meta copies; false for an unknown one.
    async fn delete_upload(&self, id: &MediaId) -> Result<bool>;
    /// Meta's id for the upload on this number, if it was uploaded there.
    async fn meta_copy(&self, id: &MediaId, phone_number_id: &str) -> Result<Option<MetaCopy>>;
    /// Records (or replaces) Meta's id for the upload on this number.
    async fn record_meta_copy(&self, id: &MediaId, phone_number_id: &str, copy: &MetaCopy) -> Result<()>;
    /// Forgets a copy Meta no longer has: one uploaded before `uploaded_before` (a newer one
    /// recorded since stays).
    async fn forget_meta_copy(&self, id: &MediaId, phone_number_id: &str, uploaded_before: Timestamp) -> Result<()>;
}

/// Message templates as Meta keeps them, per WABA.
#[async_trait]
pub trait Templates: Send + Sync {
    /// Stores templates of one WABA as Meta has them, by Meta's id (a stored template of the same
    /// name and language under another id is replaced: Meta made it anew), in one transaction,
    /// with a `template.updated` event for each new one and each whose status, category,
    /// quality, rejection or components changed. With `complete` the list is the WABA's whole
    /// list as Meta gave it from `at` on: stored templates it lacks are removed and the WABA
    /// counts as synced at `at`, but a template written since `at` (a creation or a webhook
    /// that came while the list was read) is newer than the list and stays as it is.
    /// The templates that changed.
    async fn store_templates(
        &self,
        waba_id: &str,
        templates: &[MessageTemplate],
        complete: bool,
        at: Timestamp,
    ) -> Result<Vec<MessageTemplate>>;
    async fn get_template(&self, id: &str) -> Result<Option<MessageTemplate>>;
    async fn find_template(&self, waba_id: &str, name: &str, language: &str) -> Result<Option<MessageTemplate>>;
    /// Templates matching `filter`, by name, language and id, at most `limit`.
    async fn list_templates(&self, filter: &TemplateFilter, limit: u32) -> Result<Vec<MessageTemplate>>;
    /// Removes templates Meta deleted; how many were stored.
    async fn delete_templates(&self, ids: &[String]) -> Result<u64>;
    /// When the WABA's templates were last read in full from Meta.
    async fn templates_synced_at(&self, waba_id: &str) -> Result<Option<Timestamp>>;
}

/// Groups of business numbers, with Meta's group webhooks applied.
#[async_trait]
pub trait Groups: Send + Sync {
    async fn get_group(&self, id: &str) -> Result<Option<Group>>;
    /// The group Meta announced for a creation request.
    async fn find_group_by_request(&self, request_id: &str) -> Result<Option<Group>>;
    /// Groups matching `filter`, by id, at most `limit`.
    async fn list_groups(&self, filter: &GroupFilter, limit: u32) -> Result<Vec<Group>>;
    /// Writes a group: a new one when `read_at` is None (false when its id is taken), else only
    /// if it is as it was read, its `updated_at` then `read_at` (false when another write came
    /// since: read it again and redo the change).
    async fn save_group(&self, group: &Group, read_at: Option<Timestamp>) -> Result<bool>;
    /// False for an unknown group.
    async fn delete_group(&self, id: &str) -> Result<bool>;
}

/// Events for the business's own software, the endpoints they are posted to, and the log of
/// every attempt (see [`Queues::event_deliveries`] for the deliveries' queue). Events themselves
/// are stored by the writes that make the changes they tell of.
#[async_trait]
pub trait Events: Send + Sync {
    /// Events matching `filter`, in its order, at most `limit`.
    async fn list_events(&self, filter: &EventFilter, limit: u32) -> Result<Vec<Event>>;
    async fn get_event(&self, id: &str) -> Result<Option<Event>>;
    /// Turns events committed since the last call (at most `limit`) into a delivery for each
    /// endpoint that wants them, and moves past them, in one transaction; how many it read.
    async fn fan_out_events(&self, limit: u32, at: Timestamp) -> Result<usize>;
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// Writes an endpoint's settings; false for an unknown endpoint.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool>;
    async fn get_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>>;
    async fn list_endpoints(&self) -> Result<Vec<WebhookEndpoint>>;
    /// Deletes an endpoint with its deliveries and attempts; false for an unknown endpoint.
    async fn delete_endpoint(&self, id: &str) -> Result<bool>;
    /// Disables an endpoint wagate gave up on, with an `endpoint.disabled` event in the same
    /// transaction; false when it was disabled already.
    async fn disable_endpoint(&self, id: &str, reason: &str, at: Timestamp) -> Result<bool>;
    /// Leases up to `limit` of an endpoint's due deliveries until `lease_until`, oldest due
    /// first, counting an attempt on each: claimed per endpoint, so that one endpoint's backlog
    /// does not hold the others' back.
    async fn claim_event_deliveries(
        &self,
        endpoint_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Leased<EventDelivery>>>;
    /// The enabled endpoints with deliveries due at `now`.
    async fn due_endpoints(&self, now: Timestamp) -> Result<Vec<String>>;
    /// Records deliveries the receiver took (a 2xx), each with its attempt, in one transaction:
    /// the delivery done, its endpoint no longer failing. Those whose lease was lost are left.
    async fn complete_event_deliveries(&self, done: &[(&Leased<EventDelivery>, Attempt)]) -> Result<()>;
    /// An endpoint's attempts, newest first, from before attempt `before`, at most `limit`.
    async fn list_attempts(&self, endpoint_id: &str, before: Option<i64>, limit: u32) -> Result<Vec<LoggedAttempt>>;
    /// Queues the events `replay` names for the endpoint again; how many.
    async fn replay_events(&self, endpoint_id: &str, replay: &Replay, at: Timestamp) -> Result<u64>;
    /// Stores a `ping` event with a delivery to this endpoint alone.
    async fn ping_endpoint(&self, endpoint_id: &str, at: Timestamp) -> Result<Event>;
    /// Removes up to `limit` events created before `before` (never the newest: it orders what
    /// comes next), with their deliveries, and attempts made before it; how many rows.
    async fn delete_old_events(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// Deliveries not done yet, per endpoint.
    async fn pending_event_deliveries(&self) -> Result<Vec<(String, i64)>>;
}

/// Campaigns and their recipients. A recipient is fed to the outbox by reserving a message id
/// for it (`queue_recipients`) and then sending that message with that id: a crash between the
/// two leaves it `queued` with no message, which `unsent_recipients` finds to send again.
#[async_trait]
pub trait Campaigns: Send + Sync {
    /// Writes a campaign with `events` in the same transaction: a new one when `read` is None
    /// (false when its id is taken), else only if its stored revision is still `read` (false
    /// when another write came since: read it again and redo the change). The stored revision
    /// becomes `campaign.revision`, which the caller sets past `read`. The events are stored as
    /// of the campaign's `updated_at`; the lease (`lease_campaign`) is left as it is.
    async fn save_campaign(&self, campaign: &Campaign, read: Option<i64>, events: &[NewEvent]) -> Result<bool>;
    async fn get_campaign(&self, id: &CampaignId) -> Result<Option<Campaign>>;
    /// Campaigns matching `filter`, newest first, at most `limit`.
    async fn list_campaigns(&self, filter: &CampaignFilter, limit: u32) -> Result<Vec<Campaign>>;
    /// Campaigns that are scheduled, running or paused: what the campaign worker looks after.
    async fn active_campaigns(&self) -> Result<Vec<Campaign>>;
    /// Takes or renews the lease on feeding a campaign; false while another holder's runs.
    async fn lease_campaign(&self, id: &CampaignId, holder: &str, now: Timestamp, until: Timestamp) -> Result<bool>;
    /// Adds recipients after the last, in order, in one transaction; for each, whether it was
    /// added (false: the campaign has that number already, or an earlier one of the list had
    /// it; all false for an unknown campaign).
    async fn add_recipients(&self, id: &CampaignId, recipients: &[NewRecipient], at: Timestamp) -> Result<Vec<bool>>;
    /// Removes a recipient not yet queued.
    async fn remove_recipient(&self, id: &CampaignId, to: &str) -> Result<RecipientRemoved>;
    /// Pending recipients in position order, at most `limit`.
    async fn pending_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>>;
    /// Marks these pending recipients `queued` with the message each will be sent as, counting
    /// an attempt, in one transaction; how many were pending still.
    async fn queue_recipients(&self, id: &CampaignId, queued: &[(String, MessageId)], at: Timestamp) -> Result<u64>;
    /// Recipients `queued` whose message was never stored (the send did not happen), at most `limit`.
    async fn unsent_recipients(&self, id: &CampaignId, limit: u32) -> Result<Vec<CampaignRecipient>>;
    /// Takes queued recipients whose send was refused out of `queued`, in one transaction.
    async fn unqueue_recipients(&self, id: &CampaignId, unqueued: &[(String, Unqueue)], at: Timestamp) -> Result<()>;
    /// Skips every pending recipient with `reason`; how many.
    async fn skip_pending(&self, id: &CampaignId, reason: &str, at: Timestamp) -> Result<u64>;
    /// Puts failed recipients (those named whose message failed) back to `pending`; how many.
    async fn requeue_failed(&self, id: &CampaignId, recipients: &[String], at: Timestamp) -> Result<u64>;
    /// Recipients by status, and how many wrote back within `replied_within_ms` of their message.
    async fn count_recipients(&self, id: &CampaignId, replied_within_ms: i64) -> Result<RecipientCounts>;
    /// Recipients matching `filter` in position order, at most `limit`.
    async fn list_recipients(
        &self,
        id: &CampaignId,
        filter: &RecipientFilter,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>>;
    /// Of these customers (`+` and digits), those who wrote to the number since `since`: inside
    /// the 24-hour window.
    async fn customers_in_window(
        &self,
        phone_number_id: &str,
        customers: &[String],
        since: Timestamp,
    ) -> Result<Vec<String>>;
    /// Messages of the number due by `now` and not handed to Meta yet: how far ahead of its
    /// dispatcher the queue is.
    async fn due_in_outbox(&self, phone_number_id: &str, now: Timestamp) -> Result<i64>;
    /// Stores events that go with no other write (a campaign's progress).
    async fn emit_events(&self, events: &[NewEvent], at: Timestamp) -> Result<()>;
}

/// Background jobs (see the `jobs` module): held by one instance at a time through a lease,
/// each batch written in one transaction with its effects, entries, progress and cursor.
#[async_trait]
pub trait Jobs: Send + Sync {
    async fn insert_job(&self, job: &Job) -> Result<()>;
    async fn get_job(&self, id: &JobId) -> Result<Option<Job>>;
    /// Jobs matching `filter`, newest first, at most `limit`.
    async fn list_jobs(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>>;
    /// Leases the oldest job that is queued, or running under a lease that lapsed or that
    /// `holder` holds, to `holder` until `until`, making it `running` (its `started_at` set the
    /// first time); None when there is none. Instances claiming at once take different jobs.
    async fn claim_job(&self, holder: &str, now: Timestamp, until: Timestamp) -> Result<Option<Job>>;
    /// Renews `holder`'s lease; false when it was lost, or the job was canceled meanwhile.
    async fn renew_job(&self, id: &JobId, holder: &str, until: Timestamp) -> Result<bool>;
    /// Writes a batch in one transaction: its work (each row's entry with it), the invalid rows'
    /// entries, the progress (processed grows by every row of the batch) and the cursor. Only
    /// while `holder` holds the running job: false, and nothing written, otherwise.
    async fn apply_job_batch(&self, id: &JobId, holder: &str, batch: &JobBatch, at: Timestamp) -> Result<bool>;
    /// Ends a running job `holder` holds: `completed` (with its result file, its total set to
    /// what it processed) or `failed` (with the error). False when it was not held.
    async fn finish_job(
        &self,
        id: &JobId,
        holder: &str,
        state: JobState,
        result: Option<&str>,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool>;
    /// Cancels a job that has not ended; false otherwise. Its holder's next write fails.
    async fn cancel_job(&self, id: &JobId, at: Timestamp) -> Result<bool>;
    /// A job's entries by line, at most `limit`.
    async fn list_job_entries(&self, id: &JobId, filter: &EntryFilter, limit: u32) -> Result<Vec<JobEntry>>;
}

/// Users of the team inbox, their teams and their sessions.
#[async_trait]
pub trait People: Send + Sync {
    /// Inserts a user with their team memberships; `Conflict` when the email is taken.
    async fn insert_user(&self, user: &User) -> Result<()>;
    /// Writes a user's fields and replaces their memberships; false for an unknown user,
    /// `Conflict` when the new email is another user's.
    async fn update_user(&self, user: &User) -> Result<bool>;
    async fn get_user(&self, id: &UserId) -> Result<Option<User>>;
    /// The user with this email (lower case).
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Users matching `filter`, by id, at most `limit`.
    async fn list_users(&self, filter: &UserFilter, limit: u32) -> Result<Vec<User>>;
    /// Deletes a user with their memberships and sessions; false for an unknown user.
    async fn delete_user(&self, id: &UserId) -> Result<bool>;
    async fn count_admins(&self) -> Result<i64>;
    /// `Conflict` when another team has the name (regardless of case).
    async fn insert_team(&self, team: &Team) -> Result<()>;
    /// False for an unknown team; `Conflict` when another team has the name.
    async fn update_team(&self, team: &Team) -> Result<bool>;
    async fn get_team(&self, id: &TeamId) -> Result<Option<Team>>;
    /// Every team, by name.
    async fn list_teams(&self) -> Result<Vec<Team>>;
    /// Deletes a team and its memberships; false for an unknown team.
    async fn delete_team(&self, id: &TeamId) -> Result<bool>;
    async fn insert_session(&self, session: &Session) -> Result<()>;
    /// The session with this token hash, unless it expired before `now`.
    async fn get_session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>>;
    /// Marks a session seen at `at`, valid until `expires_at`.
    async fn touch_session(&self, token_hash: &str, at: Timestamp, expires_at: Timestamp) -> Result<()>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Ends every session of a user (a new password, a removal); how many.
    async fn delete_user_sessions(&self, user_id: &UserId) -> Result<u64>;
    /// Removes up to `limit` sessions expired before `now`; how many.
    async fn delete_expired_sessions(&self, now: Timestamp, limit: u32) -> Result<u64>;
}

/// Reads only tests make: counts and lookups that no request path needs.
#[cfg(feature = "testing")]
#[async_trait]
pub trait Testing: Send + Sync {
    async fn count_messages(&self) -> Result<i64>;
    async fn count_deliveries(&self) -> Result<i64>;
    /// When `customer` last wrote to `phone_number_id` (the 24-hour window's start).
    async fn last_inbound(&self, phone_number_id: &str, customer: &str) -> Result<Option<Timestamp>>;
}

/// Without the `testing` feature, nothing: every store is one.
#[cfg(not(feature = "testing"))]
pub trait Testing {}

#[cfg(not(feature = "testing"))]
impl<T: ?Sized> Testing for T {}

/// Opens the database `url` names (`sqlite://…` or `postgres://…`), or the SQLite file
/// `wagate.db` in `data_dir` when there is no URL, brings its schema up to date, and seals its
/// secrets with `cipher` (see [`SqliteStore::open`]). Its events show resources as
/// [`PlainViews`] does: for tools and tests; the server gives its own views
/// ([`connect_with_views`]).
pub async fn connect(url: Option<&str>, data_dir: &Path, cipher: Cipher) -> Result<Arc<dyn Store>> {
    connect_with_views(url, data_dir, cipher, Arc::new(PlainViews)).await
}

/// [`connect`], with the events showing resources as `views` does.
pub async fn connect_with_views(
    url: Option<&str>,
    data_dir: &Path,
    cipher: Cipher,
    views: Arc<dyn EventViews>,
) -> Result<Arc<dyn Store>> {
    match url {
        None => Ok(Arc::new(SqliteStore::open(&data_dir.join("wagate.db"), cipher, views).await?)),
        Some(u) if u.starts_with("sqlite:") => {
            let path = u.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            Ok(Arc::new(SqliteStore::open(Path::new(path), cipher, views).await?))
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::connect(u, cipher, views).await?))
        }
        Some(u) => Err(StorageError::UnsupportedUrl(redact_url(u))),
    }
}

/// A URL fit for logs: the password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `postgres://u@h:5432/test?x=y` with the database name replaced: for throw-away databases
/// made on a server given by URL (tests, `wagate-bench`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(super::with_database("postgres://h?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(super::redact_url("postgres://u:pw@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(super::redact_url("postgres://u@db/x"), "postgres://u@db/x");
    }
}
