#!/usr/bin/env bash
# How long a room's deletion holds SQLite's writer: a room of MESSAGES messages (default
# 300,000, each in the full-text index as the worker leaves it) deleted in one transaction (as
# before `erased_rooms`), against the longest of the batches of 1,000 that delete it now (the
# statements of `purge_erased_batch`: the message ids of the room, then reactions, thread
# follows, mentions and messages by room and id). Timed by sqlite3 on the shipped migrations.
# Checkpoints out of the commits, as on the node (see wal_checkpoint.rs). Needs the sqlite3 command. Usage: bench/scripts/room-deletion.sh [MESSAGES]
set -euo pipefail
messages=${1:-300000}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db=$dir/rooms.db
for f in "$root"/migrations/sqlite/*.sql; do sqlite3 "$db" < "$f"; done
sqlite3 "$db" > /dev/null <<SQL
PRAGMA journal_mode=WAL;
DROP TRIGGER messages_room_position;
WITH RECURSIVE m(z) AS (SELECT 1 UNION ALL SELECT z+1 FROM m WHERE z < $messages)
INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at)
  SELECT 1 + (z % 2), 1, z, z % 50, 'hello there, message number ' || z || ' with some words',
    '2026-12-06T20:00:00Z' FROM m;
INSERT INTO messages_fts (rowid, body, org_id) SELECT id, body, org_id FROM messages;
SQL
cp "$db" "$dir/copy.db"
echo "== one transaction: room 1's $((messages / 2)) messages"
sqlite3 "$db" <<SQL
PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=65536;
.timer on
DELETE FROM messages WHERE room_id = 1;
SQL
echo "== batches of 1,000 (the slowest of the first 20, and their total)"
batch_sql="PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=65536;
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS ids (id INTEGER PRIMARY KEY);
DELETE FROM ids;
INSERT INTO ids SELECT id FROM messages WHERE room_id = 1 ORDER BY id LIMIT 1000;
DELETE FROM reactions WHERE room_id = 1 AND message_id IN (SELECT id FROM ids);
DELETE FROM thread_follows WHERE room_id = 1 AND root_id IN (SELECT id FROM ids);
DELETE FROM mentions WHERE room_id = 1 AND message_id IN (SELECT id FROM ids);
DELETE FROM messages WHERE room_id = 1 AND id IN (SELECT id FROM ids);
COMMIT;"
python3 - "$dir/copy.db" "$batch_sql" <<'PY'
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
times = []
for _ in range(20):
    start = time.perf_counter()
    conn.executescript(sys.argv[2])
    times.append((time.perf_counter() - start) * 1000)
print(f"first {times[0]:.1f} ms (cold cache), then slowest {max(times[1:]):.1f} ms, median {sorted(times)[10]:.1f} ms; 20 batches {sum(times):.0f} ms")
PY
