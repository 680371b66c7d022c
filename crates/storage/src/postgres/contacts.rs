//! Contacts and conversations.
//!
//! A contact is known by phone (`wa_id`), by business-scoped user id (`user_id`), or both. Each
//! id it has had is an *identity* (`contact_identities`): the counterpart its messages are filed
//! under (`+` and the digits of a wa_id, or the BSUID). A conversation (`threads`) is one business
//! number and one contact; its messages are that number's messages with any of the contact's
//! identities, both directions, found through the `messages_conversation` index once they have
//! left the queue, and through the outbox while they wait. Sends therefore stay append-only:
//! nothing about a conversation is written when a message is accepted.
//!
//! Linking: when a webhook names a wa_id and a user_id that belong to two different contacts,
//! the newer contact is merged into the older one (ids are time-ordered: the smaller id wins),
//! with its identities, conversations, messages, tags and attributes (the older one's win).
//!
//! An identity belongs to one contact and stays with it when the contact's ids change (only a
//! merge moves it): a late message from a customer's old number is filed in the conversation
//! it always was in, and a contact is made only for ids no contact has ever had.

use async_trait::async_trait;
use serde_json::Value;
use wagate_domain::contact::{MAX_TAGS, counterpart, fold, merge_attributes};
use wagate_domain::event::EventType;
use wagate_domain::id::{ContactId, ConversationId, MessageId};
use wagate_domain::time::Timestamp;

use super::events::emit_all;
use super::{PgStore, Tx, all, execute, first, value};
use crate::shared::{self, Columns, Holders, Seen, json_text, parse_object};
use crate::*;

async fn contact_by(tx: &mut Tx, sql: &'static str, value: &str) -> Result<Option<String>> {
    first(&mut **tx, sql, (value,), |r| r.get(0)).await
}

/// Who has each of these ids now, and who had it.
async fn holders(tx: &mut Tx, ids: &ContactIds) -> Result<Holders> {
    let mut holders = Holders::default();
    if let Some(w) = &ids.wa_id {
        let now = contact_by(tx, shared::CONTACT_BY_WA_ID, w).await?;
        holders.wa_id = (now, contact_by(tx, shared::IDENTITY_HOLDER, &counterpart(w)).await?);
    }
    if let Some(u) = &ids.user_id {
        let now = contact_by(tx, shared::CONTACT_BY_USER_ID, u).await?;
        holders.user_id = (now, contact_by(tx, shared::IDENTITY_HOLDER, u).await?);
    }
    Ok(holders)
}

/// The contact these ids belong to: found by the ids it has or any it had, merged into the
/// oldest when they name several (with the contact a change of ids knew), or made when no
/// contact ever had them. Records the ids on it (see `Holders::former`) as its identities too,
/// and the profile name a message gave.
/// Adds the event of what changed (see `shared::contact_change`) to `events`.
pub(super) async fn resolve_contact(
    tx: &mut Tx,
    views: &dyn EventViews,
    ids: &ContactIds,
    seen: Seen<'_>,
    at: Timestamp,
    events: &mut Vec<NewEvent>,
) -> Result<String> {
    // Two first messages of one new customer may race: the loser finds the winner's contact on
    // its next look.
    for _ in 0..3 {
        let holders = holders(tx, ids).await?;
        let found = holders.contacts(&seen);
        let survivor = match found.first() {
            Some(s) => s.clone(),
            None => {
                let values = shared::new_contact_values(ids, &seen, at);
                match first(&mut **tx, shared::INSERT_CONTACT, values, |r| r.get(0)).await? {
                    Some(id) => id,
                    None => continue,
                }
            }
        };
        for absorbed in found.iter().skip(1) {
            merge_contact(tx, absorbed, &survivor, at).await?;
        }
        let values = shared::contact_ids_values(&survivor, ids, &holders, &seen, at);
        execute(&mut **tx, shared::UPDATE_CONTACT_IDS, values).await?;
        for identity in shared::identities(ids) {
            // Every holder was merged into the survivor above: a conflict is only a racing
            // first message, whose contact the identity stays with.
            execute(&mut **tx, shared::INSERT_IDENTITY, (identity, &survivor)).await?;
        }
        if let Some(kind) = shared::contact_change(found.len(), &seen) {
            events.extend(contact_event(tx, views, &survivor, kind).await?);
        }
        return Ok(survivor);
    }
    Err(StorageError::Conflict("the contact kept changing while it was being recorded".into()))
}

/// Moves everything of contact `from` to contact `into` and deletes `from`.
async fn merge_contact(tx: &mut Tx, from: &str, into: &str, at: Timestamp) -> Result<()> {
    let Some(a) = first(&mut **tx, shared::SELECT_CONTACT, (from,), shared::contact).await? else { return Ok(()) };
    let Some(b) = first(&mut **tx, shared::SELECT_CONTACT, (into,), shared::contact).await? else { return Ok(()) };
    // Rare, so a plain scan: every message of `from` must move before it is deleted.
    execute(&mut **tx, shared::MOVE_CONTACT_MESSAGES, (into, from)).await?;
    let ours = all(&mut **tx, shared::SELECT_CONTACT_THREADS, (into,), shared::thread).await?;
    for (id, number, last_inbound, unread, read_through) in
        all(&mut **tx, shared::SELECT_CONTACT_THREADS, (from,), shared::thread).await?
    {
        let Some((kept, _, our_last, our_unread, our_read)) = ours.iter().find(|o| o.1 == number) else {
            execute(&mut **tx, shared::MOVE_THREAD, (into, at.as_millis(), &id)).await?;
            continue;
        };
        execute(&mut **tx, shared::DELETE_THREAD, (&id,)).await?;
        let merged = (
            last_inbound.max(*our_last),
            read_through.max(our_read.clone()),
            unread + our_unread,
            at.as_millis(),
            kept,
        );
        execute(&mut **tx, shared::MERGE_INTO_THREAD, merged).await?;
    }
    execute(&mut **tx, shared::MOVE_IDENTITIES, (into, from)).await?;
    // Tags: the older contact's, then the newer one's others by name up to the limit.
    let has: i64 = value(&mut **tx, shared::COUNT_CONTACT_TAGS, (into,)).await?;
    execute(&mut **tx, shared::MOVE_CONTACT_TAGS, (into, from, (MAX_TAGS as i64 - has).max(0))).await?;
    execute(&mut **tx, shared::DELETE_CONTACT_TAGS, (from,)).await?;
    execute(&mut **tx, shared::DELETE_CONTACT, (from,)).await?;
    execute(&mut **tx, shared::MERGE_INTO_CONTACT, shared::merged_contact_values(&a, &b, at)).await?;
    tracing::info!(from, into, "contacts merged");
    Ok(())
}

/// Counts an inbound message in its conversation (made with the first one) and moves the
/// conversation's window.
pub(super) async fn note_in_thread(tx: &mut Tx, m: &NewInbound, contact_id: &str) -> Result<()> {
    let id = ConversationId::generate();
    let values =
        (id.as_str(), m.phone_number_id.as_str(), contact_id, m.sent_at.as_millis(), m.received_at.as_millis());
    execute(&mut **tx, shared::NOTE_IN_THREAD, values).await?;
    Ok(())
}

/// A contact's event, with the contact as it is now in `tx`.
async fn contact_event(tx: &mut Tx, views: &dyn EventViews, id: &str, kind: EventType) -> Result<Option<NewEvent>> {
    let Some(mut contact) = first(&mut **tx, shared::SELECT_CONTACT, (id,), shared::contact).await? else {
        return Ok(None);
    };
    contact.tags =
        all(&mut **tx, "SELECT tag FROM contact_tags WHERE contact_id = $1 ORDER BY tag", (id,), |r| r.get(0)).await?;
    Ok(Some(shared::contact_event(views, kind, &contact)))
}

/// A stop (`opted_out`) or resume at `at`. False for an unknown contact.
async fn set_preference(tx: &mut Tx, id: &str, opted_out: bool, at: Timestamp) -> Result<bool> {
    let sql = if opted_out { shared::SET_OPT_OUT } else { shared::SET_OPT_IN };
    Ok(execute(&mut **tx, sql, (at.as_millis(), Timestamp::now().as_millis(), id)).await? > 0)
}

impl PgStore {
    /// The contacts' tags, sorted.
    async fn with_tags(&self, mut contacts: Vec<Contact>) -> Result<Vec<Contact>> {
        if contacts.is_empty() {
            return Ok(contacts);
        }
        let ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
        let tags: Vec<(String, String)> = sqlx::query_as(
            "SELECT contact_id, tag FROM contact_tags WHERE contact_id = ANY($1) ORDER BY contact_id, tag",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for (id, tag) in tags {
            if let Some(c) = contacts.iter_mut().find(|c| c.id.as_str() == id) {
                c.tags.push(tag);
            }
        }
        Ok(contacts)
    }

    async fn contact_where(&self, sql: &'static str, value: &str) -> Result<Option<Contact>> {
        let Some(contact) = first(&self.pool, sql, (value,), shared::contact).await? else { return Ok(None) };
        Ok(self.with_tags(vec![contact]).await?.pop())
    }
}

#[async_trait]
impl Contacts for PgStore {
    async fn upsert_contact(&self, ids: &ContactIds, profile_name: Option<&str>, at: Timestamp) -> Result<ContactId> {
        let (mut tx, mut events) = (self.begin().await?, Vec::new());
        let views = self.views.as_ref();
        let id = resolve_contact(&mut tx, views, ids, Seen::Message { profile_name }, at, &mut events).await?;
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(ContactId::from_trusted(id))
    }

    async fn change_contact_ids(&self, old: &ContactIds, new: &ContactIds, at: Timestamp) -> Result<Option<ContactId>> {
        let mut tx = self.begin().await?;
        let known = holders(&mut tx, old).await?.oldest();
        if known.is_none() && holders(&mut tx, new).await?.oldest().is_none() {
            // Nobody to change: the customer's next message makes their contact.
            tx.rollback().await?;
            return Ok(None);
        }
        // The known contact and any holding the new ids become one, with the new ids.
        let mut events = Vec::new();
        let id = resolve_contact(&mut tx, self.views.as_ref(), new, Seen::Change { known }, at, &mut events).await?;
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(Some(ContactId::from_trusted(id)))
    }

    async fn get_contact(&self, id: &ContactId) -> Result<Option<Contact>> {
        self.contact_where(shared::SELECT_CONTACT, id.as_str()).await
    }

    async fn get_contact_by_wa_id(&self, wa_id: &str) -> Result<Option<Contact>> {
        self.contact_where(shared::SELECT_CONTACT_BY_WA_ID, wa_id).await
    }

    async fn list_contacts(&self, filter: &ContactFilter, limit: u32) -> Result<Vec<Contact>> {
        let values = shared::contact_filter_values(filter, limit);
        let contacts = all(&self.pool, shared::SELECT_CONTACTS, values, shared::contact).await?;
        self.with_tags(contacts).await
    }

    async fn contacts_numbered(&self, filter: &ContactFilter, offset: u32, limit: u32) -> Result<Numbered<Contact>> {
        let total = value(&self.pool, shared::COUNT_CONTACTS, shared::contact_search_values(filter)).await?;
        let values = shared::numbered_contact_values(filter, offset, limit);
        let contacts = all(&self.pool, shared::SELECT_CONTACTS_NUMBERED, values, shared::contact).await?;
        Ok(Numbered { items: self.with_tags(contacts).await?, total })
    }

    async fn update_contact(&self, id: &ContactId, u: &ContactUpdate) -> Result<ContactUpdated> {
        let mut tx = self.begin().await?;
        // First a write, so that the row is locked while it is merged.
        let found =
            execute(&mut *tx, "UPDATE contacts SET updated_at = $1 WHERE id = $2", (u.at.as_millis(), id.as_str()));
        if found.await? == 0 {
            tx.rollback().await?;
            return Ok(ContactUpdated::NotFound);
        }
        if let Some(patch) = &u.attributes {
            let text = value(&mut *tx, shared::SELECT_CONTACT_ATTRIBUTES, (id.as_str(),)).await?;
            let current = parse_object("attributes", Some(text))?.unwrap_or_default();
            let merged = match merge_attributes(&current, patch) {
                Ok(m) => m,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(ContactUpdated::Invalid(e));
                }
            };
            let attributes = json_text(&Value::Object(merged));
            execute(&mut *tx, "UPDATE contacts SET attributes = $1 WHERE id = $2", (attributes, id.as_str())).await?;
        }
        if let Some(tags) = &u.tags {
            execute(&mut *tx, shared::DELETE_CONTACT_TAGS, (id.as_str(),)).await?;
            if !tags.is_empty() {
                let folded: Vec<String> = tags.iter().map(|t| fold(t)).collect();
                sqlx::query(
                    "INSERT INTO contact_tags (contact_id, tag, tag_folded) \
                     SELECT $1, tag, tag_folded FROM UNNEST($2::text[], $3::text[]) AS t (tag, tag_folded) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id.as_str())
                .bind(tags)
                .bind(&folded)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(opted_out) = u.marketing_opt_out {
            set_preference(&mut tx, id.as_str(), opted_out, u.at).await?;
        }
        let event = contact_event(&mut tx, self.views.as_ref(), id.as_str(), EventType::ContactUpdated).await?;
        emit_all(&mut tx, event.as_slice(), u.at).await?;
        tx.commit().await?;
        Ok(ContactUpdated::Updated)
    }

    async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = set_preference(&mut tx, id.as_str(), opted_out, at).await?;
        if found {
            let event = contact_event(&mut tx, self.views.as_ref(), id.as_str(), EventType::ContactUpdated).await?;
            emit_all(&mut tx, event.as_slice(), at).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> Result<()> {
        // The contact as a message from `wa_id` would find it, then a stop at `at` like any other.
        let mut tx = self.begin().await?;
        let ids = ContactIds { wa_id: Some(wa_id.to_owned()), user_id: None };
        let (seen, mut events) = (Seen::Message { profile_name: None }, Vec::new());
        let contact = resolve_contact(&mut tx, self.views.as_ref(), &ids, seen, Timestamp::now(), &mut events).await?;
        if set_preference(&mut tx, &contact, true, at).await? {
            events.extend(contact_event(&mut tx, self.views.as_ref(), &contact, EventType::ContactUpdated).await?);
        }
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        let values = shared::conversation_values(&ConversationFilter::default(), Some(id.as_str()), 1);
        first(&self.pool, shared::SELECT_CONVERSATIONS, values, shared::conversation).await
    }

    async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> Result<Vec<Conversation>> {
        let values = shared::conversation_values(filter, None, limit);
        all(&self.pool, shared::SELECT_CONVERSATIONS, values, shared::conversation).await
    }

    async fn conversation_messages(
        &self,
        id: &ConversationId,
        page: &ConversationPage,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let after = page.after.is_some();
        let sql = if after { shared::SELECT_CONVERSATION_PAGE_AFTER } else { shared::SELECT_CONVERSATION_PAGE };
        let mut messages =
            all(&self.pool, sql, shared::conversation_page_values(id, page, limit), shared::message).await?;
        // The page just after `after` is read oldest first, and shown newest first.
        if after {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn contact_messages(
        &self,
        id: &ContactId,
        page: &ConversationPage,
        offset: u32,
        limit: u32,
    ) -> Result<Numbered<Message>> {
        let total =
            value(&self.pool, shared::COUNT_CONTACT_MESSAGES, shared::contact_messages_values(id, page)).await?;
        let values = shared::numbered_contact_messages_values(id, page, offset, limit);
        let items = all(&self.pool, shared::SELECT_CONTACT_MESSAGES, values, shared::message).await?;
        Ok(Numbered { items, total })
    }

    async fn newest_inbound(&self, id: &ConversationId) -> Result<Option<Message>> {
        first(&self.pool, shared::SELECT_NEWEST_INBOUND, (id.as_str(),), shared::message).await
    }

    async fn mark_conversation_read(&self, id: &ConversationId, through: &MessageId, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locks the row before counting, so an inbound message committed meanwhile is either
        // counted here or adds itself after.
        let values = (through.as_str(), at.as_millis(), id.as_str());
        if execute(&mut *tx, shared::MARK_READ_THROUGH, values).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        execute(&mut *tx, shared::COUNT_UNREAD, (id.as_str(),)).await?;
        tx.commit().await?;
        Ok(true)
    }
}
