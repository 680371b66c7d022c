//! Meta's webhooks: the subscription handshake, signature checks on the raw bytes (fail
//! closed), durable storage before the 200, and the processing of what was stored.

use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use wagate_domain::id::{AccountId, MessageId};
use wagate_domain::input;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::meta::webhook::{EchoesValue, MessagesValue, Payload, change_fingerprint, parse_unix_seconds};
use wagate_domain::signature;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{
    Account, Delivery, NewDelivery, NewEcho, NewInbound, NewWebhookEvent, PhoneNumber, StatusOutcome, StatusUpdate,
    StorageError,
};

use super::ServiceError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// `GET /webhooks/meta`: true when Meta (or the sandbox) presents a known verify token.
pub async fn verify_subscription(
    state: &AppState,
    mode: Option<&str>,
    token: Option<&str>,
) -> Result<bool, ServiceError> {
    let (Some("subscribe"), Some(token)) = (mode, token) else {
        return Ok(false);
    };
    let accounts = state.store.list_accounts().await?;
    Ok(accounts.iter().any(|a| bool::from(a.verify_token.expose().as_bytes().ct_eq(token.as_bytes()))))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Verified and stored under this delivery id.
    Stored(i64),
    MissingSignature,
    /// The payload names no WABA of a connected account, so no secret may vouch for it.
    UnknownAccount,
    BadSignature,
}

#[derive(Deserialize)]
struct Routing {
    #[serde(default)]
    entry: Vec<RoutingEntry>,
}

#[derive(Deserialize)]
struct RoutingEntry {
    id: String,
}

/// `POST /webhooks/meta`: verifies the signature over the exact bytes received with the app
/// secret of the accounts the payload names (every entry's WABA must belong to an account of
/// that app), stores the delivery, and wakes the processor. Fails closed: a payload that names
/// no connected WABA is refused whoever signed it.
pub async fn receive(state: &AppState, signature_header: Option<&str>, body: Vec<u8>) -> Result<Receipt, ServiceError> {
    let Some(header) = signature_header else {
        return Ok(Receipt::MissingSignature);
    };
    let Ok(routing) = input::parse_from_meta::<Routing>(&body) else {
        return Ok(Receipt::UnknownAccount);
    };
    let epoch = state.outbox.settings_epoch();
    let signer = match state.caches.signers.get(epoch).map(|accounts| signed_by(&accounts, &routing, &body, header)) {
        Some(Ok(signer)) => signer,
        _ => {
            let accounts = super::accounts::read_accounts(state, epoch).await?;
            match signed_by(&accounts, &routing, &body, header) {
                Ok(signer) => signer,
                Err(refused) => return Ok(refused),
            }
        }
    };
    let id = state
        .store
        .insert_delivery(NewDelivery { account_id: Some(signer), body, received_at: Timestamp::now() })
        .await?;
    state.signals.delivery_stored();
    Ok(Receipt::Stored(id))
}

/// The account whose app secret signed `body`, if every entry's WABA belongs to that app.
fn signed_by(accounts: &[Account], routing: &Routing, body: &[u8], header: &str) -> Result<AccountId, Receipt> {
    let Some(first) = routing.entry.first() else {
        return Err(Receipt::UnknownAccount);
    };
    let Some(signer) = of_waba(accounts, &first.id).find(|a| signature::verify(a.app_secret.expose(), body, header))
    else {
        let known = of_waba(accounts, &first.id).next().is_some();
        return Err(if known { Receipt::BadSignature } else { Receipt::UnknownAccount });
    };
    // One Meta app may batch several of its WABAs into one POST; all must be this app's.
    let same_app = |waba: &str| of_waba(accounts, waba).any(|a| a.app_secret == signer.app_secret);
    if !routing.entry.iter().all(|e| same_app(&e.id)) {
        return Err(Receipt::UnknownAccount);
    }
    Ok(signer.id.clone())
}

/// From the first webhook of a number on, wagate sees its customers' messages and can judge
/// their 24-hour windows (after a day of them).
async fn note_webhooks(state: &AppState, phone_number_id: &str, at: Timestamp) -> Result<(), StorageError> {
    if !state.caches.webhooks_noted.contains(phone_number_id) {
        state.store.note_webhooks(phone_number_id, at).await?;
        state.caches.webhooks_noted.insert(phone_number_id);
    }
    Ok(())
}

fn of_waba<'a>(accounts: &'a [Account], waba: &'a str) -> impl Iterator<Item = &'a Account> + 'a {
    accounts.iter().filter(move |a| a.waba_id == waba)
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The delivery can never be processed as it is; it is set aside with this reason.
    #[error("{0}")]
    Unprocessable(String),
    /// Storage failed; the whole delivery is tried again (every step is idempotent).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Applies one stored delivery: statuses to their messages, inbound messages to storage, every
/// other field kept as an event (and applied where wagate keeps what it changes), each entry
/// within the account that owns its WABA and shares the app secret that signed it. Problems
/// confined to one change are reported together after the rest is applied.
///
/// Statuses and inbound messages, the bulk of Meta's traffic, are not written here but added to
/// `pending`, for [`write_pending`] to write those of a whole batch of deliveries together.
pub async fn process(state: &AppState, delivery: &Delivery, pending: &mut Pending) -> Result<(), ProcessError> {
    let mut payload: Payload = input::parse_from_meta(&delivery.body)
        .map_err(|e| ProcessError::Unprocessable(format!("not a webhook payload: {e}")))?;
    for change in payload.entry.iter_mut().flat_map(|e| e.changes.iter_mut()) {
        input::bound_ids(&mut change.value);
    }
    if payload.object != "whatsapp_business_account" {
        return Err(ProcessError::Unprocessable(format!("unexpected object '{}'", payload.object)));
    }
    // Two reads per delivery otherwise, for what changes rarely.
    let known = super::accounts::known_accounts(state).await?;
    let signer = match &delivery.account_id {
        Some(id) => super::accounts::account(state, id).await?,
        None => None,
    };
    let Some(signer) = signer else {
        return Err(ProcessError::Unprocessable("the account that signed this delivery no longer exists".into()));
    };
    let mut problems = Vec::new();
    for (e, entry) in payload.entry.iter().enumerate() {
        let same_app = |a: &Account| a.app_secret == signer.app_secret;
        let account = match of_waba(&known, &entry.id).find(|a| same_app(a)) {
            Some(a) => Some(a.clone()),
            None => state.store.accounts_by_waba(&entry.id).await?.into_iter().find(same_app),
        };
        let Some(account) = account else {
            problems.push(format!("entry for WABA {} belongs to no account of the signing app", entry.id));
            continue;
        };
        let at = entry.time.map_or(delivery.received_at, Timestamp::from_unix_seconds);
        for (c, change) in entry.changes.iter().enumerate() {
            let change_at = Change { delivery, account: &account, position: format!("{e}.{c}"), time: entry.time, at };
            let applied = match change.field.as_str() {
                "messages" => match serde_json::from_value::<MessagesValue>(change.value.clone()) {
                    Ok(value) => apply_messages(state, &change_at, value, pending).await?,
                    Err(e) => Err(format!("messages change of {}: {e}", entry.id)),
                },
                "smb_message_echoes" => match serde_json::from_value::<EchoesValue>(change.value.clone()) {
                    Ok(value) => apply_echoes(state, &account, value).await?,
                    Err(e) => Err(format!("smb_message_echoes change of {}: {e}", entry.id)),
                },
                // Applied to the contact, and kept as an event like every other field.
                "user_preferences" => {
                    let applied =
                        super::contacts::apply_user_preferences(state.store.as_ref(), &account.id, &change.value)
                            .await?;
                    record_event(state, &change_at, "user_preferences", &change.value).await.and(applied)
                }
                // Applied to the stored template (its `template.updated` event), and kept as an event.
                field @ ("message_template_status_update"
                | "message_template_quality_update"
                | "message_template_components_update"
                | "template_category_update") => {
                    let applied = match super::templates::apply_webhook(state, &account, field, &change.value).await {
                        Ok(()) => Ok(()),
                        Err(ServiceError::Storage(e)) => return Err(e.into()),
                        Err(e) => Err(format!("{field} change of {}: {e}", entry.id)),
                    };
                    record_event(state, &change_at, field, &change.value).await.and(applied)
                }
                // Applied to the stored group, and kept as an event.
                field @ ("group_lifecycle_update" | "group_participants_update" | "group_settings_update") => {
                    let applied = match super::groups::apply_webhook(state, &account, &change.value).await {
                        Ok(()) => Ok(()),
                        Err(ServiceError::Storage(e)) => return Err(e.into()),
                        Err(e) => Err(format!("{field} change of {}: {e}", entry.id)),
                    };
                    record_event(state, &change_at, field, &change.value).await.and(applied)
                }
                field => record_event(state, &change_at, field, &change.value).await,
            };
            if let Err(p) = applied {
                problems.push(p);
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ProcessError::Unprocessable(problems.join("; "))) }
}

/// Where a change sits: its delivery, the account it belongs to, its place in the delivery,
/// and Meta's time (as sent, and as a timestamp falling back to the delivery's arrival).
struct Change<'a> {
    delivery: &'a Delivery,
    account: &'a Account,
    position: String,
    time: Option<i64>,
    at: Timestamp,
}

impl Change<'_> {
    /// An event of this change's account, from this delivery.
    fn event(
        &self,
        field: &str,
        kind: &str,
        dedup_key: String,
        subject: Option<String>,
        payload: Value,
        occurred_at: Timestamp,
    ) -> NewWebhookEvent {
        NewWebhookEvent {
            account_id: self.account.id.clone(),
            delivery_id: self.delivery.id,
            dedup_key,
            field: field.to_owned(),
            kind: kind.to_owned(),
            subject,
            payload,
            occurred_at,
            recorded_at: Timestamp::now(),
        }
    }
}

/// Stores an account event (once: see `NewWebhookEvent::dedup_key`) and counts it.
/// Whether it was new.
async fn keep(state: &AppState, event: &NewWebhookEvent) -> Result<bool, StorageError> {
    let stored = state.store.record_webhook_event(event).await?;
    Metrics::outcome(&state.metrics.webhook_events, if stored { "stored" } else { "duplicate" });
    Ok(stored)
}

/// Fields wagate keeps as account events, and what they are about.
fn subject_of(field: &str, value: &Value) -> Option<String> {
    let text = |key: &str| {
        value.get(key).and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(|n| n.to_string())))
    };
    match field {
        "message_template_status_update"
        | "message_template_quality_update"
        | "message_template_components_update"
        | "template_category_update" => text("message_template_id"),
        "phone_number_quality_update" | "phone_number_name_update" => text("display_phone_number"),
        "user_preferences" => value.pointer("/contacts/0/wa_id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Stores a change as an event of its account, applies what wagate keeps of it, and logs a field
/// it does not know (never an error: Meta adds fields).
async fn record_event(state: &AppState, change: &Change<'_>, field: &str, value: &Value) -> Result<(), String> {
    const KNOWN: &[&str] = &[
        "account_alerts",
        "account_review_update",
        "account_update",
        "business_capability_update",
        "group_lifecycle_update",
        "group_participants_update",
        "group_settings_update",
        "group_status_update",
        "history",
        "message_template_components_update",
        "message_template_quality_update",
        "message_template_status_update",
        "partner_solutions",
        "payment_configuration_update",
        "phone_number_name_update",
        "phone_number_quality_update",
        "security",
        "smb_app_state_sync",
        "template_category_update",
        "user_preferences",
    ];
    let kind = value.get("event").and_then(Value::as_str).unwrap_or(field);
    if !KNOWN.contains(&field) {
        tracing::warn!(field, delivery = change.delivery.id, "webhook field wagate does not know; stored as an event");
    }
    let event = change.event(
        field,
        kind,
        change_fingerprint(field, change.time, value),
        subject_of(field, value),
        value.clone(),
        change.at,
    );
    let new = keep(state, &event).await.map_err(|e| e.to_string())?;
    if field == "phone_number_quality_update" {
        apply_quality_update(state, change.account, value).await.map_err(|e| e.to_string())?;
        // Once per change: a person may have resumed the campaigns since a redelivered one.
        if new {
            pause_campaigns_on_quality(state, change.account, value).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Meta's messaging limit and throughput level, as `phone_number_quality_update` reports them.
async fn apply_quality_update(state: &AppState, account: &Account, value: &Value) -> Result<(), StorageError> {
    let limit = ["max_daily_conversations_per_business", "current_limit"]
        .iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        // The number has sent nothing yet: no tier to record.
        .filter(|name| *name != "TIER_NOT_SET");
    if let Some(name) = limit {
        match MessagingTier::parse(name) {
            Some(tier) => {
                if state.store.set_messaging_tier(&account.id, tier).await? {
                    state.outbox.settings_changed(std::iter::empty());
                }
            }
            None => {
                tracing::warn!(account_id = %account.id, tier = name, "a messaging tier wagate does not know; kept the last")
            }
        }
    }
    if value.get("event").and_then(Value::as_str) == Some("THROUGHPUT_UPGRADE")
        && let Some(n) = number_displayed(state, account, value).await?
    {
        state.store.set_throughput_level(&n.id, &ThroughputLevel::High, Timestamp::now()).await?;
    }
    Ok(())
}

/// The account's number a quality update is about: Meta names it by its display number.
async fn number_displayed(
    state: &AppState,
    account: &Account,
    value: &Value,
) -> Result<Option<PhoneNumber>, StorageError> {
    let Some(display) = value.get("display_phone_number").and_then(Value::as_str) else { return Ok(None) };
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let numbers = state.store.list_phone_numbers().await?;
    Ok(numbers.into_iter().find(|n| n.account_id == account.id && digits(&n.display_phone_number) == digits(display)))
}

/// Meta flagged the number's quality or lowered its messaging limit: its campaigns pause, for a
/// person to look before more of the same goes out.
async fn pause_campaigns_on_quality(state: &AppState, account: &Account, value: &Value) -> Result<(), ServiceError> {
    let event = value.get("event").and_then(Value::as_str).unwrap_or_default();
    if !matches!(event, "FLAGGED" | "DOWNGRADE") {
        return Ok(());
    }
    let Some(n) = number_displayed(state, account, value).await? else { return Ok(()) };
    let limit = value.get("current_limit").and_then(Value::as_str).unwrap_or("unknown");
    let display = &n.display_phone_number;
    let detail = match event {
        "FLAGGED" => format!("Meta flagged the quality of {display} (messaging limit {limit})"),
        _ => format!("Meta lowered the messaging limit of {display} to {limit}"),
    };
    super::campaigns::pause_for_number(state, &n.id, &detail).await
}

/// Messages the business sent from the WhatsApp Business app: stored as outbound, flagged.
async fn apply_echoes(
    state: &AppState,
    account: &Account,
    value: EchoesValue,
) -> Result<Result<(), String>, StorageError> {
    if value.message_echoes.is_empty() {
        return Ok(Ok(()));
    }
    let Some(metadata) = &value.metadata else {
        return Ok(Err("message echoes without metadata.phone_number_id".into()));
    };
    if let Err(p) = owned_number(state, &account.id, &metadata.phone_number_id).await? {
        return Ok(Err(p));
    }
    let now = Timestamp::now();
    for m in value.message_echoes {
        let echo = NewEcho {
            id: MessageId::generate(),
            account_id: account.id.clone(),
            phone_number_id: metadata.phone_number_id.clone(),
            wamid: m.id,
            to: wagate_domain::contact::counterpart(m.to.trim_start_matches('+')),
            kind: m.kind,
            content: Value::Object(m.rest),
            sent_at: parse_unix_seconds(&m.timestamp).unwrap_or(now),
            received_at: now,
        };
        let stored = state.store.record_echo(&echo).await?;
        Metrics::outcome(&state.metrics.inbound_messages, if stored { "echo" } else { "duplicate" });
    }
    Ok(Ok(()))
}

async fn owned_number(
    state: &AppState,
    account_id: &AccountId,
    phone_number_id: &str,
) -> Result<Result<(), String>, StorageError> {
    Ok(match super::accounts::phone_number(state, phone_number_id).await? {
        Some(n) if &n.account_id == account_id => Ok(()),
        _ => Err(format!("phone number {phone_number_id} is not a number of account {account_id}")),
    })
}

async fn apply_messages(
    state: &AppState,
    change: &Change<'_>,
    value: MessagesValue,
    pending: &mut Pending,
) -> Result<Result<(), String>, StorageError> {
    let account_id = &change.account.id;
    let now = Timestamp::now();
    if let Some(m) = &value.metadata {
        note_webhooks(state, &m.phone_number_id, now).await?;
    }
    // Errors at value level are about the number or the app, not a message: kept as events.
    for (i, error) in value.errors.iter().enumerate() {
        tracing::warn!(account = %account_id, error = %error, "Meta reported an error in a messages webhook");
        let event = change.event(
            "messages",
            "error",
            // Errors carry no time of their own: one event per error of each delivery.
            format!("delivery {} change {} error {i}", change.delivery.id, change.position),
            error.get("code").and_then(Value::as_i64).map(|c| c.to_string()),
            json!({"metadata": value.metadata.as_ref().map(|m| &m.phone_number_id), "error": error}),
            change.at,
        );
        keep(state, &event).await?;
    }
    for s in &value.statuses {
        let Some(status) = DeliveryStatus::parse(&s.status) else {
            tracing::info!(status = %s.status, wamid = %s.id, "status kind not tracked");
            continue;
        };
        let update = StatusUpdate {
            account_id: account_id.clone(),
            wamid: s.id.clone(),
            status,
            participant: s.recipient_participant_id.clone().filter(|p| !p.is_empty()),
            occurred_at: parse_unix_seconds(&s.timestamp).unwrap_or(change.delivery.received_at),
            error: s.errors.first().map(MessageError::from_status),
            detail: serde_json::to_value(s).unwrap_or_default(),
        };
        // Meta's 131050: the user stopped marketing messages from the business.
        if update.error.as_ref().and_then(|e| e.code) == Some(131_050)
            && let Some(wa_id) = s.recipient_id.as_deref().filter(|r| !r.is_empty())
        {
            state.store.mark_marketing_opt_out(wa_id, update.occurred_at).await?;
        }
        // Meta's 131053: it could not use the message's media; an upload of ours goes again.
        if update.error.as_ref().and_then(|e| e.code) == Some(131_053) {
            super::uploads::forget_failed_copies(state, &s.id, update.occurred_at).await?;
        }
        pending.statuses.push(update);
    }
    if value.messages.is_empty() {
        return Ok(Ok(()));
    }
    let Some(metadata) = &value.metadata else {
        return Ok(Err("inbound messages without metadata.phone_number_id".into()));
    };
    if let Err(p) = owned_number(state, account_id, &metadata.phone_number_id).await? {
        return Ok(Err(p));
    }
    for m in value.messages {
        // A number change is about the contact, not a message of the conversation (it must not
        // open a window or count as unread): applied to the contact and kept as an event.
        if m.kind == "system" {
            super::contacts::apply_system_message(state.store.as_ref(), &m).await?;
            state.signals.inbound_applied(&m.id);
            let event = change.event(
                "messages",
                "system",
                format!("system message {}", m.id),
                Some(m.id.clone()),
                json!({"from": m.from, "id": m.id, "timestamp": m.timestamp, "type": m.kind, "system": m.rest.get("system")}),
                parse_unix_seconds(&m.timestamp).unwrap_or(now),
            );
            keep(state, &event).await?;
            continue;
        }
        let Some(sender) = super::contacts::Sender::of(&value.contacts, &m) else {
            tracing::warn!(wamid = %m.id, "inbound message names no sender; skipped");
            continue;
        };
        let text = |object: &str, key: &str| m.rest.get(object)?.get(key)?.as_str().map(str::to_owned);
        // A reply names the message it answers; a reaction, the message it reacts to.
        let reply_to_wamid = text("context", "id").or_else(|| text("reaction", "message_id"));
        let error = m
            .rest
            .get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| serde_json::from_value::<wagate_domain::meta::webhook::StatusError>(e.clone()).ok());
        let inbound = NewInbound {
            id: MessageId::generate(),
            account_id: account_id.clone(),
            phone_number_id: metadata.phone_number_id.clone(),
            wamid: m.id,
            from: sender.from,
            wa_id: sender.wa_id,
            user_id: sender.user_id,
            profile_name: sender.profile_name,
            kind: m.kind,
            reply_to_wamid,
            error: error.as_ref().map(MessageError::from_status),
            content: Value::Object(m.rest),
            // Without Meta's time, the delivery's arrival: the same on every reprocessing.
            sent_at: parse_unix_seconds(&m.timestamp).unwrap_or(change.delivery.received_at),
            received_at: now,
        };
        pending.inbound.push(inbound);
    }
    Ok(Ok(()))
}

const INBOUND_PER_TRANSACTION: usize = 8;

/// The statuses and inbound messages of deliveries processed but not yet written.
#[derive(Default)]
pub struct Pending {
    pub statuses: Vec<StatusUpdate>,
    pub inbound: Vec<NewInbound>,
}

/// How far a [`Pending`] had grown: where a delivery's own part starts or ends.
#[derive(Clone, Copy)]
pub struct Mark {
    statuses: usize,
    inbound: usize,
}

impl Pending {
    pub fn mark(&self) -> Mark {
        Mark { statuses: self.statuses.len(), inbound: self.inbound.len() }
    }

    /// Drops what was added since `mark`.
    pub fn truncate(&mut self, mark: Mark) {
        self.statuses.truncate(mark.statuses);
        self.inbound.truncate(mark.inbound);
    }
}

/// Writes what deliveries between `from` and `to` added to `pending` (all of it without
/// marks): the inbound messages a few per transaction (then their media), the statuses in one,
/// so a batch of deliveries costs a few flushes rather than one per message and status.
pub async fn write_pending(
    state: &AppState,
    pending: &Pending,
    span: Option<(Mark, Mark)>,
) -> Result<(), StorageError> {
    let (from, to) = span.unwrap_or((Mark { statuses: 0, inbound: 0 }, pending.mark()));
    // A few messages per transaction: each takes a dozen statements, and SQLite's one writer
    // is also what acknowledges new deliveries, which must not wait long for it.
    for inbound in pending.inbound[from.inbound..to.inbound].chunks(INBOUND_PER_TRANSACTION) {
        let stored = state.store.record_inbounds(inbound).await?;
        for (message, stored) in inbound.iter().zip(stored) {
            // Idempotent, so also for duplicates and replays.
            super::media::record_inbound(state.store.as_ref(), &state.signals, message).await?;
            Metrics::outcome(&state.metrics.inbound_messages, if stored { "stored" } else { "duplicate" });
            state.signals.inbound_applied(&message.wamid);
        }
    }
    let statuses = &pending.statuses[from.statuses..to.statuses];
    for outcome in state.store.apply_statuses(statuses, Timestamp::now()).await? {
        let label = match outcome {
            StatusOutcome::Applied => "applied",
            StatusOutcome::Pending => "pending",
            StatusOutcome::Duplicate => "duplicate",
        };
        Metrics::outcome(&state.metrics.statuses, label);
    }
    Ok(())
}
