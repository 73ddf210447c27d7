-- While an attempt runs, until when its worker holds the delivery (its lease). Switching a
-- webhook off parks only deliveries nobody holds, so switching it on again cannot hand one
-- that is being sent to a second worker. NULL when nobody holds it.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until TEXT;
