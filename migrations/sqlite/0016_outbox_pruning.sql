-- The worker deletes old outbox rows (CHATBOARD_OUTBOX_RETENTION_DAYS); each one's delivery log
-- entries go with it, found by this index rather than by reading the whole log per row.
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);
