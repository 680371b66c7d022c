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
use sqlx::Row as _;
use wagate_domain::contact::{MAX_TAGS, combine_attributes, counterpart, fold, merge_attributes};
use wagate_domain::id::{ContactId, ConversationId, MessageId};
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, rows};
use crate::shared::{json_text, message_cols, message_select_cols, parse_object};
use crate::*;

macro_rules! contact_cols {
    () => {
        "c.id, c.wa_id, c.user_id, c.profile_name, c.attributes, c.marketing_opt_out_at, \
         c.marketing_opt_in_at, c.created_at, c.updated_at"
    };
}

/// A thread with its contact's ids and its last message: the newest of the contact's
/// identities with the number that has left the queue (an index seek per identity), or the
/// newest still queued, from one pass over the outbox (not indexed by recipient: sends stay
/// append-only), whichever is newer.
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
     JOIN contact_identities i ON i.identity = o.recipient WHERE ($1 IS NULL OR o.phone_number_id = $1) \
     GROUP BY o.phone_number_id, i.contact_id) q \
     ON q.phone_number_id = t.phone_number_id AND q.contact_id = t.contact_id \
     WHERE ($1 IS NULL OR t.phone_number_id = $1) AND ($2 IS NULL OR t.contact_id = $2) \
     AND ($3 IS NULL OR t.id = $3)) x LEFT JOIN messages lm ON lm.id = x.last_message_id \
     WHERE ($4 IS NULL OR COALESCE(x.last_message_id, '') < $4 \
     OR (COALESCE(x.last_message_id, '') = $4 AND x.id < $6)) \
     ORDER BY COALESCE(x.last_message_id, '') DESC, x.id DESC LIMIT $5";

/// Conversation `$1`'s number, and its contact's identities.
macro_rules! thread_number {
    () => {
        "(SELECT phone_number_id FROM threads WHERE id = $1)"
    };
}
macro_rules! thread_identities {
    () => {
        "(SELECT i.identity FROM contact_identities i JOIN threads t ON t.contact_id = i.contact_id WHERE t.id = $1)"
    };
}

/// The ids of conversation `$1`'s messages between `$2` and `$3` (each optional): its number's,
/// with its contact's identities, through the conversation index once they have left the queue
/// and through the outbox while they wait (a message being sent is in both).
macro_rules! conversation_message_ids {
    () => {
        concat!(
            "SELECT m.id FROM messages m WHERE m.phone_number_id = ",
            thread_number!(),
            " AND m.counterpart IN ",
            thread_identities!(),
            " AND m.status NOT IN ('scheduled', 'queued') AND ($2 IS NULL OR m.id < $2) AND ($3 IS NULL OR m.id > $3) \
             UNION ALL SELECT o.message_id FROM outbox o WHERE o.phone_number_id = ",
            thread_number!(),
            " AND o.recipient IN ",
            thread_identities!(),
            " AND ($2 IS NULL OR o.message_id < $2) AND ($3 IS NULL OR o.message_id > $3)"
        )
    };
}

const IDENTITY_HOLDER: &str = "SELECT contact_id FROM contact_identities WHERE identity = $1";
const BY_WA_ID: &str = "SELECT id FROM contacts WHERE wa_id = $1";
const BY_USER_ID: &str = "SELECT id FROM contacts WHERE user_id = $1";

async fn contact_by(tx: &mut Tx, sql: &'static str, value: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(sql).bind(value).fetch_optional(&mut **tx).await?)
}

/// The contact holding any of these ids now or before (as an identity).
async fn holder(tx: &mut Tx, ids: &ContactIds) -> Result<Option<String>> {
    let mut found = Vec::new();
    if let Some(w) = &ids.wa_id {
        found.extend(contact_by(tx, BY_WA_ID, w).await?);
        found.extend(contact_by(tx, IDENTITY_HOLDER, &counterpart(w)).await?);
    }
    if let Some(u) = &ids.user_id {
        found.extend(contact_by(tx, BY_USER_ID, u).await?);
        found.extend(contact_by(tx, IDENTITY_HOLDER, u).await?);
    }
    Ok(found.into_iter().min())
}

/// The contact these ids (and `extra`, a contact known otherwise) belong to: found by the ids it
/// has or any it had, merged into the oldest when they name several, or made when no contact
/// ever had them. Records the profile name when given, the ids as identities of the contact, and
/// the ids on the contact, except (unless `current`, the ids are the customer's ids now) an id
/// the contact had before: a late message from a customer's old number does not undo the number
/// change.
pub(super) async fn resolve_contact(
    tx: &mut Tx,
    ids: &ContactIds,
    extra: Option<String>,
    profile_name: Option<&str>,
    at: Timestamp,
    current: bool,
) -> Result<String> {
    let wa_identity = ids.wa_id.as_deref().map(counterpart);
    let folded = profile_name.map(fold);
    // Two first messages of one new customer may race: the loser finds the winner's contact on
    // its next look.
    for _ in 0..3 {
        let mut found = Vec::new();
        // Per id: some contact has it now; some contact had it (it is an identity).
        let mut former = [false, false];
        let lookups = [(&ids.wa_id, wa_identity.as_ref(), BY_WA_ID), (&ids.user_id, ids.user_id.as_ref(), BY_USER_ID)];
        for (i, (id, identity, by_column)) in lookups.into_iter().enumerate() {
            let (Some(id), Some(identity)) = (id, identity) else { continue };
            let now = contact_by(tx, by_column, id).await?;
            let had = contact_by(tx, IDENTITY_HOLDER, identity).await?;
            former[i] = !current && now.is_none() && had.is_some();
            found.extend(now);
            found.extend(had);
        }
        found.extend(extra.clone());
        found.sort();
        found.dedup();
        let survivor = match found.first() {
            Some(s) => s.clone(),
            None => {
                let made: Option<String> = sqlx::query_scalar(
                    "INSERT INTO contacts (id, wa_id, user_id, profile_name, name_folded, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(ContactId::generate().as_str())
                .bind(&ids.wa_id)
                .bind(&ids.user_id)
                .bind(profile_name)
                .bind(&folded)
                .bind(at.as_millis())
                .fetch_optional(&mut **tx)
                .await?;
                match made {
                    Some(id) => id,
                    None => continue,
                }
            }
        };
        for absorbed in found.iter().skip(1) {
            merge_contact(tx, absorbed, &survivor, at).await?;
        }
        sqlx::query(
            "UPDATE contacts SET wa_id = COALESCE($2, wa_id), user_id = COALESCE($3, user_id), \
             profile_name = COALESCE($4, profile_name), name_folded = COALESCE($5, name_folded), \
             updated_at = $6 WHERE id = $1",
        )
        .bind(&survivor)
        .bind(ids.wa_id.as_ref().filter(|_| !former[0]))
        .bind(ids.user_id.as_ref().filter(|_| !former[1]))
        .bind(profile_name)
        .bind(&folded)
        .bind(at.as_millis())
        .execute(&mut **tx)
        .await?;
        for identity in wa_identity.iter().chain(&ids.user_id) {
            // Every holder was merged into the survivor above: a conflict is only a racing
            // first message, whose contact the identity stays with.
            sqlx::query(
                "INSERT INTO contact_identities (identity, contact_id) VALUES ($1, $2) ON CONFLICT (identity) DO NOTHING",
            )
            .bind(identity)
            .bind(&survivor)
            .execute(&mut **tx)
            .await?;
        }
        return Ok(survivor);
    }
    Err(StorageError::Conflict("the contact kept changing while it was being recorded".into()))
}

/// Moves everything of contact `from` to contact `into` and deletes `from`.
async fn merge_contact(tx: &mut Tx, from: &str, into: &str, at: Timestamp) -> Result<()> {
    const READ: &str = concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.id = $1");
    let Some(a) = sqlx::query(READ).bind(from).fetch_optional(&mut **tx).await? else { return Ok(()) };
    let Some(b) = sqlx::query(READ).bind(into).fetch_optional(&mut **tx).await? else { return Ok(()) };
    let (a, b) = (rows::contact(&a)?, rows::contact(&b)?);
    // Rare, so a plain scan: every message of `from` must move before it is deleted.
    sqlx::query("UPDATE messages SET contact_id = $1 WHERE contact_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    const THREADS: &str =
        "SELECT id, phone_number_id, last_inbound_at, unread_count, read_through FROM threads WHERE contact_id = $1";
    let theirs = sqlx::query(THREADS).bind(from).fetch_all(&mut **tx).await?;
    let ours = sqlx::query(THREADS).bind(into).fetch_all(&mut **tx).await?;
    for t in &theirs {
        let number: String = t.try_get("phone_number_id")?;
        let id: String = t.try_get("id")?;
        let same = ours.iter().find(|o| o.try_get::<String, _>("phone_number_id").is_ok_and(|n| n == number));
        let Some(o) = same else {
            sqlx::query("UPDATE threads SET contact_id = $2, updated_at = $3 WHERE id = $1")
                .bind(&id)
                .bind(into)
                .bind(at.as_millis())
                .execute(&mut **tx)
                .await?;
            continue;
        };
        let last = t.try_get::<Option<i64>, _>("last_inbound_at")?.max(o.try_get::<Option<i64>, _>("last_inbound_at")?);
        let read = t.try_get::<Option<String>, _>("read_through")?.max(o.try_get::<Option<String>, _>("read_through")?);
        let unread = t.try_get::<i64, _>("unread_count")? + o.try_get::<i64, _>("unread_count")?;
        sqlx::query("DELETE FROM threads WHERE id = $1").bind(&id).execute(&mut **tx).await?;
        sqlx::query(
            "UPDATE threads SET last_inbound_at = $2, read_through = $3, unread_count = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(o.try_get::<String, _>("id")?)
        .bind(last)
        .bind(read)
        .bind(unread)
        .bind(at.as_millis())
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE contact_identities SET contact_id = $1 WHERE contact_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    // Tags: the older contact's, then the newer one's others by name up to the limit.
    let has: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contact_tags WHERE contact_id = $1")
        .bind(into)
        .fetch_one(&mut **tx)
        .await?;
    let room = (MAX_TAGS as i64 - has).max(0);
    sqlx::query(
        "INSERT INTO contact_tags (contact_id, tag, tag_folded) SELECT $1, tag, tag_folded FROM contact_tags \
         WHERE contact_id = $2 AND tag_folded NOT IN (SELECT tag_folded FROM contact_tags WHERE contact_id = $1) \
         ORDER BY tag LIMIT $3",
    )
    .bind(into)
    .bind(from)
    .bind(room)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1").bind(from).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM contacts WHERE id = $1").bind(from).execute(&mut **tx).await?;
    // `into` is the older contact: its attributes win, and the newer one's that would break the
    // limits are dropped (see `combine_attributes`). The latest stop and the latest resume of
    // either, as for any preference.
    let attributes = combine_attributes(&b.attributes, &a.attributes);
    let opt_in = a.marketing_opt_in_at.max(b.marketing_opt_in_at);
    let opt_out = a.marketing_opt_out_at.max(b.marketing_opt_out_at);
    sqlx::query(
        "UPDATE contacts SET wa_id = COALESCE(wa_id, $2), user_id = COALESCE(user_id, $3), \
         name_folded = CASE WHEN profile_name IS NULL THEN $9 ELSE name_folded END, \
         profile_name = COALESCE(profile_name, $4), attributes = $5, marketing_opt_out_at = $6, \
         marketing_opt_in_at = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(into)
    .bind(&a.wa_id)
    .bind(&a.user_id)
    .bind(&a.profile_name)
    .bind(json_text(&Value::Object(attributes)))
    .bind(opt_out.map(Timestamp::as_millis))
    .bind(opt_in.map(Timestamp::as_millis))
    .bind(at.as_millis())
    .bind(a.profile_name.as_deref().map(fold))
    .execute(&mut **tx)
    .await?;
    tracing::info!(from, into, "contacts merged");
    Ok(())
}

/// Counts an inbound message in its conversation (made with the first one) and moves the
/// conversation's window.
pub(super) async fn note_in_thread(
    tx: &mut Tx,
    phone_number_id: &str,
    contact_id: &str,
    sent_at: Timestamp,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO threads (id, phone_number_id, contact_id, last_inbound_at, unread_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (phone_number_id, contact_id) DO UPDATE SET \
         last_inbound_at = CASE WHEN threads.last_inbound_at IS NULL \
         OR excluded.last_inbound_at > threads.last_inbound_at THEN excluded.last_inbound_at \
         ELSE threads.last_inbound_at END, \
         unread_count = threads.unread_count + 1, updated_at = excluded.updated_at",
    )
    .bind(ConversationId::generate().as_str())
    .bind(phone_number_id)
    .bind(contact_id)
    .bind(sent_at.as_millis())
    .bind(at.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stop (`opted_out`) or resume at `at`: each column keeps the latest of its kind, so the
/// outcome (`Contact::marketing_opted_out`) is the same in any order. False for an unknown contact.
async fn set_preference(tx: &mut Tx, id: &str, opted_out: bool, at: Timestamp) -> Result<bool> {
    let sql = if opted_out {
        "UPDATE contacts SET marketing_opt_out_at = CASE WHEN marketing_opt_out_at IS NULL \
         OR marketing_opt_out_at < $2 THEN $2 ELSE marketing_opt_out_at END, updated_at = $3 WHERE id = $1"
    } else {
        "UPDATE contacts SET marketing_opt_in_at = CASE WHEN marketing_opt_in_at IS NULL \
         OR marketing_opt_in_at < $2 THEN $2 ELSE marketing_opt_in_at END, updated_at = $3 WHERE id = $1"
    };
    let found =
        sqlx::query(sql).bind(id).bind(at.as_millis()).bind(Timestamp::now().as_millis()).execute(&mut **tx).await?;
    Ok(found.rows_affected() > 0)
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
        let Some(r) = sqlx::query(sql).bind(value).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        Ok(self.with_tags(vec![rows::contact(&r)?]).await?.pop())
    }

    pub(super) async fn contact_by_wa_id(&self, wa_id: &str) -> Result<Option<Contact>> {
        self.contact_where(concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.wa_id = $1"), wa_id).await
    }

    async fn conversations(
        &self,
        f: &ConversationFilter,
        id: Option<&ConversationId>,
        limit: u32,
    ) -> Result<Vec<Conversation>> {
        sqlx::query(SELECT_CONVERSATIONS)
            .bind(f.phone_number_id.as_deref())
            .bind(f.contact_id.as_ref().map(ContactId::as_str))
            .bind(id.map(ConversationId::as_str))
            // A cursor without a last message is '' (the key it sorts by).
            .bind(f.before.as_ref().map(|b| b.last_message_id.as_ref().map_or("", MessageId::as_str)))
            .bind(i64::from(limit))
            .bind(f.before.as_ref().map(|b| b.id.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::conversation)
            .collect()
    }
}

#[async_trait]
impl Contacts for PgStore {
    async fn upsert_contact(&self, ids: &ContactIds, profile_name: Option<&str>, at: Timestamp) -> Result<ContactId> {
        let mut tx = self.begin().await?;
        let id = resolve_contact(&mut tx, ids, None, profile_name, at, false).await?;
        tx.commit().await?;
        Ok(ContactId::from_trusted(id))
    }

    async fn change_contact_ids(&self, old: &ContactIds, new: &ContactIds, at: Timestamp) -> Result<Option<ContactId>> {
        let mut tx = self.begin().await?;
        let known = holder(&mut tx, old).await?;
        if known.is_none() && holder(&mut tx, new).await?.is_none() {
            // Nobody to change: the customer's next message makes their contact.
            tx.rollback().await?;
            return Ok(None);
        }
        // The known contact and any holding the new ids become one, with the new ids.
        let id = resolve_contact(&mut tx, new, known, None, at, true).await?;
        tx.commit().await?;
        Ok(Some(ContactId::from_trusted(id)))
    }

    async fn get_contact(&self, id: &ContactId) -> Result<Option<Contact>> {
        self.contact_where(concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.id = $1"), id.as_str()).await
    }

    async fn list_contacts(&self, f: &ContactFilter, limit: u32) -> Result<Vec<Contact>> {
        let like = |s: &str| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let q = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let digits = q.filter(|q| {
            q.bytes().any(|b| b.is_ascii_digit()) && q.bytes().all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
        });
        let rows = sqlx::query(concat!(
            "SELECT ",
            contact_cols!(),
            " FROM contacts c WHERE ($1 IS NULL OR c.id < $1) ",
            "AND ($2 IS NULL OR c.name_folded LIKE $2 ESCAPE '\\' ",
            "OR c.wa_id LIKE $3 ESCAPE '\\' OR c.user_id = $4 ",
            "OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = $5)) ",
            "AND ($6 IS NULL OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = $6)) ",
            "ORDER BY c.id DESC LIMIT $7"
        ))
        .bind(f.before.as_ref().map(ContactId::as_str))
        .bind(q.map(|q| like(&fold(q))))
        .bind(digits.map(|d| like(&d.chars().filter(char::is_ascii_digit).collect::<String>())))
        .bind(q)
        .bind(q.map(fold))
        .bind(f.tag.as_deref().map(fold))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let contacts = rows.iter().map(rows::contact).collect::<Result<Vec<_>>>()?;
        self.with_tags(contacts).await
    }

    async fn update_contact(&self, id: &ContactId, u: &ContactUpdate) -> Result<ContactUpdated> {
        let mut tx = self.begin().await?;
        // First a write, so that the row is locked while it is merged.
        let found = sqlx::query("UPDATE contacts SET updated_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(u.at.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            tx.rollback().await?;
            return Ok(ContactUpdated::NotFound);
        }
        if let Some(patch) = &u.attributes {
            let text: String = sqlx::query_scalar("SELECT attributes FROM contacts WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let current = parse_object("attributes", Some(text))?.unwrap_or_default();
            let merged = match merge_attributes(&current, patch) {
                Ok(m) => m,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(ContactUpdated::Invalid(e));
                }
            };
            sqlx::query("UPDATE contacts SET attributes = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(json_text(&Value::Object(merged)))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(tags) = &u.tags {
            sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
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
        tx.commit().await?;
        Ok(ContactUpdated::Updated)
    }

    async fn set_marketing_preference(&self, id: &ContactId, opted_out: bool, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = set_preference(&mut tx, id.as_str(), opted_out, at).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn mark_marketing_opt_out(&self, wa_id: &str, at: Timestamp) -> Result<()> {
        // The contact as a message from `wa_id` would find it, then a stop at `at` like any other.
        let mut tx = self.begin().await?;
        let ids = ContactIds { wa_id: Some(wa_id.to_owned()), user_id: None };
        let contact = resolve_contact(&mut tx, &ids, None, None, Timestamp::now(), false).await?;
        set_preference(&mut tx, &contact, true, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        Ok(self.conversations(&ConversationFilter::default(), Some(id), 1).await?.pop())
    }

    async fn list_conversations(&self, filter: &ConversationFilter, limit: u32) -> Result<Vec<Conversation>> {
        self.conversations(filter, None, limit).await
    }

    async fn conversation_messages(
        &self,
        id: &ConversationId,
        page: &ConversationPage,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let sql = if page.after.is_some() {
            concat!(
                "SELECT ",
                message_select_cols!(),
                " FROM messages WHERE id IN (",
                conversation_message_ids!(),
                ") ORDER BY id LIMIT $4"
            )
        } else {
            concat!(
                "SELECT ",
                message_select_cols!(),
                " FROM messages WHERE id IN (",
                conversation_message_ids!(),
                ") ORDER BY id DESC LIMIT $4"
            )
        };
        let mut messages = sqlx::query(sql)
            .bind(id.as_str())
            .bind(page.before.as_ref().map(MessageId::as_str))
            .bind(page.after.as_ref().map(MessageId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::message)
            .collect::<Result<Vec<_>>>()?;
        // The page just after `after` is read oldest first, and shown newest first.
        if page.after.is_some() {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn newest_inbound(&self, id: &ConversationId) -> Result<Option<Message>> {
        // Inbound messages are never queued: the status term is what lets the (partial)
        // conversation index serve the query.
        sqlx::query(concat!(
            "SELECT ",
            message_select_cols!(),
            " FROM messages WHERE phone_number_id = ",
            thread_number!(),
            " AND counterpart IN ",
            thread_identities!(),
            " AND status NOT IN ('scheduled', 'queued') AND direction = 'inbound' ORDER BY id DESC LIMIT 1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::message)
        .transpose()
    }

    async fn mark_conversation_read(&self, id: &ConversationId, through: &MessageId, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locks the row before counting, so an inbound message committed meanwhile is either
        // counted here or adds itself after.
        let found = sqlx::query(
            "UPDATE threads SET read_through = CASE WHEN read_through IS NULL OR read_through < $2 \
             THEN $2 ELSE read_through END, updated_at = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(through.as_str())
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if found == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // As in `newest_inbound`, the status term is for the index.
        sqlx::query(
            "UPDATE threads SET unread_count = (SELECT COUNT(*) FROM messages m \
             WHERE m.phone_number_id = threads.phone_number_id AND m.direction = 'inbound' \
             AND m.status NOT IN ('scheduled', 'queued') AND m.id > threads.read_through AND m.counterpart IN \
             (SELECT i.identity FROM contact_identities i WHERE i.contact_id = threads.contact_id)) WHERE id = $1",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
