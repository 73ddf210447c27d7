#!/usr/bin/env bash
# The system calls of one thread of the single node during a fan-out run: 100 rooms of MEMBERS
# (2 by default: nearly all the node does is its posting side) at RATE msg/s for 10 s, and
# `strace -c` of the thread named THREAD (`sqlite-direct`, the SQLite writer) for 3 s from 4 s
# in. Divide the counts by about three seconds of posts (RATE x 3) for calls per post.
#
#   B=BUILD_DIR bench/scripts/writer-syscalls.sh [RATE]
#
# Prints the run's result row and strace's table. Needs `strace` (Debian: apt-get install strace).
RATE=${1:-1000}
MEMBERS=${MEMBERS:-2} THREAD=${THREAD:-sqlite-direct}
source "$(dirname "$0")/common.sh"
STATE=$WORK/s100-m$MEMBERS.json
seed_node "$STATE" --rooms 100 --members "$MEMBERS" >/dev/null
start_node "$STATE"
trap 'kill $NODE 2>/dev/null || true' EXIT
"$B/chatboard-bench" ws-fanout --ws ws://127.0.0.1:18080 --state "$STATE" --rate "$RATE" \
  --seconds 10 --gateway-pid "$NODE" >"$WORK/syscalls-run.out" &
gen=$!
sleep 4
tid=$(grep -l "$THREAD" /proc/"$NODE"/task/*/comm | head -1 | cut -d/ -f5)
timeout 3 strace -c -p "$tid" 2>"$WORK/syscalls.txt" || true
wait $gen
grep "^|" "$WORK/syscalls-run.out" | tail -1
grep -v "^strace:" "$WORK/syscalls.txt"
