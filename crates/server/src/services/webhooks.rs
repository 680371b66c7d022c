//! Meta's webhooks: the subscription handshake, signature checks on the raw bytes (fail
//! closed), durable storage before the 200, and the processing of what was stored.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::meta::webhook::{MessagesValue, Payload, parse_unix_seconds};
use wagate_domain::signature;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::{Delivery, NewDelivery, NewInbound, StatusOutcome, StorageError};

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
/// secret of the account the payload names, stores the delivery, and wakes the processor.
pub async fn receive(state: &AppState, signature_header: Option<&str>, body: &[u8]) -> Result<Receipt, ServiceError> {
    let Some(header) = signature_header else {
        return Ok(Receipt::MissingSignature);
    };
    let wabas: Vec<String> = serde_json::from_slice::<Routing>(body)
        .map(|r| r.entry.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    let accounts = state.store.list_accounts().await?;
    // The payload's own accounts first; when it names none wagate knows, any account's app
    // (one Meta app serves many WABAs). Either way only a valid signature gets through.
    let named: Vec<_> = accounts.iter().filter(|a| wabas.contains(&a.waba_id)).collect();
    let candidates = if named.is_empty() { accounts.iter().collect() } else { named };
    let Some(account) = candidates.into_iter().find(|a| signature::verify(a.app_secret.expose(), body, header)) else {
        return Ok(Receipt::BadSignature);
    };
    let id = state
        .store
        .insert_delivery(&NewDelivery {
            account_id: Some(account.id.clone()),
            body: body.to_vec(),
            received_at: Timestamp::now(),
        })
        .await?;
    state.inbound_wakeup.notify_one();
    Ok(Receipt::Stored(id))
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

/// Applies one stored delivery: statuses to their messages, inbound messages to storage.
/// Problems confined to one change are reported together after the rest is applied.
pub async fn process(state: &AppState, delivery: &Delivery) -> Result<(), ProcessError> {
    let payload: Payload = serde_json::from_slice(&delivery.body)
        .map_err(|e| ProcessError::Unprocessable(format!("not a webhook payload: {e}")))?;
    if payload.object != "whatsapp_business_account" {
        return Err(ProcessError::Unprocessable(format!("unexpected object '{}'", payload.object)));
    }
    let mut problems = Vec::new();
    for entry in &payload.entry {
        for change in &entry.changes {
            match change.field.as_str() {
                "messages" => match serde_json::from_value::<MessagesValue>(change.value.clone()) {
                    Ok(value) => {
                        if let Err(p) = apply_messages(state, delivery, value).await? {
                            problems.push(p);
                        }
                    }
                    Err(e) => problems.push(format!("messages change of {}: {e}", entry.id)),
                },
                other => tracing::info!(field = other, delivery = delivery.id, "webhook field stored; not processed"),
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ProcessError::Unprocessable(problems.join("; "))) }
}

async fn apply_messages(
    state: &AppState,
    delivery: &Delivery,
    value: MessagesValue,
) -> Result<Result<(), String>, StorageError> {
    let now = Timestamp::now();
    for s in &value.statuses {
        let Some(status) = DeliveryStatus::parse(&s.status) else {
            tracing::info!(status = %s.status, wamid = %s.id, "status kind not tracked");
            continue;
        };
        let update = wagate_storage::StatusUpdate {
            wamid: s.id.clone(),
            status,
            occurred_at: parse_unix_seconds(&s.timestamp).unwrap_or(now),
            error: s.errors.first().map(MessageError::from_status),
            detail: serde_json::to_value(s).unwrap_or_default(),
        };
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
    let account_id = match state.store.get_phone_number(&metadata.phone_number_id).await? {
        Some(n) => n.account_id,
        None => match &delivery.account_id {
            Some(a) => a.clone(),
            None => return Ok(Err(format!("phone number {} is not connected", metadata.phone_number_id))),
        },
    };
    for m in value.messages {
        let profile_name = value
            .contacts
            .iter()
            .find(|c| c.wa_id.as_deref() == Some(m.from.as_str()))
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone());
        let inbound = NewInbound {
            id: MessageId::generate(),
            account_id: account_id.clone(),
            phone_number_id: metadata.phone_number_id.clone(),
            wamid: m.id,
            from: m.from,
            profile_name,
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
