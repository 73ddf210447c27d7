#!/usr/bin/env bash
# Fan-out A/B of two single-node builds against the raw broadcaster, issue 19 point 4: 100 rooms
# of 100, senders over WebSocket. Each directory holds a build's `chatboard` and
# `chatboard-bench`; every round runs the raw server (B's bench binary), then A, then B, each
# node on a data directory seeded anew, 65 s apart (the client's ports leave TIME_WAIT). The
# ratios to compare are those within a round: the machine drifts between rounds.
#
#   bench/scripts/fanout-ab.sh DIR_A DIR_B [ROUNDS] [RATE]
#
# RAWS="tasks uring" runs one raw server per fan-out named (see `raw-gateway --fanout`), each
# once per round before A and B; the default is `tasks`. B may be `-` to run A alone.
#
# Each run prints the machine's state (load average, steal ticks), the result row and the
# state after; CPU per delivery is the last column.
#
# MEMBERS=N seeds rooms of N instead of 100: with MEMBERS=2 (each message delivered to its sender
# and one other socket) what the node spends is nearly all the posting side's.
A=$1 BB=$2 ROUNDS=${3:-2} RATE=${4:-1000}
MEMBERS=${MEMBERS:-100}
B=$BB
[ "$BB" != - ] || B=$A
source "$(dirname "$0")/common.sh"
STATE=$WORK/s100.json
[ "$MEMBERS" = 100 ] || STATE=$WORK/s100-m$MEMBERS.json
seed_node "$STATE" --rooms 100 --members "$MEMBERS"
# A run that fails ends the script: stop its node too, not just the raw servers.
trap 'stop_raws; kill ${NODE:-} 2>/dev/null || true' EXIT
start_raws
targets="a"
[ "$BB" = - ] || targets="a b"
for round in $(seq 1 "$ROUNDS"); do
  for r in "${RAW_SERVERS[@]}"; do
    next_run
    fanout_raw "$r" "$STATE" "$RATE" "(round $round)"
  done
  for target in $targets; do
    next_run
    if [ $target = a ]; then dir=$A; else dir=$BB; fi
    B=$dir seed_node "$STATE" --rooms 100 --members "$MEMBERS" >/dev/null
    B=$dir start_node "$STATE"
    METRICS_URL=http://127.0.0.1:18080/metrics \
      fanout "$target (round $round)" ws://127.0.0.1:18080 "$NODE" "$STATE" "$RATE"
    kill $NODE; wait $NODE || true
  done
done
