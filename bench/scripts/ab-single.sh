#!/usr/bin/env bash
# A/B of two single-node builds' REST posts: each directory holds a build's `chatboard` and
# `chatboard-bench`; both nodes start on fresh data directories, are seeded (`seed --rooms 32`)
# and served at once, then short closed-loop runs at 32 clients alternate between them, A B,
# B A, ... so that the machine's drift hits both.
#
#   bench/scripts/ab-single.sh DIR_A DIR_B [ROUNDS] [SECONDS]
#
# Each line printed: the build, scenario, round, load average, steal ticks during the run and
# the result row.
set -euo pipefail
A=$1 BB=$2 ROUNDS=${3:-4} SECONDS_EACH=${4:-8}
WORK=${WORK:-/tmp/chatboard-bench}/ab-single
steal() { awk '/^cpu /{print $9}' /proc/stat; }
dir() { if [ "$1" = a ]; then echo "$A"; else echo "$BB"; fi; }
port() { if [ "$1" = a ]; then echo 18380; else echo 18382; fi; }
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
  env -u DATABASE_URL "$(dir $v)/chatboard-bench" seed --api http://127.0.0.1:$(port $v) --rooms 32 \
    --state "$WORK/$v/state.json" >/dev/null
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
