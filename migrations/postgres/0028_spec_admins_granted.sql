-- What the operator's list of admins gave, and to whom it still owes a demotion: `granted` is
-- false for an address that was ADMIN already when listed (made so through the REST API), so
-- dropping it from the list takes nothing back; `listed` is false for an address dropped from
-- the list while it was the org's last ADMIN, demoted at a later reconcile once another is
-- there. Rows from before were all taken as given by the list.
ALTER TABLE org_spec_admins ADD COLUMN granted BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE org_spec_admins ADD COLUMN listed BOOLEAN NOT NULL DEFAULT TRUE;
