//! The statements both backends run as the same text, by aggregate. Parameters are numbered in
//! the order they first appear: rusqlite binds them by position, sqlx by number (checked by a
//! test in `sqlite`). The values of the long ones are listed once too, next to them.

use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::time::Timestamp;

use super::rows::Values;
use super::{PreparedSend, StatusColumns, error_text};
use crate::*;

macro_rules! account_cols {
    () => {
        "id, name, mode, graph_base_url, api_version, waba_id, access_token, app_secret, \
         verify_token, created_at, updated_at, paused_at, paused_error, messaging_tier"
    };
}

macro_rules! phone_cols {
    () => {
        "p.id, p.account_id, a.waba_id, p.display_phone_number, p.verified_name, \
         p.quality_rating, p.is_default, a.mode, p.webhooks_since, p.throughput_level, \
         p.messages_per_second, p.created_at, p.updated_at \
         FROM phone_numbers p JOIN accounts a ON a.id = p.account_id"
    };
}

macro_rules! message_cols {
    () => {
        "id, direction, account_id, phone_number_id, contact_id, counterpart, kind, content, \
         status, wamid, error, metadata, created_at, updated_at, send_at, expires_at"
    };
}

/// What reads of messages select: the stored columns and the id of the message replied to.
macro_rules! message_select_cols {
    () => {
        concat!(
            $crate::shared::message_cols!(),
            ", reply_to_wamid, from_app, rendered, ",
            "(SELECT r.id FROM messages r WHERE r.wamid = messages.reply_to_wamid ",
            "AND r.account_id = messages.account_id) AS reply_to"
        )
    };
}

macro_rules! api_key_cols {
    () => {
        "id, name, prefix, key_hash, scopes, created_at, last_used_at, revoked_at"
    };
}

macro_rules! media_cols {
    () => {
        "id, account_id, phone_number_id, message_id, meta_media_id, kind, mime_type, sha256, file_size, \
         filename, caption, state, attempts, available_at, last_error, created_at, updated_at, downloaded_at"
    };
}

pub(crate) use {media_cols, message_cols, message_select_cols};

// Accounts and their phone numbers.

pub(crate) const INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO accounts (",
    account_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);

/// [`INSERT_ACCOUNT`]'s values: the account, its secrets sealed (`seal_secrets`).
pub(crate) fn account_values<'a>(a: &'a Account, sealed: &'a [String; 3]) -> impl Values<'a> + 'a {
    let [access_token, app_secret, verify_token] = sealed;
    (
        a.id.as_str(),
        a.name.as_str(),
        a.mode.as_str(),
        a.graph_base_url.as_str(),
        a.api_version.as_str(),
        a.waba_id.as_str(),
        access_token.as_str(),
        app_secret.as_str(),
        verify_token.as_str(),
        a.created_at.as_millis(),
        a.updated_at.as_millis(),
        a.paused.as_ref().map(|p| p.since.as_millis()),
        a.paused.as_ref().map(|p| error_text(&p.error)),
        a.messaging_tier.map(MessagingTier::as_str),
    )
}

/// Updates an account's name, URL and credentials if it was last updated at `$10`.
pub(crate) const UPDATE_ACCOUNT: &str = "UPDATE accounts SET name = $1, graph_base_url = $2, api_version = $3, \
    access_token = $4, app_secret = $5, verify_token = $6, updated_at = $7, messaging_tier = $8 \
    WHERE id = $9 AND updated_at = $10";

pub(crate) fn account_update_values<'a>(
    a: &'a Account,
    sealed: &'a [String; 3],
    last_updated_at: Timestamp,
) -> impl Values<'a> + 'a {
    let [access_token, app_secret, verify_token] = sealed;
    (
        a.name.as_str(),
        a.graph_base_url.as_str(),
        a.api_version.as_str(),
        access_token.as_str(),
        app_secret.as_str(),
        verify_token.as_str(),
        a.updated_at.as_millis(),
        a.messaging_tier.map(MessagingTier::as_str),
        a.id.as_str(),
        last_updated_at.as_millis(),
    )
}

pub(crate) const SELECT_ACCOUNT: &str = concat!("SELECT ", account_cols!(), " FROM accounts WHERE id = $1");
pub(crate) const SELECT_ACCOUNTS: &str = concat!("SELECT ", account_cols!(), " FROM accounts ORDER BY id");
pub(crate) const SELECT_ACCOUNTS_BY_WABA: &str =
    concat!("SELECT ", account_cols!(), " FROM accounts WHERE waba_id = $1 ORDER BY id");
pub(crate) const UPDATE_SECRETS: &str =
    "UPDATE accounts SET access_token = $1, app_secret = $2, verify_token = $3 WHERE id = $4";
pub(crate) const PAUSE_ACCOUNT: &str = "UPDATE accounts SET paused_at = $1, paused_error = $2 \
    WHERE id = $3 AND paused_at IS NULL AND updated_at = $4";
pub(crate) const RESUME_ACCOUNT: &str =
    "UPDATE accounts SET paused_at = NULL, paused_error = NULL WHERE id = $1 AND paused_at IS NOT NULL";
/// Not `updated_at`: that marks changes of credentials, which a pause waits for.
pub(crate) const SET_MESSAGING_TIER: &str =
    "UPDATE accounts SET messaging_tier = $1 WHERE id = $2 AND messaging_tier IS DISTINCT FROM $1";
pub(crate) const COUNT_CONVERSATIONS_OPENED: &str = "SELECT COUNT(DISTINCT counterpart) FROM messages \
    WHERE account_id = $1 AND opens_conversation AND created_at >= $2 AND status NOT IN ('failed', 'canceled')";

/// When the customer `$3`-th (from 0) to leave the rolling 24 hours was last reached: each
/// counts until 24 hours after their latest conversation-opening message.
pub(crate) const NTH_CONVERSATION_LEAVING: &str = "SELECT MAX(created_at) AS last FROM messages \
    WHERE account_id = $1 AND opens_conversation AND created_at >= $2 AND status NOT IN ('failed', 'canceled') \
    GROUP BY counterpart ORDER BY last LIMIT 1 OFFSET $3";

pub(crate) const SELECT_PHONE_NUMBERS: &str = concat!("SELECT ", phone_cols!(), " ORDER BY p.account_id, p.id");
pub(crate) const SELECT_PHONE_NUMBER: &str = concat!("SELECT ", phone_cols!(), " WHERE p.id = $1");
pub(crate) const SELECT_ACCOUNT_NUMBERS: &str = "SELECT id FROM phone_numbers WHERE account_id = $1";
pub(crate) const DELETE_PHONE_NUMBER: &str = "DELETE FROM phone_numbers WHERE id = $1";
/// Inserts or refreshes a number; one owned by another account is left alone (no row changed).
pub(crate) const UPSERT_PHONE_NUMBER: &str = "INSERT INTO phone_numbers (id, account_id, display_phone_number, \
    verified_name, quality_rating, is_default, created_at, updated_at, webhooks_since, throughput_level) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (id) DO UPDATE SET display_phone_number = excluded.display_phone_number, \
    verified_name = excluded.verified_name, quality_rating = excluded.quality_rating, \
    throughput_level = COALESCE(excluded.throughput_level, phone_numbers.throughput_level), \
    updated_at = excluded.updated_at WHERE phone_numbers.account_id = excluded.account_id";

pub(crate) fn phone_number_values<'a>(account_id: &'a AccountId, n: &'a PhoneNumber) -> impl Values<'a> + 'a {
    (
        n.id.as_str(),
        account_id.as_str(),
        n.display_phone_number.as_str(),
        n.verified_name.as_deref(),
        n.quality_rating.as_deref(),
        n.is_default,
        n.created_at.as_millis(),
        n.updated_at.as_millis(),
        n.webhooks_since.map(Timestamp::as_millis),
        n.throughput_level.as_ref().map(ThroughputLevel::as_str),
    )
}

pub(crate) const SELECT_NUMBER_MODE: &str =
    "SELECT a.mode FROM phone_numbers p JOIN accounts a ON a.id = p.account_id WHERE p.id = $1";
/// Makes `$1` the default number among those of mode `$3`.
pub(crate) const SET_DEFAULT_NUMBER: &str = "UPDATE phone_numbers SET is_default = (id = $1), updated_at = $2 \
    WHERE account_id IN (SELECT id FROM accounts WHERE mode = $3) AND (is_default OR id = $1)";
pub(crate) const SET_NUMBER_RATE: &str =
    "UPDATE phone_numbers SET messages_per_second = $1, updated_at = $2 WHERE id = $3";
pub(crate) const SET_THROUGHPUT_LEVEL: &str =
    "UPDATE phone_numbers SET throughput_level = $1, updated_at = $2 WHERE id = $3";
pub(crate) const NOTE_WEBHOOKS: &str =
    "UPDATE phone_numbers SET webhooks_since = $1 WHERE id = $2 AND webhooks_since IS NULL";

// API keys.

pub(crate) const INSERT_API_KEY: &str =
    concat!("INSERT INTO api_keys (", api_key_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
/// One statement, so instances starting together cannot trip over each other; a known key is
/// left as it is, revoked or not.
pub(crate) const INSERT_API_KEY_ONCE: &str = concat!(
    "INSERT INTO api_keys (",
    api_key_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key_hash) DO NOTHING"
);

pub(crate) fn api_key_values(k: &ApiKey) -> impl Values<'_> + '_ {
    (
        k.id.as_str(),
        k.name.as_str(),
        k.prefix.as_str(),
        k.key_hash.as_str(),
        k.scopes.to_stored(),
        k.created_at.as_millis(),
        k.last_used_at.map(Timestamp::as_millis),
        k.revoked_at.map(Timestamp::as_millis),
    )
}

pub(crate) const SELECT_API_KEY_BY_HASH: &str =
    concat!("SELECT ", api_key_cols!(), " FROM api_keys WHERE key_hash = $1");
pub(crate) const SELECT_API_KEYS: &str = concat!("SELECT ", api_key_cols!(), " FROM api_keys ORDER BY id");
pub(crate) const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
pub(crate) const TOUCH_API_KEY: &str = "UPDATE api_keys SET last_used_at = $1 WHERE id = $2";

// Sending: the outbox, idempotency keys, a send's result, number leases.

pub(crate) const SELECT_LAST_INBOUND: &str =
    "SELECT last_inbound_at FROM conversations WHERE phone_number_id = $1 AND customer = $2";
pub(crate) const SELECT_LIVE_IDEMPOTENCY_KEY: &str = "SELECT key, request_hash, message_id, response, created_at \
    FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND expires_at > $3";
/// Takes an idempotency key for a message, unless an unexpired use holds it (no row changed).
pub(crate) const TAKE_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys \
    (api_key_id, key, request_hash, message_id, response, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (api_key_id, key) DO UPDATE SET \
    request_hash = excluded.request_hash, message_id = excluded.message_id, \
    response = excluded.response, created_at = excluded.created_at, \
    expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= excluded.created_at";

/// [`TAKE_IDEMPOTENCY_KEY`]'s values for a send (`PreparedSend`) that has a key.
pub(crate) fn idempotency_values<'a>(p: &'a PreparedSend, k: &'a NewIdempotencyKey) -> impl Values<'a> + 'a {
    (
        k.api_key_id.as_str(),
        k.key.as_str(),
        k.request_hash.as_str(),
        p.m.id.as_str(),
        p.response.as_deref(),
        p.m.created_at.as_millis(),
        k.expires_at.as_millis(),
    )
}

pub(crate) const SELECT_IDEMPOTENCY_KEY: &str = "SELECT key, request_hash, message_id, response, created_at \
    FROM idempotency_keys WHERE api_key_id = $1 AND key = $2";
pub(crate) const DELETE_EXPIRED_IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE expires_at <= $1";

/// The columns of a queue page (`QueueRow`).
macro_rules! queue_page {
    () => {
        "SELECT message_id, phone_number_id, recipient, due_at, seq, available_at, expires_at FROM outbox WHERE "
    };
}
/// A page of one number's due outbox rows, in (due_at, seq) order, after the row (`$3`, `$4`):
/// `$1` the number, `$2` now, `$5` the page's size.
pub(crate) const SELECT_NUMBER_QUEUE_PAGE: &str = concat!(
    queue_page!(),
    "phone_number_id = $1 AND due_at <= $2 AND due_at >= $3 AND (due_at > $3 OR seq > $4) ORDER BY due_at, seq LIMIT $5"
);
/// [`SELECT_NUMBER_QUEUE_PAGE`] for every number: `$1` now, after (`$2`, `$3`), `$4` rows.
pub(crate) const SELECT_QUEUE_PAGE: &str =
    concat!(queue_page!(), "due_at <= $1 AND due_at >= $2 AND (due_at > $2 OR seq > $3) ORDER BY due_at, seq LIMIT $4");

// Claiming queued messages (`Store::claim_messages`): those still due and free; `$1` the lease,
// `$2` its end, `$3` now, the ids after. The ids are heads (`HeadScan`) read before: a row that
// headed its recipient's queue then still does, because only a send accepted concurrently with
// this claim and due earlier could come before it, and a recipient's next message becomes a
// head only when the row before it leaves the outbox.
pub(crate) const CLAIM_DUE: &str = "UPDATE outbox SET lease = $1, available_at = $2, attempts = attempts + 1 \
    WHERE available_at <= $3 AND due_at <= $3 AND message_id IN (";

/// [`CLAIM_DUE`] for `ids` message ids: `$4` onwards.
pub(crate) fn claim_due_sql(ids: usize) -> String {
    let mut sql = String::from(CLAIM_DUE);
    for i in 0..ids {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 4));
    }
    sql.push(')');
    sql
}

pub(crate) const MARK_CLAIMED_SENDING: &str = "UPDATE messages SET status = 'sending', updated_at = $1 \
    WHERE id IN (SELECT message_id FROM outbox WHERE lease = $2) AND status IN ('queued', 'scheduled')";
/// What sending a claimed message needs (`rows::dispatch`).
pub(crate) const SELECT_CLAIMED: &str = "SELECT m.id, m.account_id, m.phone_number_id, m.counterpart, m.kind, \
    m.content, m.created_at, o.attempts FROM outbox o JOIN messages m ON m.id = o.message_id \
    WHERE o.lease = $1 ORDER BY o.due_at, o.seq";

/// Rows held by a live lease are being sent: their sender decides.
pub(crate) const EXPIRE_OUTBOX: &str = "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM outbox \
    WHERE expires_at <= $1 AND (lease IS NULL OR available_at <= $1) LIMIT $2) RETURNING message_id";
/// Gives a leased row back, due at `$1`; `$3` takes back the claim's attempt (1) or not (0).
pub(crate) const RELEASE: &str = "UPDATE outbox SET available_at = $1, lease = NULL, last_error = $2, \
    attempts = attempts - $3 WHERE message_id = $4 AND lease = $5";
pub(crate) const REQUEUE_SENDING: &str = "UPDATE messages SET status = 'queued' WHERE id = $1 AND status = 'sending'";
pub(crate) const DELETE_LEASED: &str = "DELETE FROM outbox WHERE message_id = $1 AND lease = $2";
/// A row whose lease lapsed is as unclaimed as one never claimed.
pub(crate) const DELETE_UNCLAIMED: &str =
    "DELETE FROM outbox WHERE message_id = $1 AND (lease IS NULL OR available_at <= $2)";
pub(crate) const SELECT_OUTBOX_DEPTH: &str = "SELECT phone_number_id, COUNT(*) FROM outbox GROUP BY phone_number_id";
pub(crate) const COUNT_OUTBOX: &str = "SELECT COUNT(*) FROM outbox";
/// Takes or renews a number's lease, unless another holder's runs.
pub(crate) const ACQUIRE_NUMBER_LEASE: &str = "INSERT INTO number_leases (phone_number_id, holder, lease_until) \
    VALUES ($1, $2, $3) ON CONFLICT (phone_number_id) DO UPDATE SET holder = excluded.holder, \
    lease_until = excluded.lease_until \
    WHERE number_leases.holder = excluded.holder OR number_leases.lease_until <= $4";
pub(crate) const RELEASE_NUMBER_LEASES: &str = "DELETE FROM number_leases WHERE holder = $1";
pub(crate) const RELEASE_NUMBER_LEASE: &str = "DELETE FROM number_leases WHERE phone_number_id = $1 AND holder = $2";
pub(crate) const ANNOUNCE_DISPATCHER: &str = "INSERT INTO dispatchers (holder, alive_until) VALUES ($1, $2) \
    ON CONFLICT (holder) DO UPDATE SET alive_until = excluded.alive_until";
pub(crate) const FORGET_LAPSED_DISPATCHERS: &str = "DELETE FROM dispatchers WHERE alive_until <= $1";
pub(crate) const COUNT_DISPATCHERS: &str = "SELECT COUNT(*) FROM dispatchers";
pub(crate) const RETIRE_DISPATCHER: &str = "DELETE FROM dispatchers WHERE holder = $1";

// Recording that Meta accepted a message (`Store::record_accepted`): the first result recorded
// wins; a holder whose lease lapsed still records the wamid if nobody did, because Meta has the
// message either way. Statuses that came before the wamid was known are adopted.
pub(crate) const ACCEPT_MESSAGE: &str = "UPDATE messages SET wamid = $1, status = 'accepted', error = NULL, \
    updated_at = $2 WHERE id = $3 AND wamid IS NULL AND status IN ('queued', 'sending')";
pub(crate) const DELETE_OUTBOX_ROW: &str = "DELETE FROM outbox WHERE message_id = $1";
pub(crate) const INSERT_ACCEPTED_STATUS: &str = "INSERT INTO message_statuses (account_id, message_id, wamid, \
    status, occurred_at, detail, recorded_at) VALUES ($1, $2, $3, 'accepted', $4, $5, $4) ON CONFLICT DO NOTHING";
pub(crate) const ADOPT_STATUSES: &str =
    "UPDATE message_statuses SET message_id = $1 WHERE account_id = $2 AND wamid = $3 AND message_id IS NULL";

// A send that failed for good: the message fails (unless a wamid was recorded: Meta has it),
// with its history row.
pub(crate) const FAIL_UNACCEPTED: &str =
    "UPDATE messages SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND wamid IS NULL";
pub(crate) const INSERT_FAILED_STATUS: &str = "INSERT INTO message_statuses \
    (account_id, message_id, status, occurred_at, error, detail, recorded_at) \
    VALUES ($1, $2, 'failed', $3, $4, $5, $3) ON CONFLICT DO NOTHING";
/// The history row of a message that left the outbox unsent ([`SET_STATUS`] sets its status).
pub(crate) const INSERT_UNSENT_STATUS: &str = "INSERT INTO message_statuses \
    (account_id, message_id, status, occurred_at, error, recorded_at) \
    SELECT account_id, id, $1, $2, $3, $2 FROM messages WHERE id = $4 ON CONFLICT DO NOTHING";

// Messages and their statuses.

pub(crate) const SELECT_MESSAGE: &str = concat!("SELECT ", message_select_cols!(), " FROM messages WHERE id = $1");
pub(crate) const SELECT_MESSAGE_BY_WAMID: &str =
    concat!("SELECT ", message_select_cols!(), " FROM messages WHERE wamid = $1");
pub(crate) const SELECT_MESSAGES: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE ($1 IS NULL OR direction = $1) AND ($2 IS NULL OR status = $2) ",
    "AND ($3 IS NULL OR (direction = 'outbound' AND phone_number_id = $3) ",
    "OR (direction = 'inbound' AND counterpart = $3)) ",
    "AND ($4 IS NULL OR (direction = 'outbound' AND counterpart = $4) ",
    "OR (direction = 'inbound' AND phone_number_id = $4)) ",
    "AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR id < $6) ",
    "ORDER BY id DESC LIMIT $7"
);

/// [`SELECT_MESSAGES`]'s values. Lists' values are owned: SQLite reads lists on a thread of
/// their own.
pub(crate) fn message_filter_values(f: &MessageFilter, limit: u32) -> impl Values<'static> + use<> {
    (
        f.direction.map(Direction::as_str),
        f.status.map(wagate_domain::status::MessageStatus::as_str),
        f.from.clone(),
        f.to.clone(),
        f.since.map(Timestamp::as_millis),
        f.before.as_ref().map(|b| b.as_str().to_owned()),
        i64::from(limit),
    )
}

pub(crate) const SELECT_MESSAGE_ID_BY_WAMID: &str = "SELECT id FROM messages WHERE wamid = $1";
pub(crate) const INSERT_ECHO: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", from_app) VALUES ($1, 'outbound', $2, $3, NULL, $4, $5, $6, 'sent', $7, NULL, NULL, $8, $9, NULL, NULL, TRUE) ",
    "ON CONFLICT DO NOTHING"
);

/// [`INSERT_ECHO`]'s values, with the content written out.
pub(crate) fn echo_values<'a>(m: &'a NewEcho, content: &'a str) -> impl Values<'a> + 'a {
    (
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id.as_str(),
        m.to.as_str(),
        m.kind.as_str(),
        content,
        m.wamid.as_str(),
        m.sent_at.as_millis(),
        m.received_at.as_millis(),
    )
}

pub(crate) const SELECT_REPORTS: &str =
    "SELECT status, wamid, participant, occurred_at, detail, error FROM message_statuses WHERE message_id = $1";
/// A message's history rows, with [`SELECT_REPORTS`]'s columns. A send's first entry (`queued`,
/// or `scheduled` with a `send_at`) is not stored but made from the message: it would be a row
/// and two index entries more for every send, for what the message already says (sends stored
/// before that kept their row).
pub(crate) const SELECT_HISTORY: &str = select_history!("", "FROM message_statuses WHERE message_id = $1", "", "= $1");
/// A history's rows: those of `$statuses` (a FROM clause), then the send's first entry for
/// the messages whose id is `$matching`, with their message's id first when `$status_id` and
/// `$message_id` name it.
macro_rules! select_history {
    ($status_id:literal, $statuses:literal, $message_id:literal, $matching:literal) => {
        concat!(
            "SELECT ",
            $status_id,
            "status, wamid, participant, occurred_at, detail, error ",
            $statuses,
            " UNION ALL SELECT ",
            $message_id,
            "CASE WHEN m.send_at IS NULL THEN 'queued' ELSE 'scheduled' END, NULL, '', m.created_at, NULL, NULL ",
            "FROM messages m WHERE m.id ",
            $matching,
            " AND m.direction = 'outbound' AND NOT m.from_app AND NOT EXISTS ",
            "(SELECT 1 FROM message_statuses s WHERE s.message_id = m.id AND s.status IN ('queued', 'scheduled'))"
        )
    };
}
pub(crate) use select_history;
pub(crate) const SET_STATUS: &str = "UPDATE messages SET status = $1, error = $2, updated_at = $3 WHERE id = $4";

// Applying delivery statuses (`Store::apply_statuses`). Of repeated reports the earliest is kept
// (ties: the lesser detail, compared bytewise on both backends), as the domain's fold does, so
// the history does not depend on arrival order.
pub(crate) const SELECT_OUTBOUND_BY_WAMID: &str =
    "SELECT id FROM messages WHERE wamid = $1 AND account_id = $2 AND direction = 'outbound'";
pub(crate) const UPSERT_STATUS: &str = concat!(
    "INSERT INTO message_statuses ",
    "(account_id, message_id, wamid, status, participant, occurred_at, error, detail, recorded_at) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ",
    status_conflict!()
);
/// What a report already stored for its key becomes: the earlier of the two.
macro_rules! status_conflict {
    () => {
        "ON CONFLICT (account_id, wamid, status, participant) DO UPDATE SET \
         occurred_at = excluded.occurred_at, error = excluded.error, detail = excluded.detail, \
         recorded_at = excluded.recorded_at \
         WHERE (excluded.occurred_at, COALESCE(excluded.detail, '')) \
         < (message_statuses.occurred_at, COALESCE(message_statuses.detail, ''))"
    };
}
pub(crate) use status_conflict;

/// [`UPSERT_STATUS`]'s values: the status, with its message when known, recorded `at`.
pub(crate) fn status_values<'a>(c: &'a StatusColumns, message_id: Option<&'a str>, at: i64) -> impl Values<'a> + 'a {
    (
        c.account_id.as_str(),
        message_id,
        c.wamid.as_str(),
        c.status,
        c.participant.as_str(),
        c.occurred_at,
        c.error.as_deref(),
        c.detail.as_str(),
        at,
    )
}

pub(crate) const DELETE_ORPHAN_STATUSES: &str = "DELETE FROM message_statuses WHERE id IN \
    (SELECT id FROM message_statuses WHERE message_id IS NULL AND recorded_at < $1 LIMIT $2)";
#[cfg(feature = "testing")]
pub(crate) const COUNT_MESSAGES: &str = "SELECT COUNT(*) FROM messages";

// What webhooks bring: deliveries, inbound messages, events.

/// Claims due deliveries; `lock` is what keeps PostgreSQL instances off each other's rows.
macro_rules! claim_deliveries {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET lease = $1, available_at = $2, attempts = attempts + 1 ",
            "WHERE id IN (SELECT id FROM webhook_deliveries WHERE available_at IS NOT NULL AND available_at <= $3 ",
            "ORDER BY available_at, id LIMIT $4",
            $lock,
            ") RETURNING id, account_id, body, received_at, attempts"
        )
    };
}
pub(crate) use claim_deliveries;

pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (account_id, body, received_at, available_at) \
    VALUES ($1, $2, $3, $3) RETURNING id";
/// Webhook deliveries processed (`Store::finish_deliveries`): only while the lease is still held.
pub(crate) const FINISH_DELIVERY: &str = "UPDATE webhook_deliveries SET available_at = NULL, lease = NULL, \
    processed_at = $1, error = $2 WHERE id = $3 AND lease = $4";
pub(crate) const RETRY_DELIVERY: &str =
    "UPDATE webhook_deliveries SET available_at = $1, lease = NULL, error = $2 WHERE id = $3 AND lease = $4";
/// Processed, or set aside (`give_up`): `available_at` is NULL either way.
pub(crate) const DELETE_PROCESSED_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE id IN \
    (SELECT id FROM webhook_deliveries WHERE available_at IS NULL AND processed_at < $1 LIMIT $2)";
pub(crate) const COUNT_PENDING_DELIVERIES: &str =
    "SELECT COUNT(*) FROM webhook_deliveries WHERE available_at IS NOT NULL";
#[cfg(feature = "testing")]
pub(crate) const COUNT_DELIVERIES: &str = "SELECT COUNT(*) FROM webhook_deliveries";

pub(crate) const INSERT_INBOUND: &str = concat!(
    "INSERT INTO messages (",
    message_cols!(),
    ", reply_to_wamid) ",
    "VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, 'received', $8, $9, NULL, $10, $11, NULL, NULL, $12) ",
    "ON CONFLICT DO NOTHING"
);

/// [`INSERT_INBOUND`]'s values: the message, its contact, its content and error written out.
pub(crate) fn inbound_values<'a>(
    m: &'a NewInbound,
    contact_id: &'a str,
    content: &'a str,
    error: Option<&'a str>,
) -> impl Values<'a> + 'a {
    (
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id.as_str(),
        contact_id,
        m.from.as_str(),
        m.kind.as_str(),
        content,
        m.wamid.as_str(),
        error,
        m.sent_at.as_millis(),
        m.received_at.as_millis(),
        m.reply_to_wamid.as_deref(),
    )
}

/// Opens (or moves) the 24-hour window of a number with a customer.
pub(crate) const NOTE_LAST_INBOUND: &str = "INSERT INTO conversations (phone_number_id, customer, last_inbound_at) \
    VALUES ($1, $2, $3) ON CONFLICT (phone_number_id, customer) DO UPDATE SET last_inbound_at = \
    CASE WHEN excluded.last_inbound_at > conversations.last_inbound_at \
    THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END";

/// The ids a send may name the customer of an inbound message by: the window opens for each.
pub(crate) fn window_customers(m: &NewInbound) -> Vec<String> {
    let mut customers = vec![m.from.clone()];
    customers.extend(m.wa_id.as_deref().map(wagate_domain::contact::counterpart));
    customers.extend(m.user_id.clone());
    customers.sort();
    customers.dedup();
    customers.retain(|c| !c.is_empty());
    customers
}

pub(crate) const INSERT_WEBHOOK_EVENT: &str = "INSERT INTO webhook_events \
    (account_id, delivery_id, dedup_key, field, kind, subject, payload, occurred_at, recorded_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id";

/// [`INSERT_WEBHOOK_EVENT`]'s values, with the payload written out.
pub(crate) fn webhook_event_values<'a>(e: &'a NewWebhookEvent, payload: &'a str) -> impl Values<'a> + 'a {
    (
        e.account_id.as_str(),
        e.delivery_id,
        e.dedup_key.as_str(),
        e.field.as_str(),
        e.kind.as_str(),
        e.subject.as_deref(),
        payload,
        e.occurred_at.as_millis(),
        e.recorded_at.as_millis(),
    )
}

pub(crate) const SELECT_WEBHOOK_EVENTS: &str = "SELECT id, account_id, field, kind, subject, payload, \
    occurred_at, recorded_at FROM webhook_events WHERE account_id = $1 AND ($2 IS NULL OR field = $2) \
    AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4";

pub(crate) fn webhook_event_filter_values(f: &WebhookEventFilter, limit: u32) -> impl Values<'static> + use<> {
    (f.account_id.as_str().to_owned(), f.field.clone(), f.before, i64::from(limit))
}

// Media customers sent, and their downloads.

pub(crate) const INSERT_MEDIA: &str = "INSERT INTO media (id, account_id, phone_number_id, message_id, \
    meta_media_id, kind, mime_type, sha256, filename, caption, state, attempts, available_at, created_at, \
    updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', 0, $11, $11, $11) \
    ON CONFLICT (account_id, meta_media_id) DO NOTHING";

pub(crate) fn media_values(m: &NewMedia) -> impl Values<'_> + '_ {
    (
        m.id.as_str(),
        m.account_id.as_str(),
        m.phone_number_id.as_str(),
        m.message_id.as_str(),
        m.meta_media_id.as_str(),
        m.kind.as_str(),
        m.mime_type.as_str(),
        m.sha256.as_deref(),
        m.filename.as_deref(),
        m.caption.as_deref(),
        m.created_at.as_millis(),
    )
}

pub(crate) const MEDIA_STORED: &str = "UPDATE media SET state = 'stored', available_at = NULL, lease = NULL, \
    last_error = NULL, file_size = $1, sha256 = COALESCE(sha256, $2), downloaded_at = $3, updated_at = $3 \
    WHERE id = $4 AND lease = $5 AND state = 'pending'";
pub(crate) const SELECT_MEDIA: &str = concat!("SELECT ", media_cols!(), " FROM media WHERE id = $1");
pub(crate) const SELECT_MEDIA_LIST: &str = concat!(
    "SELECT ",
    media_cols!(),
    " FROM media WHERE ($1 IS NULL OR message_id = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
);

/// Claims due downloads; `lock` is what keeps PostgreSQL instances off each other's rows.
macro_rules! claim_media {
    ($lock:literal) => {
        concat!(
            "UPDATE media SET lease = $1, available_at = $2, attempts = attempts + 1, updated_at = $3 ",
            "WHERE id IN (SELECT id FROM media WHERE available_at IS NOT NULL AND available_at <= $3 ",
            "ORDER BY available_at, id LIMIT $4",
            $lock,
            ") RETURNING ",
            $crate::shared::media_cols!()
        )
    };
}
pub(crate) use claim_media;

pub(crate) const RETRY_MEDIA: &str = "UPDATE media SET available_at = $1, lease = NULL, last_error = $2, \
    updated_at = $3 WHERE id = $4 AND lease = $5 AND state = 'pending'";
pub(crate) const GIVE_UP_MEDIA: &str = "UPDATE media SET state = 'failed', available_at = NULL, lease = NULL, \
    last_error = $1, updated_at = $2 WHERE id = $3 AND lease = $4 AND state = 'pending'";
/// A pending row has an `available_at` (its due time or its lease's end): the index's rows.
pub(crate) const COUNT_PENDING_MEDIA: &str = "SELECT COUNT(*) FROM media WHERE available_at IS NOT NULL";

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<String> {
    let mut all: Vec<String> = [
        INSERT_ACCOUNT,
        UPDATE_ACCOUNT,
        SELECT_ACCOUNT,
        SELECT_ACCOUNTS,
        SELECT_ACCOUNTS_BY_WABA,
        UPDATE_SECRETS,
        PAUSE_ACCOUNT,
        RESUME_ACCOUNT,
        SET_MESSAGING_TIER,
        COUNT_CONVERSATIONS_OPENED,
        NTH_CONVERSATION_LEAVING,
        SELECT_PHONE_NUMBERS,
        SELECT_PHONE_NUMBER,
        SELECT_ACCOUNT_NUMBERS,
        DELETE_PHONE_NUMBER,
        UPSERT_PHONE_NUMBER,
        SELECT_NUMBER_MODE,
        SET_DEFAULT_NUMBER,
        SET_NUMBER_RATE,
        SET_THROUGHPUT_LEVEL,
        NOTE_WEBHOOKS,
        INSERT_API_KEY,
        INSERT_API_KEY_ONCE,
        SELECT_API_KEY_BY_HASH,
        SELECT_API_KEYS,
        REVOKE_API_KEY,
        TOUCH_API_KEY,
        SELECT_LAST_INBOUND,
        SELECT_LIVE_IDEMPOTENCY_KEY,
        TAKE_IDEMPOTENCY_KEY,
        SELECT_IDEMPOTENCY_KEY,
        DELETE_EXPIRED_IDEMPOTENCY_KEYS,
        SELECT_NUMBER_QUEUE_PAGE,
        SELECT_QUEUE_PAGE,
        MARK_CLAIMED_SENDING,
        SELECT_CLAIMED,
        EXPIRE_OUTBOX,
        RELEASE,
        REQUEUE_SENDING,
        DELETE_LEASED,
        DELETE_UNCLAIMED,
        SELECT_OUTBOX_DEPTH,
        COUNT_OUTBOX,
        ACQUIRE_NUMBER_LEASE,
        RELEASE_NUMBER_LEASES,
        ACCEPT_MESSAGE,
        DELETE_OUTBOX_ROW,
        INSERT_ACCEPTED_STATUS,
        ADOPT_STATUSES,
        FAIL_UNACCEPTED,
        INSERT_FAILED_STATUS,
        INSERT_UNSENT_STATUS,
        SELECT_MESSAGE,
        SELECT_MESSAGE_BY_WAMID,
        SELECT_MESSAGES,
        SELECT_MESSAGE_ID_BY_WAMID,
        INSERT_ECHO,
        SELECT_REPORTS,
        SELECT_HISTORY,
        SET_STATUS,
        SELECT_OUTBOUND_BY_WAMID,
        UPSERT_STATUS,
        DELETE_ORPHAN_STATUSES,
        COUNT_MESSAGES,
        claim_deliveries!(""),
        claim_deliveries!(" FOR UPDATE SKIP LOCKED"),
        INSERT_DELIVERY,
        FINISH_DELIVERY,
        RETRY_DELIVERY,
        DELETE_PROCESSED_DELIVERIES,
        COUNT_PENDING_DELIVERIES,
        COUNT_DELIVERIES,
        INSERT_INBOUND,
        NOTE_LAST_INBOUND,
        INSERT_WEBHOOK_EVENT,
        SELECT_WEBHOOK_EVENTS,
        INSERT_MEDIA,
        MEDIA_STORED,
        SELECT_MEDIA,
        SELECT_MEDIA_LIST,
        claim_media!(""),
        claim_media!(" FOR UPDATE SKIP LOCKED"),
        RETRY_MEDIA,
        GIVE_UP_MEDIA,
        COUNT_PENDING_MEDIA,
    ]
    .map(str::to_owned)
    .to_vec();
    all.push(claim_due_sql(3));
    all
}
