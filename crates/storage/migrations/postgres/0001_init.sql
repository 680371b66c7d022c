-- Times are milliseconds since the Unix epoch; JSON is stored as text.

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('sandbox', 'live')),
    graph_base_url TEXT NOT NULL,
    api_version    TEXT NOT NULL,
    waba_id        TEXT NOT NULL,
    access_token   TEXT NOT NULL,
    app_secret     TEXT NOT NULL,
    verify_token   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX accounts_waba ON accounts (waba_id);
-- One seeded sandbox account, even when several instances start at once.
CREATE UNIQUE INDEX accounts_one_sandbox ON accounts (mode) WHERE mode = 'sandbox';

CREATE TABLE phone_numbers (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    display_phone_number TEXT NOT NULL,
    verified_name        TEXT,
    quality_rating       TEXT,
    is_default           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX phone_numbers_account ON phone_numbers (account_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE contacts (
    id           TEXT PRIMARY KEY,
    wa_id        TEXT NOT NULL UNIQUE,
    profile_name TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    direction       TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    phone_number_id TEXT NOT NULL,
    contact_id      TEXT REFERENCES contacts (id),
    counterpart     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    content         TEXT NOT NULL,
    status          TEXT NOT NULL,
    wamid           TEXT UNIQUE,
    error           TEXT,
    metadata        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages (phone_number_id, counterpart, id);

-- A message's status history. Meta's statuses are keyed by wamid and may arrive before the
-- send's wamid is recorded: such rows wait with message_id NULL until it is. account_id is the
-- account whose signed webhook reported the status: only that account's message adopts it.
CREATE TABLE message_statuses (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT NOT NULL,
    message_id  TEXT REFERENCES messages (id) ON DELETE CASCADE,
    wamid       TEXT,
    status      TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    implied     BOOLEAN NOT NULL DEFAULT FALSE,
    error       TEXT,
    detail      TEXT,
    recorded_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX message_statuses_message ON message_statuses (message_id, status);
CREATE UNIQUE INDEX message_statuses_wamid ON message_statuses (account_id, wamid, status);

-- Messages waiting to be sent. available_at is when the row may next be claimed: its due time,
-- or the end of the lease of the dispatcher holding it.
CREATE TABLE outbox (
    message_id      TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    due_at          BIGINT NOT NULL,
    available_at    BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    lease           TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_available ON outbox (available_at);
CREATE INDEX outbox_lease ON outbox (lease);

-- Meta webhook deliveries exactly as received; available_at is NULL once processed.
CREATE TABLE webhook_deliveries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   TEXT,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    available_at BIGINT,
    lease        TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    processed_at BIGINT,
    error        TEXT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (available_at) WHERE available_at IS NOT NULL;
