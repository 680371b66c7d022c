//! Contacts: who wrote, by phone (`wa_id`) and business-scoped user id (`user_id`), linked when
//! both are known; their attributes, tags and marketing preference. Also what the webhook
//! processor hands over about contacts: each inbound message's sender, number changes (`system`
//! messages) and `user_preferences` changes.

use serde::Deserialize;
use serde_json::Value;
use wagate_domain::contact::{ContactPatch, counterpart, non_empty};
use wagate_domain::id::AccountId;
use wagate_domain::id::ContactId;
use wagate_domain::meta::webhook::{Contact as WebhookContact, InboundMessage, Metadata, parse_unix_seconds};
use wagate_domain::phone::PhoneNumber;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{
    Contact, ContactFilter, ContactIds, ContactUpdate, ContactUpdated, Conversation, ConversationFilter,
    ConversationPage, Message, Numbered, StorageError, Store,
};

use super::ServiceError;

/// The sender of an inbound message, as the processor files it.
#[derive(Debug, PartialEq)]
pub struct Sender {
    /// The message's counterpart: `+` and the digits of the wa_id, or the BSUID without one.
    pub from: String,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub profile_name: Option<String>,
}

impl Sender {
    /// From the message's `from` / `from_user_id` and the value's `contacts` entry for it.
    /// Meta sends `from` and `wa_id` empty for some username users (`business-scoped-user-ids.mdx`);
    /// None when the message names nobody at all.
    pub fn of(contacts: &[WebhookContact], m: &InboundMessage) -> Option<Self> {
        let wa_id = non_empty(Some(&m.from));
        let from_user_id = non_empty(m.rest.get("from_user_id").and_then(Value::as_str));
        let agrees = |ours: &Option<String>, theirs: &Option<String>| {
            let theirs = non_empty(theirs.as_deref());
            ours.is_none() || theirs.is_none() || theirs == *ours
        };
        let entry = contacts
            .iter()
            .find(|c| wa_id.is_some() && non_empty(c.wa_id.as_deref()) == wa_id)
            .or_else(|| {
                contacts.iter().find(|c| from_user_id.is_some() && non_empty(c.user_id.as_deref()) == from_user_id)
            })
            .or_else(|| match contacts {
                // The only entry, when none of its ids contradicts the message's: a wa_id or user
                // id of someone else must not be linked to this sender.
                [only] if agrees(&wa_id, &only.wa_id) && agrees(&from_user_id, &only.user_id) => Some(only),
                _ => None,
            });
        let user_id = from_user_id.or_else(|| entry.and_then(|c| non_empty(c.user_id.as_deref())));
        let wa_id = wa_id.or_else(|| entry.and_then(|c| non_empty(c.wa_id.as_deref())));
        let from = wa_id.as_deref().map(counterpart).or_else(|| user_id.clone())?;
        let profile_name = entry.and_then(|c| c.profile.as_ref()).and_then(|p| non_empty(p.name.as_deref()));
        Some(Self { from, wa_id, user_id, profile_name })
    }
}

/// `system` messages: a customer changed number (`user_changed_number`, the new `wa_id`) or
/// business-scoped user id (`user_changed_user_id`, the new `user_id`). The contact keeps its
/// conversations under the new ids. They are not customer messages: nothing is stored in the
/// conversation and the 24-hour window does not move.
pub async fn apply_system_message(store: &dyn Store, m: &InboundMessage) -> Result<(), StorageError> {
    let system = m.rest.get("system");
    let field = |name: &str| non_empty(system.and_then(|s| s.get(name)).and_then(Value::as_str));
    let kind = field("type").unwrap_or_default();
    if kind != "user_changed_number" && kind != "user_changed_user_id" {
        tracing::info!(kind, wamid = %m.id, "system message not applied");
        return Ok(());
    }
    let old = ContactIds {
        wa_id: non_empty(Some(&m.from)),
        user_id: non_empty(m.rest.get("from_user_id").and_then(Value::as_str)),
    };
    let new = ContactIds { wa_id: field("wa_id"), user_id: field("user_id") };
    if (old.wa_id.is_none() && old.user_id.is_none()) || (new.wa_id.is_none() && new.user_id.is_none()) {
        tracing::warn!(kind, wamid = %m.id, "system message without the old or the new id");
        return Ok(());
    }
    let at = parse_unix_seconds(&m.timestamp).unwrap_or_else(Timestamp::now);
    match store.change_contact_ids(&old, &new, at).await? {
        Some(contact) => tracing::info!(kind, contact = %contact, "customer's ids changed"),
        None => tracing::info!(kind, wamid = %m.id, "ids changed of a customer never seen"),
    }
    Ok(())
}

/// A `user_preferences` value (`webhooks/reference/user_preferences.mdx`).
#[derive(Deserialize)]
struct PreferencesValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<WebhookContact>,
    #[serde(default)]
    user_preferences: Vec<Preference>,
}

#[derive(Deserialize)]
struct Preference {
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    category: String,
    /// `stop` or `resume`.
    #[serde(default)]
    value: String,
    /// Unix seconds; an integer in Meta's example, accepted as a string too.
    #[serde(default)]
    timestamp: Value,
}

/// `user_preferences`: a customer stopped or resumed marketing messages. Applied to the contact
/// (made if unknown) by the time Meta gives, so late or repeated webhooks change nothing.
pub async fn apply_user_preferences(
    store: &dyn Store,
    account_id: &AccountId,
    value: &Value,
) -> Result<Result<(), String>, StorageError> {
    let value: PreferencesValue = match serde_json::from_value(value.clone()) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("user_preferences change: {e}"))),
    };
    // As for messages: only about a number of the account whose app signed the delivery.
    let number = match &value.metadata {
        Some(m) => store.get_phone_number(&m.phone_number_id).await?,
        None => None,
    };
    if number.is_none_or(|n| &n.account_id != account_id) {
        return Ok(Err(format!("user_preferences change not about a number of account {account_id}")));
    }
    let mut problems = Vec::new();
    for p in &value.user_preferences {
        if p.category != "marketing_messages" {
            tracing::info!(category = %p.category, "user preference category not tracked");
            continue;
        }
        let opted_out = match p.value.as_str() {
            "stop" => true,
            "resume" => false,
            other => {
                problems.push(format!("user_preferences value '{other}' is neither stop nor resume"));
                continue;
            }
        };
        let ids = ContactIds { wa_id: non_empty(p.wa_id.as_deref()), user_id: non_empty(p.user_id.as_deref()) };
        if ids.wa_id.is_none() && ids.user_id.is_none() {
            problems.push("a user preference names neither wa_id nor user_id".into());
            continue;
        }
        let at = match &p.timestamp {
            Value::Number(n) => n.as_i64().map(Timestamp::from_unix_seconds),
            Value::String(s) => parse_unix_seconds(s),
            _ => None,
        }
        .unwrap_or_else(Timestamp::now);
        let name = value
            .contacts
            .iter()
            .find(|c| {
                (ids.wa_id.is_some() && non_empty(c.wa_id.as_deref()) == ids.wa_id)
                    || (ids.user_id.is_some() && non_empty(c.user_id.as_deref()) == ids.user_id)
            })
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| non_empty(p.name.as_deref()));
        let contact = store.upsert_contact(&ids, name.as_deref(), Timestamp::now()).await?;
        store.set_marketing_preference(&contact, opted_out, at).await?;
    }
    Ok(if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) })
}

/// A contact with its conversations (one per business number it wrote to).
pub struct ContactDetails {
    pub contact: Contact,
    pub conversations: Vec<Conversation>,
}

fn contact_id(id: &str) -> Result<ContactId, ServiceError> {
    ContactId::parse(id).ok_or_else(|| ServiceError::not_found("contact", id))
}

/// `GET /v1/contacts`: a page, newest first, and whether more follow.
pub async fn list(
    store: &dyn Store,
    filter: &ContactFilter,
    limit: usize,
) -> Result<(Vec<Contact>, bool), ServiceError> {
    let mut contacts = store.list_contacts(filter, limit as u32 + 1).await?;
    let more = contacts.len() > limit;
    contacts.truncate(limit);
    Ok((contacts, more))
}

/// `GET /v1/contacts/{id}`.
pub async fn get(store: &dyn Store, id: &str) -> Result<ContactDetails, ServiceError> {
    let id = contact_id(id)?;
    let contact = store.get_contact(&id).await?.ok_or_else(|| ServiceError::not_found("contact", id.as_str()))?;
    let filter = ConversationFilter { contact_id: Some(id), ..Default::default() };
    let conversations = store.list_conversations(&filter, 100).await?;
    Ok(ContactDetails { contact, conversations })
}

/// `PATCH /v1/contacts/{id}`: attributes merged (`null` deletes a key), tags replaced, the
/// marketing opt-out set or cleared.
pub async fn update(store: &dyn Store, id: &str, body: &Value) -> Result<ContactDetails, ServiceError> {
    let patch = ContactPatch::parse(body)?;
    let contact = contact_id(id)?;
    let update = ContactUpdate {
        attributes: patch.attributes,
        tags: patch.tags,
        marketing_opt_out: patch.marketing_opt_out,
        at: Timestamp::now(),
    };
    match store.update_contact(&contact, &update).await? {
        ContactUpdated::Updated => get(store, id).await,
        ContactUpdated::NotFound => Err(ServiceError::not_found("contact", id)),
        ContactUpdated::Invalid(e) => Err(e.into()),
    }
}

/// Page `page` (from 1) of `limit` contacts `filter` matches, newest first, with how many
/// match in all: for surfaces that page by number.
pub async fn numbered(
    store: &dyn Store,
    filter: &ContactFilter,
    page: u32,
    limit: u32,
) -> Result<Numbered<Contact>, ServiceError> {
    Ok(store.contacts_numbered(filter, offset("page", page, limit)?, limit).await?)
}

/// Page `page` (from 1) of `limit` of a contact's messages with every business number, newest
/// first, within `bounds`, with how many there are.
pub async fn messages_numbered(
    store: &dyn Store,
    id: &str,
    bounds: &ConversationPage,
    page: u32,
    limit: u32,
) -> Result<Numbered<Message>, ServiceError> {
    let contact = contact_id(id)?;
    if store.get_contact(&contact).await?.is_none() {
        return Err(ServiceError::not_found("contact", id));
    }
    Ok(store.contact_messages(&contact, bounds, offset("page", page, limit)?, limit).await?)
}

/// How many items come before page `page` (from 1) of `limit` each.
fn offset(path: &str, page: u32, limit: u32) -> Result<u32, FieldError> {
    page.checked_sub(1)
        .and_then(|before| before.checked_mul(limit))
        .ok_or_else(|| FieldError::new(path, "range", "must be a page number from 1, within the list"))
}

/// The contact with this phone number, made when there is none yet (as the customer's first
/// message would make it).
pub async fn by_phone(store: &dyn Store, phone: &PhoneNumber) -> Result<Contact, ServiceError> {
    if let Some(found) = store.get_contact_by_wa_id(phone.wa_id()).await? {
        return Ok(found);
    }
    let ids = ContactIds { wa_id: Some(phone.wa_id().to_owned()), user_id: None };
    let id = store.upsert_contact(&ids, None, Timestamp::now()).await?;
    store.get_contact(&id).await?.ok_or_else(|| ServiceError::not_found("contact", id.as_str()))
}

/// `?q=` and `?tag=` of `GET /v1/contacts`, checked.
pub fn filter(q: Option<String>, tag: Option<String>, cursor: Option<&str>) -> Result<ContactFilter, FieldError> {
    let before = cursor
        .map(|c| {
            ContactId::parse(c)
                .ok_or_else(|| FieldError::new("cursor", "invalid_value", "is not a cursor this API gave"))
        })
        .transpose()?;
    if let Some(q) = &q {
        wagate_domain::validation::check_length("q", q, 0, 256)?;
    }
    Ok(ContactFilter { q: q.filter(|q| !q.trim().is_empty()), tag: tag.filter(|t| !t.is_empty()), before })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(v: Value) -> InboundMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn senders_are_found_by_phone_or_by_user_id() {
        // `business-scoped-user-ids.mdx`: a username user, wa_id and from empty.
        let contacts: Vec<WebhookContact> = serde_json::from_value(json!([{
            "profile": {"name": "Sheena Nelson", "username": "@realsheenanelson", "country_code": "US"},
            "wa_id": "", "user_id": "US.13491208655302741918"
        }]))
        .unwrap();
        let m = message(json!({"from": "", "from_user_id": "US.13491208655302741918", "id": "wamid.X",
            "timestamp": "1749416383", "type": "text", "text": {"body": "Does it come in another color?"}}));
        let s = Sender::of(&contacts, &m).unwrap();
        assert_eq!(
            s,
            Sender {
                from: "US.13491208655302741918".into(),
                wa_id: None,
                user_id: Some("US.13491208655302741918".into()),
                profile_name: Some("Sheena Nelson".into()),
            }
        );
        let contacts: Vec<WebhookContact> =
            serde_json::from_value(json!([{"profile": {"name": "Pablo"}, "wa_id": "16505551234", "user_id": "US.1"}]))
                .unwrap();
        let m = message(
            json!({"from": "16505551234", "id": "wamid.Y", "timestamp": "1", "type": "text", "text": {"body": "x"}}),
        );
        let s = Sender::of(&contacts, &m).unwrap();
        assert_eq!((s.from.as_str(), s.user_id.as_deref()), ("+16505551234", Some("US.1")));
        // The only entry is someone else's: neither its user id nor its name is taken.
        let other: Vec<WebhookContact> =
            serde_json::from_value(json!([{"profile": {"name": "Other"}, "wa_id": "16505559999", "user_id": "US.9"}]))
                .unwrap();
        let s = Sender::of(&other, &m).unwrap();
        assert_eq!((s.user_id, s.profile_name), (None, None));
        // An entry without a wa_id, alone: Meta's ids for this sender.
        let partial: Vec<WebhookContact> =
            serde_json::from_value(json!([{"profile": {"name": "Bo"}, "wa_id": "", "user_id": "US.2"}])).unwrap();
        let s = Sender::of(&partial, &m).unwrap();
        assert_eq!((s.user_id.as_deref(), s.profile_name.as_deref()), (Some("US.2"), Some("Bo")));
        let nobody = message(json!({"from": "", "id": "wamid.Z", "timestamp": "1", "type": "text"}));
        assert_eq!(Sender::of(&[], &nobody), None);
    }
}
