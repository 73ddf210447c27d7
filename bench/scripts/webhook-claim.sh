#!/usr/bin/env bash
# What a claim of due webhook deliveries reads on SQLite while one webhook, busy with all its
# slots, has BACKLOG due deliveries (default 100,000) and WEBHOOKS others (default 50) have ten
# each: the claim of before (oldest due first over every webhook, the busy one skipped row by
# row) against the claim per webhook, each timed by sqlite3, and the new query's plan. Needs
# the sqlite3 command. Usage: bench/scripts/webhook-claim.sh [BACKLOG] [WEBHOOKS]
set -euo pipefail
backlog=${1:-100000}
webhooks=${2:-50}
root=$(cd "$(dirname "$0")/../.." && pwd)
db=$(mktemp -d)/claims.db
for f in "$root"/migrations/sqlite/*.sql; do sqlite3 "$db" < "$f"; done
sqlite3 "$db" <<SQL
INSERT INTO orgs (id, name, slug, created_at) VALUES (1, 'acme', 'acme', '2026-01-01');
WITH RECURSIVE w(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM w WHERE x < $webhooks + 1)
INSERT INTO webhooks (id, org_id, url, events, secret, created_at, updated_at)
  SELECT x, 1, 'https://example.com/' || x, '["*"]', 'k', '2026-01-01', '2026-01-01' FROM w;
-- The busy webhook's backlog is the oldest: it is at the front of the due order.
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x < $backlog)
INSERT INTO webhook_deliveries (webhook_id, outbox_id, event_id, event_type, status, next_attempt_at, created_at)
  SELECT 1, x, 'e' || x, 'message.created', 'pending',
    strftime('%Y-%m-%dT%H:%M:%f+00:00', '2026-12-06T10:00:00', '+' || (x / 100) || ' seconds'), '2026-12-06'
  FROM n;
WITH RECURSIVE w(x) AS (SELECT 2 UNION ALL SELECT x+1 FROM w WHERE x < $webhooks + 1),
  n(y) AS (SELECT 1 UNION ALL SELECT y+1 FROM n WHERE y < 10)
INSERT INTO webhook_deliveries (webhook_id, outbox_id, event_id, event_type, status, next_attempt_at, created_at)
  SELECT x, y, 'e' || x || '-' || y, 'message.created', 'pending', '2026-12-06T20:00:00.000+00:00', '2026-12-06'
  FROM w, n;
PRAGMA journal_mode=WAL;
ANALYZE;
SQL
now="'2026-12-06T21:00:00.000+00:00'"
before="SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
  WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $now AND w.is_active
    AND d.webhook_id NOT IN (1)
  ORDER BY d.next_attempt_at LIMIT 256"
per_webhook="SELECT d.id FROM webhooks w JOIN webhook_deliveries d ON d.id IN (
    SELECT x.id FROM webhook_deliveries x
    WHERE x.webhook_id = w.id AND x.status IN ('pending', 'retrying') AND x.next_attempt_at <= $now
    ORDER BY x.next_attempt_at LIMIT 256)
  WHERE w.is_active AND w.id NOT IN (1)
  ORDER BY d.next_attempt_at LIMIT 256"
echo "== before: oldest due first, the busy webhook's backlog skipped row by row"
sqlite3 "$db" <<SQL
.timer on
SELECT COUNT(*) FROM ($before);
SELECT COUNT(*) FROM ($before);
SQL
echo "== now: each other webhook's oldest due, from the (webhook, due time) index"
sqlite3 "$db" <<SQL
.timer on
SELECT COUNT(*) FROM ($per_webhook);
SELECT COUNT(*) FROM ($per_webhook);
EXPLAIN QUERY PLAN $per_webhook;
SQL
rm -rf "$(dirname "$db")"
