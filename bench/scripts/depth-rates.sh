#!/usr/bin/env bash
# Issue 20's figures for one server binary on PostgreSQL with NATS: a fresh database seeded with
# the depth set (`depth-seed`), every scenario at 32 closed-loop clients, then each at the fixed
# rate of its target (open loop), the thread and mentions pages ROUNDS times over.
#
#   bench/scripts/depth-rates.sh [BINARY] [ROUNDS] [SECONDS]
#
# Each line printed: the scenario, the load average, the steal ticks during the run and the result
# row. The database is dropped at the end.
source "$(dirname "$0")/common.sh"
BIN=${1:-$B/chatboard} ROUNDS=${2:-3} SECONDS_EACH=${3:-10}
PG="-h 127.0.0.1 -U postgres" DB=depth_rates
trap 'kill $(cat "$WORK/pid-$DB" 2>/dev/null) 2>/dev/null; sleep 1; dropdb $PG --if-exists $DB' EXIT
serve_api $DB "$BIN" 18094 depth-seed
STATE=$WORK/state-$DB.json
sleep 20 # autovacuum after the bulk load
# one SCENARIO ARGS...: a run, with the machine's state beside it
one() {
  local s=$1; shift
  local s0 l
  s0=$(steal) l=$(cut -d' ' -f1 /proc/loadavg)
  row=$("$B/chatboard-bench" run --state "$STATE" --scenario "$s" --requests 1 \
    --seconds "$SECONDS_EACH" "$@" | grep "| $s |" | tail -1)
  echo "$s $* load $l steal $(($(steal) - s0)) $row"
}
for s in search-common search-rare thread mentions react; do one $s; done
one search-common --rate 500
one search-rare --rate 500
for r in $(seq 1 "$ROUNDS"); do
  one thread --rate 1000
  one mentions --rate 1000
done
one react --rate 2000
