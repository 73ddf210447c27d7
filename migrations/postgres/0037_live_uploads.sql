-- Upload quotas sum a user's and an organization's live uploads (pending and ready) at every
-- presign and at a file's first post in an organization, under the organization's lock: read
-- through indexes of every upload they ever had, expired ones included, that work grew with
-- their whole history. Built in the migration's transaction (see 0035); the organization's
-- index is 0038.
CREATE INDEX uploads_live_by_owner ON uploads (owner_id)
    WHERE status IN ('pending', 'ready');
