#!/usr/bin/env bash
# A/B of two server binaries on PostgreSQL with NATS, on one machine state: both are seeded fresh
# and served at once (as `api-server`, rate limits off, no worker), then short closed-loop runs
# at 32 clients alternate between them, A B, B A, ... so that the machine's drift hits both.
#
#   bench/scripts/ab-postgres.sh OLD_BINARY NEW_BINARY core  "post post-spread" [ROUNDS] [SECONDS]
#   bench/scripts/ab-postgres.sh OLD_BINARY NEW_BINARY depth "search-rare react" [ROUNDS] [SECONDS]
#
# `core` is the chat-core data set (`chatboard-bench seed`), `depth` the issue-20 one
# (`depth-seed`). Each line printed: binary, scenario, round, load average, steal ticks during
# the run, and the result row. The databases are dropped at the end.
source "$(dirname "$0")/common.sh"
A=$1 BIN_B=$2 KIND=$3 SCENARIOS=$4 ROUNDS=${5:-6} SECONDS_EACH=${6:-6}
PG="-h 127.0.0.1 -U postgres"
steal() { awk '/^cpu /{print $9}' /proc/stat; }
serve() { # serve NAME BINARY PORT: fresh database ab_NAME, migrated, served, seeded
  local name=$1 bin=$2 port=$3 db=ab_$1
  mkdir -p "$WORK/$name"; ln -sf "$(realpath "$bin")" "$WORK/$name/api-server"
  dropdb $PG --if-exists "$db"; createdb $PG "$db"
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db NATS_URL=${NATS_URL:-nats://127.0.0.1:4222} \
    CHATBOARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 CHATBOARD_NATS_PREFIX=ab$RANDOM
  "$WORK/$name/api-server" migrate >/dev/null
  CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_ACCESS_TOKEN_TTL=86400 \
  CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 CHATBOARD_ADDR=127.0.0.1:$port RUST_LOG=warn \
    "$WORK/$name/api-server" serve >"$WORK/server-$name.log" 2>&1 &
  echo $! >"$WORK/pid-$name"
  sleep 1
  if [ "$KIND" = depth ]; then seed=depth-seed; else seed=seed; fi
  "$B/chatboard-bench" $seed --api "http://127.0.0.1:$port" --state "$WORK/state-$name.json" >/dev/null
}
serve a "$A" 18090
serve b "$BIN_B" 18092
trap 'kill $(cat "$WORK/pid-a" "$WORK/pid-b") 2>/dev/null; sleep 1; dropdb $PG --if-exists ab_a; dropdb $PG --if-exists ab_b' EXIT
sleep 20 # autovacuum after the bulk load
for s in $SCENARIOS; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for v in $order; do
      s0=$(steal) l=$(cut -d' ' -f1 /proc/loadavg)
      row=$("$B/chatboard-bench" run --state "$WORK/state-$v.json" --scenario "$s" --requests 1 \
        --seconds "$SECONDS_EACH" | grep "| $s | 32")
      echo "$v $s r$r load $l steal $(($(steal) - s0)) $row"
    done
  done
done
