#!/usr/bin/env bash
# A read storm on two single-node builds: one room of MEMBERS (default 1,000) members, all on a
# socket; one message posted; every member marks it read at once (`chatboard-bench
# ws-receipts`). Each directory holds a build's `chatboard` and `chatboard-bench`; every round
# runs A then B, each node on a data directory seeded anew, 65 s apart (the client's ports
# leave TIME_WAIT).
#
#   bench/scripts/receipts-ab.sh DIR_A DIR_B [ROUNDS]
A=$1 BB=$2 ROUNDS=${3:-2}
MEMBERS=${MEMBERS:-1000}
B=$BB
source "$(dirname "$0")/common.sh"
STATE=$WORK/receipts-m$MEMBERS.json
trap 'kill ${NODE:-} 2>/dev/null || true' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for target in a b; do
    next_run
    if [ $target = a ]; then dir=$A; else dir=$BB; fi
    B=$dir seed_node "$STATE" --rooms 1 --members "$MEMBERS" >/dev/null
    B=$dir start_node "$STATE"
    echo "== $target (round $round), $(machine)"
    "$dir/chatboard-bench" ws-receipts --ws ws://127.0.0.1:18080 --state "$STATE" --gateway-pid "$NODE"
    echo "   after: $(machine)"
    kill $NODE; wait $NODE || true
  done
done
