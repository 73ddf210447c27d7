#!/bin/bash
# Fan-out, issue 19 point 4: the raw broadcaster, then the scale-out gateway (PostgreSQL, NATS;
# senders' frames stored through it), 100 rooms of 100, at each rate in $RATES, 65 s apart.
# RAWS="tasks sends uring" runs one raw server per fan-out named (see `raw-gateway --fanout`),
# each before the gateway at every rate; the default is `tasks`.
# Needs PostgreSQL and NATS on 127.0.0.1 (.ci/services-up).
source "$(dirname "$0")/common.sh"
if ! scale_out_env bench_fanout; then
  "$B/chatboard-bench" ws-seed --rooms 100 --members 100 --state "$WORK/so100.json" | tail -1
fi
CHATBOARD_ADDR=127.0.0.1:18082 "$WORK/gateway" 2>"$WORK/gateway.err" & GW=$!
trap 'kill $GW 2>/dev/null || true; stop_raws' EXIT
start_raws
sleep 1
for rate in ${RATES:-1000 2000}; do
  for r in "${RAW_SERVERS[@]}"; do
    next_run
    fanout_raw "$r" "$WORK/so100.json" $rate
  done
  next_run
  METRICS_URL=http://127.0.0.1:18082/metrics fanout gateway ws://127.0.0.1:18082 $GW "$WORK/so100.json" $rate
done
