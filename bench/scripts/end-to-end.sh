#!/bin/bash
# End to end, issue 19 point 3: REST posts to every socket, 1 room of 200 at 20 msg/s and 10
# rooms of 100 at 100 msg/s. Usage: bench/scripts/end-to-end.sh single|scale-out
source "$(dirname "$0")/common.sh"
shape=${1:?single or scale-out}
if [ "$shape" = single ]; then
  seed_node "$WORK/e2e1.json" --rooms 1 --members 200
  "$B/chatboard-bench" ws-seed --data-dir "$(data_of "$WORK/e2e1.json")" --rooms 10 --members 100 --state "$WORK/e2e10.json" | tail -1
  start_node "$WORK/e2e1.json"; api=http://127.0.0.1:18080; ws=ws://127.0.0.1:18080; pid=$NODE; pids=$NODE
else
  if ! scale_out_env bench_e2e; then
    "$B/chatboard-bench" ws-seed --rooms 1 --members 200 --state "$WORK/e2e1.json" | tail -1
    "$B/chatboard-bench" ws-seed --rooms 10 --members 100 --state "$WORK/e2e10.json" | tail -1
  fi
  CHATBOARD_ADDR=127.0.0.1:18081 "$WORK/api-server" 2>"$WORK/api.err" & api_pid=$!
  CHATBOARD_ADDR=127.0.0.1:18082 "$WORK/gateway" 2>"$WORK/gateway.err" & pid=$!
  sleep 3; api=http://127.0.0.1:18081; ws=ws://127.0.0.1:18082; pids="$api_pid $pid"
fi
trap 'kill $pids 2>/dev/null || true' EXIT
for run in "e2e1.json 20" "e2e10.json 100"; do
  set -- $run
  echo "== $shape, $1 at $2 msg/s, $(machine)"
  "$B/chatboard-bench" ws-fanout --via rest --api $api --ws $ws --state "$WORK/$1" --rate $2 --seconds 15 --gateway-pid $pid | grep -E "^\| [0-9]|^load generator"
  echo "   after: $(machine)"
done
kill $pids; wait || true
