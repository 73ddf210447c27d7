#!/usr/bin/env bash
# Runs a command and prints the CPU seconds each program (by name: postgres, api-server,
# nats-server, ...) used meanwhile, from /proc/<pid>/stat, with the steal and idle ticks of
# /proc/stat. Divide by the requests served for CPU per request.
#
#   bench/scripts/cpu-per-process.sh chatboard-bench run --state s.json --scenario post --seconds 6
set -euo pipefail
snap() {
  for p in /proc/[0-9]*; do
    n=$(cat "$p/comm" 2>/dev/null) || continue
    s=$(sed 's/.*) //' "$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"$s"; echo "$n $((f[11] + f[12]))"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
before=$(mktemp) after=$(mktemp)
snap >"$before"; read -r -a c0 < <(head -1 /proc/stat)
"$@"
read -r -a c1 < <(head -1 /proc/stat); snap >"$after"
join -a2 "$before" "$after" | awk 'NF == 3 {d = $3 - $2} NF == 2 {d = $2} d > 10 {printf "%-20s %6.2f s\n", $1, d / 100}'
echo "steal ticks: $((c1[8] - c0[8])), idle ticks: $((c1[4] - c0[4]))"
rm -f "$before" "$after"
