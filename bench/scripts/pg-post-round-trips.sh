#!/usr/bin/env bash
# PostgreSQL's CPU per post, a plain post as four round trips (BEGIN, the insert, its event,
# COMMIT: the store's transaction path) against one statement (the store's plain post path),
# with pgbench: 4 clients at RATE posts/s for SECONDS, alternating, ROUNDS times. The statements
# follow the store's (store/src/sql/postgres_posts.rs); the sender is a member read in the same
# statement. CPU is the postgres processes' (the postmaster's reaped children included).
#
#   bench/scripts/pg-post-round-trips.sh DATABASE [ROUNDS] [RATE] [SECONDS]
#
# DATABASE must hold rooms 1 to 100 with members, as `fanout-scale-out.sh` seeds `bench_fanout`.
set -euo pipefail
DB=$1 ROUNDS=${2:-3} RATE=${3:-1000} SECONDS_EACH=${4:-15}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
SLOT="UPDATE rooms SET last_seq = last_seq + 1, last_msg_id = nextval(pg_get_serial_sequence('messages', 'id')) \
WHERE id = :room AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = rooms.org_id AND NOT o.suspended AND o.archived_at IS NULL) \
RETURNING org_id, last_seq, last_msg_id"
INSERT="INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at) OVERRIDING SYSTEM VALUE \
SELECT last_msg_id, :room, org_id, last_seq, (SELECT min(user_id) FROM room_members WHERE room_id = :room), \
'hello there general kenobi', NULL, now() FROM slot"
PAYLOAD='{"id":1,"room":1,"org":1,"body":"hello there general kenobi","created_at":"2026-12-04T20:00:00Z"}'
cat >"$DIR/four.sql" <<SQL
\set room random(1, 100)
BEGIN;
WITH slot AS ($SLOT) $INSERT RETURNING id, room_id, org_id, seq, body, created_at;
INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) VALUES (gen_random_uuid()::text, 'message.created', 1, :room, '$PAYLOAD', now());
COMMIT;
SQL
cat >"$DIR/one.sql" <<SQL
\set room random(1, 100)
WITH slot AS ($SLOT), m AS ($INSERT RETURNING id, room_id, org_id, seq, body, created_at), e AS (INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) SELECT gen_random_uuid()::text, 'message.created', m.org_id, m.room_id, '{"id":' || m.id || ',"room":' || m.room_id || ',"org":' || m.org_id || ',"body":"hello there general kenobi","created_at":"2026-12-04T20:00:00Z"}', m.created_at FROM m) SELECT * FROM m;
SQL
PM=$(pgrep -o -x postgres)
# Clock ticks of every postgres process, plus those of the backends the postmaster has reaped.
pg_ticks() {
  awk -v pm="$PM" '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); t += f[12] + f[13]
    if (FILENAME == "/proc/" pm "/stat") t += f[14] + f[15] } END { print t }' \
    $(for p in $(pgrep -x postgres); do echo "/proc/$p/stat"; done) 2>/dev/null
}
for round in $(seq 1 "$ROUNDS"); do
  for v in four one; do
    before=$(pg_ticks) load=$(cut -d' ' -f1 /proc/loadavg)
    out=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 4 -j 1 -R "$RATE" -T "$SECONDS_EACH" -f "$DIR/$v.sql" "$DB" 2>&1)
    sleep 0.5
    ticks=$(( $(pg_ticks) - before ))
    posts=$(echo "$out" | awk '/number of transactions actually processed/ { split($NF, n, "/"); print n[1] }')
    latency=$(echo "$out" | awk '/latency average/ { print $4 }')
    echo "round $round, $v: $posts posts, $(( ticks * 10000 / posts )) us of postgres CPU per post, latency $latency ms avg, load $load"
  done
done
