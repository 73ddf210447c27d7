-- The deliveries being attempted, for the backlog gauge: read every few seconds by every
-- worker, it scanned every waiting delivery (parked ones and retries far ahead included) to
-- find the claimed ones among them.
-- Built in the migration's transaction: see 0035.
CREATE INDEX webhook_deliveries_claimed
    ON webhook_deliveries (claimed_until)
    WHERE claimed_until IS NOT NULL;
