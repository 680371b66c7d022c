//! Meta's webhooks: the subscription handshake, signature checks on the raw bytes (fail
//! closed), durable storage before the 200, and the processing of what was stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use subtle::ConstantTimeEq;
use wagate_domain::id::{AccountId, MessageId};
use wagate_domain::message::MessageError;
use wagate_domain::meta::webhook::{MessagesValue, Payload, parse_unix_seconds};
use wagate_domain::signature;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{Account, Delivery, NewDelivery, NewInbound, StatusOutcome, StorageError};

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

/// Connected accounts (their WABAs and app secrets) as last read, for up to
/// [`SIGNERS_CACHED_FOR`] or until `settings_epoch` moves. Only used to say yes: a delivery the
/// cached list refuses is checked again against a fresh read, so an account connected or a
/// secret rotated on another instance is honoured at once.
#[derive(Default)]
pub struct SignerCache(std::sync::Mutex<Option<Signers>>);

/// The accounts read, the `settings_epoch` they were read at, and when.
type Signers = (Arc<Vec<Account>>, u64, Instant);

const SIGNERS_CACHED_FOR: Duration = Duration::from_secs(2);

impl SignerCache {
    fn get(&self, epoch: u64) -> Option<Arc<Vec<Account>>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().filter(|(_, e, at)| *e == epoch && at.elapsed() < SIGNERS_CACHED_FOR).map(|(a, _, _)| a.clone())
    }

    fn put(&self, accounts: Arc<Vec<Account>>, epoch: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((accounts, epoch, Instant::now()));
    }
}

/// `POST /webhooks/meta`: verifies the signature over the exact bytes received with the app
/// secret of the accounts the payload names (every entry's WABA must belong to an account of
/// that app), stores the delivery, and wakes the processor. Fails closed: a payload that names
/// no connected WABA is refused whoever signed it.
pub async fn receive(state: &AppState, signature_header: Option<&str>, body: Vec<u8>) -> Result<Receipt, ServiceError> {
    let Some(header) = signature_header else {
        return Ok(Receipt::MissingSignature);
    };
    let Ok(routing) = serde_json::from_slice::<Routing>(&body) else {
        return Ok(Receipt::UnknownAccount);
    };
    let epoch = state.settings_epoch.load(Ordering::Relaxed);
    let signer = match state.signers.get(epoch).map(|accounts| signed_by(&accounts, &routing, &body, header)) {
        Some(Ok(signer)) => signer,
        _ => {
            let accounts = Arc::new(state.store.list_accounts().await?);
            state.signers.put(accounts.clone(), epoch);
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
    state.inbound_wakeup.notify_one();
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
    let known = state.webhooks_noted.lock().unwrap_or_else(|e| e.into_inner()).contains(phone_number_id);
    if !known {
        state.store.note_webhooks(phone_number_id, at).await?;
        state.webhooks_noted.lock().unwrap_or_else(|e| e.into_inner()).insert(phone_number_id.to_owned());
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

/// Applies one stored delivery: statuses to their messages, inbound messages to storage, each
/// entry within the account that owns its WABA and shares the app secret that signed it.
/// Problems confined to one change are reported together after the rest is applied.
pub async fn process(state: &AppState, delivery: &Delivery) -> Result<(), ProcessError> {
    let payload: Payload = serde_json::from_slice(&delivery.body)
        .map_err(|e| ProcessError::Unprocessable(format!("not a webhook payload: {e}")))?;
    if payload.object != "whatsapp_business_account" {
        return Err(ProcessError::Unprocessable(format!("unexpected object '{}'", payload.object)));
    }
    let signer = match &delivery.account_id {
        Some(id) => state.store.get_account(id).await?,
        None => None,
    };
    let Some(signer) = signer else {
        return Err(ProcessError::Unprocessable("the account that signed this delivery no longer exists".into()));
    };
    let mut problems = Vec::new();
    for entry in &payload.entry {
        let accounts = state.store.accounts_by_waba(&entry.id).await?;
        let Some(account) = accounts.into_iter().find(|a| a.app_secret == signer.app_secret) else {
            problems.push(format!("entry for WABA {} belongs to no account of the signing app", entry.id));
            continue;
        };
        for change in &entry.changes {
            match change.field.as_str() {
                "messages" => match serde_json::from_value::<MessagesValue>(change.value.clone()) {
                    Ok(value) => {
                        if let Err(p) = apply_messages(state, &account.id, value).await? {
                            problems.push(p);
                        }
                    }
                    Err(e) => problems.push(format!("messages change of {}: {e}", entry.id)),
                },
                "user_preferences" => {
                    if let Err(p) = super::contacts::apply_user_preferences(state, &account.id, &change.value).await? {
                        problems.push(p);
                    }
                }
                other => tracing::info!(field = other, delivery = delivery.id, "webhook field stored; not processed"),
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ProcessError::Unprocessable(problems.join("; "))) }
}

async fn apply_messages(
    state: &AppState,
    account_id: &AccountId,
    value: MessagesValue,
) -> Result<Result<(), String>, StorageError> {
    let now = Timestamp::now();
    if let Some(m) = &value.metadata {
        note_webhooks(state, &m.phone_number_id, now).await?;
    }
    for s in &value.statuses {
        let Some(status) = DeliveryStatus::parse(&s.status) else {
            tracing::info!(status = %s.status, wamid = %s.id, "status kind not tracked");
            continue;
        };
        let update = wagate_storage::StatusUpdate {
            account_id: account_id.clone(),
            wamid: s.id.clone(),
            status,
            occurred_at: parse_unix_seconds(&s.timestamp).unwrap_or(now),
            error: s.errors.first().map(MessageError::from_status),
            detail: serde_json::to_value(s).unwrap_or_default(),
        };
        // Meta's 131050: the user stopped marketing messages from the business.
        if update.error.as_ref().and_then(|e| e.code) == Some(131_050)
            && let Some(wa_id) = s.recipient_id.as_deref().filter(|r| !r.is_empty())
        {
            state.store.mark_marketing_opt_out(wa_id, now).await?;
        }
        let outcome = state.store.apply_status(&update, now).await?;
        let label = match outcome {
            StatusOutcome::Applied => "applied",
            StatusOutcome::Pending => "pending",
            StatusOutcome::Duplicate => "duplicate",
        };
        Metrics::outcome(&state.metrics.statuses, label);
    }
    if value.messages.is_empty() {
        return Ok(Ok(()));
    }
    let Some(metadata) = &value.metadata else {
        return Ok(Err("inbound messages without metadata.phone_number_id".into()));
    };
    match state.store.get_phone_number(&metadata.phone_number_id).await? {
        Some(n) if &n.account_id == account_id => {}
        _ => {
            return Ok(Err(format!(
                "phone number {} is not a number of account {account_id}",
                metadata.phone_number_id
            )));
        }
    }
    for m in value.messages {
        // A number change is about the contact, not a message of the conversation.
        if m.kind == "system" {
            super::contacts::apply_system_message(state, &m).await?;
            continue;
        }
        // Phone-number wa_ids read as E.164 in the API; user ids stay as they are.
        let Some(sender) = super::contacts::Sender::of(&value.contacts, &m) else {
            tracing::warn!(wamid = %m.id, "inbound message names no sender; skipped");
            continue;
        };
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
            content: serde_json::Value::Object(m.rest),
            sent_at: parse_unix_seconds(&m.timestamp).unwrap_or(now),
            received_at: now,
        };
        let stored = state.store.record_inbound(&inbound).await?;
        Metrics::outcome(&state.metrics.inbound_messages, if stored { "stored" } else { "duplicate" });
    }
    Ok(Ok(()))
}
