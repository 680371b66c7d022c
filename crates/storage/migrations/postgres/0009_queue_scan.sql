-- FIFO per recipient is found by reading a number's queue in (due_at, seq) order (`HeadScan`),
-- not through an index on the recipient, which every send wrote; nothing read the index on
-- available_at.
DROP INDEX outbox_recipient;
DROP INDEX outbox_available;
