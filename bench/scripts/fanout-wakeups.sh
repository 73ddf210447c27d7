#!/usr/bin/env bash
# Who wakes whom in the single node, and from where: one fan-out run (rooms of MEMBERS, 2 by
# default, so that what the node does is nearly all its posting side) with the node's wake-ups
# traced by `perf` (`sched:sched_wakeup`, call graphs by DWARF unwinding) for SECONDS of the
# sending, then summed by waking thread, woken thread and the code that woke it
# (`wakeups.py`). A wake-up is counted in the waker's time, so those the kernel does for the
# node (a socket that became readable) are not in it; those the node does for the load
# generator are (`sock_def_readable`).
#
#   bench/scripts/fanout-wakeups.sh [RATE] [OUT] [SECONDS]
#
# Prints the run's result row, then per pair of thread names the wake-ups per message and their
# main call sites. OUT (default ./wakeups.perf) keeps the recording for `perf script`.
RATE=${1:-1000} OUT=${2:-$PWD/wakeups.perf} SECONDS_TRACED=${3:-2}
source "$(dirname "$0")/common.sh"
MEMBERS=${MEMBERS:-2}
STATE=$WORK/s100-m$MEMBERS.json
seed_node "$STATE" --rooms 100 --members "$MEMBERS" >/dev/null
start_node "$STATE"
trap 'kill $NODE 2>/dev/null || true' EXIT
out="$WORK/fanout.out"
rm -f "$out"
"$B/chatboard-bench" ws-fanout --ws ws://127.0.0.1:18080 --state "$STATE" --rate "$RATE" \
  --seconds 15 --gateway-pid "$NODE" --warmup-seconds 2 >"$out" &
gen=$!
while ! grep -q "^measuring" "$out" 2>/dev/null && kill -0 $gen 2>/dev/null; do sleep 0.05; done
sleep 2
echo "perf from $(machine)"
perf record -q -e sched:sched_wakeup --call-graph dwarf,8192 -p "$NODE" -o "$OUT" \
  -- sleep "$SECONDS_TRACED" 2>/dev/null
wait $gen
awk '/^\| sent \|/{row=NR+2} NR==row' "$out"
perf script -i "$OUT" -F comm,event,trace,ip,sym 2>/dev/null |
  python3 "$SCRIPTS/wakeups.py" $((RATE * SECONDS_TRACED))
