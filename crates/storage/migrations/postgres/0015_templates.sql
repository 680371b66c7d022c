-- Message templates as Meta keeps them, per WABA: read by the sync, written when wagate creates
-- or edits one, and kept current by the template webhooks. Sends are checked against them.
CREATE TABLE templates (
    -- Meta's template id.
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    waba_id          TEXT NOT NULL,
    name             TEXT NOT NULL,
    language         TEXT NOT NULL,
    category         TEXT NOT NULL,
    status           TEXT NOT NULL,
    parameter_format TEXT NOT NULL,
    -- Meta's components, JSON.
    components       TEXT NOT NULL,
    quality_score    TEXT,
    rejected_reason  TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX templates_by_name ON templates (waba_id, name, language);
CREATE INDEX templates_by_account ON templates (account_id, name, language);

-- When each WABA's templates were last read in full from Meta: a send naming a template a
-- synced WABA lacks is refused; an unsynced WABA's pass through to Meta unchecked.
CREATE TABLE template_syncs (
    waba_id   TEXT PRIMARY KEY,
    synced_at BIGINT NOT NULL
);

-- A template message as the customer saw it (header, body, footer, buttons), JSON.
ALTER TABLE messages ADD COLUMN rendered TEXT;
