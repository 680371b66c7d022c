//! Conversations: one business number and one contact, with its messages both ways, its unread
//! count and its 24-hour customer-service window.

use wagate_domain::id::{ConversationId, MessageId};
use wagate_domain::message::ReadReceipt;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{Conversation, ConversationCursor, ConversationFilter, ConversationPage, Message, Store};

use super::ServiceError;
use super::messages::send_read_receipt;
use crate::graph::GraphClient;

fn conversation_id(id: &str) -> Result<ConversationId, ServiceError> {
    ConversationId::parse(id).ok_or_else(|| ServiceError::not_found("conversation", id))
}

/// Parses a message-id cursor (`cursor`, `before`, `after`).
pub fn message_cursor(field: &str, value: Option<&str>) -> Result<Option<MessageId>, FieldError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            MessageId::parse(v)
                .ok_or_else(|| FieldError::new(field, "invalid_value", "must be a message id (msg_…) this API gave"))
        })
        .transpose()
}

/// A conversation's place in the order of `GET /v1/conversations`.
pub fn cursor_of(c: &Conversation) -> ConversationCursor {
    ConversationCursor { last_message_id: c.last_message_id.clone(), id: c.id.clone() }
}

/// The opaque `cursor` of `GET /v1/conversations`: the conversation's id, and its last message's
/// id when it has one.
pub fn conversation_cursor_text(c: &ConversationCursor) -> String {
    match &c.last_message_id {
        Some(m) => format!("{}.{m}", c.id),
        None => c.id.to_string(),
    }
}

/// Parses a `cursor` that `conversation_cursor_text` made.
pub fn conversation_cursor(value: Option<&str>) -> Result<Option<ConversationCursor>, FieldError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let (id, message) = match v.split_once('.') {
        Some((id, m)) => (id, MessageId::parse(m).map(Some)),
        None => (v, Some(None)),
    };
    match (ConversationId::parse(id), message) {
        (Some(id), Some(last_message_id)) => Ok(Some(ConversationCursor { last_message_id, id })),
        _ => Err(FieldError::new("cursor", "invalid_value", "is not a cursor this API gave")),
    }
}

/// `GET /v1/conversations`: a page by last message, newest first, and whether more follow.
pub async fn list(
    store: &dyn Store,
    filter: &ConversationFilter,
    limit: usize,
) -> Result<(Vec<Conversation>, bool), ServiceError> {
    let mut found = store.list_conversations(filter, limit as u32 + 1).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    Ok((found, more))
}

pub async fn get(store: &dyn Store, id: &str) -> Result<Conversation, ServiceError> {
    let cid = conversation_id(id)?;
    store.get_conversation(&cid).await?.ok_or_else(|| ServiceError::not_found("conversation", id))
}

/// `GET /v1/conversations/{id}/messages`: newest first, and whether more follow in the
/// direction of the page (older for `before` or no cursor, newer for `after`).
pub async fn messages(
    store: &dyn Store,
    id: &str,
    page: &ConversationPage,
    limit: usize,
) -> Result<(Vec<Message>, bool), ServiceError> {
    if page.before.is_some() && page.after.is_some() {
        return Err(FieldError::new("after", "exclusive", "give before or after, not both").into());
    }
    let conversation = get(store, id).await?;
    let mut found = store.conversation_messages(&conversation.id, page, limit as u32 + 1).await?;
    let more = found.len() > limit;
    if more {
        // The extra one is beyond the page: the oldest for `before`, the newest for `after`.
        if page.after.is_some() {
            found.remove(0);
        } else {
            found.truncate(limit);
        }
    }
    Ok((found, more))
}

/// `POST /v1/conversations/{id}/read`: tells Meta the customer's newest message was read
/// (which marks the earlier ones read too), then nothing before it counts as unread.
pub async fn mark_read(store: &dyn Store, graph: &GraphClient, id: &str) -> Result<Conversation, ServiceError> {
    let conversation = get(store, id).await?;
    let Some(newest) = store.newest_inbound(&conversation.id).await? else {
        return Err(ServiceError::Conflict("the customer has sent nothing in this conversation to mark read".into()));
    };
    let Some(wamid) = newest.wamid.as_deref() else {
        return Err(ServiceError::Conflict("the customer's newest message has no wamid".into()));
    };
    send_read_receipt(store, graph, &newest.phone_number_id, &ReadReceipt::new(wamid, false)).await?;
    store.mark_conversation_read(&conversation.id, &newest.id, Timestamp::now()).await?;
    get(store, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_cursors_round_trip_with_or_without_a_last_message() {
        let id = ConversationId::generate();
        for last_message_id in [Some(MessageId::generate()), None] {
            let c = ConversationCursor { last_message_id, id: id.clone() };
            assert_eq!(conversation_cursor(Some(&conversation_cursor_text(&c))).unwrap(), Some(c));
        }
        assert_eq!(conversation_cursor(None).unwrap(), None);
        for bad in ["bad", "msg_01J00000000000000000000000", &format!("{id}.bad"), &format!("{id}.")] {
            assert_eq!(conversation_cursor(Some(bad)).unwrap_err().path, "cursor", "{bad}");
        }
    }
}
