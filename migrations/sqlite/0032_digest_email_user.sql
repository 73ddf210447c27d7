-- Whose digest a queued email is; see the PostgreSQL migration of the same name.
ALTER TABLE emails ADD COLUMN digest_user_id INTEGER;
