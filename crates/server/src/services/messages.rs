//! Messages: validated against Meta's rules, then written with their outbox row in one
//! transaction; the dispatcher takes it from there. Shared by the native API and the
//! Meta-compatible surface.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};
use wagate_domain::id::{ApiKeyId, MessageId};
use wagate_domain::message::{Content, MessageError, Outbound, ReadReceipt, Recipient, SendRequest};
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_domain::window;
use wagate_storage::{
    AccountMode, Direction, Enqueued, IdempotencyRecord, Message, MessageFilter, NewIdempotencyKey, NewOutbound,
    PhoneNumber, StatusEntry, WindowCheck,
};

use super::ServiceError;
use crate::config::OutsideWindow;
use crate::graph::{GraphFailure, Target};
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

/// Phone numbers by id, as recently read: a send names its number by id, and reading it each
/// time would be a database round trip per request for what changes rarely. An entry lasts
/// [`SENDER_CACHED_FOR`], or until this instance's `settings_epoch` moves.
#[derive(Default)]
pub struct SenderCache(std::sync::Mutex<std::collections::HashMap<String, (PhoneNumber, u64, std::time::Instant)>>);

const SENDER_CACHED_FOR: Duration = Duration::from_secs(2);

impl SenderCache {
    pub(super) fn get(&self, id: &str, epoch: u64) -> Option<PhoneNumber> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(id).filter(|(_, e, at)| *e == epoch && at.elapsed() < SENDER_CACHED_FOR).map(|(n, _, _)| n.clone())
    }

    pub(super) fn put(&self, number: &PhoneNumber, epoch: u64) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only real numbers get here, so the map stays as small as the numbers connected.
        cache.insert(number.id.clone(), (number.clone(), epoch, std::time::Instant::now()));
    }
}

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
}

/// `POST /v1/messages`. `render` makes the answer (kept with an idempotency key, to give again).
pub async fn send(
    state: &AppState,
    req: SendRequest,
    idempotency: Option<Idempotency>,
    render: &(dyn Fn(&MessageDetails) -> Value + Sync),
) -> Result<Sent, ServiceError> {
    if let Some(replay) = replay(state, idempotency.as_ref()).await? {
        return Ok(replay);
    }
    let valid = req.validate()?;
    let sender = resolve_sender(state, valid.from.as_deref()).await?;
    let mut outbound = valid.outbound;
    if let Some(reply_to) = &valid.reply_to {
        outbound.context = Some(resolve_reply(state, &sender, reply_to).await?);
    }
    let options = SendOptions { send_at: valid.send_at, expires_at: valid.expires_at, idempotency };
    enqueue(state, &sender, &outbound, valid.metadata, options, render).await
}

/// The first answer of a request made again with its idempotency key; a different request
/// reusing the key is a conflict.
async fn replay(state: &AppState, idempotency: Option<&Idempotency>) -> Result<Option<Sent>, ServiceError> {
    let Some(i) = idempotency else { return Ok(None) };
    match state.store.find_idempotency_key(&i.api_key_id, &i.key, Timestamp::now()).await? {
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
/// dispatcher. Outside the 24-hour window only templates go (unless configured to pass).
pub async fn enqueue(
    state: &AppState,
    sender: &PhoneNumber,
    outbound: &Outbound,
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
    let backlog = state.backlog.load(Ordering::Relaxed);
    if backlog >= i64::try_from(state.config.dispatcher.max_backlog).unwrap_or(i64::MAX) {
        state.metrics.backpressure.inc();
        return Err(ServiceError::Backpressure { backlog });
    }
    let id = MessageId::generate();
    let message = Message {
        id: id.clone(),
        direction: Direction::Outbound,
        account_id: sender.account_id.clone(),
        phone_number_id: sender.id.clone(),
        contact_id: None,
        counterpart: outbound.recipient.as_str().to_owned(),
        kind: outbound.content.kind().to_owned(),
        content: Value::Object(outbound.fields()),
        status: if send_at.is_some() { MessageStatus::Scheduled } else { MessageStatus::Queued },
        wamid: None,
        error: None,
        metadata,
        send_at,
        expires_at: options.expires_at,
        reply_to_wamid: None,
        reply_to: None,
        from_app: false,
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
        window: window_check(state, sender, outbound, now),
        idempotency,
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
    state.backlog.fetch_add(1, Ordering::Relaxed);
    state.wakeups.wake(&sender.id);
    Ok(Sent::New(Box::new(details)))
}

/// `POST /v1/messages/{id}/cancel`: a message not handed to Meta yet (queued, scheduled, or
/// waiting for a retry) is cancelled; one being sent or done is a conflict.
pub async fn cancel(state: &AppState, id: &str) -> Result<MessageDetails, ServiceError> {
    let parsed = MessageId::parse(id).ok_or_else(|| ServiceError::not_found("message", id))?;
    let reason = MessageError::gateway("canceled", "cancelled at the caller's request");
    if state.store.cancel_unclaimed(&parsed, &reason, Timestamp::now()).await? {
        state.backlog.fetch_sub(1, Ordering::Relaxed);
        let _ = state.completions.send(parsed.clone());
        return get(state, id).await;
    }
    let current = get(state, id).await?;
    Err(ServiceError::Conflict(format!(
        "message {id} is {} and can no longer be cancelled: only messages not yet handed to Meta can",
        current.message.status.as_str()
    )))
}

pub async fn get(state: &AppState, id: &str) -> Result<MessageDetails, ServiceError> {
    let parsed = MessageId::parse(id).ok_or_else(|| ServiceError::not_found("message", id))?;
    let message = state.store.get_message(&parsed).await?.ok_or_else(|| ServiceError::not_found("message", id))?;
    let history = state.store.message_history(&parsed).await?;
    Ok(MessageDetails { message, history })
}

/// `GET /v1/messages`: a page of messages, newest first, and whether there are more.
pub async fn list(
    state: &AppState,
    filter: &MessageFilter,
    limit: usize,
) -> Result<(Vec<Message>, bool), ServiceError> {
    let mut page = state.store.list_messages(filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// The wamid a reply refers to: given as Meta's wamid, or as wagate's id of a message that has
/// one, in the same conversation.
async fn resolve_reply(state: &AppState, sender: &PhoneNumber, reply_to: &str) -> Result<String, ServiceError> {
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
    match state.store.get_message(&id).await? {
        Some(m) if m.phone_number_id == sender.id => m.wamid.ok_or_else(|| unknown().into()),
        _ => Err(unknown().into()),
    }
}

/// The number a send goes out from: the one named (by id or display number), else the default.
/// While any live number is connected only live numbers are defaults: a send must never go to
/// the sandbox, where it would "arrive" without reaching anyone, because `from` was left out.
pub async fn resolve_sender(state: &AppState, from: Option<&str>) -> Result<PhoneNumber, ServiceError> {
    if let Some(from) = from {
        let epoch = state.settings_epoch.load(Ordering::Relaxed);
        if let Some(n) = state.senders.get(from, epoch) {
            return Ok(n);
        }
        if let Some(n) = state.store.get_phone_number(from).await? {
            state.senders.put(&n, epoch);
            return Ok(n);
        }
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
pub async fn mark_read(state: &AppState, id: &str, typing: bool) -> Result<Message, ServiceError> {
    let MessageDetails { message, .. } = get(state, id).await?;
    let wamid = match (&message.direction, &message.wamid) {
        (Direction::Inbound, Some(w)) => w.clone(),
        _ => {
            return Err(
                FieldError::new("id", "not_inbound", "only a message a customer sent can be marked read").into()
            );
        }
    };
    send_read_receipt(state, &message.phone_number_id, &ReadReceipt::new(&wamid, typing)).await?;
    Ok(message)
}

/// Sends a read receipt through the number's account. Read receipts are not messages: no
/// outbox, no pair-rate limit.
pub async fn send_read_receipt(
    state: &AppState,
    phone_number_id: &str,
    receipt: &ReadReceipt,
) -> Result<(), ServiceError> {
    let number = state
        .store
        .get_phone_number(phone_number_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("phone number", phone_number_id))?;
    let account = state
        .store
        .get_account(&number.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", number.account_id.as_str()))?;
    let body = serde_json::to_value(receipt).expect("a read receipt serialises");
    state.graph.mark_read(&Target::from(&account), phone_number_id, &body).await.map_err(|e| match e {
        GraphFailure::Meta { error, .. } => ServiceError::MetaRejected { error: Box::new(error) },
        other => ServiceError::GraphUnavailable(other.to_string()),
    })
}

/// How a send made through the Meta-compatible surface ended, in Meta's terms.
pub enum DispatchOutcome {
    /// Meta's answer to the send.
    Accepted(Value),
    /// Meta's error answer (HTTP status and body), or none when the gateway gave up itself.
    Failed { status: u16, body: Option<Value>, error: Option<MessageError> },
    /// Not handed to Meta in time, and cancelled: nothing was sent.
    Cancelled,
}

/// Waits, at most about `wait`, for the dispatcher to hand message `id` to Meta. A message not
/// yet handed over when the time is up is cancelled (so a client's retry cannot send it twice);
/// one being handed over is waited for until its result is known.
pub async fn wait_for_dispatch(
    state: &AppState,
    id: &MessageId,
    wait: Duration,
) -> Result<DispatchOutcome, ServiceError> {
    let mut done = state.completions.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(outcome) = outcome(state, id).await? {
            return Ok(outcome);
        }
        if tokio::time::Instant::now() >= deadline {
            let reason = MessageError::gateway(
                "not_dispatched_in_time",
                format!("not handed to Meta within {} ms; cancelled so a retry cannot send it twice", wait.as_millis()),
            );
            if state.store.cancel_unclaimed(id, &reason, Timestamp::now()).await? {
                return Ok(DispatchOutcome::Cancelled);
            }
        }
        let tick = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => break,
                got = done.recv() => match got {
                    Ok(done_id) if &done_id == id => break,
                    Ok(_) => {}
                    // Lagged or closed: the database is the truth; read it at the next tick.
                    Err(_) => {
                        (&mut tick).await;
                        break;
                    }
                },
            }
        }
    }
}

async fn outcome(state: &AppState, id: &MessageId) -> Result<Option<DispatchOutcome>, ServiceError> {
    let Some(message) = state.store.get_message(id).await? else {
        return Err(ServiceError::not_found("message", id.as_str()));
    };
    let entry = |status: MessageStatus| async move {
        let history = state.store.message_history(id).await?;
        Ok::<_, ServiceError>(history.into_iter().find(|e| e.status == status))
    };
    Ok(match message.status {
        MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Scheduled => None,
        MessageStatus::Canceled => Some(DispatchOutcome::Cancelled),
        MessageStatus::Failed if message.wamid.is_none() => {
            let answer = entry(MessageStatus::Failed).await?.and_then(|e| e.detail);
            let status = answer.as_ref().and_then(|a| a["status"].as_u64()).unwrap_or(500) as u16;
            Some(DispatchOutcome::Failed { status, body: answer.map(|a| a["body"].clone()), error: message.error })
        }
        _ => {
            // Meta took it; whatever happened since (even a `failed` webhook) is not the send's answer.
            let answer = entry(MessageStatus::Accepted).await?.and_then(|e| e.detail);
            let wamid = message.wamid.unwrap_or_default();
            Some(DispatchOutcome::Accepted(answer.unwrap_or_else(|| {
                json!({"messaging_product": "whatsapp", "contacts": [{"input": message.counterpart}], "messages": [{"id": wamid}]})
            })))
        }
    })
}
