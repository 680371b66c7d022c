-- Campaigns: one template sent to many recipients, paced, paused and resumed.
CREATE TABLE campaigns (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    phone_number_id   TEXT NOT NULL,
    -- JSON: the template in the simple send form.
    template          TEXT NOT NULL,
    send_at           BIGINT,
    -- Messages a second, at most; NULL: the number's own rate.
    rate              BIGINT,
    max_failure_share DOUBLE PRECISION,
    -- JSON object.
    metadata          TEXT,
    state             TEXT NOT NULL,
    pause_reason      TEXT,
    pause_detail      TEXT,
    resumes_at        BIGINT,
    started_at        BIGINT,
    finished_at       BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    -- Numbers refused as already in the campaign when they were added (written by additions).
    duplicates        BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every write of the campaign: a write names the revision it read.
    revision          BIGINT NOT NULL,
    -- Who feeds the campaign, until when: written by the lease alone.
    lease_holder      TEXT,
    lease_until       BIGINT
);
CREATE INDEX campaigns_state ON campaigns (state);

-- A campaign's recipients, in the order they were added. A recipient's progress once queued is
-- its message's (message_id), read through it; the row keeps only what happened before that.
CREATE TABLE campaign_recipients (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- `+` and digits.
    recipient   TEXT NOT NULL,
    position    BIGINT NOT NULL,
    -- JSON: the body's values (an array or an object); the metadata (an object).
    params      TEXT,
    metadata    TEXT,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'skipped')),
    skip_reason TEXT,
    -- JSON: the MessageError of a skip.
    error       TEXT,
    -- The message it is sent as: reserved when queued, stored by the send that follows.
    message_id  TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, recipient)
);
CREATE UNIQUE INDEX campaign_recipients_position ON campaign_recipients (campaign_id, position);
CREATE INDEX campaign_recipients_state ON campaign_recipients (campaign_id, state, position);
