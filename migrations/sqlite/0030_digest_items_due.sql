-- The digest writer reads only the items that are due; see the PostgreSQL migration of the
-- same name.
DROP INDEX digest_items_age;
CREATE INDEX digest_items_due ON digest_items (COALESCE(noted_at, created_at), user_id);
CREATE INDEX digest_items_mention_due ON digest_items (COALESCE(noted_at, created_at), user_id)
    WHERE mentioned;
