//! Reading rows: the two query helpers every aggregate uses, and the readers of stored rows.

use rusqlite::{Connection, Params, Row};
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, ConversationId, MediaId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;

use crate::shared::{corrupt, open, parse_error, parse_json, parse_object, ts};
use crate::*;

/// Every row `sql` returns, each read by `row`. The statement stays prepared for the next call.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut row: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(r)?);
    }
    Ok(out)
}

/// The first row `sql` returns, read by `row`.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(row).transpose()
}

fn time(r: &Row<'_>, column: &str) -> Result<Timestamp> {
    Ok(ts(r.get(column)?))
}

fn optional_time(r: &Row<'_>, column: &str) -> Result<Option<Timestamp>> {
    Ok(r.get::<_, Option<i64>>(column)?.map(ts))
}

fn mode(r: &Row<'_>) -> Result<AccountMode> {
    let mode: String = r.get("mode")?;
    AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))
}

/// An account with its secrets opened.
pub(super) fn account(cipher: &Cipher, r: &Row<'_>) -> Result<Account> {
    let id: String = r.get("id")?;
    let secret = |column: &'static str| -> Result<Secret> { open(cipher, &id, column, &r.get::<_, String>(column)?) };
    Ok(Account {
        name: r.get("name")?,
        mode: mode(r)?,
        graph_base_url: r.get("graph_base_url")?,
        api_version: r.get("api_version")?,
        waba_id: r.get("waba_id")?,
        access_token: secret("access_token")?,
        app_secret: secret("app_secret")?,
        verify_token: secret("verify_token")?,
        paused: match (r.get::<_, Option<i64>>("paused_at")?, parse_error(r.get("paused_error")?)?) {
            (Some(since), Some(error)) => Some(Pause { since: ts(since), error }),
            _ => None,
        },
        // A tier Meta named that wagate does not know reads as none: the default's limit.
        messaging_tier: r.get::<_, Option<String>>("messaging_tier")?.as_deref().and_then(MessagingTier::parse),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        id: AccountId::from_trusted(id),
    })
}

pub(super) fn phone_number(r: &Row<'_>) -> Result<PhoneNumber> {
    Ok(PhoneNumber {
        id: r.get("id")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        waba_id: r.get("waba_id")?,
        display_phone_number: r.get("display_phone_number")?,
        verified_name: r.get("verified_name")?,
        quality_rating: r.get("quality_rating")?,
        is_default: r.get("is_default")?,
        mode: mode(r)?,
        webhooks_since: optional_time(r, "webhooks_since")?,
        throughput_level: r.get::<_, Option<String>>("throughput_level")?.map(|l| ThroughputLevel::parse(&l)),
        messages_per_second: r
            .get::<_, Option<i64>>("messages_per_second")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

pub(super) fn api_key(r: &Row<'_>) -> Result<ApiKey> {
    let scopes: String = r.get("scopes")?;
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(r.get("id")?),
        name: r.get("name")?,
        prefix: r.get("prefix")?,
        key_hash: r.get("key_hash")?,
        scopes: Scopes::from_stored(&scopes).ok_or_else(|| corrupt("API key scopes", &scopes))?,
        created_at: time(r, "created_at")?,
        last_used_at: optional_time(r, "last_used_at")?,
        revoked_at: optional_time(r, "revoked_at")?,
    })
}

/// A message, as `message_select_cols!` selects it.
pub(super) fn message(r: &Row<'_>) -> Result<Message> {
    let direction: String = r.get("direction")?;
    let status: String = r.get("status")?;
    Ok(Message {
        id: MessageId::from_trusted(r.get("id")?),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        phone_number_id: r.get("phone_number_id")?,
        contact_id: r.get::<_, Option<String>>("contact_id")?.map(ContactId::from_trusted),
        counterpart: r.get("counterpart")?,
        kind: r.get("kind")?,
        content: parse_json("content", &r.get::<_, String>("content")?)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        wamid: r.get("wamid")?,
        error: parse_error(r.get("error")?)?,
        metadata: parse_object("metadata", r.get("metadata")?)?,
        send_at: optional_time(r, "send_at")?,
        expires_at: optional_time(r, "expires_at")?,
        reply_to_wamid: r.get("reply_to_wamid")?,
        reply_to: r.get::<_, Option<String>>("reply_to")?.map(MessageId::from_trusted),
        from_app: r.get("from_app")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// An idempotency key's use: key, request_hash, message_id, response, created_at, in that order.
pub(super) fn idempotency(r: &Row<'_>) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key: r.get(0)?,
        request_hash: r.get(1)?,
        message_id: MessageId::from_trusted(r.get(2)?),
        response: parse_json("response", &r.get::<_, String>(3)?)?,
        created_at: ts(r.get(4)?),
    })
}

pub(super) fn webhook_event(r: &Row<'_>) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: r.get("id")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        field: r.get("field")?,
        kind: r.get("kind")?,
        subject: r.get("subject")?,
        payload: parse_json("payload", &r.get::<_, String>("payload")?)?,
        occurred_at: time(r, "occurred_at")?,
        recorded_at: time(r, "recorded_at")?,
    })
}

pub(super) fn media(r: &Row<'_>) -> Result<Media> {
    let state: String = r.get("state")?;
    Ok(Media {
        id: MediaId::from_trusted(r.get("id")?),
        account_id: AccountId::from_trusted(r.get("account_id")?),
        phone_number_id: r.get("phone_number_id")?,
        message_id: MessageId::from_trusted(r.get("message_id")?),
        meta_media_id: r.get("meta_media_id")?,
        kind: r.get("kind")?,
        mime_type: r.get("mime_type")?,
        sha256: r.get("sha256")?,
        file_size: r.get("file_size")?,
        filename: r.get("filename")?,
        caption: r.get("caption")?,
        state: MediaState::parse(&state).ok_or_else(|| corrupt("media state", &state))?,
        attempts: r.get("attempts")?,
        available_at: optional_time(r, "available_at")?,
        last_error: r.get("last_error")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        downloaded_at: optional_time(r, "downloaded_at")?,
    })
}

/// A contact without its tags (read apart: see `contacts::with_tags`).
pub(super) fn contact(r: &Row<'_>) -> Result<Contact> {
    Ok(Contact {
        id: ContactId::from_trusted(r.get("id")?),
        wa_id: r.get("wa_id")?,
        user_id: r.get("user_id")?,
        profile_name: r.get("profile_name")?,
        attributes: parse_object("attributes", Some(r.get("attributes")?))?.unwrap_or_default(),
        tags: Vec::new(),
        marketing_opt_out_at: optional_time(r, "marketing_opt_out_at")?,
        marketing_opt_in_at: optional_time(r, "marketing_opt_in_at")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

pub(super) fn conversation(r: &Row<'_>) -> Result<Conversation> {
    Ok(Conversation {
        id: ConversationId::from_trusted(r.get("id")?),
        phone_number_id: r.get("phone_number_id")?,
        contact_id: ContactId::from_trusted(r.get("contact_id")?),
        wa_id: r.get("wa_id")?,
        user_id: r.get("user_id")?,
        profile_name: r.get("profile_name")?,
        last_message_id: r.get::<_, Option<String>>("last_message_id")?.map(MessageId::from_trusted),
        last_message_at: optional_time(r, "last_message_at")?,
        last_inbound_at: optional_time(r, "last_inbound_at")?,
        unread_count: r.get("unread_count")?,
        read_through: r.get::<_, Option<String>>("read_through")?.map(MessageId::from_trusted),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// The first column of the one row `sql` returns (a count, a scalar).
pub(super) fn value<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str, params: impl Params) -> Result<T> {
    Ok(conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?)
}
