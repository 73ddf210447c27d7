-- The upload janitor gives up a pending upload (status 'expired', never uploaded) before it
-- deletes its file, so that a completion racing it is refused; it then finds those whose
-- files are still to delete through this index.
CREATE INDEX uploads_abandoned ON uploads (created_at) WHERE status = 'expired' AND uploaded_at IS NULL;
