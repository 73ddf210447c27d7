#!/bin/bash
# Idle sockets, issue 19 point 5: 18,000 authenticated idle WebSockets (1,800 rooms of 10,
# presence on) against one server, and its memory per socket.
# Usage: bench/scripts/idle.sh node|gateway|raw [FIRST]   (LOG=info for the default log level;
# FIRST picks other members and source addresses, for runs closer together than TIME_WAIT)
source "$(dirname "$0")/common.sh"
what=${1:?node, gateway or raw}; first=${2:-0}
case $what in
  node)
    [ -f "$WORK/idle-node.json" ] || seed_node "$WORK/idle-node.json" --rooms 1800 --members 10
    start_node "$WORK/idle-node.json"; url=ws://127.0.0.1:18080; pid=$NODE; state=$WORK/idle-node.json ;;
  gateway)
    if ! scale_out_env bench_idle; then
      "$B/chatboard-bench" ws-seed --rooms 1800 --members 10 --state "$WORK/idle-gw.json" | tail -1
    fi
    CHATBOARD_ADDR=127.0.0.1:18090 "$WORK/gateway" 2>"$WORK/gateway.err" & pid=$!
    sleep 3; url=ws://127.0.0.1:18090; state=$WORK/idle-gw.json ;;
  raw)
    [ -f "$WORK/idle-node.json" ] || seed_node "$WORK/idle-node.json" --rooms 1800 --members 10
    start_raw; pid=$RAW; url=ws://127.0.0.1:9100; state=$WORK/idle-node.json ;;
  *) echo "node, gateway or raw" >&2; exit 2 ;;
esac
trap 'kill $pid 2>/dev/null || true' EXIT
echo "== $what, $(machine)"
"$B/chatboard-bench" ws-idle --ws $url --state "$state" --connections 18000 --hold 10 --first "$first" --gateway-pid $pid | tail -2
echo "   after: $(machine)"
kill $pid; wait $pid || true
