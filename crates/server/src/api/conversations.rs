//! `/v1/conversations`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_domain::window;
use wagate_storage::{Conversation, ConversationFilter, ConversationPage};

use super::list::List;
use super::messages::MessageView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ListParams, PageRequest, Path, Query};
use crate::services::conversations::{self, conversation_cursor, conversation_cursor_text, cursor_of, message_cursor};
use crate::services::messages::MessageDetails;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(conversation_messages))
        .routes(routes!(mark_conversation_read))
}

/// A conversation: one business number and one customer.
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    /// wagate's id: `cv_…`.
    id: String,
    /// The business number that owns the conversation.
    phone_number_id: String,
    contact: ConversationContact,
    /// What to send to, to reach the customer: their E.164 number, or their user id.
    to: String,
    /// The newest message, either way.
    last_message_id: Option<String>,
    last_message_at: Option<Timestamp>,
    /// When the customer last wrote (Meta's time).
    last_inbound_at: Option<Timestamp>,
    /// The customer's messages since the conversation was last marked read.
    unread_count: i64,
    window: WindowView,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationContact {
    id: String,
    wa_id: Option<String>,
    user_id: Option<String>,
    profile_name: Option<String>,
}

/// The 24-hour customer-service window: while it is open any message may be sent, after it only
/// templates.
#[derive(Serialize, ToSchema)]
pub struct WindowView {
    #[schema(example = "open")]
    state: &'static str,
    /// 24 hours after the customer's last message.
    open_until: Option<Timestamp>,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        let open_until = c.last_inbound_at.map(window::closes_at);
        let state = if window::is_open(c.last_inbound_at, Timestamp::now()) { "open" } else { "closed" };
        let to = c
            .wa_id
            .as_deref()
            .map(wagate_domain::contact::counterpart)
            .or_else(|| c.user_id.clone())
            .unwrap_or_default();
        Self {
            id: c.id.into_string(),
            phone_number_id: c.phone_number_id,
            contact: ConversationContact {
                id: c.contact_id.into_string(),
                wa_id: c.wa_id,
                user_id: c.user_id,
                profile_name: c.profile_name,
            },
            to,
            last_message_id: c.last_message_id.map(|m| m.into_string()),
            last_message_at: c.last_message_at,
            last_inbound_at: c.last_inbound_at,
            unread_count: c.unread_count,
            window: WindowView { state, open_until },
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConversationQuery {
    /// Only the conversations of this business number.
    phone_number_id: Option<String>,
}

/// List conversations by last message, newest first.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "conversations",
    params(ConversationQuery, ListParams),
    responses((status = 200, body = List<ConversationView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_conversations(
    State(state): State<AppState>,
    Query(query): Query<ConversationQuery>,
    page: PageRequest,
) -> Result<Json<List<ConversationView>>, ApiError> {
    let before = conversation_cursor(page.cursor.as_deref())?;
    let filter = ConversationFilter { phone_number_id: query.phone_number_id, contact_id: None, before };
    let (found, more) = conversations::list(state.store.as_ref(), &filter, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|c| conversation_cursor_text(&cursor_of(c)))).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Get a conversation.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "conversations",
    params(("id" = String, Path, description = "wagate's conversation id")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_conversation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(conversations::get(state.store.as_ref(), &id).await?.into()))
}

/// `?before=&after=` of a conversation's messages.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// Only messages older than this message id (`cursor` is the same).
    before: Option<String>,
    /// Only messages newer than this message id: the page just after it.
    after: Option<String>,
}

/// List a conversation's messages, both directions, newest first.
///
/// Pages go back with `before` (or `cursor`): `next_cursor` is then the oldest message of the
/// page. With `after` they go forward: `next_cursor` is the newest, to pass as `after`.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}/messages",
    tag = "conversations",
    params(("id" = String, Path, description = "wagate's conversation id"), MessagesQuery, ListParams),
    responses((status = 200, body = List<MessageView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn conversation_messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<MessagesQuery>,
    page: PageRequest,
) -> Result<Json<List<MessageView>>, ApiError> {
    let before = match query.before.as_deref() {
        Some(b) => message_cursor("before", Some(b))?,
        None => message_cursor("cursor", page.cursor.as_deref())?,
    };
    let after = message_cursor("after", query.after.as_deref())?;
    let forward = after.is_some();
    let (messages, more) =
        conversations::messages(state.store.as_ref(), &id, &ConversationPage { before, after }, page.limit).await?;
    let edge = if forward { messages.first() } else { messages.last() };
    let next_cursor = more.then(|| edge.map(|m| m.id.to_string())).flatten();
    let data = messages.into_iter().map(|message| MessageDetails { message, history: Vec::new() }.into()).collect();
    Ok(Json(List { data, next_cursor }))
}

/// Mark a conversation read.
///
/// Sends Meta a read receipt for the customer's newest message (which marks the earlier ones
/// read too, and shows blue ticks) and resets the unread count.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/read",
    tag = "conversations",
    params(("id" = String, Path, description = "wagate's conversation id")),
    responses(
        (status = 200, body = ConversationView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Meta refused the read receipt", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn mark_conversation_read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(conversations::mark_read(state.store.as_ref(), &state.graph, &id).await?.into()))
}
