//! SQLite: the embedded default. (Being written.)

#![allow(unused_imports)]

use async_trait::async_trait;
use serde_json::Value;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, ConversationId, MediaId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::sealed::Cipher;
use wagate_domain::time::Timestamp;

use crate::*;

pub struct SqliteStore {
    cipher: Cipher,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, readable by this user only,
    /// migrates it, and seals its secrets with `cipher`.
    pub async fn open(_path: &std::path::Path, cipher: Cipher) -> Result<Self> {
        let _ = Self { cipher };
        todo!()
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
    async fn ping(&self) -> Result<()> {
        todo!()
    }
    async fn close(&self) {
        todo!()
    }
    fn deliveries(&self) -> &dyn LeasedQueue<Delivery> {
        self
    }
    fn media_downloads(&self) -> &dyn LeasedQueue<Media> {
        self
    }
    fn outbox(&self) -> &dyn LeasedQueue<Dispatch, MessageError> {
        self
    }
}

#[async_trait]
impl LeasedQueue<Delivery> for SqliteStore {
    async fn claim(&self, _now: Timestamp, _lease_until: Timestamp, _limit: u32) -> Result<Vec<Leased<Delivery>>> {
        todo!()
    }
    async fn retry(&self, _item: &Leased<Delivery>, _due_at: Timestamp, _error: &str, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn give_up(&self, _item: &Leased<Delivery>, _error: &str, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn pending(&self) -> Result<i64> {
        todo!()
    }
}

#[async_trait]
impl LeasedQueue<Media> for SqliteStore {
    async fn claim(&self, _now: Timestamp, _lease_until: Timestamp, _limit: u32) -> Result<Vec<Leased<Media>>> {
        todo!()
    }
    async fn retry(&self, _item: &Leased<Media>, _due_at: Timestamp, _error: &str, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn give_up(&self, _item: &Leased<Media>, _error: &str, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn pending(&self) -> Result<i64> {
        todo!()
    }
}

#[async_trait]
impl LeasedQueue<Dispatch, MessageError> for SqliteStore {
    async fn claim(&self, _now: Timestamp, _lease_until: Timestamp, _limit: u32) -> Result<Vec<Leased<Dispatch>>> {
        todo!()
    }
    async fn retry(&self, _item: &Leased<Dispatch>, _due_at: Timestamp, _error: &MessageError, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn give_up(&self, _item: &Leased<Dispatch>, _error: &MessageError, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn pending(&self) -> Result<i64> {
        todo!()
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn insert_account(&self, _account: &Account, _numbers: &[PhoneNumber]) -> Result<()> {
        todo!()
    }
    async fn update_account(&self, _account: &Account, _last_updated_at: Timestamp, _numbers: Option<&[PhoneNumber]>) -> Result<bool> {
        todo!()
    }
    async fn get_account(&self, _id: &AccountId) -> Result<Option<Account>> {
        todo!()
    }
    async fn list_accounts(&self) -> Result<Vec<Account>> {
        todo!()
    }
    async fn accounts_by_waba(&self, _waba_id: &str) -> Result<Vec<Account>> {
        todo!()
    }
    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>> {
        todo!()
    }
    async fn get_phone_number(&self, _id: &str) -> Result<Option<PhoneNumber>> {
        todo!()
    }
    async fn set_default_phone_number(&self, _id: &str, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn pause_account(&self, _id: &AccountId, _as_of: Timestamp, _error: &MessageError, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn resume_account(&self, _id: &AccountId) -> Result<bool> {
        todo!()
    }
    async fn set_number_rate(&self, _id: &str, _messages_per_second: Option<u32>, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn set_throughput_level(&self, _id: &str, _level: &ThroughputLevel, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn set_messaging_tier(&self, _id: &AccountId, _tier: MessagingTier) -> Result<bool> {
        todo!()
    }
    async fn note_webhooks(&self, _phone_number_id: &str, _at: Timestamp) -> Result<()> {
        todo!()
    }
    async fn count_conversations_opened(&self, _account_id: &AccountId, _since: Timestamp) -> Result<i64> {
        todo!()
    }
}

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn insert_api_key(&self, _key: &ApiKey) -> Result<()> {
        todo!()
    }
    async fn ensure_api_key(&self, _key: &ApiKey) -> Result<ApiKey> {
        todo!()
    }
    async fn find_api_key_by_hash(&self, _key_hash: &str) -> Result<Option<ApiKey>> {
        todo!()
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        todo!()
    }
    async fn revoke_api_key(&self, _id: &ApiKeyId, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn touch_api_key(&self, _id: &ApiKeyId, _at: Timestamp) -> Result<()> {
        todo!()
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn enqueue_message(&self, _message: NewOutbound) -> Result<Enqueued> {
        todo!()
    }
    async fn find_idempotency_key(&self, _api_key_id: &ApiKeyId, _key: &str, _now: Timestamp) -> Result<Option<IdempotencyRecord>> {
        todo!()
    }
    async fn delete_expired_idempotency_keys(&self, _now: Timestamp) -> Result<u64> {
        todo!()
    }
    async fn outbox_heads(&self, _phone_number_id: &str, _now: Timestamp, _limit: u32) -> Result<Vec<OutboxHead>> {
        todo!()
    }
    async fn claim_messages(&self, _ids: &[MessageId], _now: Timestamp, _lease_until: Timestamp) -> Result<Vec<Leased<Dispatch>>> {
        todo!()
    }
    async fn expire_outbox(&self, _now: Timestamp, _limit: u32) -> Result<Vec<MessageId>> {
        todo!()
    }
    async fn record_accepted(&self, _dispatch: &Leased<Dispatch>, _wamid: &str, _response: &Value, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn record_failed(&self, _dispatch: &Leased<Dispatch>, _error: &MessageError, _detail: Option<&Value>, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn cancel_unclaimed(&self, _id: &MessageId, _reason: &MessageError, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn give_back(&self, _dispatch: &Leased<Dispatch>, _due_at: Timestamp, _error: &MessageError) -> Result<bool> {
        todo!()
    }
    async fn outbox_depth_by_number(&self) -> Result<Vec<(String, i64)>> {
        todo!()
    }
    async fn acquire_number_lease(&self, _phone_number_id: &str, _holder: &str, _now: Timestamp, _until: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn release_number_leases(&self, _holder: &str) -> Result<()> {
        todo!()
    }
}

#[async_trait]
impl Messages for SqliteStore {
    async fn get_message(&self, _id: &MessageId) -> Result<Option<Message>> {
        todo!()
    }
    async fn find_message_by_wamid(&self, _wamid: &str) -> Result<Option<Message>> {
        todo!()
    }
    async fn message_history(&self, _id: &MessageId) -> Result<Vec<StatusEntry>> {
        todo!()
    }
    async fn list_messages(&self, _filter: &MessageFilter, _limit: u32) -> Result<Vec<Message>> {
        todo!()
    }
    async fn apply_statuses(&self, _updates: &[StatusUpdate], _at: Timestamp) -> Result<Vec<StatusOutcome>> {
        todo!()
    }
    async fn delete_orphan_statuses(&self, _before: Timestamp, _limit: u32) -> Result<u64> {
        todo!()
    }
    async fn record_echo(&self, _echo: &NewEcho) -> Result<bool> {
        todo!()
    }
}

#[async_trait]
impl Inbound for SqliteStore {
    async fn insert_delivery(&self, _delivery: NewDelivery) -> Result<i64> {
        todo!()
    }
    async fn finish_deliveries(&self, _finished: &[(&Leased<Delivery>, Option<String>)], _at: Timestamp) -> Result<()> {
        todo!()
    }
    async fn delete_processed_deliveries(&self, _before: Timestamp, _limit: u32) -> Result<u64> {
        todo!()
    }
    async fn record_inbounds(&self, _messages: &[NewInbound]) -> Result<Vec<bool>> {
        todo!()
    }
    async fn record_webhook_event(&self, _event: &NewWebhookEvent) -> Result<bool> {
        todo!()
    }
    async fn list_webhook_events(&self, _account_id: &AccountId, _field: Option<&str>, _before: Option<i64>, _limit: u32) -> Result<Vec<WebhookEvent>> {
        todo!()
    }
}

#[async_trait]
impl Contacts for SqliteStore {
    async fn upsert_contact(&self, _ids: &ContactIds, _profile_name: Option<&str>, _at: Timestamp) -> Result<ContactId> {
        todo!()
    }
    async fn change_contact_ids(&self, _old: &ContactIds, _new: &ContactIds, _at: Timestamp) -> Result<Option<ContactId>> {
        todo!()
    }
    async fn get_contact(&self, _id: &ContactId) -> Result<Option<Contact>> {
        todo!()
    }
    async fn list_contacts(&self, _filter: &ContactFilter, _limit: u32) -> Result<Vec<Contact>> {
        todo!()
    }
    async fn update_contact(&self, _id: &ContactId, _update: &ContactUpdate) -> Result<ContactUpdated> {
        todo!()
    }
    async fn set_marketing_preference(&self, _id: &ContactId, _opted_out: bool, _at: Timestamp) -> Result<bool> {
        todo!()
    }
    async fn mark_marketing_opt_out(&self, _wa_id: &str, _at: Timestamp) -> Result<()> {
        todo!()
    }
    async fn get_conversation(&self, _id: &ConversationId) -> Result<Option<Conversation>> {
        todo!()
    }
    async fn list_conversations(&self, _filter: &ConversationFilter, _limit: u32) -> Result<Vec<Conversation>> {
        todo!()
    }
    async fn conversation_messages(&self, _id: &ConversationId, _page: &ConversationPage, _limit: u32) -> Result<Vec<Message>> {
        todo!()
    }
    async fn newest_inbound(&self, _id: &ConversationId) -> Result<Option<Message>> {
        todo!()
    }
    async fn mark_conversation_read(&self, _id: &ConversationId, _through: &MessageId, _at: Timestamp) -> Result<bool> {
        todo!()
    }
}

#[async_trait]
impl MediaFiles for SqliteStore {
    async fn insert_media(&self, _media: &NewMedia) -> Result<bool> {
        todo!()
    }
    async fn media_stored(&self, _job: &Leased<Media>, _stored: &StoredMedia) -> Result<bool> {
        todo!()
    }
    async fn get_media(&self, _id: &MediaId) -> Result<Option<Media>> {
        todo!()
    }
    async fn list_media(&self, _filter: &MediaFilter, _limit: u32) -> Result<Vec<Media>> {
        todo!()
    }
}

#[cfg(feature = "testing")]
#[async_trait]
impl crate::Testing for SqliteStore {
    async fn count_messages(&self) -> Result<i64> {
        todo!()
    }
    async fn count_deliveries(&self) -> Result<i64> {
        todo!()
    }
    async fn last_inbound(&self, _phone_number_id: &str, _customer: &str) -> Result<Option<Timestamp>> {
        todo!()
    }
    async fn get_contact_by_wa_id(&self, _wa_id: &str) -> Result<Option<Contact>> {
        todo!()
    }
}
