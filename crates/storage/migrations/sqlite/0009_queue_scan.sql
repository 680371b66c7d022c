-- FIFO per recipient is found by reading a number's queue in (due_at, seq) order (`HeadScan`),
-- not through an index on the recipient, whose leaf every send wrote (a page per send).
DROP INDEX outbox_recipient;
