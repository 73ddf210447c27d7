-- A digest's wait counts from when its messages were noted for the member, not from when they
-- were posted: messages noted late (a worker or NATS catching up) would otherwise be overdue at
-- once, and each round of the writer would mail what had been noted so far. The default is for
-- a worker of the release before, still running during an upgrade (or after a rollback): its
-- rows are noted when it writes them.
ALTER TABLE digest_items ADD COLUMN noted_at TIMESTAMPTZ;
UPDATE digest_items SET noted_at = created_at;
ALTER TABLE digest_items ALTER COLUMN noted_at SET DEFAULT now();
ALTER TABLE digest_items ALTER COLUMN noted_at SET NOT NULL;
