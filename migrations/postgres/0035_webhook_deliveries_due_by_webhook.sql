-- A claim that skips the webhooks busy with all their slots reads each other webhook's oldest
-- due deliveries from here, instead of walking the due index past every row of the busy ones
-- (a slow target's backlog, at the front of the due order, was read at every claim).
-- Built in the migration's transaction, which holds writes to the table for the build
-- (seconds at millions of rows): CONCURRENTLY would wait, under the migration lock, for every
-- api-server starting meanwhile, which waits for that lock: a deadlock, and an invalid index.
CREATE INDEX webhook_deliveries_due_by_webhook
    ON webhook_deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
