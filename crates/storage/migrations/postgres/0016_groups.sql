-- Groups of business numbers, as Meta's answers and group webhooks showed them.
CREATE TABLE groups (
    -- Meta's group id.
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    phone_number_id    TEXT NOT NULL,
    -- The creation request wagate made; Meta announces the group with it.
    request_id         TEXT,
    subject            TEXT NOT NULL,
    description        TEXT,
    invite_link        TEXT,
    join_approval_mode TEXT,
    -- JSON: [{"wa_id", "user_id"}].
    participants       TEXT NOT NULL,
    -- JSON: [{"join_request_id", "wa_id", "user_id", "created_at"}].
    join_requests      TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_by_request ON groups (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX groups_by_number ON groups (phone_number_id, id);
