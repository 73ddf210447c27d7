-- A digest's wait counts from when its messages were noted for the member, not from when they
-- were posted: messages noted late (a worker catching up) would otherwise be overdue at once,
-- and each round of the writer would mail what had been noted so far. Rows from before, and
-- from a binary of the release before (an upgrade rolled back), have none: they count from
-- their message's time (`COALESCE` in the queries).
ALTER TABLE digest_items ADD COLUMN noted_at TEXT;
UPDATE digest_items SET noted_at = created_at;
