//! `/v1/contacts`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::time::Timestamp;
use wagate_storage::Contact;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::contacts::{self, ContactDetails};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_contacts)).routes(routes!(get_contact, update_contact))
}

/// A customer, known by phone number (`wa_id`), by business-scoped user id (`user_id`), or both.
#[derive(Serialize, ToSchema)]
pub struct ContactView {
    /// wagate's id: `ct_…`.
    id: String,
    /// Meta's WhatsApp id (the phone number's digits); null for a username user whose number
    /// Meta did not share.
    #[schema(example = "16505551234")]
    wa_id: Option<String>,
    /// The business-scoped user id (BSUID).
    user_id: Option<String>,
    /// The name on the customer's WhatsApp profile, as last seen.
    profile_name: Option<String>,
    /// Your own fields.
    #[schema(value_type = Object)]
    attributes: Map<String, Value>,
    /// Sorted.
    tags: Vec<String>,
    /// Whether the customer stopped marketing messages: their latest stop is newer than their
    /// latest resume (or they never resumed).
    marketing_opt_out: bool,
    /// When the customer last stopped marketing messages.
    marketing_opt_out_at: Option<Timestamp>,
    /// When the customer last resumed marketing messages.
    marketing_opt_in_at: Option<Timestamp>,
    /// The customer's conversations, one per business number (`GET /v1/contacts/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    conversations: Option<Vec<ContactConversation>>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct ContactConversation {
    /// The conversation's id (`cv_…`).
    id: String,
    /// The business number that owns the conversation.
    phone_number_id: String,
    unread_count: i64,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        let marketing_opt_out = c.marketing_opted_out();
        Self {
            id: c.id.into_string(),
            wa_id: c.wa_id,
            user_id: c.user_id,
            profile_name: c.profile_name,
            attributes: c.attributes,
            tags: c.tags,
            marketing_opt_out,
            marketing_opt_out_at: c.marketing_opt_out_at,
            marketing_opt_in_at: c.marketing_opt_in_at,
            conversations: None,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<ContactDetails> for ContactView {
    fn from(d: ContactDetails) -> Self {
        let mut view = Self::from(d.contact);
        view.conversations = Some(
            d.conversations
                .into_iter()
                .map(|c| ContactConversation {
                    id: c.id.into_string(),
                    phone_number_id: c.phone_number_id,
                    unread_count: c.unread_count,
                })
                .collect(),
        );
        view
    }
}

/// `?q=&tag=` of `GET /v1/contacts`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContactQuery {
    /// Part of the profile name (any case) or of the phone number, a whole user id, or a whole
    /// tag (any case).
    q: Option<String>,
    /// Only contacts with exactly this tag.
    tag: Option<String>,
}

/// List contacts, newest first.
#[utoipa::path(
    get,
    path = "/v1/contacts",
    tag = "contacts",
    params(ContactQuery, ListParams),
    responses((status = 200, body = List<ContactView>), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_contacts(
    State(state): State<AppState>,
    Query(query): Query<ContactQuery>,
    page: PageRequest,
) -> Result<Json<List<ContactView>>, ApiError> {
    let filter = contacts::filter(query.q, query.tag, page.cursor.as_deref())?;
    let (found, more) = contacts::list(state.store.as_ref(), &filter, page.limit).await?;
    let next_cursor = more.then(|| found.last().map(|c| c.id.to_string())).flatten();
    Ok(Json(List { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Get a contact with its conversations.
#[utoipa::path(
    get,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = String, Path, description = "wagate's contact id")),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_contact(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ContactView>, ApiError> {
    Ok(Json(contacts::get(state.store.as_ref(), &id).await?.into()))
}

/// `PATCH /v1/contacts/{id}`: give at least one field.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the service parses it (`wagate_domain::contact::ContactPatch`).
pub struct UpdateContact {
    /// Merged into the contact's attributes; a `null` value deletes the key. Names are 1 to 64
    /// characters; at most 100 attributes and 16 KiB of JSON in all.
    #[schema(value_type = Option<Object>, example = json!({"plan": "gold", "city": null}))]
    attributes: Option<Map<String, Value>>,
    /// Replaces the tags: at most 50, each 1 to 64 characters, unique.
    tags: Option<Vec<String>>,
    /// True: the customer opted out of marketing messages; false: they opted in again.
    marketing_opt_out: Option<bool>,
}

/// Change a contact's attributes, tags or marketing opt-out.
#[utoipa::path(
    patch,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = String, Path, description = "wagate's contact id")),
    request_body = UpdateContact,
    responses(
        (status = 200, body = ContactView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A field breaks a rule; `path` names it", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<ContactView>, ApiError> {
    Ok(Json(contacts::update(state.store.as_ref(), &id, &body).await?.into()))
}
