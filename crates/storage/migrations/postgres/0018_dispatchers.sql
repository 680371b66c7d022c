-- The instances dispatching now, each until its announcement lapses: the numbers are shared
-- out among them.
CREATE TABLE dispatchers (
    holder      TEXT PRIMARY KEY,
    alive_until BIGINT NOT NULL
);
