-- Inbound, all of it: group statuses per participant, histories folded by the domain (implied
-- entries are no longer stored), replies and reactions linked to their message, messages sent
-- from the WhatsApp Business app (echoes), and every other webhook field kept as an event.

-- A group message's delivered/read/played come once per participant; '' for the message itself.
ALTER TABLE message_statuses ADD COLUMN participant TEXT NOT NULL DEFAULT '';
DELETE FROM message_statuses WHERE implied;
ALTER TABLE message_statuses DROP COLUMN implied;
DROP INDEX message_statuses_message;
DROP INDEX message_statuses_wamid;
CREATE UNIQUE INDEX message_statuses_message ON message_statuses (message_id, status, participant);
CREATE UNIQUE INDEX message_statuses_wamid ON message_statuses (account_id, wamid, status, participant);

-- The message an inbound message replies to (`context.id`) or reacts to (`reaction.message_id`),
-- by wamid as Meta gave it; the wagate message is found through messages.wamid.
ALTER TABLE messages ADD COLUMN reply_to_wamid TEXT;
-- An outbound message sent from the WhatsApp Business app on a coexistence number (an echo).
ALTER TABLE messages ADD COLUMN from_app BOOLEAN NOT NULL DEFAULT FALSE;

-- Webhook changes other than messages and statuses (template status, quality, account updates,
-- errors at value level, fields wagate does not know), once however often Meta delivers them
-- (errors, which carry no time of their own, once per delivery).
CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT NOT NULL,
    delivery_id BIGINT NOT NULL,
    dedup_key   TEXT NOT NULL,
    field       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT,
    payload     TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX webhook_events_change ON webhook_events (account_id, dedup_key);
CREATE INDEX webhook_events_account ON webhook_events (account_id, id);
