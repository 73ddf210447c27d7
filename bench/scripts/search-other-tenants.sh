#!/usr/bin/env bash
# What a search in a small organization costs on SQLite when another organization of the same
# node holds MESSAGES messages (default 1,000,000) with the searched word: the FTS5 lookup of
# before (the word across the whole index, every organization's messages joined and filtered)
# against the one of now (the organization's column of the index with the word), each timed by
# sqlite3 on the shipped migrations (before: without 0036_search_by_org). The small
# organization has 1,000 messages, 100 of them with the word. Needs the sqlite3 command.
# Usage: bench/scripts/search-other-tenants.sh [MESSAGES]
set -euo pipefail
messages=${1:-1000000}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for db in before now; do
  for f in "$root"/migrations/sqlite/*.sql; do
    if [ "$db" = before ] && [ "$(basename "$f")" \> 0036 ]; then continue; fi
    sqlite3 "$dir/$db.db" < "$f"
  done
  sqlite3 "$dir/$db.db" > /dev/null <<SQL
PRAGMA journal_mode=WAL;
DROP TRIGGER messages_room_position;
WITH RECURSIVE m(z) AS (SELECT 1 UNION ALL SELECT z+1 FROM m WHERE z < $messages)
INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at)
  SELECT 1 + (z % 10), 1, z, 1, 'the plan for message ' || z, '2026-12-06T20:00:00Z' FROM m;
WITH RECURSIVE m(z) AS (SELECT 1 UNION ALL SELECT z+1 FROM m WHERE z < 1000)
INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at)
  SELECT 100, 2, z, 2, CASE WHEN z % 10 = 0 THEN 'the plan' ELSE 'other words' END || ' ' || z,
    '2026-12-06T20:00:00Z' FROM m;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
ANALYZE;
SQL
done
echo "== before: the word across the whole index, then org 2's messages among them"
sqlite3 "$dir/before.db" <<SQL
.timer on
SELECT COUNT(*) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
  WHERE messages_fts MATCH '("plan")' AND m.org_id = 2;
SELECT COUNT(*) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
  WHERE messages_fts MATCH '("plan")' AND m.org_id = 2;
SQL
echo "== now: org 2's column of the index with the word"
sqlite3 "$dir/now.db" <<SQL
.timer on
SELECT COUNT(*) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
  WHERE messages_fts MATCH ('org_id : ' || 2 || ' AND body : (' || '("plan")' || ')') AND m.org_id = 2;
SELECT COUNT(*) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
  WHERE messages_fts MATCH ('org_id : ' || 2 || ' AND body : (' || '("plan")' || ')') AND m.org_id = 2;
SQL
