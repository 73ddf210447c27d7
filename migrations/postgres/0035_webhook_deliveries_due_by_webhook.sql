-- no-transaction
-- A claim that skips the webhooks busy with all their slots reads each other webhook's oldest
-- due deliveries from here, instead of walking the due index past every row of the busy ones
-- (a slow target's backlog, at the front of the due order, was read at every claim). Built
-- without locking the table against writes: deliveries go on being queued and recorded.
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_due_by_webhook
    ON webhook_deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
