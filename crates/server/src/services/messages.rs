//! Messages: validated against Meta's rules, then written with their outbox row in one
//! transaction; the dispatcher takes it from there. Shared by the native API and the
//! Meta-compatible surface.

use std::time::Duration;

use serde_json::{Map, Value};
use wagate_domain::id::{ApiKeyId, MessageId};
use wagate_domain::message::{Content, MessageError, Outbound, ReadReceipt, Recipient, SendRequest, SimpleTemplate};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_domain::window;
use wagate_storage::{
    AccountMode, Direction, Enqueued, IdempotencyRecord, Message, MessageFilter, NewIdempotencyKey, NewOutbound,
    PhoneNumber, StatusEntry, Store, WindowCheck,
};

use super::{ServiceError, templates, uploads};
use crate::config::OutsideWindow;
use crate::graph::{GraphClient, GraphFailure, Target};
use crate::outbox::Outbox;
use crate::state::AppState;

/// A message and its status history.
#[derive(Clone)]
pub struct MessageDetails {
    pub message: Message,
    pub history: Vec<StatusEntry>,
}

/// A send's idempotency key with a hash of the request, scoped to the API key that sent it.
pub struct Idempotency {
    pub api_key_id: ApiKeyId,
    pub key: String,
    pub request_hash: String,
}

/// How far ahead a message may be scheduled.
const SCHEDULE_HORIZON: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What a send did.
pub enum Sent {
    /// Stored: the message, and the answer given (stored with an idempotency key).
    New(Box<MessageDetails>),
    /// The idempotency key was used before for this very request: its first answer.
    Replayed { response: Value, message_id: MessageId },
}

/// What to send along with a message besides its content.
#[derive(Default)]
pub struct SendOptions {
    pub send_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub idempotency: Option<Idempotency>,
    /// A template send in the simple form, built into Meta's components from the stored template.
    pub simple_template: Option<SimpleTemplate>,
    /// The message's id, when the caller reserved one (a campaign's recipient); else a new one.
    pub id: Option<MessageId>,
}

/// `POST /v1/messages`. `render` makes the answer (kept with an idempotency key, to give again).
pub async fn send(
    state: &AppState,
    req: SendRequest,
    idempotency: Option<Idempotency>,
    render: &(dyn Fn(&MessageDetails) -> Value + Sync),
) -> Result<Sent, ServiceError> {
    if let Some(replay) = replay(state.store.as_ref(), idempotency.as_ref()).await? {
        return Ok(replay);
    }
    let valid = req.validate()?;
    let sender = resolve_sender(state, valid.from.as_deref()).await?;
    let mut outbound = valid.outbound;
    if let Some(reply_to) = &valid.reply_to {
        outbound.context = Some(resolve_reply(state.store.as_ref(), &sender, reply_to).await?);
    }
    let options = SendOptions {
        send_at: valid.send_at,
        expires_at: valid.expires_at,
        idempotency,
        simple_template: valid.simple_template,
        id: None,
    };
    enqueue(state, &sender, outbound, valid.metadata, options, render).await
}

/// The first answer of a request made again with its idempotency key; a different request
/// reusing the key is a conflict.
async fn replay(store: &dyn Store, idempotency: Option<&Idempotency>) -> Result<Option<Sent>, ServiceError> {
    let Some(i) = idempotency else { return Ok(None) };
    match store.find_idempotency_key(&i.api_key_id, &i.key, Timestamp::now()).await? {
        Some(record) => replayed(i, record).map(Some),
        None => Ok(None),
    }
}

fn replayed(i: &Idempotency, record: IdempotencyRecord) -> Result<Sent, ServiceError> {
    if record.request_hash == i.request_hash {
        Ok(Sent::Replayed { response: record.response, message_id: record.message_id })
    } else {
        Err(ServiceError::IdempotencyKeyReused { key: i.key.clone(), message_id: record.message_id })
    }
}

/// The window check a send takes, or `None` where wagate cannot know the window: numbers whose
/// webhooks it has not seen for a day yet (a customer may have written before), user ids,
/// groups, numbers written without `+`. The store judges it with the message (`WindowCheck`).
fn window_check(state: &AppState, sender: &PhoneNumber, outbound: &Outbound, now: Timestamp) -> Option<WindowCheck> {
    let Recipient::Phone(to) = &outbound.recipient else {
        return None;
    };
    if !to.starts_with('+') || !window::knows_windows(sender.webhooks_since, now) {
        return None;
    }
    let is_template = matches!(outbound.content, Content::Template(_));
    Some(WindowCheck {
        customer: format!("+{}", digits(to)),
        refuse_outside: !is_template && state.config.window.outside == OutsideWindow::Refuse,
    })
}

/// Stores a checked message from `sender` with its outbox row, and wakes the number's
/// dispatcher. A template send is checked against its template first. Outside the 24-hour
/// window only templates go (unless configured to pass).
pub async fn enqueue(
    state: &AppState,
    sender: &PhoneNumber,
    mut outbound: Outbound,
    metadata: Option<Map<String, Value>>,
    options: SendOptions,
    render: &(dyn Fn(&MessageDetails) -> Value + Sync),
) -> Result<Sent, ServiceError> {
    let now = Timestamp::now();
    let send_at = options.send_at.filter(|t| *t > now);
    if let Some(t) = send_at
        && t > now.plus(SCHEDULE_HORIZON)
    {
        return Err(FieldError::new("send_at", "too_far", "must be at most 30 days ahead").into());
    }
    if let Some(e) = options.expires_at
        && e <= now
    {
        return Err(FieldError::new("expires_at", "in_the_past", "must be in the future").into());
    }
    if let Err(backlog) = state.outbox.check_room() {
        state.metrics.backpressure.inc();
        return Err(ServiceError::Backpressure { backlog });
    }
    let rendered = templates::check_send(state, sender, &mut outbound, options.simple_template.as_ref()).await?;
    let content = Value::Object(outbound.fields());
    uploads::check_named(state, &content).await?;
    let id = options.id.clone().unwrap_or_else(MessageId::generate);
    let message = Message {
        id: id.clone(),
        direction: Direction::Outbound,
        account_id: sender.account_id.clone(),
        phone_number_id: sender.id.clone(),
        contact_id: None,
        counterpart: outbound.recipient.as_str().to_owned(),
        kind: outbound.content.kind().to_owned(),
        content,
        status: if send_at.is_some() { MessageStatus::Scheduled } else { MessageStatus::Queued },
        wamid: None,
        error: None,
        metadata,
        send_at,
        expires_at: options.expires_at,
        reply_to_wamid: None,
        reply_to: None,
        from_app: false,
        rendered,
        created_at: now,
        updated_at: now,
    };
    let history = vec![StatusEntry {
        status: message.status,
        participant: None,
        occurred_at: now,
        implied: false,
        error: None,
        detail: None,
    }];
    let details = MessageDetails { message, history };
    let idempotency = options.idempotency.as_ref().map(|i| NewIdempotencyKey {
        api_key_id: i.api_key_id.clone(),
        key: i.key.clone(),
        request_hash: i.request_hash.clone(),
        response: render(&details),
        expires_at: now.plus(Duration::from_secs(state.config.messaging.idempotency_key_ttl_secs)),
    });
    let new = NewOutbound {
        id,
        account_id: details.message.account_id.clone(),
        phone_number_id: details.message.phone_number_id.clone(),
        recipient: details.message.counterpart.clone(),
        kind: details.message.kind.clone(),
        content: details.message.content.clone(),
        metadata: details.message.metadata.clone(),
        created_at: now,
        due_at: send_at.unwrap_or(now),
        send_at,
        expires_at: options.expires_at,
        window: window_check(state, sender, &outbound, now),
        idempotency,
        rendered: details.message.rendered.clone(),
    };
    match state.store.enqueue_message(new).await? {
        Enqueued::Stored => {}
        // A concurrent request with the same key stored first.
        Enqueued::KeyUsed(record) => {
            let i = options.idempotency.as_ref().expect("only a keyed send finds its key used");
            return replayed(i, record);
        }
        Enqueued::OutsideWindow { customer, last_inbound } => {
            return Err(ServiceError::OutsideWindow { customer, last_inbound });
        }
    }
    state.metrics.messages_enqueued.inc();
    state.outbox.queued(&sender.id);
    Ok(Sent::New(Box::new(details)))
}

/// `POST /v1/messages/{id}/cancel`: a message not handed to Meta yet (queued, scheduled, or
/// waiting for a retry) is cancelled; one being sent or done is a conflict.
pub async fn cancel(store: &dyn Store, outbox: &Outbox, id: &str) -> Result<MessageDetails, ServiceError> {
    let parsed = MessageId::parse(id).ok_or_else(|| ServiceError::not_found("message", id))?;
    let reason = MessageError::gateway("canceled", "cancelled at the caller's request");
    if store.cancel_unclaimed(&parsed, &reason, Timestamp::now()).await? {
        outbox.left(&parsed);
        return get(store, id).await;
    }
    let current = get(store, id).await?;
    Err(ServiceError::Conflict(format!(
        "message {id} is {} and can no longer be cancelled: only messages not yet handed to Meta can",
        current.message.status.as_str()
    )))
}

pub async fn get(store: &dyn Store, id: &str) -> Result<MessageDetails, ServiceError> {
    let parsed = MessageId::parse(id).ok_or_else(|| ServiceError::not_found("message", id))?;
    let message = store.get_message(&parsed).await?.ok_or_else(|| ServiceError::not_found("message", id))?;
    let history = store.message_history(&parsed).await?;
    Ok(MessageDetails { message, history })
}

/// `GET /v1/messages`: a page of messages, newest first, and whether there are more.
pub async fn list(
    store: &dyn Store,
    filter: &MessageFilter,
    limit: usize,
) -> Result<(Vec<Message>, bool), ServiceError> {
    let mut page = store.list_messages(filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// The wamid a reply refers to: given as Meta's wamid, or as wagate's id of a message that has
/// one, in the same conversation.
async fn resolve_reply(store: &dyn Store, sender: &PhoneNumber, reply_to: &str) -> Result<String, ServiceError> {
    if reply_to.starts_with("wamid.") {
        return Ok(reply_to.to_owned());
    }
    let unknown = || {
        FieldError::new(
            "reply_to",
            "unknown_message",
            format!("'{reply_to}' is neither a wamid nor the id of a message of this number that Meta has"),
        )
    };
    let id = MessageId::parse(reply_to).ok_or_else(unknown)?;
    match store.get_message(&id).await? {
        Some(m) if m.phone_number_id == sender.id => m.wamid.ok_or_else(|| unknown().into()),
        _ => Err(unknown().into()),
    }
}

/// The number a send goes out from: the one named (by id or display number), else the default.
/// While any live number is connected only live numbers are defaults: a send must never go to
/// the sandbox, where it would "arrive" without reaching anyone, because `from` was left out.
pub async fn resolve_sender(state: &AppState, from: Option<&str>) -> Result<PhoneNumber, ServiceError> {
    if let Some(from) = from
        && let Some(n) = super::accounts::phone_number(state, from).await?
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

/// `POST /v1/messages/{id}/read`: tells Meta the customer's message was read (which marks the
/// earlier ones read too), optionally showing "typing…" for up to 25 seconds.
pub async fn mark_read(
    store: &dyn Store,
    graph: &GraphClient,
    id: &str,
    typing: bool,
) -> Result<Message, ServiceError> {
    let MessageDetails { message, .. } = get(store, id).await?;
    let wamid = match (&message.direction, &message.wamid) {
        (Direction::Inbound, Some(w)) => w.clone(),
        _ => {
            return Err(
                FieldError::new("id", "not_inbound", "only a message a customer sent can be marked read").into()
            );
        }
    };
    send_read_receipt(store, graph, &message.phone_number_id, &ReadReceipt::new(&wamid, typing)).await?;
    Ok(message)
}

/// Sends a read receipt through the number's account. Read receipts are not messages: no
/// outbox, no pair-rate limit.
pub async fn send_read_receipt(
    store: &dyn Store,
    graph: &GraphClient,
    phone_number_id: &str,
    receipt: &ReadReceipt,
) -> Result<(), ServiceError> {
    let number = store
        .get_phone_number(phone_number_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("phone number", phone_number_id))?;
    let account = store
        .get_account(&number.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", number.account_id.as_str()))?;
    let body = serde_json::to_value(receipt).expect("a read receipt serialises");
    graph.mark_read(&Target::from(&account), phone_number_id, &body).await.map_err(|e| match e {
        GraphFailure::Meta { error, .. } => ServiceError::MetaRejected { error: Box::new(error) },
        other => ServiceError::GraphUnavailable(other.to_string()),
    })
}
