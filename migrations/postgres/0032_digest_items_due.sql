-- The digest writer reads only the items that are due, by when they were noted (the expression
-- its query uses: rows of a worker of an older release may have no `noted_at` on SQLite, and the
-- SQL is shared), and mentions apart: a round used to scan the whole table, which holds every
-- offline member's missed messages for a whole window. The index by posting time served the
-- query of before and serves none now.
DROP INDEX digest_items_age;
CREATE INDEX digest_items_due ON digest_items ((COALESCE(noted_at, created_at)), user_id);
CREATE INDEX digest_items_mention_due ON digest_items ((COALESCE(noted_at, created_at)), user_id)
    WHERE mentioned;
