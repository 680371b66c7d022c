-- Contacts keyed by wagate's id, known by phone (wa_id), by business-scoped user id (user_id,
-- for users with usernames Meta may send no phone), or both; with attributes, tags and marketing
-- preferences. Conversations (storage: threads) pair a business number with a contact.

-- wa_id: Meta's wa_id (digits of the phone number); NULL when only the BSUID is known.
ALTER TABLE contacts ALTER COLUMN wa_id DROP NOT NULL;
-- user_id: the business-scoped user id (BSUID); NULL until Meta sends one.
ALTER TABLE contacts ADD COLUMN user_id TEXT UNIQUE;
-- profile_name case-folded by wagate (Rust's Unicode lowercase), what `?q=` searches: SQLite's
-- and PostgreSQL's lower() fold differently. Existing names are folded here; the next message of
-- each customer stores wagate's own folding.
ALTER TABLE contacts ADD COLUMN name_folded TEXT;
UPDATE contacts SET name_folded = lower(profile_name);
-- A JSON object of the business's own fields.
ALTER TABLE contacts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
-- The latest marketing resume; marketing_opt_out_at is the latest stop (each kept as a maximum,
-- so webhooks may come in any order): opted out while the stop is newer than the resume, or with
-- no resume.
ALTER TABLE contacts ADD COLUMN marketing_opt_in_at BIGINT;
ALTER TABLE contacts ADD CONSTRAINT contacts_known CHECK (wa_id IS NOT NULL OR user_id IS NOT NULL);

CREATE TABLE contact_tags (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    -- The tag case-folded by wagate, what `?q=` matches.
    tag_folded TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_tag ON contact_tags (tag);

-- Every `messages.counterpart` a contact has had (`+` and the digits of a wa_id, or a BSUID):
-- a conversation's messages, both directions, are found through them with the
-- messages_conversation index; outbound messages carry no contact id.
CREATE TABLE contact_identities (
    identity   TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);
INSERT INTO contact_identities (identity, contact_id)
    SELECT CASE WHEN wa_id ~ '^[0-9]+$' THEN '+' || wa_id ELSE wa_id END, id
    FROM contacts WHERE wa_id IS NOT NULL;

-- A conversation: one business number and one contact. The `conversations` table stays the
-- 24-hour window per number and counterpart that every send reads. The last message is not
-- stored: it is the newest message of the contact's identities (sends stay one write).
CREATE TABLE threads (
    id              TEXT PRIMARY KEY,
    phone_number_id TEXT NOT NULL,
    contact_id      TEXT NOT NULL REFERENCES contacts (id),
    -- Meta's time of the customer's newest message: the window is open for 24 hours after it.
    last_inbound_at BIGINT,
    -- Inbound messages after `read_through`, the newest inbound message marked read.
    unread_count    BIGINT NOT NULL DEFAULT 0,
    read_through    TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (phone_number_id, contact_id)
);
CREATE INDEX threads_contact ON threads (contact_id);
-- Existing inbound history: one conversation per number and contact, nothing unread.
INSERT INTO threads (id, phone_number_id, contact_id, last_inbound_at, unread_count, created_at, updated_at)
    SELECT 'cv_' || substr(MIN(m.id), 5), m.phone_number_id, m.contact_id, MAX(m.created_at), 0, MIN(m.created_at), MAX(m.updated_at)
    FROM messages m WHERE m.direction = 'inbound' AND m.contact_id IS NOT NULL
    GROUP BY m.phone_number_id, m.contact_id;
