-- Outbound messages join the conversation index when they leave the queue, not when they are
-- accepted: every send's entry landed on an index leaf of its own (random by recipient), a
-- page written to the log and again to the database per send, a sixth of a send's cost. The
-- conversation views find queued and scheduled messages through the outbox instead.
DROP INDEX messages_conversation;
CREATE INDEX messages_conversation ON messages (phone_number_id, counterpart, id)
    WHERE status NOT IN ('scheduled', 'queued');
