-- Files the business uploads to send (`POST /v1/media`), kept in the media store under their id.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    mime_type   TEXT NOT NULL,
    file_size   INTEGER NOT NULL,
    -- Base64 SHA-256 of the bytes.
    sha256      TEXT NOT NULL,
    filename    TEXT,
    source_url  TEXT,
    created_at  INTEGER NOT NULL
);

-- Meta's id of an upload on one number: Meta keeps an upload 30 days, so an older one is
-- uploaded again.
CREATE TABLE upload_copies (
    upload_id       TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    meta_media_id   TEXT NOT NULL,
    uploaded_at     INTEGER NOT NULL,
    PRIMARY KEY (upload_id, phone_number_id)
);
