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
if [ "$KIND" = depth ]; then SEED=depth-seed; else SEED=seed; fi
trap 'kill $(cat "$WORK/pid-ab_a" "$WORK/pid-ab_b" 2>/dev/null) 2>/dev/null; sleep 1; dropdb $PG --if-exists ab_a; dropdb $PG --if-exists ab_b' EXIT
serve_api ab_a "$A" 18090 $SEED
serve_api ab_b "$BIN_B" 18092 $SEED
sleep 20 # autovacuum after the bulk load
for s in $SCENARIOS; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for v in $order; do
      s0=$(steal) l=$(cut -d' ' -f1 /proc/loadavg)
      row=$("$B/chatboard-bench" run --state "$WORK/state-ab_$v.json" --scenario "$s" --requests 1 \
        --seconds "$SECONDS_EACH" | grep "| $s | 32")
      echo "$v $s r$r load $l steal $(($(steal) - s0)) $row"
    done
  done
done
