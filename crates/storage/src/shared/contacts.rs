//! What both backends share about contacts and conversations: their statements, and how a
//! customer's ids lead to their contact (see `Contacts` in each backend for how they are kept).

use wagate_domain::contact::{counterpart, fold};
use wagate_domain::time::Timestamp;

use super::rows::Values;
use super::sql::message_select_cols;
use crate::*;

/// How a customer's ids came: with a message (or as a message would bring them), with the
/// profile name it gave; or as a change of ids (`user_changed_number`…), with the contact the
/// old ids found.
pub(crate) enum Seen<'a> {
    Message { profile_name: Option<&'a str> },
    Change { known: Option<String> },
}

impl Seen<'_> {
    fn profile_name(&self) -> Option<&str> {
        match self {
            Self::Message { profile_name } => *profile_name,
            Self::Change { .. } => None,
        }
    }
}

/// The contacts a customer's ids lead to: per id (wa_id, user_id), the contact that has it now
/// and the one that had it (the holder of its identity).
#[derive(Default)]
pub(crate) struct Holders {
    pub(crate) wa_id: (Option<String>, Option<String>),
    pub(crate) user_id: (Option<String>, Option<String>),
}

impl Holders {
    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.wa_id.0, &self.wa_id.1, &self.user_id.0, &self.user_id.1].into_iter().flatten()
    }

    /// The oldest contact found (ids are time-ordered).
    pub(crate) fn oldest(&self) -> Option<String> {
        self.all().min().cloned()
    }

    /// Every contact found (and the one a change of ids knew), oldest first: the first is the
    /// one the others are merged into.
    pub(crate) fn contacts(&self, seen: &Seen<'_>) -> Vec<String> {
        let known = match seen {
            Seen::Change { known } => known.clone(),
            Seen::Message { .. } => None,
        };
        let mut found: Vec<String> = self.all().cloned().chain(known).collect();
        found.sort();
        found.dedup();
        found
    }

    /// Per id, whether a message brings it as an id its contact had before and no contact has
    /// now: a late message from a customer's old number, which must not undo the number change.
    fn former(&self, seen: &Seen<'_>) -> [bool; 2] {
        let former = |(now, had): &(Option<String>, Option<String>)| now.is_none() && had.is_some();
        match seen {
            Seen::Message { .. } => [former(&self.wa_id), former(&self.user_id)],
            Seen::Change { .. } => [false, false],
        }
    }
}

/// The identities (the counterparts messages are filed under) of a customer's ids.
pub(crate) fn identities(ids: &ContactIds) -> impl Iterator<Item = String> + '_ {
    ids.wa_id.as_deref().map(counterpart).into_iter().chain(ids.user_id.iter().cloned())
}

macro_rules! contact_cols {
    () => {
        "c.id, c.wa_id, c.user_id, c.profile_name, c.attributes, c.marketing_opt_out_at, \
         c.marketing_opt_in_at, c.created_at, c.updated_at"
    };
}
pub(crate) use contact_cols;

pub(crate) const SELECT_CONTACT: &str = concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.id = $1");
pub(crate) const SELECT_CONTACT_BY_WA_ID: &str =
    concat!("SELECT ", contact_cols!(), " FROM contacts c WHERE c.wa_id = $1");
/// The contacts a [`ContactFilter`] matches, its values `$1` to `$6` ([`contact_search_values`]).
macro_rules! contact_search {
    () => {
        " FROM contacts c WHERE ($1 IS NULL OR c.id < $1) \
         AND ($2 IS NULL OR c.name_folded LIKE $2 ESCAPE '\\' \
         OR c.wa_id LIKE $3 ESCAPE '\\' OR c.user_id = $4 \
         OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = $5)) \
         AND ($6 IS NULL OR EXISTS (SELECT 1 FROM contact_tags g WHERE g.contact_id = c.id AND g.tag_folded = $6))"
    };
}

pub(crate) const SELECT_CONTACTS: &str =
    concat!("SELECT ", contact_cols!(), contact_search!(), " ORDER BY c.id DESC LIMIT $7");
/// A page by number: `$7` rows after the first `$8`.
pub(crate) const SELECT_CONTACTS_NUMBERED: &str =
    concat!("SELECT ", contact_cols!(), contact_search!(), " ORDER BY c.id DESC LIMIT $7 OFFSET $8");
pub(crate) const COUNT_CONTACTS: &str = concat!("SELECT COUNT(*)", contact_search!());

type SearchValues = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

/// [`contact_search`]'s values: a search `q` matches a name (folded), a phone number by its
/// digits, a user id, or a tag.
pub(crate) fn contact_search_values(f: &ContactFilter) -> SearchValues {
    let like = |s: &str| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let q = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let digits = q.filter(|q| {
        q.bytes().any(|b| b.is_ascii_digit()) && q.bytes().all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
    });
    (
        f.before.as_ref().map(|b| b.as_str().to_owned()),
        q.map(|q| like(&fold(q))),
        digits.map(|d| like(&d.chars().filter(char::is_ascii_digit).collect::<String>())),
        q.map(str::to_owned),
        q.map(fold),
        f.tag.as_deref().map(fold),
    )
}

/// [`SELECT_CONTACTS`]'s values.
pub(crate) fn contact_filter_values(f: &ContactFilter, limit: u32) -> impl Values<'static> + use<> {
    let (a, b, c, d, e, g) = contact_search_values(f);
    (a, b, c, d, e, g, i64::from(limit))
}

/// [`SELECT_CONTACTS_NUMBERED`]'s values.
pub(crate) fn numbered_contact_values(f: &ContactFilter, offset: u32, limit: u32) -> impl Values<'static> + use<> {
    let (a, b, c, d, e, g) = contact_search_values(f);
    (a, b, c, d, e, g, i64::from(limit), i64::from(offset))
}

pub(crate) const SELECT_CONTACT_ATTRIBUTES: &str = "SELECT attributes FROM contacts WHERE id = $1";
pub(crate) const DELETE_CONTACT_TAGS: &str = "DELETE FROM contact_tags WHERE contact_id = $1";

// Finding and linking contacts: by the ids they have now, or had (identities).
pub(crate) const CONTACT_BY_WA_ID: &str = "SELECT id FROM contacts WHERE wa_id = $1";
pub(crate) const CONTACT_BY_USER_ID: &str = "SELECT id FROM contacts WHERE user_id = $1";
pub(crate) const IDENTITY_HOLDER: &str = "SELECT contact_id FROM contact_identities WHERE identity = $1";
/// Makes a contact; none (no row) when a racing first message made it first.
pub(crate) const INSERT_CONTACT: &str = "INSERT INTO contacts \
    (id, wa_id, user_id, profile_name, name_folded, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id";

/// [`INSERT_CONTACT`]'s values: a new contact with a customer's ids.
pub(crate) fn new_contact_values<'a>(ids: &'a ContactIds, seen: &'a Seen<'_>, at: Timestamp) -> impl Values<'a> + 'a {
    let profile_name = seen.profile_name();
    let id = ContactId::generate().into_string();
    (id, ids.wa_id.as_deref(), ids.user_id.as_deref(), profile_name, profile_name.map(fold), at.as_millis())
}

/// Records ids (each when given) and a profile name (folded too) on contact `$6`.
pub(crate) const UPDATE_CONTACT_IDS: &str = "UPDATE contacts SET wa_id = COALESCE($1, wa_id), \
    user_id = COALESCE($2, user_id), profile_name = COALESCE($3, profile_name), \
    name_folded = COALESCE($4, name_folded), updated_at = $5 WHERE id = $6";

/// [`UPDATE_CONTACT_IDS`]'s values: the ids `seen` on `contact`, but for former ones (see
/// `Holders::former`).
pub(crate) fn contact_ids_values<'a>(
    contact: &'a str,
    ids: &'a ContactIds,
    holders: &Holders,
    seen: &'a Seen<'_>,
    at: Timestamp,
) -> impl Values<'a> + 'a {
    let former = holders.former(seen);
    let profile_name = seen.profile_name();
    (
        ids.wa_id.as_deref().filter(|_| !former[0]),
        ids.user_id.as_deref().filter(|_| !former[1]),
        profile_name,
        profile_name.map(fold),
        at.as_millis(),
        contact,
    )
}

pub(crate) const INSERT_IDENTITY: &str =
    "INSERT INTO contact_identities (identity, contact_id) VALUES ($1, $2) ON CONFLICT (identity) DO NOTHING";

// Merging one contact into another: `$1` the one kept, `$2` the one merged, where both are named.
pub(crate) const MOVE_CONTACT_MESSAGES: &str = "UPDATE messages SET contact_id = $1 WHERE contact_id = $2";
pub(crate) const MOVE_IDENTITIES: &str = "UPDATE contact_identities SET contact_id = $1 WHERE contact_id = $2";
pub(crate) const COUNT_CONTACT_TAGS: &str = "SELECT COUNT(*) FROM contact_tags WHERE contact_id = $1";
/// The newer contact's tags the older one lacks, by name, up to `$3`.
pub(crate) const MOVE_CONTACT_TAGS: &str = "INSERT INTO contact_tags (contact_id, tag, tag_folded) \
    SELECT $1, tag, tag_folded FROM contact_tags WHERE contact_id = $2 \
    AND tag_folded NOT IN (SELECT tag_folded FROM contact_tags WHERE contact_id = $1) ORDER BY tag LIMIT $3";
pub(crate) const DELETE_CONTACT: &str = "DELETE FROM contacts WHERE id = $1";
/// Contact `$9` takes the ids and profile name it lacks from the merged one, and the merged
/// attributes and marketing preferences.
pub(crate) const MERGE_INTO_CONTACT: &str = "UPDATE contacts SET wa_id = COALESCE(wa_id, $1), \
    user_id = COALESCE(user_id, $2), name_folded = CASE WHEN profile_name IS NULL THEN $3 ELSE name_folded END, \
    profile_name = COALESCE(profile_name, $4), attributes = $5, marketing_opt_out_at = $6, \
    marketing_opt_in_at = $7, updated_at = $8 WHERE id = $9";

/// [`MERGE_INTO_CONTACT`]'s values for contact `from` merged into `into`: `into` is the older
/// contact, so its attributes win, and the newer one's that would break the limits are dropped
/// (see `combine_attributes`); the latest stop and the latest resume of either, as for any
/// preference.
pub(crate) fn merged_contact_values<'a>(from: &'a Contact, into: &'a Contact, at: Timestamp) -> impl Values<'a> + 'a {
    let attributes = wagate_domain::contact::combine_attributes(&into.attributes, &from.attributes);
    (
        from.wa_id.as_deref(),
        from.user_id.as_deref(),
        from.profile_name.as_deref().map(fold),
        from.profile_name.as_deref(),
        super::json_text(&serde_json::Value::Object(attributes)),
        from.marketing_opt_out_at.max(into.marketing_opt_out_at).map(Timestamp::as_millis),
        from.marketing_opt_in_at.max(into.marketing_opt_in_at).map(Timestamp::as_millis),
        at.as_millis(),
        into.id.as_str(),
    )
}

/// A contact's conversations, as `rows::thread` reads them.
pub(crate) const SELECT_CONTACT_THREADS: &str =
    "SELECT id, phone_number_id, last_inbound_at, unread_count, read_through FROM threads WHERE contact_id = $1";
pub(crate) const MOVE_THREAD: &str = "UPDATE threads SET contact_id = $1, updated_at = $2 WHERE id = $3";
pub(crate) const DELETE_THREAD: &str = "DELETE FROM threads WHERE id = $1";
/// Two conversations with one number become one: the later window, the further read mark, the
/// unread of both.
pub(crate) const MERGE_INTO_THREAD: &str = "UPDATE threads SET last_inbound_at = $1, read_through = $2, \
    unread_count = $3, updated_at = $4 WHERE id = $5";

/// Counts an inbound message in its conversation (made with the first one) and moves the
/// conversation's window.
pub(crate) const NOTE_IN_THREAD: &str = "INSERT INTO threads \
    (id, phone_number_id, contact_id, last_inbound_at, unread_count, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (phone_number_id, contact_id) DO UPDATE SET \
    last_inbound_at = CASE WHEN threads.last_inbound_at IS NULL \
    OR excluded.last_inbound_at > threads.last_inbound_at THEN excluded.last_inbound_at \
    ELSE threads.last_inbound_at END, \
    unread_count = threads.unread_count + 1, updated_at = excluded.updated_at";

/// A stop or resume at `$1`: each column keeps the latest of its kind, so the outcome
/// (`Contact::marketing_opted_out`) is the same in any order.
pub(crate) const SET_OPT_OUT: &str = "UPDATE contacts SET marketing_opt_out_at = CASE WHEN marketing_opt_out_at \
    IS NULL OR marketing_opt_out_at < $1 THEN $1 ELSE marketing_opt_out_at END, updated_at = $2 WHERE id = $3";
pub(crate) const SET_OPT_IN: &str = "UPDATE contacts SET marketing_opt_in_at = CASE WHEN marketing_opt_in_at \
    IS NULL OR marketing_opt_in_at < $1 THEN $1 ELSE marketing_opt_in_at END, updated_at = $2 WHERE id = $3";

/// A thread with its contact's ids and its last message: the newest of the contact's identities
/// with the number that has left the queue (an index seek per identity), or the newest still
/// queued, from one pass over the outbox (not indexed by recipient: sends stay append-only),
/// whichever is newer. `$1` a number, `$2` a contact, `$3` a conversation (each optional), after
/// the cursor (`$4` its last message, `$5` its id), `$6` rows.
pub(crate) const SELECT_CONVERSATIONS: &str = "SELECT x.*, lm.created_at AS last_message_at FROM (\
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
    OR (COALESCE(x.last_message_id, '') = $4 AND x.id < $5)) \
    ORDER BY COALESCE(x.last_message_id, '') DESC, x.id DESC LIMIT $6";

/// [`SELECT_CONVERSATIONS`]'s values: the conversations `f` asks for, or the one `id`.
pub(crate) fn conversation_values(
    f: &ConversationFilter,
    id: Option<&str>,
    limit: u32,
) -> impl Values<'static> + use<> {
    let before = f.before.as_ref();
    (
        f.phone_number_id.clone(),
        f.contact_id.as_ref().map(|c| c.as_str().to_owned()),
        id.map(str::to_owned),
        // A cursor without a last message is '' (the key it sorts by).
        before.map(|b| b.last_message_id.as_ref().map_or(String::new(), |m| m.as_str().to_owned())),
        before.map(|b| b.id.as_str().to_owned()),
        i64::from(limit),
    )
}

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

/// A page of a conversation's messages, newest first; the page just after `$3` oldest first
/// ([`SELECT_CONVERSATION_PAGE_AFTER`]), shown newest first.
pub(crate) const SELECT_CONVERSATION_PAGE: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE id IN (",
    conversation_message_ids!(),
    ") ORDER BY id DESC LIMIT $4"
);
pub(crate) const SELECT_CONVERSATION_PAGE_AFTER: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE id IN (",
    conversation_message_ids!(),
    ") ORDER BY id LIMIT $4"
);

pub(crate) fn conversation_page_values(
    id: &ConversationId,
    page: &ConversationPage,
    limit: u32,
) -> impl Values<'static> + use<> {
    let message = |m: &Option<MessageId>| m.as_ref().map(|m| m.as_str().to_owned());
    (id.as_str().to_owned(), message(&page.before), message(&page.after), i64::from(limit))
}

/// The ids of contact `$1`'s messages with any business number, between `$2` and `$3` (each
/// optional), found as a conversation's are (see `conversation_message_ids`); the numbers are
/// listed so that the conversation index serves each (number, identity) pair.
macro_rules! contact_message_ids {
    () => {
        "SELECT m.id FROM messages m WHERE m.phone_number_id IN (SELECT p.id FROM phone_numbers p) \
         AND m.counterpart IN (SELECT i.identity FROM contact_identities i WHERE i.contact_id = $1) \
         AND m.status NOT IN ('scheduled', 'queued') AND ($2 IS NULL OR m.id < $2) AND ($3 IS NULL OR m.id > $3) \
         UNION ALL SELECT o.message_id FROM outbox o \
         WHERE o.recipient IN (SELECT i.identity FROM contact_identities i WHERE i.contact_id = $1) \
         AND ($2 IS NULL OR o.message_id < $2) AND ($3 IS NULL OR o.message_id > $3)"
    };
}

/// A page by number of a contact's messages, newest first: `$4` rows after the first `$5`.
pub(crate) const SELECT_CONTACT_MESSAGES: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE id IN (",
    contact_message_ids!(),
    ") ORDER BY id DESC LIMIT $4 OFFSET $5"
);
/// How many messages [`SELECT_CONTACT_MESSAGES`] pages through (a message being sent is found
/// both ways, and counted once).
pub(crate) const COUNT_CONTACT_MESSAGES: &str =
    concat!("SELECT COUNT(*) FROM messages WHERE id IN (", contact_message_ids!(), ")");

pub(crate) fn contact_messages_values(
    id: &ContactId,
    page: &ConversationPage,
) -> (String, Option<String>, Option<String>) {
    let message = |m: &Option<MessageId>| m.as_ref().map(|m| m.as_str().to_owned());
    (id.as_str().to_owned(), message(&page.before), message(&page.after))
}

pub(crate) fn numbered_contact_messages_values(
    id: &ContactId,
    page: &ConversationPage,
    offset: u32,
    limit: u32,
) -> impl Values<'static> + use<> {
    let (id, before, after) = contact_messages_values(id, page);
    (id, before, after, i64::from(limit), i64::from(offset))
}

/// Inbound messages are never queued: the status term is what lets the (partial) conversation
/// index serve the query.
pub(crate) const SELECT_NEWEST_INBOUND: &str = concat!(
    "SELECT ",
    message_select_cols!(),
    " FROM messages WHERE phone_number_id = ",
    thread_number!(),
    " AND counterpart IN ",
    thread_identities!(),
    " AND status NOT IN ('scheduled', 'queued') AND direction = 'inbound' ORDER BY id DESC LIMIT 1"
);

/// Marks conversation `$3` read up to message `$1`, unless it was read further.
pub(crate) const MARK_READ_THROUGH: &str = "UPDATE threads SET read_through = CASE WHEN read_through IS NULL \
    OR read_through < $1 THEN $1 ELSE read_through END, updated_at = $2 WHERE id = $3";
/// Counts what is unread in conversation `$1`; as in [`SELECT_NEWEST_INBOUND`], the status term
/// is for the index.
pub(crate) const COUNT_UNREAD: &str = "UPDATE threads SET unread_count = (SELECT COUNT(*) FROM messages m \
    WHERE m.phone_number_id = threads.phone_number_id AND m.direction = 'inbound' \
    AND m.status NOT IN ('scheduled', 'queued') AND m.id > threads.read_through AND m.counterpart IN \
    (SELECT i.identity FROM contact_identities i WHERE i.contact_id = threads.contact_id)) WHERE id = $1";

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![
        SELECT_CONTACT,
        SELECT_CONTACT_BY_WA_ID,
        SELECT_CONTACTS,
        SELECT_CONTACTS_NUMBERED,
        COUNT_CONTACTS,
        SELECT_CONTACT_ATTRIBUTES,
        DELETE_CONTACT_TAGS,
        CONTACT_BY_WA_ID,
        CONTACT_BY_USER_ID,
        IDENTITY_HOLDER,
        INSERT_CONTACT,
        UPDATE_CONTACT_IDS,
        INSERT_IDENTITY,
        MOVE_CONTACT_MESSAGES,
        MOVE_IDENTITIES,
        COUNT_CONTACT_TAGS,
        MOVE_CONTACT_TAGS,
        DELETE_CONTACT,
        MERGE_INTO_CONTACT,
        SELECT_CONTACT_THREADS,
        MOVE_THREAD,
        DELETE_THREAD,
        MERGE_INTO_THREAD,
        NOTE_IN_THREAD,
        SET_OPT_OUT,
        SET_OPT_IN,
        SELECT_CONVERSATIONS,
        SELECT_CONVERSATION_PAGE,
        SELECT_CONVERSATION_PAGE_AFTER,
        SELECT_CONTACT_MESSAGES,
        COUNT_CONTACT_MESSAGES,
        SELECT_NEWEST_INBOUND,
        MARK_READ_THROUGH,
        COUNT_UNREAD,
    ]
}
