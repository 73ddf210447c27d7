#!/bin/bash
# Fan-out, issue 19 point 4: the raw broadcaster, then the single node on a freshly seeded data
# directory (100 rooms of 100), at each rate in $RATES, 65 s apart (the client's ports leave
# TIME_WAIT). Usage: bench/scripts/fanout-single.sh   (RATES="1000 2000" by default)
source "$(dirname "$0")/common.sh"
# The population (the raw server needs its state file too); seeded anew before each node run.
seed_node "$WORK/s100.json" --rooms 100 --members 100
start_raw
trap 'kill $RAW ${NODE:-} 2>/dev/null || true' EXIT
for rate in ${RATES:-1000 2000}; do
  for target in raw node; do
    next_run
    if [ $target = raw ]; then
      url=ws://127.0.0.1:9100; pid=$RAW; metrics=
    else
      seed_node "$WORK/s100.json" --rooms 100 --members 100
      start_node "$WORK/s100.json"; url=ws://127.0.0.1:18080; pid=$NODE
      metrics=http://127.0.0.1:18080/metrics
    fi
    METRICS_URL=$metrics fanout $target $url $pid "$WORK/s100.json" $rate
    if [ $target = node ]; then kill $NODE; wait $NODE || true; fi
  done
done
kill $RAW; wait $RAW || true
