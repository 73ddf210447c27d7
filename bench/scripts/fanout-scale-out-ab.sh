#!/usr/bin/env bash
# Fan-out A/B of two builds' scale-out gateways (PostgreSQL, NATS; the senders' frames stored
# through the gateway) against the raw broadcaster, issue 19 point 4: 100 rooms of 100, senders
# over WebSocket. Each directory holds a build's `chatboard` and `chatboard-bench`; every round
# runs the raw servers (B's bench binary), then A's gateway, then B's, 65 s apart (the client's
# ports leave TIME_WAIT). Compare the ratios within a round: the machine drifts between rounds.
#
#   bench/scripts/fanout-scale-out-ab.sh DIR_A DIR_B [ROUNDS] [RATE]
#
# RAWS as in fanout-ab.sh (default `tasks`). Needs PostgreSQL and NATS on 127.0.0.1
# (.ci/services-up); the population is seeded into database `bench_fanout` once.
A=$1 BB=$2 ROUNDS=${3:-2} RATE=${4:-1000}
B=$BB
source "$(dirname "$0")/common.sh"
if ! scale_out_env bench_fanout; then
  "$B/chatboard-bench" ws-seed --rooms 100 --members 100 --state "$WORK/so100.json" | tail -1
fi
# The binary serves as the gateway when called by that name.
ln -sf "$(realpath "$A/chatboard")" "$WORK/gateway-a"
ln -sf "$(realpath "$BB/chatboard")" "$WORK/gateway-b"
trap 'stop_raws; kill ${GW:-} 2>/dev/null || true' EXIT
start_raws
for round in $(seq 1 "$ROUNDS"); do
  for r in "${RAW_SERVERS[@]}"; do
    next_run
    fanout_raw "$r" "$WORK/so100.json" "$RATE" "(round $round)"
  done
  for target in a b; do
    next_run
    mkdir -p "$WORK/gw-$target" && ln -sf "$WORK/gateway-$target" "$WORK/gw-$target/gateway"
    CHATBOARD_ADDR=127.0.0.1:18082 "$WORK/gw-$target/gateway" 2>"$WORK/gateway-$target.err" &
    GW=$!
    sleep 2
    METRICS_URL=http://127.0.0.1:18082/metrics fanout "$target (round $round)" ws://127.0.0.1:18082 $GW "$WORK/so100.json" "$RATE"
    kill $GW; wait $GW 2>/dev/null || true
  done
done
