-- Since when every attempt to a webhook's target has failed: set by the first failed attempt,
-- cleared by the next delivered one. The worker switches off a webhook that has failed for
-- longer than CHATBOARD_WEBHOOK_SWITCH_OFF_AFTER_HOURS, when a delivery of it is given up.
ALTER TABLE webhooks ADD COLUMN failing_since TIMESTAMPTZ;
