-- no-transaction
-- Upload quotas sum a user's and an organization's live uploads (pending and ready) at every
-- presign and at a file's first post in an organization, under the organization's lock: read
-- through indexes of every upload they ever had, expired ones included, that work grew with
-- their whole history. Built without locking the table against writes, one index a migration
-- (PostgreSQL runs several statements sent at once as one transaction, which CONCURRENTLY
-- refuses); the organization's is 0038.
CREATE INDEX CONCURRENTLY IF NOT EXISTS uploads_live_by_owner ON uploads (owner_id)
    WHERE status IN ('pending', 'ready');
