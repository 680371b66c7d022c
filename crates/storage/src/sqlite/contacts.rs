//! Contacts and the conversations business numbers have with them.
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

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};
use serde_json::Value;
use wagate_domain::contact::{MAX_TAGS, counterpart, fold, merge_attributes};
use wagate_domain::event::EventType;
use wagate_domain::id::{ContactId, ConversationId, MessageId};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::emit;
use super::rows::{all, execute, first, value};
use crate::shared::{self, Holders, Seen, json_text, parse_object};
use crate::*;

const UPDATE_CONTACT: &str = "UPDATE contacts SET updated_at = ?2, attributes = COALESCE(?3, attributes) WHERE id = ?1";
/// The contacts whose wa_id is in JSON array `?1`.
const SELECT_CONTACTS_BY_WA_IDS: &str =
    concat!("SELECT ", shared::contact_cols!(), " FROM contacts c WHERE c.wa_id IN (SELECT value FROM json_each(?1))");
const INSERT_TAG: &str =
    "INSERT INTO contact_tags (contact_id, tag, tag_folded) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
/// The contacts that have had an identity in JSON array `?1`: identity, contact.
const SELECT_IDENTITY_HOLDERS: &str =
    "SELECT identity, contact_id FROM contact_identities WHERE identity IN (SELECT value FROM json_each(?1))";
const INSERT_IMPORTED_CONTACT: &str = "INSERT INTO contacts (id, wa_id, attributes, marketing_opt_out_at, \
    marketing_opt_in_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const UPDATE_IMPORTED_CONTACT: &str = "UPDATE contacts SET attributes = ?2, marketing_opt_out_at = ?3, \
    marketing_opt_in_at = ?4, updated_at = ?5 WHERE id = ?1";

#[async_trait]
impl Contacts for SqliteStore {
    async fn upsert_contact(&self, ids: &ContactIds, profile_name: Option<&str>, at: Timestamp) -> Result<ContactId> {
        let (ids, name, views) = (ids.clone(), profile_name.map(str::to_owned), self.views.clone());
        let id = self
            .writer
            .write(move |tx| {
                resolve_contact(tx, views.as_ref(), &ids, Seen::Message { profile_name: name.as_deref() }, at)
            })
            .await?;
        Ok(ContactId::from_trusted(id))
    }

    async fn change_contact_ids(&self, old: &ContactIds, new: &ContactIds, at: Timestamp) -> Result<Option<ContactId>> {
        let (old, new, views) = (old.clone(), new.clone(), self.views.clone());
        self.writer
            .write(move |tx| {
                let known = holders(tx, &old)?.oldest();
                if known.is_none() && holders(tx, &new)?.oldest().is_none() {
                    // Nobody to change: the customer's next message makes their contact.
                    return Ok(None);
                }
                // The known contact and any holding the new ids become one, with the new ids.
                let id = resolve_contact(tx, views.as_ref(), &new, Seen::Change { known }, at)?;
                Ok(Some(ContactId::from_trusted(id)))
            })
            .await
    }

    async fn get_contact(&self, id: &ContactId) -> Result<Option<Contact>> {
        self.readers.read(|c| contact_where(c, shared::SELECT_CONTACT, id.as_str()))
    }

    async fn get_contact_by_wa_id(&self, wa_id: &str) -> Result<Option<Contact>> {
        self.readers.read(|c| contact_by_wa_id(c, wa_id))
    }

    async fn contacts_by_wa_ids(&self, wa_ids: &[String]) -> Result<Vec<Contact>> {
        if wa_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = Value::from(wa_ids.to_vec()).to_string();
        self.readers
            .scan(move |c| with_tags(c, all(c, SELECT_CONTACTS_BY_WA_IDS, [list], |r| shared::contact(r))?))
            .await
    }

    async fn list_contacts(&self, filter: &ContactFilter, limit: u32) -> Result<Vec<Contact>> {
        let values = shared::contact_filter_values(filter, limit);
        self.readers.scan(move |c| with_tags(c, all(c, shared::SELECT_CONTACTS, values, |r| shared::contact(r))?)).await
    }

    async fn contacts_numbered(&self, filter: &ContactFilter, offset: u32, limit: u32) -> Result<Numbered<Contact>> {
        let (count, values) =
            (shared::contact_search_values(filter), shared::numbered_contact_values(filter, offset, limit));
        self.readers
            .scan(move |c| {
                let total = value(c, shared::COUNT_CONTACTS, count)?;
                let items = with_tags(c, all(c, shared::SELECT_CONTACTS_NUMBERED, values, |r| shared::contact(r))?)?;
                Ok(Numbered { items, total })
            })
            .await
    }

    async fn update_contact(&self, id: &ContactId, update: &ContactUpdate) -> Result<ContactUpdated> {
        let (id, u, views) = (id.as_str().to_owned(), update.clone(), self.views.clone());
        self.writer
            .write(move |tx| {
                let updated = update_contact(tx, &id, &u)?;
                if matches!(updated, ContactUpdated::Updated) {
                    emit_contact(tx, views.as_ref(), &id, EventType::ContactUpdated, u.at)?;
                }
                Ok(updated)
            })
            .await
    }

    async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> Result<bool> {
        let (id, views) = (id.as_str().to_owned(), self.views.clone());
        self.writer
            .write(move |tx| {
                let changed = set_preference(tx, &id, opted_out, at)?;
                if changed {
                    emit_contact(tx, views.as_ref(), &id, EventType::ContactUpdated, at)?;
                }
                Ok(changed)
            })
            .await
    }

    async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> Result<()> {
        // The contact as a message from `wa_id` would find it, then a stop at `at` like any other.
        let (ids, views) = (ContactIds { wa_id: Some(wa_id.to_owned()), user_id: None }, self.views.clone());
        self.writer
            .write(move |tx| {
                let seen = Seen::Message { profile_name: None };
                let contact = resolve_contact(tx, views.as_ref(), &ids, seen, Timestamp::now())?;
                if set_preference(tx, &contact, true, at)? {
                    emit_contact(tx, views.as_ref(), &contact, EventType::ContactUpdated, at)?;
                }
                Ok(())
            })
            .await
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        let values = shared::conversation_values(&ConversationFilter::default(), Some(id.as_str()), 1);
        self.readers.scan(move |c| first(c, shared::SELECT_CONVERSATIONS, values, |r| shared::conversation(r))).await
    }

    async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> Result<Vec<Conversation>> {
        let values = shared::conversation_values(filter, None, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_CONVERSATIONS, values, |r| shared::conversation(r))).await
    }

    async fn conversation_messages(
        &self,
        id: &ConversationId,
        page: &ConversationPage,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let after = page.after.is_some();
        let sql = if after { shared::SELECT_CONVERSATION_PAGE_AFTER } else { shared::SELECT_CONVERSATION_PAGE };
        let values = shared::conversation_page_values(id, page, limit);
        let mut messages = self.readers.scan(move |c| all(c, sql, values, |r| shared::message(r))).await?;
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
        let count = shared::contact_messages_values(id, page);
        let values = shared::numbered_contact_messages_values(id, page, offset, limit);
        self.readers
            .scan(move |c| {
                let total = value(c, shared::COUNT_CONTACT_MESSAGES, count)?;
                let items = all(c, shared::SELECT_CONTACT_MESSAGES, values, |r| shared::message(r))?;
                Ok(Numbered { items, total })
            })
            .await
    }

    async fn newest_inbound(&self, id: &ConversationId) -> Result<Option<Message>> {
        let id = id.as_str().to_owned();
        self.readers.scan(move |c| first(c, shared::SELECT_NEWEST_INBOUND, [id], |r| shared::message(r))).await
    }

    async fn mark_conversation_read(&self, id: &ConversationId, through: &MessageId, at: Timestamp) -> Result<bool> {
        let (id, through) = (id.as_str().to_owned(), through.as_str().to_owned());
        self.writer
            .write(move |tx| {
                if execute(tx, shared::MARK_READ_THROUGH, params![through, at.as_millis(), id])? == 0 {
                    return Ok(false);
                }
                execute(tx, shared::COUNT_UNREAD, [&id])?;
                Ok(true)
            })
            .await
    }
}

/// The contact with the wa_id a message would find it by.
fn contact_by_wa_id(c: &Connection, wa_id: &str) -> Result<Option<Contact>> {
    contact_where(c, shared::SELECT_CONTACT_BY_WA_ID, wa_id)
}

fn contact_where(c: &Connection, sql: &str, value: &str) -> Result<Option<Contact>> {
    let Some(contact) = first(c, sql, [value], |r| shared::contact(r))? else { return Ok(None) };
    Ok(with_tags(c, vec![contact])?.pop())
}

/// The contacts with their tags, sorted.
fn with_tags(c: &Connection, mut contacts: Vec<Contact>) -> Result<Vec<Contact>> {
    let mut select = c.prepare_cached("SELECT tag FROM contact_tags WHERE contact_id = ?1 ORDER BY tag")?;
    for contact in &mut contacts {
        let tags = select.query_map([contact.id.as_str()], |r| r.get(0))?;
        contact.tags = tags.collect::<rusqlite::Result<_>>()?;
    }
    Ok(contacts)
}

/// Checked before anything is written: an update that would break a limit changes nothing.
fn update_contact(tx: &Transaction<'_>, id: &str, u: &ContactUpdate) -> Result<ContactUpdated> {
    let stored: Option<String> = first(tx, shared::SELECT_CONTACT_ATTRIBUTES, [id], |r| Ok(r.get(0)?))?;
    let Some(stored) = stored else { return Ok(ContactUpdated::NotFound) };
    let attributes = match &u.attributes {
        None => None,
        Some(patch) => {
            let stored = parse_object("attributes", Some(stored))?.unwrap_or_default();
            match merge_attributes(&stored, patch) {
                Ok(merged) => Some(json_text(&Value::Object(merged))),
                Err(e) => return Ok(ContactUpdated::Invalid(e)),
            }
        }
    };
    execute(tx, UPDATE_CONTACT, params![id, u.at.as_millis(), attributes])?;
    if let Some(tags) = &u.tags {
        execute(tx, shared::DELETE_CONTACT_TAGS, [id])?;
        let mut insert = tx.prepare_cached(INSERT_TAG)?;
        for tag in tags {
            insert.execute(params![id, tag, fold(tag)])?;
        }
    }
    if let Some(opted_out) = u.marketing_opt_out {
        set_preference(tx, id, opted_out, u.at)?;
    }
    Ok(ContactUpdated::Updated)
}

fn contact_by(tx: &Transaction<'_>, sql: &str, value: &str) -> Result<Option<String>> {
    first(tx, sql, [value], |r| Ok(r.get(0)?))
}

/// Who has each of these ids now, and who had it.
fn holders(tx: &Transaction<'_>, ids: &ContactIds) -> Result<Holders> {
    let mut holders = Holders::default();
    if let Some(w) = &ids.wa_id {
        let now = contact_by(tx, shared::CONTACT_BY_WA_ID, w)?;
        holders.wa_id = (now, contact_by(tx, shared::IDENTITY_HOLDER, &counterpart(w))?);
    }
    if let Some(u) = &ids.user_id {
        let now = contact_by(tx, shared::CONTACT_BY_USER_ID, u)?;
        holders.user_id = (now, contact_by(tx, shared::IDENTITY_HOLDER, u)?);
    }
    Ok(holders)
}

/// The contact these ids belong to: found by the ids it has or any it had, merged into the
/// oldest when they name several (with the contact a change of ids knew), or made when no
/// contact ever had them. Records the ids on it (see `Holders::former`) as its identities too,
/// and the profile name a message gave.
/// Stores the event of what changed (see `shared::contact_change`).
pub(super) fn resolve_contact(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    ids: &ContactIds,
    seen: Seen<'_>,
    at: Timestamp,
) -> Result<String> {
    let holders = holders(tx, ids)?;
    let found = holders.contacts(&seen);
    let survivor = match found.first() {
        Some(s) => s.clone(),
        // The one writer serialises every write: nothing takes these ids between the look and
        // the insert, so the insert makes a row.
        None => value(tx, shared::INSERT_CONTACT, shared::new_contact_values(ids, &seen, at))?,
    };
    for absorbed in found.iter().skip(1) {
        merge_contact(tx, absorbed, &survivor, at)?;
    }
    execute(tx, shared::UPDATE_CONTACT_IDS, shared::contact_ids_values(&survivor, ids, &holders, &seen, at))?;
    let mut identify = tx.prepare_cached(shared::INSERT_IDENTITY)?;
    for identity in shared::identities(ids) {
        // Every holder was merged into the survivor above: the identity is the survivor's.
        identify.execute(params![identity, survivor])?;
    }
    if let Some(kind) = shared::contact_change(found.len(), &seen) {
        emit_contact(tx, views, &survivor, kind, at)?;
    }
    Ok(survivor)
}

/// Stores a contact's event, with the contact as it is now in `tx`.
fn emit_contact(tx: &Transaction<'_>, views: &dyn EventViews, id: &str, kind: EventType, at: Timestamp) -> Result<()> {
    if let Some(contact) = contact_where(tx, shared::SELECT_CONTACT, id)? {
        emit(tx, &shared::contact_event(views, kind, &contact), at.as_millis())?;
    }
    Ok(())
}

/// Moves everything of contact `from` to contact `into` and deletes `from`.
fn merge_contact(tx: &Transaction<'_>, from: &str, into: &str, at: Timestamp) -> Result<()> {
    let Some(a) = first(tx, shared::SELECT_CONTACT, [from], |r| shared::contact(r))? else { return Ok(()) };
    let Some(b) = first(tx, shared::SELECT_CONTACT, [into], |r| shared::contact(r))? else { return Ok(()) };
    // Rare, so a plain scan: every message of `from` must move before it is deleted.
    execute(tx, shared::MOVE_CONTACT_MESSAGES, [into, from])?;
    let ours = all(tx, shared::SELECT_CONTACT_THREADS, [into], |r| shared::thread(r))?;
    for (id, number, last_inbound, unread, read_through) in
        all(tx, shared::SELECT_CONTACT_THREADS, [from], |r| shared::thread(r))?
    {
        let Some((kept, _, our_last, our_unread, our_read)) = ours.iter().find(|o| o.1 == number) else {
            execute(tx, shared::MOVE_THREAD, params![into, at.as_millis(), id])?;
            continue;
        };
        execute(tx, shared::DELETE_THREAD, [&id])?;
        let merged = params![
            last_inbound.max(*our_last),
            read_through.max(our_read.clone()),
            unread + our_unread,
            at.as_millis(),
            kept
        ];
        execute(tx, shared::MERGE_INTO_THREAD, merged)?;
    }
    execute(tx, shared::MOVE_IDENTITIES, [into, from])?;
    // Tags: the older contact's, then the newer one's others by name up to the limit.
    let has: i64 = value(tx, shared::COUNT_CONTACT_TAGS, [into])?;
    execute(tx, shared::MOVE_CONTACT_TAGS, params![into, from, (MAX_TAGS as i64 - has).max(0)])?;
    execute(tx, shared::DELETE_CONTACT_TAGS, [from])?;
    execute(tx, shared::DELETE_CONTACT, [from])?;
    execute(tx, shared::MERGE_INTO_CONTACT, shared::merged_contact_values(&a, &b, at))?;
    tracing::info!(from, into, "contacts merged");
    Ok(())
}

/// Contacts a job's batch imports (see `shared::import_contacts`), found by their numbers as a
/// message from them would find them, made or changed as the rows say, with their events; an
/// entry a row.
pub(super) fn import_contacts(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    rows: &[ImportedContact],
    at: Timestamp,
) -> Result<Vec<JobEntry>> {
    let found = find_imported(tx, views, rows, at)?;
    let import = shared::import_contacts(rows, &found, views, at);
    let mut tag = tx.prepare_cached(INSERT_TAG)?;
    for state in &import.contacts {
        let c = &state.contact;
        let (id, attributes) = (c.id.as_str(), state.attributes_text());
        let (opt_out, opt_in) =
            (c.marketing_opt_out_at.map(|t| t.as_millis()), c.marketing_opt_in_at.map(|t| t.as_millis()));
        if state.new {
            let values = params![id, c.wa_id, attributes, opt_out, opt_in, c.created_at.as_millis(), at.as_millis()];
            execute(tx, INSERT_IMPORTED_CONTACT, values)?;
            if let Some(identity) = c.wa_id.as_deref().map(counterpart) {
                execute(tx, shared::INSERT_IDENTITY, params![identity, id])?;
            }
        } else {
            execute(tx, UPDATE_IMPORTED_CONTACT, params![id, attributes, opt_out, opt_in, at.as_millis()])?;
        }
        for t in &state.added_tags {
            tag.execute(params![id, t, fold(t)])?;
        }
    }
    for event in &import.events {
        emit(tx, event, at.as_millis())?;
    }
    Ok(import.entries)
}

/// The contacts the rows' numbers lead to, with their tags, by number: those whose holders a
/// message would resolve first (two contacts to merge, an identity to record) are resolved so,
/// then all are looked up again.
fn find_imported(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    rows: &[ImportedContact],
    at: Timestamp,
) -> Result<HashMap<String, Contact>> {
    let numbers = shared::batch_numbers(rows);
    let (list, identities) =
        (Value::from(numbers.clone()).to_string(), Value::from(shared::number_identities(&numbers)).to_string());
    for _ in 0..2 {
        let holders = all(tx, SELECT_CONTACTS_BY_WA_IDS, [&list], |r| shared::contact(r))?;
        let had = all(tx, SELECT_IDENTITY_HOLDERS, [&identities], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut found = shared::found_contacts(&numbers, holders, had);
        if found.unresolved.is_empty() {
            for (number, id) in &found.former {
                if let Some(c) = first(tx, shared::SELECT_CONTACT, [id], |r| shared::contact(r))? {
                    found.known.insert(number.clone(), c);
                }
            }
            let (numbers, contacts): (Vec<String>, Vec<Contact>) = found.known.into_iter().unzip();
            return Ok(numbers.into_iter().zip(with_tags(tx, contacts)?).collect());
        }
        for number in &found.unresolved {
            let ids = ContactIds { wa_id: Some(number.clone()), user_id: None };
            resolve_contact(tx, views, &ids, Seen::Message { profile_name: None }, at)?;
        }
    }
    Err(StorageError::Conflict("the contacts of the batch's numbers could not be resolved".into()))
}

/// Counts an inbound message in its conversation (made with the first one) and moves the
/// conversation's window.
pub(super) fn note_in_thread(tx: &Transaction<'_>, m: &NewInbound, contact_id: &str) -> Result<()> {
    let id = ConversationId::generate();
    let values = params![id.as_str(), m.phone_number_id, contact_id, m.sent_at.as_millis(), m.received_at.as_millis()];
    execute(tx, shared::NOTE_IN_THREAD, values)?;
    Ok(())
}

/// A stop (`opted_out`) or resume at `at`. False for an unknown contact.
fn set_preference(tx: &Transaction<'_>, id: &str, opted_out: bool, at: Timestamp) -> Result<bool> {
    let sql = if opted_out { shared::SET_OPT_OUT } else { shared::SET_OPT_IN };
    Ok(execute(tx, sql, params![at.as_millis(), Timestamp::now().as_millis(), id])? > 0)
}
