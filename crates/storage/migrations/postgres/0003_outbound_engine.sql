-- The outbound engine: scheduling and expiry, FIFO per recipient, idempotency keys, per-number
-- throughput, account pauses, number leases, marketing opt-outs and the messaging tier.

-- When the caller asked the message to go and when it stops being worth sending; whether it
-- went to someone outside the 24-hour window (it counts against the messaging tier).
ALTER TABLE messages ADD COLUMN send_at BIGINT;
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
ALTER TABLE messages ADD COLUMN opens_conversation BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX messages_opening ON messages (account_id, created_at) WHERE opens_conversation;

-- Rebuilt with `seq`, the acceptance order, and `recipient`: a number's messages to one recipient
-- leave in (due_at, seq) order, one at a time.
CREATE TABLE outbox_next (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    due_at          BIGINT NOT NULL,
    available_at    BIGINT NOT NULL,
    expires_at      BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    lease           TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
INSERT INTO outbox_next (message_id, phone_number_id, recipient, due_at, available_at, attempts, lease, last_error, created_at)
    SELECT o.message_id, o.phone_number_id, m.counterpart, o.due_at, o.available_at, o.attempts, o.lease, o.last_error, o.created_at
    FROM outbox o JOIN messages m ON m.id = o.message_id ORDER BY o.created_at, o.message_id;
DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;
CREATE INDEX outbox_number_due ON outbox (phone_number_id, due_at, seq);
CREATE INDEX outbox_recipient ON outbox (phone_number_id, recipient, due_at, seq);
CREATE INDEX outbox_available ON outbox (available_at);
CREATE INDEX outbox_expiring ON outbox (expires_at) WHERE expires_at IS NOT NULL;

-- A send's idempotency key, per API key, with the request it was used for and the answer given.
CREATE TABLE idempotency_keys (
    api_key_id   TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- An account Meta refused for account-level reasons (token, lock, payment…): its messages wait.
ALTER TABLE accounts ADD COLUMN paused_at BIGINT;
ALTER TABLE accounts ADD COLUMN paused_error TEXT;
-- Meta's messaging limit tier (TIER_250 … TIER_UNLIMITED), when known or set.
ALTER TABLE accounts ADD COLUMN messaging_tier TEXT;

-- Throughput: Meta's level for the number, and the limit set through the API, which wins.
ALTER TABLE phone_numbers ADD COLUMN throughput_level TEXT;
ALTER TABLE phone_numbers ADD COLUMN messages_per_second BIGINT;

-- Which instance dispatches a number's messages, until when.
CREATE TABLE number_leases (
    phone_number_id TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,
    lease_until     BIGINT NOT NULL
);

-- A customer who stopped receiving marketing messages (a 131050 failure), since when.
ALTER TABLE contacts ADD COLUMN marketing_opt_out_at BIGINT;
