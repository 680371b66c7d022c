-- Statuses for wamids no message here has (sent by other software from the same number, or
-- whose send result was lost) wait for their message; those past waiting are removed, and
-- this finds them without reading the whole history.
CREATE INDEX message_statuses_orphaned ON message_statuses (recorded_at) WHERE message_id IS NULL;
