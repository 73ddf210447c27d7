#!/usr/bin/env bash
# Issue 19 point 1 on one single-node build: a fresh data directory, `seed --rooms 32`, then 32
# closed-loop clients for 15 s into one room (`post`) and spread over 32 (`post-spread`), then
# open loop at 100 posts/s for 30 s each. With OPEN_ONLY=1, only the open-loop runs (on a
# fresh node, without the WAL the saturating runs leave behind). NICE=-11 runs the node and the
# load generator at that niceness.
#
#   bench/scripts/single-posts.sh BUILD_DIR
#
# BUILD_DIR holds the build's `chatboard` and `chatboard-bench`. Each line: the run, the load
# average at its start, the steal ticks during it, and the result row; then sqlx's and the
# store's slow-acquire warnings and the node's RSS.
set -euo pipefail
B=$1
WORK=${WORK:-/tmp/chatboard-bench}/single-posts
rm -rf "$WORK"; mkdir -p "$WORK"
steal() { awk '/^cpu /{print $9}' /proc/stat; }
if [ -n "${NICE:-}" ]; then
  renice -n "$NICE" -p $$ >/dev/null
  # The session's scheduling group too (see common.sh): a thread's niceness counts only inside it.
  [ "${AUTOGROUP:-1}" = 0 ] || [ ! -w /proc/self/autogroup ] || echo "$NICE" >/proc/self/autogroup
fi
CHATBOARD_DATA_DIR=$WORK/data CHATBOARD_ADDR=127.0.0.1:18090 CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 \
  CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 RUST_LOG=warn \
  "$B/chatboard" 2>"$WORK/node.err" >/dev/null &
NODE=$!
trap 'kill $NODE 2>/dev/null || true' EXIT
sleep 2
env -u DATABASE_URL "$B/chatboard-bench" seed --api http://127.0.0.1:18090 --rooms 32 \
  --state "$WORK/sn.json" >/dev/null
runs=("post --concurrency 32 --seconds 15" "post-spread --concurrency 32 --seconds 15")
[ -z "${OPEN_ONLY:-}" ] || runs=()
runs+=("post --rate 100 --seconds 30" "post-spread --rate 100 --seconds 30")
for args in "${runs[@]}"; do
  s0=$(steal) l=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2086 # the scenario's words are separate arguments
  row=$("$B/chatboard-bench" run --state "$WORK/sn.json" --requests 1 --scenario $args |
    grep -E "^\| post" | tail -1)
  echo "$args | load $l steal $(($(steal) - s0)) $row"
done
echo "acquire warnings: $(grep -ci acquire "$WORK/node.err" || true); $(grep VmRSS /proc/$NODE/status)"
