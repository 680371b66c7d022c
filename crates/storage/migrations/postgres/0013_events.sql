-- Events for the business's own software: every change it is told about, stored in the
-- transaction that made the change, in commit order (`seq`), then fanned out to each webhook
-- endpoint that subscribes to it as a delivery of its own, each attempt of which is logged.

CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL,
    type            TEXT NOT NULL,
    phone_number_id TEXT,
    data            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (id);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    url              TEXT NOT NULL,
    description      TEXT,
    -- JSON arrays: the event types (or `prefix.*`) wanted, and the numbers (NULL: every number).
    event_types      TEXT NOT NULL,
    phone_number_ids TEXT,
    -- Sealed JSON object of extra request headers.
    headers          TEXT,
    format           TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    disabled_reason  TEXT,
    -- Sealed; the previous secret still signs until `previous_secret_until`.
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_secret_until BIGINT,
    -- Since when every attempt failed; NULL after a success.
    failing_since    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- The leased queue of deliveries: one per (endpoint, event) to deliver, due at `available_at`
-- (a claim moves it to the lease's end), done when it is NULL.
CREATE TABLE event_deliveries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq    BIGINT NOT NULL,
    available_at BIGINT,
    lease        TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    -- pending, delivered, failed (given up)
    state        TEXT NOT NULL,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
-- Claimed per endpoint, so that one endpoint's backlog does not hold the others back.
CREATE INDEX event_deliveries_due ON event_deliveries (endpoint_id, available_at) WHERE available_at IS NOT NULL;
CREATE INDEX event_deliveries_event ON event_deliveries (event_seq);
CREATE INDEX event_deliveries_finished ON event_deliveries (finished_at) WHERE available_at IS NULL;

CREATE TABLE event_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  BIGINT NOT NULL,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    response     TEXT,
    error        TEXT
);
CREATE INDEX event_attempts_endpoint ON event_attempts (endpoint_id, id);
CREATE INDEX event_attempts_time ON event_attempts (attempted_at);

-- How far the fan-out has read the events: one row.
CREATE TABLE event_fanout (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq BIGINT NOT NULL
);
INSERT INTO event_fanout (id, through_seq) VALUES (1, 0);
