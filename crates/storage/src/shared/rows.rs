//! Rows and values the same way on both drivers: [`Columns`] is a row of either (rusqlite's
//! `Row`, sqlx's `PgRow`), [`Values`] a tuple either binds to a statement's parameters, so the
//! readers of stored rows are written once. Readers of the hot paths' rows (queue pages, claims,
//! status reports) read by position, which rusqlite does without looking a name up.

use rusqlite::types::FromSql;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use wagate_domain::api_key::Scopes;
use wagate_domain::id::{AccountId, ApiKeyId, ContactId, ConversationId, MediaId, MessageId};
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::sealed::Cipher;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;

use super::{QueueRow, corrupt, open, parse_error, parse_json, parse_object, ts};
use crate::*;

pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A type both drivers read from a column.
pub(crate) trait Column: FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> {}

impl<T: FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>> Column for T {}

/// A column's position or name.
pub(crate) trait ColumnIndex: rusqlite::RowIndex + sqlx::ColumnIndex<PgRow> {}

impl ColumnIndex for usize {}

impl ColumnIndex for &str {}

/// A row of either driver.
pub(crate) trait Columns {
    fn get<T: Column>(&self, column: impl ColumnIndex) -> Result<T>;
}

impl Columns for PgRow {
    fn get<T: Column>(&self, column: impl ColumnIndex) -> Result<T> {
        Ok(sqlx::Row::try_get(self, column)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn get<T: Column>(&self, column: impl ColumnIndex) -> Result<T> {
        Ok(rusqlite::Row::get(self, column)?)
    }
}

/// A type both drivers bind to a parameter.
pub(crate) trait Value<'v>: rusqlite::ToSql + sqlx::Encode<'v, Postgres> + sqlx::Type<Postgres> {}

impl<'v, T: rusqlite::ToSql + sqlx::Encode<'v, Postgres> + sqlx::Type<Postgres>> Value<'v> for T {}

/// A statement's values, in its parameters' order: a tuple, which rusqlite binds as it is
/// (`Params`) and [`Values::bind`] binds to a PostgreSQL query.
pub(crate) trait Values<'v>: rusqlite::Params {
    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>;
}

macro_rules! values {
    ($($v:ident),*) => {
        impl<'v, $($v: Value<'v>),*> Values<'v> for ($($v,)*) {
            #[allow(non_snake_case)]
            fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q> {
                let ($($v,)*) = self;
                query$(.bind($v))*
            }
        }
    };
}

values!();
values!(A);
values!(A, B);
values!(A, B, C);
values!(A, B, C, D);
values!(A, B, C, D, E);
values!(A, B, C, D, E, F);
values!(A, B, C, D, E, F, G);
values!(A, B, C, D, E, F, G, H);
values!(A, B, C, D, E, F, G, H, I);
values!(A, B, C, D, E, F, G, H, I, J);
values!(A, B, C, D, E, F, G, H, I, J, K);
values!(A, B, C, D, E, F, G, H, I, J, K, L);
values!(A, B, C, D, E, F, G, H, I, J, K, L, M);
values!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
values!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
// rusqlite binds tuples of up to 16.
values!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);

/// One value of a statement with more parameters than a [`Values`] tuple holds: a list of them,
/// in the parameters' order, is bound by rusqlite as it is (`params_from_iter`) and by
/// [`bind_params`] to a PostgreSQL query.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Real(Option<f64>),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Text(v) => v.to_sql(),
            Self::Int(v) => v.to_sql(),
            Self::Real(v) => v.to_sql(),
        }
    }
}

/// Binds `params` to a PostgreSQL query, in order.
pub(crate) fn bind_params<'q>(query: PgQuery<'q>, params: &[Param<'_>]) -> PgQuery<'q> {
    params.iter().fold(query, |q, p| match *p {
        Param::Text(v) => q.bind(v),
        Param::Int(v) => q.bind(v),
        Param::Real(v) => q.bind(v),
    })
}

pub(crate) fn time(r: &impl Columns, column: &str) -> Result<Timestamp> {
    Ok(ts(r.get(column)?))
}

fn optional_time(r: &impl Columns, column: &str) -> Result<Option<Timestamp>> {
    Ok(r.get::<Option<i64>>(column)?.map(ts))
}

fn mode(r: &impl Columns) -> Result<AccountMode> {
    let mode: String = r.get("mode")?;
    AccountMode::parse(&mode).ok_or_else(|| corrupt("account mode", &mode))
}

/// An account with its secrets opened.
pub(crate) fn account(cipher: &Cipher, r: &impl Columns) -> Result<Account> {
    let id: String = r.get("id")?;
    let secret = |column: &'static str| open(cipher, &id, column, &r.get::<String>(column)?);
    Ok(Account {
        name: r.get("name")?,
        mode: mode(r)?,
        graph_base_url: r.get("graph_base_url")?,
        api_version: r.get("api_version")?,
        waba_id: r.get("waba_id")?,
        access_token: secret("access_token")?,
        app_secret: secret("app_secret")?,
        verify_token: secret("verify_token")?,
        paused: match (r.get::<Option<i64>>("paused_at")?, parse_error(r.get("paused_error")?)?) {
            (Some(since), Some(error)) => Some(Pause { since: ts(since), error }),
            _ => None,
        },
        // A tier Meta named that wagate does not know reads as none: the default's limit.
        messaging_tier: r.get::<Option<String>>("messaging_tier")?.as_deref().and_then(MessagingTier::parse),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        id: AccountId::from_trusted(id),
    })
}

/// A number as `phone_cols!` selects it.
pub(crate) fn phone_number(r: &impl Columns) -> Result<PhoneNumber> {
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
        throughput_level: r.get::<Option<String>>("throughput_level")?.map(|l| ThroughputLevel::parse(&l)),
        messages_per_second: r.get::<Option<i64>>("messages_per_second")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

pub(crate) fn api_key(r: &impl Columns) -> Result<ApiKey> {
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
pub(crate) fn message(r: &impl Columns) -> Result<Message> {
    let direction: String = r.get("direction")?;
    let status: String = r.get("status")?;
    Ok(Message {
        id: MessageId::from_trusted(r.get("id")?),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        phone_number_id: r.get("phone_number_id")?,
        contact_id: r.get::<Option<String>>("contact_id")?.map(ContactId::from_trusted),
        counterpart: r.get("counterpart")?,
        kind: r.get("kind")?,
        content: parse_json("content", &r.get::<String>("content")?)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        wamid: r.get("wamid")?,
        error: parse_error(r.get("error")?)?,
        metadata: parse_object("metadata", r.get("metadata")?)?,
        send_at: optional_time(r, "send_at")?,
        expires_at: optional_time(r, "expires_at")?,
        reply_to_wamid: r.get("reply_to_wamid")?,
        reply_to: r.get::<Option<String>>("reply_to")?.map(MessageId::from_trusted),
        from_app: r.get("from_app")?,
        rendered: r.get::<Option<String>>("rendered")?.map(|t| parse_json("rendered", &t)).transpose()?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// An idempotency key's use: key, request_hash, message_id, response, created_at, in that order.
pub(crate) fn idempotency(r: &impl Columns) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key: r.get(0)?,
        request_hash: r.get(1)?,
        message_id: MessageId::from_trusted(r.get(2)?),
        response: parse_json("response", &r.get::<String>(3)?)?,
        created_at: ts(r.get(4)?),
    })
}

pub(crate) fn webhook_event(r: &impl Columns) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: r.get("id")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        field: r.get("field")?,
        kind: r.get("kind")?,
        subject: r.get("subject")?,
        payload: parse_json("payload", &r.get::<String>("payload")?)?,
        occurred_at: time(r, "occurred_at")?,
        recorded_at: time(r, "recorded_at")?,
    })
}

pub(crate) fn media(r: &impl Columns) -> Result<Media> {
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

/// A claimed download, held under `lease` until `lease_until`.
pub(crate) fn leased_media(r: &impl Columns, lease: &str, lease_until: Timestamp) -> Result<Leased<Media>> {
    let item = media(r)?;
    Ok(Leased { attempts: item.attempts, item, lease: lease.to_owned(), lease_until })
}

/// A contact as `contact_cols!` selects it, without its tags (read apart).
pub(crate) fn contact(r: &impl Columns) -> Result<Contact> {
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

pub(crate) fn conversation(r: &impl Columns) -> Result<Conversation> {
    Ok(Conversation {
        id: ConversationId::from_trusted(r.get("id")?),
        phone_number_id: r.get("phone_number_id")?,
        contact_id: ContactId::from_trusted(r.get("contact_id")?),
        wa_id: r.get("wa_id")?,
        user_id: r.get("user_id")?,
        profile_name: r.get("profile_name")?,
        last_message_id: r.get::<Option<String>>("last_message_id")?.map(MessageId::from_trusted),
        last_message_at: optional_time(r, "last_message_at")?,
        last_inbound_at: optional_time(r, "last_inbound_at")?,
        unread_count: r.get("unread_count")?,
        read_through: r.get::<Option<String>>("read_through")?.map(MessageId::from_trusted),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A conversation of a contact being merged: id, number, last_inbound_at, unread_count,
/// read_through (`SELECT_CONTACT_THREADS`).
pub(crate) type Thread = (String, String, Option<i64>, i64, Option<String>);

pub(crate) fn thread(r: &impl Columns) -> Result<Thread> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// A row of a queue page (`SELECT_QUEUE_PAGE`).
pub(crate) fn queue_row(r: &impl Columns) -> Result<QueueRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

/// A claimed message (`SELECT_CLAIMED`), held under `lease` until `lease_until`.
pub(crate) fn dispatch(r: &impl Columns, lease: &str, lease_until: Timestamp) -> Result<Leased<Dispatch>> {
    let item = Dispatch {
        message_id: MessageId::from_trusted(r.get(0)?),
        account_id: AccountId::from_trusted(r.get(1)?),
        phone_number_id: r.get(2)?,
        recipient: r.get(3)?,
        kind: r.get(4)?,
        content: parse_json("content", &r.get::<String>(5)?)?,
        created_at: ts(r.get(6)?),
    };
    Ok(Leased { item, lease: lease.to_owned(), lease_until, attempts: r.get(7)? })
}

/// A claimed webhook delivery (id, account_id, body, received_at, attempts), held under `lease`
/// until `lease_until`.
pub(crate) fn delivery(r: &impl Columns, lease: &str, lease_until: Timestamp) -> Result<Leased<Delivery>> {
    let item = Delivery {
        id: r.get(0)?,
        account_id: r.get::<Option<String>>(1)?.map(AccountId::from_trusted),
        body: r.get(2)?,
        received_at: ts(r.get(3)?),
    };
    Ok(Leased { item, lease: lease.to_owned(), lease_until, attempts: r.get(4)? })
}

/// A stored status row (`SELECT_REPORTS`, `SELECT_HISTORY`): status, wamid, participant,
/// occurred_at, detail, error.
pub(crate) type StatusRow = (String, Option<String>, String, i64, Option<String>, Option<String>);

pub(crate) fn status_row(r: &impl Columns) -> Result<StatusRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

/// A stored status row as a delivery report, with its detail and error as stored; None for the
/// lifecycle's own rows (`queued`, `accepted`, a send that failed before Meta took it…): Meta's
/// reports are keyed by wamid.
pub(crate) fn report(r: &impl Columns) -> Result<Option<super::StoredReport>> {
    Ok(super::as_report(status_row(r)?))
}
