//! Outbound messages: validated against Meta's rules, then written with their outbox row in one
//! transaction. The dispatcher takes it from there.

use serde_json::Value;
use wagate_domain::id::MessageId;
use wagate_domain::message::SendRequest;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{AccountMode, Direction, Message, NewOutbound, PhoneNumber, StatusEntry};

use super::ServiceError;
use crate::state::AppState;

/// A message and its status history.
pub struct MessageDetails {
    pub message: Message,
    pub history: Vec<StatusEntry>,
}

pub async fn send(state: &AppState, req: SendRequest) -> Result<MessageDetails, ServiceError> {
    let valid = req.validate()?;
    let sender = resolve_sender(state, valid.from.as_deref()).await?;
    let now = Timestamp::now();
    let new = NewOutbound {
        id: MessageId::generate(),
        account_id: sender.account_id.clone(),
        phone_number_id: sender.id.clone(),
        recipient: valid.to.to_string(),
        kind: valid.content.kind().to_owned(),
        content: Value::Object(valid.content.fields()),
        metadata: valid.metadata,
        created_at: now,
        due_at: now,
    };
    state.store.enqueue_message(&new).await?;
    state.metrics.messages_enqueued.inc();
    state.dispatch_wakeup.notify_one();
    let message = Message {
        id: new.id,
        direction: Direction::Outbound,
        account_id: new.account_id,
        phone_number_id: new.phone_number_id,
        contact_id: None,
        counterpart: new.recipient,
        kind: new.kind,
        content: new.content,
        status: MessageStatus::Queued,
        wamid: None,
        error: None,
        metadata: new.metadata,
        created_at: now,
        updated_at: now,
    };
    let history = vec![StatusEntry {
        status: MessageStatus::Queued,
        occurred_at: now,
        implied: false,
        error: None,
        detail: None,
    }];
    Ok(MessageDetails { message, history })
}

pub async fn get(state: &AppState, id: &str) -> Result<MessageDetails, ServiceError> {
    let parsed = MessageId::parse(id).ok_or_else(|| ServiceError::not_found("message", id))?;
    let message = state.store.get_message(&parsed).await?.ok_or_else(|| ServiceError::not_found("message", id))?;
    let history = state.store.message_history(&parsed).await?;
    Ok(MessageDetails { message, history })
}

/// The number a send goes out from: the one named (by id or display number), else the default.
/// While any live number is connected only live numbers are defaults: a send must never go to
/// the sandbox, where it would "arrive" without reaching anyone, because `from` was left out.
async fn resolve_sender(state: &AppState, from: Option<&str>) -> Result<PhoneNumber, ServiceError> {
    if let Some(from) = from
        && let Some(n) = state.store.get_phone_number(from).await?
    {
        return Ok(n);
    }
    let numbers = state.store.list_phone_numbers().await?;
    if let Some(from) = from {
        let wanted = digits(from);
        let is_number = !wanted.is_empty() && from.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        return numbers.into_iter().find(|n| is_number && digits(&n.display_phone_number) == wanted).ok_or_else(|| {
            FieldError::new(
                "from",
                "unknown_sender",
                format!(
                    "'{from}' is not the id or display number of a connected phone number (see GET /v1/phone-numbers)"
                ),
            )
            .into()
        });
    }
    let live: Vec<&PhoneNumber> = numbers.iter().filter(|n| n.mode == AccountMode::Live).collect();
    let pool = if live.is_empty() { numbers.iter().collect() } else { live };
    let defaults: Vec<&PhoneNumber> = pool.iter().copied().filter(|n| n.is_default).collect();
    match (defaults.as_slice(), pool.as_slice()) {
        ([only], _) | ([], [only]) => Ok((*only).clone()),
        ([], []) => Err(FieldError::new(
            "from",
            "unknown_sender",
            "no phone number is connected: connect a Meta account with POST /v1/accounts",
        )
        .into()),
        _ => Err(FieldError::new(
            "from",
            "required",
            "is required: several phone numbers are connected and none is the default \
             (set one with PATCH /v1/phone-numbers/{id} {\"default\": true})",
        )
        .into()),
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}
