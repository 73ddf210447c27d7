#!/usr/bin/env bash
# Runs the browser figures (first load, page render, scrolling) with load average and steal.
set -e
steal() { awk '/^cpu /{print $9}' /proc/stat; }
cd "$(dirname "$0")/../../web/e2e"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"; s0=$(steal)
CHATBOARD_BIN=${BIN:?} node --test --test-concurrency=1 history.test.mjs chat.test.mjs 2>&1 | grep -E "^# \{|first load|^ok|^not ok"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"; echo "steal ticks: $(( $(steal) - s0 ))"
