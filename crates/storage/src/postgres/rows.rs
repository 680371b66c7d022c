//! Rows as the model: each reader takes the columns its aggregate's statements select, by name.

use sqlx::Row as _;
use sqlx::postgres::PgRow;
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, ConversationId, MediaId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::{MessageStatus, Report};

use crate::shared::{self, QueueRow, corrupt, parse_error, parse_json, parse_object, ts};
use crate::*;

pub(super) fn account(cipher: &Cipher, r: &PgRow) -> Result<Account> {
    let mode: String = r.try_get("mode")?;
    let id: String = r.try_get("id")?;
    let secret = |column: &'static str| -> Result<Secret> {
        shared::open(cipher, &id, column, &r.try_get::<String, _>(column)?)
    };
    Ok(Account {
        name: r.try_get("name")?,
        mode: AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))?,
        graph_base_url: r.try_get("graph_base_url")?,
        api_version: r.try_get("api_version")?,
        waba_id: r.try_get("waba_id")?,
        access_token: secret("access_token")?,
        app_secret: secret("app_secret")?,
        verify_token: secret("verify_token")?,
        id: AccountId::from_trusted(id),
        paused: match (r.try_get::<Option<i64>, _>("paused_at")?, parse_error(r.try_get("paused_error")?)?) {
            (Some(since), Some(error)) => Some(Pause { since: ts(since), error }),
            _ => None,
        },
        // A tier Meta named that wagate does not know reads as none: the default's limit.
        messaging_tier: r.try_get::<Option<String>, _>("messaging_tier")?.as_deref().and_then(MessagingTier::parse),
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

pub(super) fn phone_number(r: &PgRow) -> Result<PhoneNumber> {
    let mode: String = r.try_get("mode")?;
    Ok(PhoneNumber {
        id: r.try_get("id")?,
        account_id: AccountId::from_trusted(r.try_get("account_id")?),
        waba_id: r.try_get("waba_id")?,
        display_phone_number: r.try_get("display_phone_number")?,
        verified_name: r.try_get("verified_name")?,
        quality_rating: r.try_get("quality_rating")?,
        is_default: r.try_get("is_default")?,
        mode: AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))?,
        webhooks_since: r.try_get::<Option<i64>, _>("webhooks_since")?.map(ts),
        throughput_level: r.try_get::<Option<String>, _>("throughput_level")?.map(|l| ThroughputLevel::parse(&l)),
        messages_per_second: r
            .try_get::<Option<i64>, _>("messages_per_second")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

pub(super) fn api_key(r: &PgRow) -> Result<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(r.try_get("id")?),
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        key_hash: r.try_get("key_hash")?,
        scopes: Scopes::from_stored(&scopes).ok_or_else(|| corrupt("API key scopes", &scopes))?,
        created_at: ts(r.try_get("created_at")?),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(ts),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

/// A message as `message_select_cols!` selects it.
pub(super) fn message(r: &PgRow) -> Result<Message> {
    let direction: String = r.try_get("direction")?;
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: MessageId::from_trusted(r.try_get("id")?),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        account_id: AccountId::from_trusted(r.try_get("account_id")?),
        phone_number_id: r.try_get("phone_number_id")?,
        contact_id: r.try_get::<Option<String>, _>("contact_id")?.map(ContactId::from_trusted),
        counterpart: r.try_get("counterpart")?,
        kind: r.try_get("kind")?,
        content: parse_json("content", &r.try_get::<String, _>("content")?)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        wamid: r.try_get("wamid")?,
        error: parse_error(r.try_get("error")?)?,
        metadata: parse_object("metadata", r.try_get("metadata")?)?,
        send_at: r.try_get::<Option<i64>, _>("send_at")?.map(ts),
        expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(ts),
        reply_to_wamid: r.try_get("reply_to_wamid")?,
        reply_to: r.try_get::<Option<String>, _>("reply_to")?.map(MessageId::from_trusted),
        from_app: r.try_get("from_app")?,
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

/// A delivery report with its detail and error as stored.
pub(super) type StoredReport = Report<(Option<String>, Option<String>)>;

/// A stored status row as a delivery report (see [`shared::report`]).
pub(super) fn report(r: &PgRow) -> Result<Option<StoredReport>> {
    Ok(shared::report((
        r.try_get("status")?,
        r.try_get("wamid")?,
        r.try_get("participant")?,
        r.try_get("occurred_at")?,
        r.try_get("detail")?,
        r.try_get("error")?,
    )))
}

pub(super) fn idempotency(r: &PgRow) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key: r.try_get("key")?,
        request_hash: r.try_get("request_hash")?,
        message_id: MessageId::from_trusted(r.try_get("message_id")?),
        response: parse_json("response", &r.try_get::<String, _>("response")?)?,
        created_at: ts(r.try_get("created_at")?),
    })
}

pub(super) fn queue_row(r: &PgRow) -> Result<QueueRow> {
    Ok((
        r.try_get("message_id")?,
        r.try_get("phone_number_id")?,
        r.try_get("recipient")?,
        r.try_get("due_at")?,
        r.try_get("seq")?,
        r.try_get("available_at")?,
        r.try_get("expires_at")?,
    ))
}

pub(super) fn webhook_event(r: &PgRow) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: r.try_get("id")?,
        account_id: AccountId::from_trusted(r.try_get("account_id")?),
        field: r.try_get("field")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        payload: parse_json("payload", &r.try_get::<String, _>("payload")?)?,
        occurred_at: ts(r.try_get("occurred_at")?),
        recorded_at: ts(r.try_get("recorded_at")?),
    })
}

/// A contact as `contact_cols!` selects it, without its tags.
pub(super) fn contact(r: &PgRow) -> Result<Contact> {
    Ok(Contact {
        id: ContactId::from_trusted(r.try_get("id")?),
        wa_id: r.try_get("wa_id")?,
        user_id: r.try_get("user_id")?,
        profile_name: r.try_get("profile_name")?,
        attributes: parse_object("attributes", Some(r.try_get::<String, _>("attributes")?))?.unwrap_or_default(),
        tags: Vec::new(),
        marketing_opt_out_at: r.try_get::<Option<i64>, _>("marketing_opt_out_at")?.map(ts),
        marketing_opt_in_at: r.try_get::<Option<i64>, _>("marketing_opt_in_at")?.map(ts),
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

pub(super) fn conversation(r: &PgRow) -> Result<Conversation> {
    Ok(Conversation {
        id: ConversationId::from_trusted(r.try_get("id")?),
        phone_number_id: r.try_get("phone_number_id")?,
        contact_id: ContactId::from_trusted(r.try_get("contact_id")?),
        wa_id: r.try_get("wa_id")?,
        user_id: r.try_get("user_id")?,
        profile_name: r.try_get("profile_name")?,
        last_message_id: r.try_get::<Option<String>, _>("last_message_id")?.map(MessageId::from_trusted),
        last_message_at: r.try_get::<Option<i64>, _>("last_message_at")?.map(ts),
        last_inbound_at: r.try_get::<Option<i64>, _>("last_inbound_at")?.map(ts),
        unread_count: r.try_get("unread_count")?,
        read_through: r.try_get::<Option<String>, _>("read_through")?.map(MessageId::from_trusted),
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

pub(super) fn media(r: &PgRow) -> Result<Media> {
    let state: String = r.try_get("state")?;
    Ok(Media {
        id: MediaId::from_trusted(r.try_get("id")?),
        account_id: AccountId::from_trusted(r.try_get("account_id")?),
        phone_number_id: r.try_get("phone_number_id")?,
        message_id: MessageId::from_trusted(r.try_get("message_id")?),
        meta_media_id: r.try_get("meta_media_id")?,
        kind: r.try_get("kind")?,
        mime_type: r.try_get("mime_type")?,
        sha256: r.try_get("sha256")?,
        file_size: r.try_get("file_size")?,
        filename: r.try_get("filename")?,
        caption: r.try_get("caption")?,
        state: MediaState::parse(&state).ok_or_else(|| corrupt("media state", &state))?,
        attempts: r.try_get("attempts")?,
        available_at: r.try_get::<Option<i64>, _>("available_at")?.map(ts),
        last_error: r.try_get("last_error")?,
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
        downloaded_at: r.try_get::<Option<i64>, _>("downloaded_at")?.map(ts),
    })
}
