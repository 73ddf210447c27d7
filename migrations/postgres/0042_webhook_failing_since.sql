-- Since when every attempt to a webhook's target has failed: set by the first failed attempt,
-- cleared by the next delivered one, by a change of its URL and by switching it on; set anew by
-- a failure long after the last one (`last_failed_at`: nothing was tried in between). The worker
-- switches off a webhook that has failed for longer than CHATBOARD_WEBHOOK_SWITCH_OFF_AFTER_HOURS,
-- when a delivery of it is given up.
ALTER TABLE webhooks ADD COLUMN failing_since TIMESTAMPTZ;
ALTER TABLE webhooks ADD COLUMN last_failed_at TIMESTAMPTZ;
