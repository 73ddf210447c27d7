-- Who made each webhook through the REST API (or last switched it on or pointed it elsewhere):
-- a webhook hears every conversation of its organization, DMs included, so it is switched off
-- when that person stops being one of its ADMINs (demoted, removed, leaving), as their
-- invitations are revoked. NULL for webhooks made before this column and for the operator's.
ALTER TABLE webhooks ADD COLUMN created_by BIGINT REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX webhooks_creator ON webhooks (created_by) WHERE created_by IS NOT NULL;
