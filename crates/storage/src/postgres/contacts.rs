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

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgExecutor;
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

/// The contacts with their tags, sorted.
async fn with_tags(db: impl PgExecutor<'_>, mut contacts: Vec<Contact>) -> Result<Vec<Contact>> {
    if contacts.is_empty() {
        return Ok(contacts);
    }
    let ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
    let tags: Vec<(String, String)> =
        sqlx::query_as("SELECT contact_id, tag FROM contact_tags WHERE contact_id = ANY($1) ORDER BY contact_id, tag")
            .bind(&ids)
            .fetch_all(db)
            .await?;
    // A contact may be listed twice (found by two numbers).
    let mut at: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in contacts.iter().enumerate() {
        at.entry(c.id.as_str().to_owned()).or_default().push(i);
    }
    for (id, tag) in tags {
        for &i in at.get(&id).into_iter().flatten() {
            contacts[i].tags.push(tag.clone());
        }
    }
    Ok(contacts)
}

/// The contacts whose wa_id is in `$1`, locked, in id order (so that writers lock them in one
/// order).
const LOCK_CONTACTS_BY_WA_IDS: &str =
    concat!("SELECT ", shared::contact_cols!(), " FROM contacts c WHERE c.wa_id = ANY($1) ORDER BY c.id FOR UPDATE");
const LOCK_CONTACT: &str = concat!("SELECT ", shared::contact_cols!(), " FROM contacts c WHERE c.id = $1 FOR UPDATE");
const SELECT_IDENTITY_HOLDERS: &str = "SELECT identity, contact_id FROM contact_identities WHERE identity = ANY($1)";
/// New contacts, each one's created_at and updated_at `$1`; the ids of those made (a contact a
/// message made meanwhile is not).
const INSERT_IMPORTED_CONTACTS: &str = "INSERT INTO contacts (id, wa_id, attributes, marketing_opt_out_at, \
    marketing_opt_in_at, created_at, updated_at) SELECT id, wa_id, attributes, opt_out, opt_in, $1, $1 \
    FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) AS n (id, wa_id, attributes, opt_out, opt_in) \
    ON CONFLICT DO NOTHING RETURNING id";
const UPDATE_IMPORTED_CONTACTS: &str = "UPDATE contacts c SET attributes = u.attributes, \
    marketing_opt_out_at = u.opt_out, marketing_opt_in_at = u.opt_in, updated_at = $1 \
    FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS u (id, attributes, opt_out, opt_in) \
    WHERE c.id = u.id";
const INSERT_IDENTITIES: &str = "INSERT INTO contact_identities (identity, contact_id) \
    SELECT identity, contact_id FROM UNNEST($1::text[], $2::text[]) AS i (identity, contact_id) \
    ON CONFLICT (identity) DO NOTHING";
const INSERT_TAGS: &str = "INSERT INTO contact_tags (contact_id, tag, tag_folded) \
    SELECT contact_id, tag, tag_folded FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (contact_id, tag, tag_folded) \
    ON CONFLICT DO NOTHING";

/// Contacts a job's batch imports (see `shared::import_contacts`), found by their numbers as a
/// message from them would find them, made or changed as the rows say, with their events; an
/// entry a row. One statement for each kind of write, the rows in arrays. None when a message
/// made one of the contacts meanwhile: the transaction is to be rolled back and done again.
pub(super) async fn import_contacts(
    tx: &mut Tx,
    views: &dyn EventViews,
    rows: &[ImportedContact],
    at: Timestamp,
) -> Result<Option<Vec<JobEntry>>> {
    let mut events = Vec::new();
    let found = find_imported(tx, views, rows, at, &mut events).await?;
    let import = shared::import_contacts(rows, &found, views, at);
    let millis = |t: Option<Timestamp>| t.map(Timestamp::as_millis);
    let (mut new, known): (Vec<_>, Vec<_>) = import.contacts.iter().partition(|s| s.new);
    // Made by number: batches made at once wait on each other's new numbers in one order.
    new.sort_by(|a, b| a.contact.wa_id.cmp(&b.contact.wa_id));
    if !new.is_empty() {
        let made: Vec<String> = sqlx::query_scalar(INSERT_IMPORTED_CONTACTS)
            .bind(at.as_millis())
            .bind(new.iter().map(|s| s.contact.id.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|s| s.contact.wa_id.as_deref()).collect::<Vec<_>>())
            .bind(new.iter().map(|s| s.attributes_text()).collect::<Vec<_>>())
            .bind(new.iter().map(|s| millis(s.contact.marketing_opt_out_at)).collect::<Vec<_>>())
            .bind(new.iter().map(|s| millis(s.contact.marketing_opt_in_at)).collect::<Vec<_>>())
            .fetch_all(&mut **tx)
            .await?;
        if made.len() != new.len() {
            return Ok(None);
        }
        let identities: Vec<String> = new.iter().filter_map(|s| s.contact.wa_id.as_deref().map(counterpart)).collect();
        sqlx::query(INSERT_IDENTITIES)
            .bind(identities)
            .bind(new.iter().filter(|s| s.contact.wa_id.is_some()).map(|s| s.contact.id.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !known.is_empty() {
        sqlx::query(UPDATE_IMPORTED_CONTACTS)
            .bind(at.as_millis())
            .bind(known.iter().map(|s| s.contact.id.as_str()).collect::<Vec<_>>())
            .bind(known.iter().map(|s| s.attributes_text()).collect::<Vec<_>>())
            .bind(known.iter().map(|s| millis(s.contact.marketing_opt_out_at)).collect::<Vec<_>>())
            .bind(known.iter().map(|s| millis(s.contact.marketing_opt_in_at)).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    let tags: Vec<(&str, &String)> =
        import.contacts.iter().flat_map(|s| s.added_tags.iter().map(|t| (s.contact.id.as_str(), t))).collect();
    if !tags.is_empty() {
        sqlx::query(INSERT_TAGS)
            .bind(tags.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(tags.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>())
            .bind(tags.iter().map(|(_, t)| fold(t)).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    events.extend(import.events);
    emit_all(tx, &events, at).await?;
    Ok(Some(import.entries))
}

/// The contacts the rows' numbers lead to, locked, with their tags, by number: those whose
/// holders a message would resolve first (two contacts to merge, an identity to record) are
/// resolved so (their events added to `events`), then all are looked up again.
async fn find_imported(
    tx: &mut Tx,
    views: &dyn EventViews,
    rows: &[ImportedContact],
    at: Timestamp,
    events: &mut Vec<NewEvent>,
) -> Result<HashMap<String, Contact>> {
    let numbers = shared::batch_numbers(rows);
    let identities = shared::number_identities(&numbers);
    for _ in 0..2 {
        let locked = sqlx::query(LOCK_CONTACTS_BY_WA_IDS).bind(&numbers).fetch_all(&mut **tx).await?;
        let holders = locked.iter().map(shared::contact).collect::<Result<Vec<_>>>()?;
        let had: Vec<(String, String)> =
            sqlx::query_as(SELECT_IDENTITY_HOLDERS).bind(&identities).fetch_all(&mut **tx).await?;
        let mut found = shared::found_contacts(&numbers, holders, had);
        if found.unresolved.is_empty() {
            for (number, id) in &found.former {
                if let Some(c) = first(&mut **tx, LOCK_CONTACT, (id,), shared::contact).await? {
                    found.known.insert(number.clone(), c);
                }
            }
            let (numbers, contacts): (Vec<String>, Vec<Contact>) = found.known.into_iter().unzip();
            return Ok(numbers.into_iter().zip(with_tags(&mut **tx, contacts).await?).collect());
        }
        for number in &found.unresolved {
            let ids = ContactIds { wa_id: Some(number.clone()), user_id: None };
            resolve_contact(tx, views, &ids, Seen::Message { profile_name: None }, at, events).await?;
        }
    }
    Err(StorageError::Conflict("the contacts of the batch's numbers could not be resolved".into()))
}

impl PgStore {
    /// The contacts with their tags, sorted.
    async fn with_tags(&self, contacts: Vec<Contact>) -> Result<Vec<Contact>> {
        with_tags(&self.pool, contacts).await
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

    async fn contacts_by_wa_ids(&self, wa_ids: &[String]) -> Result<Vec<Contact>> {
        if wa_ids.is_empty() {
            return Ok(Vec::new());
        }
        const SQL: &str = concat!("SELECT ", shared::contact_cols!(), " FROM contacts c WHERE c.wa_id = ANY($1)");
        let rows = sqlx::query(SQL).bind(wa_ids).fetch_all(&self.pool).await?;
        self.with_tags(rows.iter().map(shared::contact).collect::<Result<_>>()?).await
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
