#!/usr/bin/env bash
# A/B of two single-node builds' REST posts: each directory holds a build's `chatboard` and
# `chatboard-bench`; both nodes start on fresh data directories, are seeded (`seed --rooms 32`)
# and served at once, then short closed-loop runs at 32 clients alternate between them, A B,
# B A, ... so that the machine's drift hits both.
#
#   bench/scripts/ab-single.sh DIR_A DIR_B [ROUNDS] [SECONDS]
#
# Each line printed: the build, scenario, round, load average, steal ticks during the run and
# the result row. SCENARIOS picks the load's scenarios (default `post post-spread`), ROOMS the
# rooms seeded (32), and MEMBERS=N writes N more people straight into each node's database as
# members of the organization and of its big room (copies of the reader's row), for reads of a
# big room (`MEMBERS=5000 ROOMS=1 SCENARIOS="room rooms"`).
set -euo pipefail
A=$1 BB=$2 ROUNDS=${3:-4} SECONDS_EACH=${4:-8}
WORK=${WORK:-/tmp/chatboard-bench}/ab-single
steal() { awk '/^cpu /{print $9}' /proc/stat; }
dir() { if [ "$1" = a ]; then echo "$A"; else echo "$BB"; fi; }
port() { if [ "$1" = a ]; then echo 18380; else echo 18382; fi; }
# add_members WORKDIR N: N copies of the reader (user 1) as members of the org and the big room.
add_members() {
  local db="$1/data/chatboard.db" room cols copy
  room=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['big_room'])" "$1/state.json")
  cols=$(sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('users') WHERE name <> 'id'")
  copy=$(echo "$cols" | sed -E "s/(^|, )email(,|$)/\1'm' || n || '@example.com'\2/")
  sqlite3 "$db" <<SQL
.timeout 10000
BEGIN;
INSERT INTO users ($cols)
  SELECT $copy FROM users, (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $2) SELECT n FROM c)
  WHERE users.id = 1;
INSERT INTO org_members (org_id, user_id, role, joined_at)
  SELECT r.org_id, u.id, 'MEMBER', r.created_at FROM users u, rooms r WHERE r.id = $room AND u.email LIKE 'm%@example.com';
INSERT INTO room_members (room_id, user_id, joined_at)
  SELECT $room, u.id, r.created_at FROM users u, rooms r WHERE r.id = $room AND u.email LIKE 'm%@example.com';
COMMIT;
SQL
  echo "$1: room $room has $(sqlite3 "$db" "SELECT count(*) FROM room_members WHERE room_id = $room") members" >&2
}
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
  env -u DATABASE_URL "$(dir $v)/chatboard-bench" seed --api http://127.0.0.1:$(port $v) --rooms "${ROOMS:-32}" \
    --state "$WORK/$v/state.json" >/dev/null
  [ "${MEMBERS:-0}" -gt 0 ] && add_members "$WORK/$v" "$MEMBERS"
done
for s in ${SCENARIOS:-post post-spread}; do
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
