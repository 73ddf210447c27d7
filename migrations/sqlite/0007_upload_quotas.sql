-- Upload quotas (issue 17): bytes per user and per organization.

-- An organization's own quotas; NULL means the deployment's default.
ALTER TABLE orgs ADD COLUMN upload_pending_bytes INTEGER;
ALTER TABLE orgs ADD COLUMN upload_stored_bytes  INTEGER;

-- The organization an upload counts against: named when it was presigned, or the first one it
-- was posted in. A purged organization's uploads count against nobody.
ALTER TABLE uploads ADD COLUMN org_id INTEGER REFERENCES orgs (id) ON DELETE SET NULL;
CREATE INDEX uploads_org ON uploads (org_id) WHERE org_id IS NOT NULL;
