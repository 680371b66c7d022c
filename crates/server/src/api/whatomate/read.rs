//! `GET /api/contacts` and `GET /api/contacts/{id}/messages`, paged by number with totals.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use wagate_domain::status::MessageStatus;
use wagate_storage::{Contact, ConversationPage, Direction, Message};

use super::common::{Request, WhatomateError, paging, path_id, query, renaming, success};
use crate::services::contacts;
use crate::services::conversations::message_cursor;

#[derive(Deserialize)]
struct ContactsQuery {
    search: Option<String>,
    page: Option<String>,
    limit: Option<String>,
}

/// Contacts newest first, `search` matching part of a name (any case) or of a phone number.
pub(super) async fn list_contacts(req: Request) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let q: ContactsQuery = query(&req.uri)?;
    let (page, limit) = paging(q.page.as_deref(), q.limit.as_deref())?;
    let filter = contacts::filter(q.search, None, None)
        .map_err(|e| super::common::rename_field(e, renaming(&[("q", "search")])))?;
    let found = contacts::numbered(req.state.store.as_ref(), &filter, page, limit).await?;
    let items: Vec<Value> = found.items.iter().map(contact_view).collect();
    Ok(success(json!({"items": items, "total": found.total, "page": page, "limit": limit})))
}

fn contact_view(c: &Contact) -> Value {
    let name = c.profile_name.clone().unwrap_or_default();
    json!({
        "id": c.id.as_str(),
        "phone_number": c.wa_id,
        "user_id": c.user_id,
        "name": name,
        "profile_name": name,
        "tags": c.tags,
        "custom_fields": c.attributes,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

#[derive(Deserialize)]
struct MessagesQuery {
    page: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

/// A contact's messages with every business number. Page 1 is the newest `limit` messages
/// (within `before`/`after`); each page lists its messages oldest first, as a chat shows them.
pub(super) async fn list_messages(
    req: Request,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let id = path_id(path)?;
    let q: MessagesQuery = query(&req.uri)?;
    let (page, limit) = paging(q.page.as_deref(), q.limit.as_deref())?;
    let bounds = ConversationPage {
        before: message_cursor("before", q.before.as_deref())?,
        after: message_cursor("after", q.after.as_deref())?,
    };
    let found = contacts::messages_numbered(req.state.store.as_ref(), &id, &bounds, page, limit)
        .await
        .map_err(|e| WhatomateError::renamed(e, renaming(&[("contact", "id")])))?;
    let items: Vec<Value> = found.items.iter().rev().map(|m| message_view(m, &id)).collect();
    Ok(success(json!({"items": items, "total": found.total, "page": page, "limit": limit})))
}

fn message_view(m: &Message, contact_id: &str) -> Value {
    json!({
        "id": m.id.as_str(),
        "wa_message_id": m.wamid,
        "contact_id": contact_id,
        "direction": match m.direction {
            Direction::Inbound => "incoming",
            Direction::Outbound => "outgoing",
        },
        "type": m.kind,
        "content": content(m),
        "status": status(m),
        "error_message": m.error.as_ref().map(|e| e.message.as_str()),
        "timestamp": m.created_at,
    })
}

/// Whatomate's status flow, `pending → sent → delivered → read | failed`; a customer's message
/// is `received`.
fn status(m: &Message) -> &'static str {
    match m.status {
        MessageStatus::Scheduled | MessageStatus::Queued | MessageStatus::Sending => "pending",
        MessageStatus::Accepted | MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read | MessageStatus::Played => "read",
        MessageStatus::Failed | MessageStatus::Canceled => "failed",
        MessageStatus::Received => "received",
    }
}

/// A text as Whatomate shows it (`{"text": "…"}`); a template by name, language and the body the
/// customer saw; any other type as Meta's object of that type (caption, filename, buttons…).
fn content(m: &Message) -> Value {
    let object = match &m.content {
        Value::Object(fields) => fields.get(&m.kind).cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match m.kind.as_str() {
        "text" => json!({"text": object.get("body")}),
        "template" => json!({
            "template_name": object.get("name"),
            "language": object.get("language").and_then(|l| l.get("code")),
            "text": m.rendered.as_ref().and_then(|r| r.get("body")),
        }),
        _ => object,
    }
}
