#!/usr/bin/env bash
# A/B of two single-node builds' reads of a big room: each directory holds a build's
# `chatboard` and `chatboard-bench`. Both nodes start on fresh data directories, are seeded
# (`seed --rooms 1`), and then MEMBERS more people are written straight into the database as
# members of the organization and of its big room (copies of the reader's row). Short
# closed-loop runs at 32 clients then alternate between the nodes, A B, B A, ...
#
#   bench/scripts/big-room-reads.sh DIR_A DIR_B [MEMBERS] [ROUNDS] [SECONDS]
#
# Each line printed: the build, scenario, round, load average, steal ticks during the run and
# the result row. SCENARIOS (default `list-first`) picks the load's scenarios.
set -euo pipefail
A=$1 BB=$2 N=${3:-5000} ROUNDS=${4:-4} SECONDS_EACH=${5:-8}
WORK=${WORK:-/tmp/chatboard-bench}/big-room-reads
steal() { awk '/^cpu /{print $9}' /proc/stat; }
dir() { if [ "$1" = a ]; then echo "$A"; else echo "$BB"; fi; }
port() { if [ "$1" = a ]; then echo 18384; else echo 18386; fi; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for v in a b; do
  rm -rf "$WORK/$v"; mkdir -p "$WORK/$v"
  CHATBOARD_DATA_DIR="$WORK/$v/data" CHATBOARD_ADDR=127.0.0.1:$(port $v) CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 \
    CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 RUST_LOG=warn \
    "$(dir $v)/chatboard" >"$WORK/$v/node.log" 2>&1 &
  pids+=($!)
done
sleep 3
for v in a b; do
  env -u DATABASE_URL "$(dir $v)/chatboard-bench" seed --api http://127.0.0.1:$(port $v) --rooms 1 \
    --state "$WORK/$v/state.json" >/dev/null
  db="$WORK/$v/data/chatboard.db"
  room=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['big_room'])" "$WORK/$v/state.json")
  cols=$(sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('users') WHERE name <> 'id'")
  copy=$(echo "$cols" | sed -E "s/(^|, )email(,|$)/\1'm' || n || '@example.com'\2/")
  sqlite3 "$db" <<SQL
.timeout 10000
BEGIN;
CREATE TEMP TABLE added (id INTEGER);
INSERT INTO users ($cols)
  SELECT $copy FROM users, (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N) SELECT n FROM c)
  WHERE users.id = 1;
INSERT INTO added SELECT id FROM users WHERE email LIKE 'm%@example.com';
INSERT INTO org_members (org_id, user_id, role, joined_at)
  SELECT r.org_id, a.id, 'MEMBER', r.created_at FROM added a, rooms r WHERE r.id = $room;
INSERT INTO room_members (room_id, user_id, joined_at) SELECT $room, a.id, r.created_at FROM added a, rooms r WHERE r.id = $room;
COMMIT;
SQL
  echo "$v: room $room has $(sqlite3 "$db" "SELECT count(*) FROM room_members WHERE room_id = $room") members" >&2
done
for s in ${SCENARIOS:-list-first}; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for v in $order; do
      s0=$(steal) l=$(cut -d' ' -f1 /proc/loadavg)
      row=$("$(dir $v)/chatboard-bench" run --state "$WORK/$v/state.json" --scenario $s --requests 1 \
        --concurrency 32 --seconds "$SECONDS_EACH" | grep "| $s | 32")
      echo "$v $s r$r load $l steal $(($(steal) - s0)) $row"
    done
  done
done
