#!/usr/bin/env bash
# A/B of two builds' PUBLIC room creation in an organization of N members: on the single node
# (SQLite, in-process bus) and on an api-server (PostgreSQL, NATS at $NATS_URL). The members
# are written straight into the database (copies of the creator's row), so the run times room
# creation alone: its seats and the announcement of each seat.
#
#   bench/scripts/room-creation.sh BINARY_A BINARY_B [MEMBERS] [ROUNDS]
#
# BINARY_* are `chatboard` executables. Each line printed: shape, build, round, load average,
# steal ticks during the round, and the seconds of three creations in a row.
set -euo pipefail
A=$1 BB=$2 N=${3:-5000} ROUNDS=${4:-2}
WORK=${WORK:-/tmp/chatboard-bench}/room-creation
PG="-h 127.0.0.1 -U postgres"
PASSWORD='correct horse battery'
steal() { awk '/^cpu /{print $9}' /proc/stat; }
mkdir -p "$WORK"
PORT=18390
api() { curl -sf -X "$1" "$URL$2" -H 'Content-Type: application/json' ${3:+-H "Authorization: Bearer $3"} ${4:+-d "$4"}; }
field() { python3 -c "import sys,json; print(json.load(sys.stdin)['$1'])"; }

# Copies of the creator (user 1) as members of org 1: SQL for the engine (`sqlite` or `pg`).
members_sql() {
  local cols=$1 copy
  copy=$(echo "$cols" | sed -E "s/(^|, )email(,|$)/\1'u' || n || '@example.com'\2/")
  echo "INSERT INTO users ($cols) SELECT $copy FROM users, ($2) s WHERE users.id = 1;"
  echo "INSERT INTO org_members (org_id, user_id, role, joined_at) \
        SELECT 1, id, 'MEMBER', joined_at FROM users, (SELECT joined_at FROM org_members LIMIT 1) j \
        WHERE users.id > 1;"
}

# Starts the build at $URL on fresh data, with an org of N members; the creator's token in TOKEN.
start() {
  local shape=$1 bin=$2
  PORT=$((PORT + 1)) # a port of its own: the last server's may not be free yet
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  if [ "$shape" = single ]; then
    env -u DATABASE_URL -u NATS_URL CHATBOARD_DATA_DIR="$WORK/data" CHATBOARD_ADDR=127.0.0.1:$PORT \
      RUST_LOG=warn CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 \
      "$bin" >"$WORK/node.log" 2>&1 &
  else
    dropdb $PG --if-exists roomcreation; createdb $PG roomcreation
    ln -sf "$(realpath "$bin")" "$WORK/api-server"
    local db=postgres://postgres@127.0.0.1:5432/roomcreation
    DATABASE_URL=$db "$WORK/api-server" migrate >/dev/null
    DATABASE_URL=$db NATS_URL=${NATS_URL:-nats://127.0.0.1:4222} CHATBOARD_NATS_PREFIX=rc$RANDOM \
      CHATBOARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 \
      CHATBOARD_ADDR=127.0.0.1:$PORT RUST_LOG=warn CHATBOARD_RATE_LIMIT_PER_IP=0 \
      CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 "$WORK/api-server" serve >"$WORK/node.log" 2>&1 &
  fi
  PID=$!
  URL=http://127.0.0.1:$PORT
  for _ in $(seq 1 150); do curl -sf "$URL/health/ready" >/dev/null && break; sleep 0.2; done
  curl -sf "$URL/health/ready" >/dev/null || { echo "$shape $bin did not start" >&2; tail "$WORK/node.log" >&2; exit 1; }
  api POST /auth/register/ "" "{\"email\":\"owner@example.com\",\"password\":\"$PASSWORD\",\"first_name\":\"O\"}" >/dev/null
  TOKEN=$(api POST /auth/token/ "" "{\"email\":\"owner@example.com\",\"password\":\"$PASSWORD\"}" | field access)
  api POST /api/orgs/ "$TOKEN" '{"name":"Big"}' >/dev/null
  if [ "$shape" = single ]; then
    local db="$WORK/data/chatboard.db" cols
    cols=$(sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('users') WHERE name <> 'id'")
    { echo ".timeout 10000"
      members_sql "$cols" "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N) SELECT n FROM c"
    } | sqlite3 "$db"
  else
    local cols
    cols=$(psql $PG -d roomcreation -Atc "SELECT string_agg(column_name, ', ') FROM information_schema.columns \
      WHERE table_name = 'users' AND column_name <> 'id'")
    members_sql "$cols" "SELECT generate_series(1, $N) AS n" | psql $PG -d roomcreation -q
  fi
}

for round in $(seq 1 "$ROUNDS"); do
  for shape in single scale-out; do
    for build in a b; do
      bin=$A; [ "$build" = b ] && bin=$BB
      start "$shape" "$bin"
      before=$(steal)
      times=()
      for k in 1 2 3; do
        t0=$(date +%s.%N)
        api POST /api/rooms/ "$TOKEN" "{\"org\":1,\"name\":\"r$k\"}" >/dev/null
        times+=("$(echo "$(date +%s.%N) - $t0" | bc)")
      done
      echo "$shape $build round=$round load=$(cut -d' ' -f1 /proc/loadavg) steal=$(( $(steal) - before )) ${times[*]}"
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
done
