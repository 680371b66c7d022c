-- Background jobs: long operations (an import, an export) worked through a batch at a time by
-- whichever instance holds the job's lease. A batch writes its rows' effects, their entries,
-- the counts and the cursor in one transaction.
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'canceled')),
    -- What it works on (a campaign's id).
    subject       TEXT,
    -- Its input and its result: files under the data directory, by relative path.
    input         TEXT,
    -- JSON: what was read or asked at its start.
    params        TEXT NOT NULL,
    -- Rows in all, once known.
    total         INTEGER,
    processed     INTEGER NOT NULL DEFAULT 0,
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    invalid       INTEGER NOT NULL DEFAULT 0,
    -- Where the next batch starts: a byte offset into the input and that row's line.
    cursor_offset INTEGER NOT NULL DEFAULT 0,
    cursor_line   INTEGER NOT NULL DEFAULT 0,
    result        TEXT,
    error         TEXT,
    -- Who works it, until when.
    lease_holder  TEXT,
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE INDEX jobs_state ON jobs (state, id);

-- What became of each row of a job's input, by its line (stored in that order: no rowid).
CREATE TABLE job_entries (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line    INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'invalid')),
    -- What the row was about (a number).
    key     TEXT,
    -- Why it failed or was invalid: a rule's name, and words.
    code    TEXT,
    message TEXT,
    PRIMARY KEY (job_id, line)
) WITHOUT ROWID;
-- The rows that did not succeed, what a job's errors are listed from: few among many.
CREATE INDEX job_entries_unsucceeded ON job_entries (job_id, line) WHERE outcome <> 'succeeded';
