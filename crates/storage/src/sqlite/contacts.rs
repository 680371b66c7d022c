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

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};
use serde_json::Value;
use wagate_domain::contact::{combine_attributes, counterpart, fold, merge_attributes};
use wagate_domain::id::{ContactId, ConversationId, MessageId};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{self, all, first, value};
use crate::shared::{json_text, message_cols, message_select_cols, parse_object};
use crate::*;

macro_rules! contact_cols {
    () => {
        "c.id, c.wa_id, c.user_id, c.profile_name, c.attributes, c.marketing_opt_out_at, \
         c.marketing_opt_in_at, c.created_at, c.updated_at"
    };
}

const SELECT_CONTACT: &str = concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.id = ?1");
const SELECT_CONTACT_BY_WA_ID: &str = concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.wa_id = ?1");
const SELECT_CONTACTS: &str = concat!(
    "SELECT ",
    contact_cols!(),
    " FROM contacts c WHERE (?1 IS NULL OR c.id < ?1) ",
    "AND (?2 IS NULL OR c.name_folded LIKE ?2 ESCAPE '\\' ",
    "OR c.wa_id LIKE ?3 ESCAPE '\\' OR c.user_id = ?4 ",
    "OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = ?5)) ",
    "AND (?6 IS NULL OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = ?6)) ",
    "ORDER BY c.id DESC LIMIT ?7"
);
const UPDATE_CONTACT: &str = "UPDATE contacts SET updated_at = ?2, attributes = COALESCE(?3, attributes) WHERE id = ?1";
const INSERT_TAG: &str =
    "INSERT INTO contact_tags (contact_id, tag, tag_folded) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const BY_WA_ID: &str = "SELECT id FROM contacts WHERE wa_id = ?1";
const BY_USER_ID: &str = "SELECT id FROM contacts WHERE user_id = ?1";
const IDENTITY_HOLDER: &str = "SELECT contact_id FROM contact_identities WHERE identity = ?1";

/// A thread with its contact's ids and its last message: the newest of the contact's identities
/// with the number that has left the queue (an index seek per identity), or the newest still
/// queued, from one pass over the outbox (not indexed by recipient: sends stay append-only),
/// whichever is newer. `?1` a number, `?2` a contact, `?3` a conversation (each optional), after
/// the cursor (`?4` its last message, `?6` its id), `?5` rows.
const SELECT_CONVERSATIONS: &str = "SELECT x.*, lm.created_at AS last_message_at FROM (\
    SELECT t.id, t.phone_number_id, t.contact_id, t.last_inbound_at, t.unread_count, \
    t.read_through, t.created_at, t.updated_at, c.wa_id, c.user_id, c.profile_name, \
    (SELECT MAX(u.id) FROM (SELECT (SELECT MAX(m.id) FROM messages m \
    WHERE m.phone_number_id = t.phone_number_id AND m.counterpart = i.identity \
    AND m.status NOT IN ('scheduled', 'queued')) AS id \
    FROM contact_identities i WHERE i.contact_id = t.contact_id UNION ALL SELECT q.last_id) u) \
    AS last_message_id \
    FROM threads t JOIN contacts c ON c.id = t.contact_id \
    LEFT JOIN (SELECT o.phone_number_id, i.contact_id, MAX(o.message_id) AS last_id FROM outbox o \
    JOIN contact_identities i ON i.identity = o.recipient WHERE (?1 IS NULL OR o.phone_number_id = ?1) \
    GROUP BY o.phone_number_id, i.contact_id) q \
    ON q.phone_number_id = t.phone_number_id AND q.contact_id = t.contact_id \
    WHERE (?1 IS NULL OR t.phone_number_id = ?1) AND (?2 IS NULL OR t.contact_id = ?2) \
    AND (?3 IS NULL OR t.id = ?3)) x LEFT JOIN messages lm ON lm.id = x.last_message_id \
    WHERE (?4 IS NULL OR COALESCE(x.last_message_id, '') < ?4 \
    OR (COALESCE(x.last_message_id, '') = ?4 AND x.id < ?6)) \
    ORDER BY COALESCE(x.last_message_id, '') DESC, x.id DESC LIMIT ?5";

/// Conversation `?1`'s number, and its contact's identities.
macro_rules! thread_number {
    () => {
        "(SELECT phone_number_id FROM threads WHERE id = ?1)"
    };
}
macro_rules! thread_identities {
    () => {
        "(SELECT i.identity FROM contact_identities i JOIN threads t ON t.contact_id = i.contact_id WHERE t.id = ?1)"
    };
}

/// The ids of conversation `?1`'s messages between `?2` and `?3` (each optional): its number's,
/// with its contact's identities, through the conversation index once they have left the queue
/// and through the outbox while they wait (a message being sent is in both).
macro_rules! conversation_message_ids {
    () => {
        concat!(
            "SELECT m.id FROM messages m WHERE m.phone_number_id = ",
            thread_number!(),
            " AND m.counterpart IN ",
            thread_identities!(),
            " AND m.status NOT IN ('scheduled', 'queued') AND (?2 IS NULL OR m.id < ?2) AND (?3 IS NULL OR m.id > ?3) \
             UNION ALL SELECT o.message_id FROM outbox o WHERE o.phone_number_id = ",
            thread_number!(),
            " AND o.recipient IN ",
            thread_identities!(),
            " AND (?2 IS NULL OR o.message_id < ?2) AND (?3 IS NULL OR o.message_id > ?3)"
        )
    };
}

/// A page of a conversation's messages, newest first; the page just after `?3` oldest first.
const SELECT_CONVERSATION_PAGE: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE id IN (",
    conversation_message_ids!(),
    ") ORDER BY id DESC LIMIT ?4"
);
const SELECT_CONVERSATION_PAGE_AFTER: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE id IN (",
    conversation_message_ids!(),
    ") ORDER BY id LIMIT ?4"
);
/// Inbound messages are never queued: the status term is what lets the (partial) conversation
/// index serve the query.
const SELECT_NEWEST_INBOUND: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE phone_number_id = ",
    thread_number!(),
    " AND counterpart IN ",
    thread_identities!(),
    " AND status NOT IN ('scheduled', 'queued') AND direction = 'inbound' ORDER BY id DESC LIMIT 1"
);

#[async_trait]
impl Contacts for SqliteStore {
    async fn upsert_contact(&self, ids: &ContactIds, profile_name: Option<&str>, at: Timestamp) -> Result<ContactId> {
        let (ids, name) = (ids.clone(), profile_name.map(str::to_owned));
        let id = self.writer.write(move |tx| resolve_contact(tx, &ids, None, name.as_deref(), at, false)).await?;
        Ok(ContactId::from_trusted(id))
    }

    async fn change_contact_ids(&self, old: &ContactIds, new: &ContactIds, at: Timestamp) -> Result<Option<ContactId>> {
        let (old, new) = (old.clone(), new.clone());
        self.writer
            .write(move |tx| {
                let known = holder(tx, &old)?;
                if known.is_none() && holder(tx, &new)?.is_none() {
                    // Nobody to change: the customer's next message makes their contact.
                    return Ok(None);
                }
                // The known contact and any holding the new ids become one, with the new ids.
                let id = resolve_contact(tx, &new, known, None, at, true)?;
                Ok(Some(ContactId::from_trusted(id)))
            })
            .await
    }

    async fn get_contact(&self, id: &ContactId) -> Result<Option<Contact>> {
        self.readers.read(|c| contact_where(c, SELECT_CONTACT, id.as_str()))
    }

    async fn list_contacts(&self, filter: &ContactFilter, limit: u32) -> Result<Vec<Contact>> {
        let like = |s: &str| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let q = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let digits = q.filter(|q| {
            q.bytes().any(|b| b.is_ascii_digit()) && q.bytes().all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
        });
        let params = (
            filter.before.as_ref().map(|b| b.as_str().to_owned()),
            q.map(|q| like(&fold(q))),
            digits.map(|d| like(&d.chars().filter(char::is_ascii_digit).collect::<String>())),
            q.map(str::to_owned),
            q.map(fold),
            filter.tag.as_deref().map(fold),
            limit,
        );
        self.readers
            .scan(move |c| {
                let contacts = all(c, SELECT_CONTACTS, params, rows::contact)?;
                with_tags(c, contacts)
            })
            .await
    }

    async fn update_contact(&self, id: &ContactId, update: &ContactUpdate) -> Result<ContactUpdated> {
        let (id, u) = (id.as_str().to_owned(), update.clone());
        self.writer.write(move |tx| update_contact(tx, &id, &u)).await
    }

    async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> Result<bool> {
        let id = id.as_str().to_owned();
        self.writer.write(move |tx| set_preference(tx, &id, opted_out, at)).await
    }

    async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> Result<()> {
        // The contact as a message from `wa_id` would find it, then a stop at `at` like any other.
        let ids = ContactIds { wa_id: Some(wa_id.to_owned()), user_id: None };
        self.writer
            .write(move |tx| {
                let contact = resolve_contact(tx, &ids, None, None, Timestamp::now(), false)?;
                set_preference(tx, &contact, true, at)?;
                Ok(())
            })
            .await
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        let id = id.as_str().to_owned();
        let found = self.readers.scan(move |c| conversations(c, &ConversationFilter::default(), Some(&id), 1)).await?;
        Ok(found.into_iter().next())
    }

    async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> Result<Vec<Conversation>> {
        let filter = filter.clone();
        self.readers.scan(move |c| conversations(c, &filter, None, limit)).await
    }

    async fn conversation_messages(
        &self,
        id: &ConversationId,
        page: &ConversationPage,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let after = page.after.is_some();
        let sql = if after { SELECT_CONVERSATION_PAGE_AFTER } else { SELECT_CONVERSATION_PAGE };
        let params = (
            id.as_str().to_owned(),
            page.before.as_ref().map(|b| b.as_str().to_owned()),
            page.after.as_ref().map(|a| a.as_str().to_owned()),
            limit,
        );
        let mut messages = self.readers.scan(move |c| all(c, sql, params, rows::message)).await?;
        // The page just after `after` is read oldest first, and shown newest first.
        if after {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn newest_inbound(&self, id: &ConversationId) -> Result<Option<Message>> {
        let id = id.as_str().to_owned();
        self.readers.scan(move |c| first(c, SELECT_NEWEST_INBOUND, [id], rows::message)).await
    }

    async fn mark_conversation_read(&self, id: &ConversationId, through: &MessageId, at: Timestamp) -> Result<bool> {
        let (id, through) = (id.as_str().to_owned(), through.as_str().to_owned());
        self.writer
            .write(move |tx| {
                let found = tx
                    .prepare_cached(
                        "UPDATE threads SET read_through = CASE WHEN read_through IS NULL OR read_through < ?2 \
                         THEN ?2 ELSE read_through END, updated_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, through, at.as_millis()])?;
                if found == 0 {
                    return Ok(false);
                }
                // As in `SELECT_NEWEST_INBOUND`, the status term is for the index.
                tx.prepare_cached(
                    "UPDATE threads SET unread_count = (SELECT COUNT(*) FROM messages m \
                     WHERE m.phone_number_id = threads.phone_number_id AND m.direction = 'inbound' \
                     AND m.status NOT IN ('scheduled', 'queued') AND m.id > threads.read_through \
                     AND m.counterpart IN (SELECT i.identity FROM contact_identities i \
                     WHERE i.contact_id = threads.contact_id)) WHERE id = ?1",
                )?
                .execute([&id])?;
                Ok(true)
            })
            .await
    }
}

/// The contact with the wa_id a message would find it by, for tests.
pub(super) fn contact_by_wa_id(c: &Connection, wa_id: &str) -> Result<Option<Contact>> {
    contact_where(c, SELECT_CONTACT_BY_WA_ID, wa_id)
}

fn contact_where(c: &Connection, sql: &str, value: &str) -> Result<Option<Contact>> {
    let Some(contact) = first(c, sql, [value], rows::contact)? else { return Ok(None) };
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

fn conversations(c: &Connection, f: &ConversationFilter, id: Option<&str>, limit: u32) -> Result<Vec<Conversation>> {
    let params = params![
        f.phone_number_id,
        f.contact_id.as_ref().map(ContactId::as_str),
        id,
        // A cursor without a last message is '' (the key it sorts by).
        f.before.as_ref().map(|b| b.last_message_id.as_ref().map_or("", MessageId::as_str)),
        limit,
        f.before.as_ref().map(|b| b.id.as_str()),
    ];
    all(c, SELECT_CONVERSATIONS, params, rows::conversation)
}

/// Checked before anything is written: an update that would break a limit changes nothing.
fn update_contact(tx: &Transaction<'_>, id: &str, u: &ContactUpdate) -> Result<ContactUpdated> {
    let stored: Option<String> = first(tx, "SELECT attributes FROM contacts WHERE id = ?1", [id], |r| Ok(r.get(0)?))?;
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
    tx.prepare_cached(UPDATE_CONTACT)?.execute(params![id, u.at.as_millis(), attributes])?;
    if let Some(tags) = &u.tags {
        tx.prepare_cached("DELETE FROM contact_tags WHERE contact_id = ?1")?.execute([id])?;
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

/// The contact holding any of these ids now or before (as an identity).
fn holder(tx: &Transaction<'_>, ids: &ContactIds) -> Result<Option<String>> {
    let mut found = Vec::new();
    if let Some(w) = &ids.wa_id {
        found.extend(contact_by(tx, BY_WA_ID, w)?);
        found.extend(contact_by(tx, IDENTITY_HOLDER, &counterpart(w))?);
    }
    if let Some(u) = &ids.user_id {
        found.extend(contact_by(tx, BY_USER_ID, u)?);
        found.extend(contact_by(tx, IDENTITY_HOLDER, u)?);
    }
    Ok(found.into_iter().min())
}

/// The contact these ids (and `extra`, a contact known otherwise) belong to: found by the ids it
/// has or any it had, merged into the oldest when they name several, or made when no contact
/// ever had them. Records the profile name when given, the ids as identities of the contact, and
/// the ids on the contact, except (unless `current`, the ids are the customer's ids now) an id
/// the contact had before: a late message from a customer's old number does not undo the number
/// change.
pub(super) fn resolve_contact(
    tx: &Transaction<'_>,
    ids: &ContactIds,
    extra: Option<String>,
    profile_name: Option<&str>,
    at: Timestamp,
    current: bool,
) -> Result<String> {
    let wa_identity = ids.wa_id.as_deref().map(counterpart);
    let folded = profile_name.map(fold);
    let mut found = Vec::new();
    // Per id: some contact had it (it is an identity), and none has it now.
    let mut former = [false, false];
    let lookups = [(&ids.wa_id, wa_identity.as_ref(), BY_WA_ID), (&ids.user_id, ids.user_id.as_ref(), BY_USER_ID)];
    for (i, (id, identity, by_column)) in lookups.into_iter().enumerate() {
        let (Some(id), Some(identity)) = (id, identity) else { continue };
        let now = contact_by(tx, by_column, id)?;
        let had = contact_by(tx, IDENTITY_HOLDER, identity)?;
        former[i] = !current && now.is_none() && had.is_some();
        found.extend(now);
        found.extend(had);
    }
    found.extend(extra);
    found.sort();
    found.dedup();
    let survivor = match found.first() {
        Some(s) => s.clone(),
        // The one writer serialises every write: nothing takes these ids between the look and
        // the insert.
        None => {
            let id = ContactId::generate().into_string();
            tx.prepare_cached(
                "INSERT INTO contacts (id, wa_id, user_id, profile_name, name_folded, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![id, ids.wa_id, ids.user_id, profile_name, folded, at.as_millis()])?;
            id
        }
    };
    for absorbed in found.iter().skip(1) {
        merge_contact(tx, absorbed, &survivor, at)?;
    }
    tx.prepare_cached(
        "UPDATE contacts SET wa_id = COALESCE(?2, wa_id), user_id = COALESCE(?3, user_id), \
         profile_name = COALESCE(?4, profile_name), name_folded = COALESCE(?5, name_folded), \
         updated_at = ?6 WHERE id = ?1",
    )?
    .execute(params![
        survivor,
        ids.wa_id.as_ref().filter(|_| !former[0]),
        ids.user_id.as_ref().filter(|_| !former[1]),
        profile_name,
        folded,
        at.as_millis(),
    ])?;
    let mut identify = tx.prepare_cached(
        "INSERT INTO contact_identities (identity, contact_id) VALUES (?1, ?2) ON CONFLICT (identity) DO NOTHING",
    )?;
    for identity in wa_identity.iter().chain(&ids.user_id) {
        // Every holder was merged into the survivor above: the identity is the survivor's.
        identify.execute(params![identity, survivor])?;
    }
    Ok(survivor)
}

/// Moves everything of contact `from` to contact `into` and deletes `from`.
fn merge_contact(tx: &Transaction<'_>, from: &str, into: &str, at: Timestamp) -> Result<()> {
    let Some(a) = first(tx, SELECT_CONTACT, [from], rows::contact)? else { return Ok(()) };
    let Some(b) = first(tx, SELECT_CONTACT, [into], rows::contact)? else { return Ok(()) };
    // Rare, so a plain scan: every message of `from` must move before it is deleted.
    tx.prepare_cached("UPDATE messages SET contact_id = ?1 WHERE contact_id = ?2")?.execute([into, from])?;
    merge_threads(tx, from, into, at)?;
    tx.prepare_cached("UPDATE contact_identities SET contact_id = ?1 WHERE contact_id = ?2")?.execute([into, from])?;
    // Tags: the older contact's, then the newer one's others by name up to the limit.
    let has: i64 = value(tx, "SELECT COUNT(*) FROM contact_tags WHERE contact_id = ?1", [into])?;
    let room = (wagate_domain::contact::MAX_TAGS as i64 - has).max(0);
    tx.prepare_cached(
        "INSERT INTO contact_tags (contact_id, tag, tag_folded) SELECT ?1, tag, tag_folded FROM contact_tags \
         WHERE contact_id = ?2 AND tag_folded NOT IN (SELECT tag_folded FROM contact_tags WHERE contact_id = ?1) \
         ORDER BY tag LIMIT ?3",
    )?
    .execute(params![into, from, room])?;
    tx.prepare_cached("DELETE FROM contact_tags WHERE contact_id = ?1")?.execute([from])?;
    tx.prepare_cached("DELETE FROM contacts WHERE id = ?1")?.execute([from])?;
    // `into` is the older contact: its attributes win, and the newer one's that would break the
    // limits are dropped (see `combine_attributes`). The latest stop and the latest resume of
    // either, as for any preference.
    let attributes = combine_attributes(&b.attributes, &a.attributes);
    let opt_in = a.marketing_opt_in_at.max(b.marketing_opt_in_at);
    let opt_out = a.marketing_opt_out_at.max(b.marketing_opt_out_at);
    tx.prepare_cached(
        "UPDATE contacts SET wa_id = COALESCE(wa_id, ?2), user_id = COALESCE(user_id, ?3), \
         name_folded = CASE WHEN profile_name IS NULL THEN ?9 ELSE name_folded END, \
         profile_name = COALESCE(profile_name, ?4), attributes = ?5, marketing_opt_out_at = ?6, \
         marketing_opt_in_at = ?7, updated_at = ?8 WHERE id = ?1",
    )?
    .execute(params![
        into,
        a.wa_id,
        a.user_id,
        a.profile_name,
        json_text(&Value::Object(attributes)),
        opt_out.map(Timestamp::as_millis),
        opt_in.map(Timestamp::as_millis),
        at.as_millis(),
        a.profile_name.as_deref().map(fold),
    ])?;
    tracing::info!(from, into, "contacts merged");
    Ok(())
}

/// Moves contact `from`'s conversations to `into`; where both have one with a number, they
/// become one (the later window, the further read mark, the unread of both).
fn merge_threads(tx: &Transaction<'_>, from: &str, into: &str, at: Timestamp) -> Result<()> {
    type Thread = (String, String, Option<i64>, i64, Option<String>);
    let threads = |id: &str| -> Result<Vec<Thread>> {
        let sql = "SELECT id, phone_number_id, last_inbound_at, unread_count, read_through \
            FROM threads WHERE contact_id = ?1";
        all(tx, sql, [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
    };
    let ours = threads(into)?;
    for (id, number, last_inbound, unread, read_through) in threads(from)? {
        let Some((kept, _, our_last, our_unread, our_read)) = ours.iter().find(|o| o.1 == number) else {
            tx.prepare_cached("UPDATE threads SET contact_id = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, into, at.as_millis()])?;
            continue;
        };
        tx.prepare_cached("DELETE FROM threads WHERE id = ?1")?.execute([&id])?;
        tx.prepare_cached(
            "UPDATE threads SET last_inbound_at = ?2, read_through = ?3, unread_count = ?4, updated_at = ?5 \
             WHERE id = ?1",
        )?
        .execute(params![
            kept,
            last_inbound.max(*our_last),
            read_through.max(our_read.clone()),
            unread + our_unread,
            at.as_millis(),
        ])?;
    }
    Ok(())
}

/// Counts an inbound message in its conversation (made with the first one) and moves the
/// conversation's window.
pub(super) fn note_in_thread(
    tx: &Transaction<'_>,
    phone_number_id: &str,
    contact_id: &str,
    sent_at: Timestamp,
    at: Timestamp,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO threads (id, phone_number_id, contact_id, last_inbound_at, unread_count, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) ON CONFLICT (phone_number_id, contact_id) DO UPDATE SET \
         last_inbound_at = CASE WHEN threads.last_inbound_at IS NULL \
         OR excluded.last_inbound_at > threads.last_inbound_at THEN excluded.last_inbound_at \
         ELSE threads.last_inbound_at END, \
         unread_count = threads.unread_count + 1, updated_at = excluded.updated_at",
    )?
    .execute(params![
        ConversationId::generate().as_str(),
        phone_number_id,
        contact_id,
        sent_at.as_millis(),
        at.as_millis()
    ])?;
    Ok(())
}

/// A stop (`opted_out`) or resume at `at`: each column keeps the latest of its kind, so the
/// outcome (`Contact::marketing_opted_out`) is the same in any order. False for an unknown
/// contact.
fn set_preference(tx: &Transaction<'_>, id: &str, opted_out: bool, at: Timestamp) -> Result<bool> {
    let sql = if opted_out {
        "UPDATE contacts SET marketing_opt_out_at = CASE WHEN marketing_opt_out_at IS NULL \
         OR marketing_opt_out_at < ?2 THEN ?2 ELSE marketing_opt_out_at END, updated_at = ?3 WHERE id = ?1"
    } else {
        "UPDATE contacts SET marketing_opt_in_at = CASE WHEN marketing_opt_in_at IS NULL \
         OR marketing_opt_in_at < ?2 THEN ?2 ELSE marketing_opt_in_at END, updated_at = ?3 WHERE id = ?1"
    };
    let found = tx.prepare_cached(sql)?.execute(params![id, at.as_millis(), Timestamp::now().as_millis()])?;
    Ok(found > 0)
}
