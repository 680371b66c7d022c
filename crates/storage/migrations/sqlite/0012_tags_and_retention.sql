-- A contact's tags are one per case-folded spelling (`VIP` and `vip` are one tag); where both
-- were kept, one of them stays.
DELETE FROM contact_tags WHERE EXISTS (
    SELECT 1 FROM contact_tags o
    WHERE o.contact_id = contact_tags.contact_id AND o.tag_folded = contact_tags.tag_folded AND o.tag < contact_tags.tag
);
DROP INDEX contact_tags_tag;
CREATE UNIQUE INDEX contact_tags_folded ON contact_tags (contact_id, tag_folded);

-- Processed webhook deliveries are deleted once they are older than the retention: found by
-- when they were processed.
CREATE INDEX webhook_deliveries_processed ON webhook_deliveries (processed_at) WHERE available_at IS NULL;
