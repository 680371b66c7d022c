-- The outbox writes less per send. FIFO per recipient is found by reading a number's queue in
-- (due_at, seq) order (`HeadScan`), not through an index on the recipient, whose leaf every
-- send wrote; nothing read the index on available_at; and `seq` is the rowid without
-- AUTOINCREMENT, which updated sqlite_sequence on every send (a new row's seq is still above
-- every queued row's, which is all the queue's order needs).
CREATE TABLE outbox_next (
    seq             INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    due_at          INTEGER NOT NULL,
    available_at    INTEGER NOT NULL,
    expires_at      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease           TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
INSERT INTO outbox_next SELECT seq, message_id, phone_number_id, recipient, due_at, available_at, expires_at,
    attempts, lease, last_error, created_at FROM outbox ORDER BY seq;
DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;
CREATE INDEX outbox_number_due ON outbox (phone_number_id, due_at, seq);
CREATE INDEX outbox_expiring ON outbox (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX outbox_leased ON outbox (lease) WHERE lease IS NOT NULL;
