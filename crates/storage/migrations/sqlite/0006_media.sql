-- Media files customers send (image, audio, video, document, sticker), downloaded through the
-- Graph media API into the data directory. available_at is when the download may next be
-- claimed (its retry time, or the end of the lease of the worker holding it); NULL once the
-- file is stored or has failed for good.
CREATE TABLE media (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    message_id      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    meta_media_id   TEXT NOT NULL,
    kind            TEXT NOT NULL,
    mime_type       TEXT NOT NULL,
    -- Meta's SHA-256 of the file, base64 as webhooks carry it.
    sha256          TEXT,
    file_size       INTEGER,
    filename        TEXT,
    caption         TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'stored', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    available_at    INTEGER,
    lease           TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    downloaded_at   INTEGER
);
-- Meta's media ids are unique; a redelivered webhook finds its row here.
CREATE UNIQUE INDEX media_meta_id ON media (account_id, meta_media_id);
CREATE INDEX media_message ON media (message_id, id);
CREATE INDEX media_due ON media (available_at) WHERE available_at IS NOT NULL;
