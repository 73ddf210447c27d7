#!/usr/bin/env bash
# How long a new message takes to be found by a search, where the worker indexes it after the
# post: api-server and worker on a fresh PostgreSQL database with NATS (or, with `single`, the
# single node on a fresh data directory, its worker inside), then 40 posts of a word of their
# own, each searched for every 5 ms until found (search-lag.py).
#
#   bench/scripts/search-lag.sh [single]
source "$(dirname "$0")/common.sh"
if [ "${1:-}" = single ]; then
  rm -rf "$WORK/lag-node"
  CHATBOARD_DATA_DIR="$WORK/lag-node" CHATBOARD_ADDR=127.0.0.1:18095 CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 \
    CHATBOARD_RATE_LIMIT_PER_IP=0 RUST_LOG=warn "$B/chatboard" >"$WORK/lag-node.log" 2>&1 &
  NODE=$!
  trap 'kill $NODE' EXIT
  sleep 3
  env -u DATABASE_URL "$B/chatboard-bench" seed --api http://127.0.0.1:18095 --messages 3000 --rooms 3 \
    --per-room 10 --state "$WORK/lag-state.json" >/dev/null
  sleep 2
  echo "$(machine)"
  python3 "$(dirname "$0")/search-lag.py" "$WORK/lag-state.json" 40
  exit
fi
PG="-h 127.0.0.1 -U postgres"
ln -sf "$(realpath "$B/chatboard")" "$WORK/worker"
dropdb $PG --if-exists search_lag; createdb $PG search_lag
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/search_lag NATS_URL=${NATS_URL:-nats://127.0.0.1:4222} \
  CHATBOARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 CHATBOARD_NATS_PREFIX=lag$RANDOM RUST_LOG=warn
"$WORK/api-server" migrate >/dev/null
CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_ADDR=127.0.0.1:18095 \
  "$WORK/api-server" serve >"$WORK/lag-api.log" 2>&1 &
API=$!
CHATBOARD_ADDR=127.0.0.1:18096 "$WORK/worker" >"$WORK/lag-worker.log" 2>&1 &
WORKER=$!
trap 'kill $API $WORKER; sleep 1; dropdb $PG --if-exists search_lag' EXIT
sleep 2
"$B/chatboard-bench" seed --api http://127.0.0.1:18095 --messages 3000 --rooms 3 --per-room 10 \
  --state "$WORK/lag-state.json" >/dev/null
sleep 3
echo "$(machine)"
python3 "$(dirname "$0")/search-lag.py" "$WORK/lag-state.json" 40
