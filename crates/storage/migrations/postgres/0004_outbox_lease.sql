-- Claims find their rows by lease; without this each claim scanned the whole outbox.
CREATE INDEX outbox_leased ON outbox (lease) WHERE lease IS NOT NULL;
