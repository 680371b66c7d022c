-- Endpoints of Meta's format: the app secret their `X-Hub-Signature-256` is made with (sealed;
-- NULL: the secret of the account each body is about), and whether messages sent through
-- wagate are posted to them as Meta-shaped echoes. (SQLite's one writer commits events in the
-- order it stores them: their `seq` needs no change.)
ALTER TABLE webhook_endpoints ADD COLUMN app_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN include_echoes BOOLEAN NOT NULL DEFAULT FALSE;
