#!/bin/bash
# Fan-out, issue 19 point 4: the raw broadcaster, then the scale-out gateway (PostgreSQL, NATS;
# senders' frames stored through it), 100 rooms of 100, at each rate in $RATES, 65 s apart.
# Needs PostgreSQL and NATS on 127.0.0.1 (.ci/services-up).
source "$(dirname "$0")/common.sh"
if ! scale_out_env bench_fanout; then
  "$B/chatboard-bench" ws-seed --rooms 100 --members 100 --state "$WORK/so100.json" | tail -1
fi
CHATBOARD_ADDR=127.0.0.1:18082 "$WORK/gateway" 2>"$WORK/gateway.err" & GW=$!
start_raw
trap 'kill $GW $RAW 2>/dev/null || true' EXIT
sleep 1
for rate in ${RATES:-1000 2000}; do
  for target in raw gateway; do
    next_run
    if [ $target = raw ]; then url=ws://127.0.0.1:9100; pid=$RAW; else url=ws://127.0.0.1:18082; pid=$GW; fi
    fanout $target $url $pid "$WORK/so100.json" $rate
  done
done
kill $GW $RAW; wait || true
