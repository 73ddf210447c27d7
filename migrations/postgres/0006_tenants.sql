-- Tenant configuration written by the operator (issue: operator): quotas, suspension, archiving,
-- and which custom resource owns an org or a webhook.

-- Quotas: NULL means the deployment's default.
ALTER TABLE orgs ADD COLUMN max_members           INTEGER;
ALTER TABLE orgs ADD COLUMN max_rooms             INTEGER;
ALTER TABLE orgs ADD COLUMN upload_max_bytes      BIGINT;
ALTER TABLE orgs ADD COLUMN retention_days        INTEGER;
ALTER TABLE orgs ADD COLUMN rate_limit_per_minute INTEGER;
-- Suspended: members read, nobody writes.
ALTER TABLE orgs ADD COLUMN suspended             BOOLEAN NOT NULL DEFAULT FALSE;
-- Archived (its Organization was deleted with deletionPolicy Retain): read-only, data kept.
ALTER TABLE orgs ADD COLUMN archived_at           TIMESTAMPTZ;
-- The owning custom resource, "<namespace>/<name>"; kept after archiving so that the same
-- resource created again takes its org back.
ALTER TABLE orgs ADD COLUMN resource_key          TEXT;
CREATE UNIQUE INDEX orgs_resource_key ON orgs (resource_key) WHERE resource_key IS NOT NULL;

ALTER TABLE webhooks ADD COLUMN resource_key TEXT;
CREATE UNIQUE INDEX webhooks_resource_key ON webhooks (resource_key) WHERE resource_key IS NOT NULL;

-- The admins an Organization's spec listed at its last reconcile, so that one dropped from the
-- list loses what the operator gave (ADMIN role, open invitation) and nobody else does.
CREATE TABLE org_spec_admins (
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email  TEXT   NOT NULL,
    PRIMARY KEY (org_id, email)
);

-- Retention purges an org's oldest messages.
CREATE INDEX messages_org_age ON messages (org_id, created_at);
