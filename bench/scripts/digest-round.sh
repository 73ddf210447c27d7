#!/usr/bin/env bash
# What one round of the digest writer reads on SQLite with USERS offline members holding
# MESSAGES missed messages each (default 2,000 × 500: a million waiting items), five of them
# due: the whole-table statements of before (the lost-seat clean-up, which holds the writer, and
# the due query) against the due-only ones of now, each timed by sqlite3, and the new query's
# plan. Needs the sqlite3 command. Usage: bench/scripts/digest-round.sh [USERS] [MESSAGES]
set -euo pipefail
users=${1:-2000}
messages=${2:-500}
root=$(cd "$(dirname "$0")/../.." && pwd)
db=$(mktemp -d)/digests.db
for f in "$root"/migrations/sqlite/*.sql; do sqlite3 "$db" < "$f"; done
sqlite3 "$db" <<SQL
DROP TRIGGER room_members_seat_start; DROP TRIGGER room_seats_added;
WITH RECURSIVE u(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM u WHERE x < $users),
  r(y) AS (SELECT 1 UNION ALL SELECT y+1 FROM r WHERE y < 10)
INSERT INTO room_members (room_id, user_id, joined_at) SELECT y, x, '2026-01-01' FROM u, r;
WITH RECURSIVE u(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM u WHERE x < $users),
  m(z) AS (SELECT 1 UNION ALL SELECT z+1 FROM m WHERE z < $messages)
INSERT INTO digest_items (user_id, message_id, room_id, created_at, mentioned, noted_at)
  SELECT x, z, (z % 10) + 1, '2026-12-06T20:00:00Z', (z % 97 = 0),
    CASE WHEN x <= 5 AND z = 1 THEN '2026-12-06T19:00:00Z' ELSE '2026-12-06T20:05:00Z' END
  FROM u, m;
PRAGMA journal_mode=WAL;
ANALYZE;
SQL
due="SELECT user_id FROM (SELECT user_id, COALESCE(noted_at, created_at) AS noted FROM digest_items
  WHERE COALESCE(noted_at, created_at) <= '2026-12-06T19:30:00Z' UNION ALL
  SELECT user_id, COALESCE(noted_at, created_at) AS noted FROM digest_items
  WHERE mentioned AND COALESCE(noted_at, created_at) <= '2026-12-06T20:01:00Z') due
  GROUP BY user_id ORDER BY MIN(noted) LIMIT 100"
lost_seat="NOT EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = digest_items.room_id
  AND rm.user_id = digest_items.user_id) OR user_id IN (SELECT id FROM users WHERE NOT email_notifications)"
echo "== before: the clean-up over the whole table, then the due query over it"
sqlite3 "$db" <<SQL
.timer on
BEGIN; DELETE FROM digest_items WHERE $lost_seat; ROLLBACK;
SELECT COUNT(*) FROM (SELECT user_id FROM digest_items GROUP BY user_id
  HAVING MIN(COALESCE(noted_at, created_at)) <= '2026-12-06T19:30:00Z'
  OR MIN(CASE WHEN mentioned THEN COALESCE(noted_at, created_at) END) <= '2026-12-06T20:01:00Z'
  ORDER BY MIN(COALESCE(noted_at, created_at)) LIMIT 100);
SQL
echo "== now: the due query, then the clean-up of the users it found"
sqlite3 "$db" <<SQL
.timer on
SELECT COUNT(*) FROM ($due);
BEGIN; DELETE FROM digest_items WHERE user_id IN (1, 2, 3, 4, 5) AND ($lost_seat); ROLLBACK;
EXPLAIN QUERY PLAN $due;
SQL
rm -rf "$(dirname "$db")"
