-- Endpoints of Meta's format: the app secret their `X-Hub-Signature-256` is made with (sealed;
-- NULL: the secret of the account each body is about), and whether messages sent through
-- wagate are posted to them as Meta-shaped echoes.
ALTER TABLE webhook_endpoints ADD COLUMN app_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN include_echoes BOOLEAN NOT NULL DEFAULT FALSE;

-- Events are stored without their place in the order (`seq`) by the transactions that make
-- them, in parallel, and given it after they commit by the one fan-out at a time (see
-- postgres/events.rs): drawn at insert, a `seq` could commit after a reader passed a greater one.
-- `inserted` keeps a transaction's events in the order it stored them.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ALTER COLUMN seq DROP IDENTITY;
ALTER TABLE events ALTER COLUMN seq DROP NOT NULL;
ALTER TABLE events ADD COLUMN inserted BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE SEQUENCE events_order;
SELECT setval('events_order', (SELECT COALESCE(MAX(seq), 0) + 1 FROM events), false);
CREATE UNIQUE INDEX events_by_seq ON events (seq);
CREATE INDEX events_unordered ON events (inserted) WHERE seq IS NULL;
