#!/usr/bin/env bash
# One single-node fan-out run (100 rooms of 100, senders over WebSocket, issue 19 point 4) with
# the node watched from the inside:
# - every 250 ms, the CPU its thread groups used (hub shards, runtime workers, SQLite threads),
#   from the kernel's per-thread counters, into $WORK/phases.txt; the line `sending` marks when
#   the load generator began to send;
# - unless PERF=0, `perf record` of the node (call graphs by DWARF unwinding) for SECONDS,
#   from 3 s into the sending, into OUT.
#
#   bench/scripts/fanout-profile.sh [RATE] [OUT] [SECONDS]
#
# MEMBERS=N seeds rooms of N instead (2: nearly all the node does is its posting side); FREQ is
# perf's sampling rate (499 by default).
#
# For readable call graphs build with line tables:
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p chatboard -p chatboard-bench
# then, for instance, `perf report -i OUT --no-children --sort comm -g none` (samples by thread)
# or `--comm tokio-rt-worker --children --sort sym` (what the runtime's workers ran).
RATE=${1:-1000} OUT=${2:-$PWD/node.perf} SECONDS_PROFILED=${3:-6}
MEMBERS=${MEMBERS:-100} FREQ=${FREQ:-499}
source "$(dirname "$0")/common.sh"
STATE=$WORK/s100.json
[ "$MEMBERS" = 100 ] || STATE=$WORK/s100-m$MEMBERS.json
seed_node "$STATE" --rooms 100 --members "$MEMBERS"
start_node "$STATE"
trap 'kill $NODE 2>/dev/null || true' EXIT
out="$WORK/fanout.out"
rm -f "$out"
"$B/chatboard-bench" ws-fanout --ws ws://127.0.0.1:18080 --state "$STATE" --rate "$RATE" \
  --seconds 15 --gateway-pid "$NODE" >"$out" &
gen=$!
python3 - "$NODE" "$out" >"$WORK/phases.txt" <<'EOF' &
import collections, os, sys, time
pid, out = sys.argv[1], sys.argv[2]
def group(comm):
    for prefix, name in (("hub-shard", "shards"), ("sqlx-sqlite", "sqlite"), ("sqlite-direct", "sqlite"), ("tokio-rt", "workers")):
        if comm.startswith(prefix):
            return name
    return comm
def totals():
    ns = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            ns[group(comm)] += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except OSError:
            pass
    return ns
step, start, before, marked = 0.25, time.time(), totals(), False
while os.path.exists(f"/proc/{pid}"):
    time.sleep(step)
    try:
        now = totals()
    except OSError:
        break
    if not marked and "sending" in open(out).read():
        print(f"{time.time() - start:6.2f}s sending", flush=True)
        marked = True
    used = {g: (now[g] - before[g]) / 1e7 / step for g in now if now[g] > before[g]}
    print(f"{time.time() - start:6.2f}s " + " ".join(f"{g}={p:.0f}%" for g, p in sorted(used.items()) if p >= 1), flush=True)
    before = now
EOF
while ! grep -q "sending" "$out" 2>/dev/null && kill -0 $gen 2>/dev/null; do sleep 0.05; done
if [ "${PERF:-1}" != 0 ]; then
  sleep 3
  echo "perf from $(machine)"
  perf record -F "$FREQ" --call-graph dwarf,16384 -o "$OUT" -p "$NODE" -- sleep "$SECONDS_PROFILED" 2>&1 | tail -1
fi
wait $gen
awk '/^\| sent \|/{print; getline; getline; print}' "$out"
echo "after: $(machine); thread groups every 250 ms in $WORK/phases.txt"
