# Shared by the benchmark scripts (sourced): where the release binaries are, a scratch
# directory, and the machine's state printed beside each run.
set -euo pipefail
B=${B:-${CARGO_TARGET_DIR:-target}/release}
WORK=${WORK:-/tmp/chatboard-bench}
mkdir -p "$WORK"
ulimit -n 20000
# NICE=-11 runs everything the script starts at that niceness (below 0 needs root): ahead of a
# process of the machine's own that takes a CPU in bursts at -10, as this sandbox's agent does
# (BENCHMARKS.md, "Where the fan-out's stalls come from"). Apply it to both sides of a comparison.
# With autogroup scheduling on (`kernel.sched_autogroup_enabled`, as here), the kernel first
# shares the CPU between each session's group and the tasks outside any (that agent's), and a
# thread's niceness counts only within its group: the group this script runs in gets NICE too,
# or the agent, at -10 against a group at 0, takes 90% of a CPU whenever it runs.
# AUTOGROUP=0 leaves the group as it is. The group is the session's: run the scripts in a
# session of their own (`setsid bench/scripts/...`) to leave your shell's at its niceness.
if [ -n "${NICE:-}" ]; then
  renice -n "$NICE" -p $$ >/dev/null
  if [ "${AUTOGROUP:-1}" != 0 ] && [ -w /proc/self/autogroup ]; then
    echo "$NICE" >/proc/self/autogroup
  fi
fi
SCRIPTS=$(dirname "${BASH_SOURCE[0]}")
for bin in chatboard chatboard-bench; do
  [ -x "$B/$bin" ] || { echo "missing $B/$bin: cargo build --release first" >&2; exit 1; }
done
# The scale-out binaries are the same executable under other names.
ln -sf "$(realpath "$B/chatboard")" "$WORK/api-server"
ln -sf "$(realpath "$B/chatboard")" "$WORK/gateway"

# The CPU steal counter (ticks; field 8 of the `cpu` line of /proc/stat).
steal() { awk '/^cpu /{print $9}' /proc/stat; }

# Serves BINARY as `api-server` (rate limits off, NATS at $NATS_URL) on a fresh PostgreSQL
# database NAME at 127.0.0.1:PORT and seeds it with `chatboard-bench SEED` (`seed` or
# `depth-seed`): the state in $WORK/state-NAME.json, the server's pid in $WORK/pid-NAME.
#   serve_api NAME BINARY PORT SEED
serve_api() {
  local name=$1 bin=$2 port=$3 seed=$4 pg="-h 127.0.0.1 -U postgres"
  mkdir -p "$WORK/$name"; ln -sf "$(realpath "$bin")" "$WORK/$name/api-server"
  dropdb $pg --if-exists "$name"; createdb $pg "$name"
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$name NATS_URL=${NATS_URL:-nats://127.0.0.1:4222} \
    CHATBOARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 CHATBOARD_NATS_PREFIX=$name$RANDOM
  "$WORK/$name/api-server" migrate >/dev/null
  CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_ACCESS_TOKEN_TTL=86400 \
  CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 CHATBOARD_ADDR=127.0.0.1:$port RUST_LOG=warn \
    "$WORK/$name/api-server" serve >"$WORK/server-$name.log" 2>&1 &
  echo $! >"$WORK/pid-$name"
  sleep 1
  "$B/chatboard-bench" "$seed" --api "http://127.0.0.1:$port" --state "$WORK/state-$name.json" >/dev/null
}

# Load average and the CPU steal counter (ticks; field 8 of the `cpu` line of /proc/stat).
machine() { echo "load $(cut -d' ' -f1-3 /proc/loadavg) steal $(steal)${AG:+ $AG}"; }
AG=$(cat /proc/self/autogroup 2>/dev/null | awk '{print "group nice " $3}' || true)

# Starts the raw broadcaster (`chatboard-bench raw-gateway`) at 127.0.0.1:PORT (9100), its
# fan-out FANOUT (`tasks`, `sends` or `uring`; $RAW_FANOUT, else `tasks`), its pid in RAW.
# FANOUT+store (`sends+store`) stores each message in a new SQLite database in $WORK first.
#   start_raw [FANOUT] [PORT]
start_raw() {
  local fanout=${1:-${RAW_FANOUT:-tasks}} port=${2:-9100} store=()
  if [ "${fanout%+store}" != "$fanout" ]; then
    rm -f "$WORK/raw-store-$port.db"*
    store=(--store "$WORK/raw-store-$port.db")
  fi
  "$B/chatboard-bench" raw-gateway --listen 127.0.0.1:$port --fanout "${fanout%+store}" "${store[@]}" \
    2>"$WORK/raw-$fanout.err" &
  RAW=$!
  sleep 2
}

# Starts one raw broadcaster per fan-out named in RAWS ("tasks sends uring"; default `tasks`),
# from port 9100 on, each recorded in RAW_SERVERS as PID:PORT:FANOUT. Set the trap that stops
# them (`stop_raws`) before calling it, so that a failure half-way stops those already started.
start_raws() {
  RAWS=${RAWS:-tasks}
  [ -n "${RAWS// /}" ] || { echo "RAWS names no fan-out" >&2; exit 2; }
  local fanout port=9100
  for fanout in $RAWS; do
    start_raw "$fanout" $port
    RAW_SERVERS+=("$RAW:$port:$fanout")
    port=$((port + 1))
  done
}
RAW_SERVERS=()

# Stops the raw broadcasters `start_raws` started.
stop_raws() {
  local r
  for r in "${RAW_SERVERS[@]}"; do kill "${r%%:*}" 2>/dev/null || true; done
}

# One fan-out run against raw server R (an entry of RAW_SERVERS) at RATE msg/s with STATE:
# named `raw`, or `raw FANOUT` when RAWS names other fan-outs than `tasks`, then SUFFIX.
#   fanout_raw R STATE RATE [SUFFIX]
fanout_raw() {
  local pid=${1%%:*} rest=${1#*:} name=raw
  [ "$RAWS" = tasks ] || name="raw ${rest#*:}"
  fanout "$name${4:+ $4}" "ws://127.0.0.1:${rest%%:*}" "$pid" "$2" "$3"
}

# Call before each fan-out run: from the second on it waits 65 s, for the client's ports to
# leave TIME_WAIT.
next_run() {
  [ -z "${RAN_BEFORE:-}" ] || sleep 65
  RAN_BEFORE=1
}

# One fan-out run: `fanout NAME URL PID STATE RATE` prints the machine's state, the result row
# and the machine's state after. With TIMELINE_MS set, the deliveries by send time in windows of
# that many ms go to $WORK/timeline-NAME-RATE-N.md (N counts the runs). With SCHEDWATCH set,
# `schedwatch.py` records the threads of the server, the load generator and PID 1 every 10 ms
# over the sending into $WORK/sched-NAME-RATE-N.txt and prints PID 1's bursts. With THREADS set,
# each of the server's busy threads is printed with its CPU and its voluntary context switches
# (the times it slept and was woken) per message sent: counts that a busy machine blurs far less
# than it blurs CPU time. With PROCS set, each program's CPU over the sending is printed too.
# WARMUP=N sends at the same rate for N s before the 15 s measured: the row's latency, rate and
# CPU are then of the messages sent after it (its last column is the p99 with the warm-up
# included), and the THREADS and PROCS counters start with the measuring too. With METRICS_URL
# (a node's or gateway's /metrics), the share of deliveries its own histogram counted late is
# printed under the row: what is late inside the server, against what the client saw.
# CLIENT_THREADS=N runs the load generator on N tokio workers (its default is one per core).
# CLIENT_GROUP=1 starts it in a session, and so a scheduling group, of its own (at NICE): the
# kernel then shares the CPU between it and the server by group, not by thread.
# SPLIT=1 also prints the measured latency split at each message's `created_at` (`--split`).
fanout() {
  echo "== $1, $5 msg/s, $(machine)"
  local out="$WORK/fanout.out" gen
  RUNS=$(( ${RUNS:-0} + 1 ))
  rm -f "$out"
  local launch=()
  # In a session of its own, it sets its group's niceness itself before it starts.
  [ -z "${CLIENT_GROUP:-}" ] ||
    launch=(setsid -w sh -c '[ -z "$0" ] || echo "$0" >/proc/self/autogroup; exec "$@"' "${NICE:-}")
  "${launch[@]}" env ${CLIENT_THREADS:+TOKIO_WORKER_THREADS=$CLIENT_THREADS} "$B/chatboard-bench" ws-fanout --ws "$2" --state "$4" --rate "$5" --seconds 15 --gateway-pid "$3" \
    --warmup-seconds "${WARMUP:-0}" ${TIMELINE_MS:+--timeline-ms $TIMELINE_MS} \
    ${METRICS_URL:+--metrics-url $METRICS_URL} ${SPLIT:+--split} >"$out" &
  gen=$!
  if [ -n "${SCHEDWATCH:-}${THREADS:-}${PROCS:-}" ]; then
    # Measuring starts once every socket is open, the arrivals' presence notices have passed
    # and the warm-up's sending is over.
    while ! grep -q "^measuring" "$out" 2>/dev/null && kill -0 $gen 2>/dev/null; do sleep 0.05; done
  fi
  [ -z "${THREADS:-}" ] || thread_counters "$3" >"$WORK/threads-before"
  if [ -n "${PROCS:-}" ]; then
    # Each program's CPU over the 15 s of sending (the server's, the client's, PostgreSQL's...).
    (program_cpu >"$WORK/procs-before"; sleep 15; program_cpu >"$WORK/procs-after") &
    procs=$!
  fi
  if [ -n "${SCHEDWATCH:-}" ]; then
    chrt -f 50 python3 "$SCRIPTS/schedwatch.py" record "$3,$gen,1" 16 "$WORK/sched-$1-$5-$RUNS.txt"
  fi
  wait $gen
  [ -z "${THREADS:-}" ] || thread_counters "$3" >"$WORK/threads-after"
  # The result row is the one after the first table's header and rule.
  awk '/^\| sent \|/{row=NR+2} NR==row' "$out"
  grep -E "^(gateway's own count|split at created_at|load generator's CPU)" "$out" || true
  if [ -n "${THREADS:-}" ]; then
    # Threads that ran over 20 ms while sending; the rate times 15 s is the messages sent.
    join "$WORK/threads-before" "$WORK/threads-after" | awk -v msgs=$(( $5 * 15 )) '{
      ran = ($9 - $3) / 1e6; woken = $10 - $4; user = $12 - $6; kernel = $13 - $7
      if (ran > 20) printf "   thread %s %s: %.0f ms (%.0f%% in the kernel), %.0f us and %.2f wake-ups per message\n",
        $1, $2, ran, 100 * kernel / (user + kernel + 1e-9), ran * 1000 / msgs, woken / msgs }'
  fi
  if [ -n "${PROCS:-}" ]; then
    wait $procs
    join -a2 "$WORK/procs-before" "$WORK/procs-after" | awk 'NF == 3 {d = $3 - $2} NF == 2 {d = $2}
      d > 10 && $1 !~ /kworker/ {printf "   program %s: %.2f CPU-seconds while sending\n", $1, d / 100}'
  fi
  if [ -n "${TIMELINE_MS:-}" ]; then
    sed -n '/^sending began at/,$p' "$out" >"$WORK/timeline-$1-$5-$RUNS.md"
  fi
  if [ -n "${SCHEDWATCH:-}" ]; then
    python3 "$SCRIPTS/schedwatch.py" bursts "$WORK/sched-$1-$5-$RUNS.txt" 1
  fi
  echo "   after: $(machine)"
}

# Clock ticks of CPU each program (by name) has used, summed over its processes. One `awk`
# reads every process's files: a few processes per thread or per program (as this once was)
# took the CPU, at the start of the measured seconds, that the server under test needed.
program_cpu() {
  awk 'FNR == 1 { split(FILENAME, p, "/"); kind = p[4]; pid = p[3] }
    kind == "comm" { name = $0; gsub(/ /, "", name); comm[pid] = name }
    kind == "stat" { s = $0; sub(/.*\) /, "", s); split(s, f, " "); ticks[pid] = f[12] + f[13] }
    END { for (id in ticks) if (id in comm) total[comm[id]] += ticks[id]
          for (n in total) print n, total[n] }' /proc/[0-9]*/comm /proc/[0-9]*/stat 2>/dev/null | sort
}

# Each thread of process $1: its id, name, nanoseconds run (schedstat), voluntary and
# involuntary context switches (status), clock ticks in user and in kernel mode (stat). One
# `awk` process for all of them, for the reason given above `program_cpu`.
thread_counters() {
  awk 'FNR == 1 { split(FILENAME, p, "/"); tid = p[5]; kind = p[6] }
    kind == "comm" { name = $0; gsub(/ /, "", name); comm[tid] = name }
    kind == "schedstat" { ran[tid] = $1 }
    kind == "status" && /^(voluntary|nonvoluntary)_ctxt_switches/ { switches[tid] = switches[tid] " " $2 }
    kind == "stat" { s = $0; sub(/.*\) /, "", s); split(s, f, " "); ticks[tid] = f[12] " " f[13] }
    END { for (t in comm) print t, comm[t], ran[t] switches[t], ticks[t] }' \
    /proc/"$1"/task/*/comm /proc/"$1"/task/*/schedstat /proc/"$1"/task/*/status /proc/"$1"/task/*/stat 2>/dev/null | sort
}

# The single node's data directory for a state file: each population has its own.
data_of() { echo "$WORK/data-$(basename "$1" .json)"; }

# A fresh single-node data directory for state file $1, seeded with `ws-seed ARGS...`.
seed_node() {
  local state=$1 data; shift
  data=$(data_of "$state")
  rm -rf "$data"; mkdir -p "$data"
  CHATBOARD_DATA_DIR="$data" "$B/chatboard" migrate >/dev/null 2>&1
  "$B/chatboard-bench" ws-seed --data-dir "$data" --state "$state" "$@" | tail -1
}

# Starts the single node on the data directory of state file $1 at 127.0.0.1:18080, without
# per-user and per-IP limits; its pid is in NODE.
start_node() {
  CHATBOARD_DATA_DIR="$(data_of "$1")" CHATBOARD_ADDR=127.0.0.1:18080 CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 \
    CHATBOARD_RATE_LIMIT_PER_IP=0 CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 RUST_LOG=${LOG:-warn} \
    "$B/chatboard" 2>"$WORK/node.err" &
  NODE=$!
  sleep 3
}

# The scale-out shape's environment on database $1 (created and migrated if missing) with a
# fresh NATS stream prefix (JetStream's de-duplication window would otherwise drop repeats).
scale_out_env() {
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$1 NATS_URL=nats://127.0.0.1:4222 \
    CHATBOARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-bench CHATBOARD_NATS_PREFIX=bench$RANDOM \
    CHATBOARD_HTTP_MAX_CONNECTIONS_PER_IP=0 CHATBOARD_RATE_LIMIT_PER_USER=0 CHATBOARD_INVITES_PER_HOUR=0 CHATBOARD_RATE_LIMIT_PER_IP=0 \
    CHATBOARD_DB_MAX_CONNECTIONS=10 RUST_LOG=${LOG:-warn}
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres "$1"
    "$WORK/api-server" migrate >/dev/null 2>&1
    return 1 # new: seed it
  fi
}
