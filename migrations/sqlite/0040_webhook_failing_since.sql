-- Since when every attempt to a webhook's target has failed; see the PostgreSQL migration.
ALTER TABLE webhooks ADD COLUMN failing_since TEXT;
ALTER TABLE webhooks ADD COLUMN last_failed_at TEXT;
