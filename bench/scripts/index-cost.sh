#!/usr/bin/env bash
# What the worker's search indexing costs on PostgreSQL: replays its statement (batches of 500
# messages, `INSERT ... SELECT ... ON CONFLICT DO NOTHING` into message_words, then
# `gin_clean_pending_list`) over the messages of database $1 not indexed yet (say, after post
# runs without a worker), in one backend, and prints the time per message.
#
#   bench/scripts/index-cost.sh DATABASE
set -euo pipefail
P="psql -h 127.0.0.1 -U postgres -d $1 -Atq"
read -r lo hi <<<"$($P -F' ' -c "SELECT min(id), max(id) FROM messages WHERE id > (SELECT COALESCE(max(message_id), 0) FROM message_words)")"
rooms=$($P -c "SELECT '{' || string_agg(id::text, ',') || '}' FROM rooms")
n=$($P -c "SELECT count(*) FROM messages WHERE room_id = ANY('$rooms'::int8[]) AND id BETWEEN $lo AND $hi")
sql=$(mktemp)
for ((x = lo; x <= hi; x += 500)); do
  echo "INSERT INTO message_words (room_id, message_id, org_id, words) SELECT m.room_id, m.id, m.org_id, m.search_vector FROM messages m WHERE m.room_id = ANY('$rooms'::int8[]) AND m.id >= $x AND m.id < $((x + 500)) AND NOT m.is_deleted ORDER BY m.room_id, m.id ON CONFLICT (room_id, message_id) DO NOTHING;"
  echo "SELECT gin_clean_pending_list('message_words_search'::regclass);"
done >"$sql"
t0=$(date +%s.%N); $P -f "$sql" >/dev/null; t1=$(date +%s.%N); rm -f "$sql"
echo "$n messages in $(echo "$t1 - $t0" | bc) s: $(echo "($t1 - $t0) * 1000000 / $n" | bc) µs per message (one backend: CPU at most this)"
