#!/usr/bin/env python3
"""What a plain post costs SQLite, piece by piece: CPU per post of the single node's posting
statements, replayed through Python's sqlite3 on a copy of a seeded data directory.

  bench/scripts/sqlite-post-cost.py DATA_DIR [VARIANT...]

DATA_DIR is a single node's data directory seeded by `chatboard-bench ws-seed --data-dir`
(`fanout-ab.sh` leaves one in $WORK/data-s100); it is copied, never written. Each variant runs
on a fresh copy, in WAL mode with `synchronous=NORMAL` as the node runs, committing 1, 3 and 8
posts per transaction (the node's group commit takes what queued meanwhile):

  base        the insert (`store/src/sql/sqlite.rs`, `insert_sql`) and its outbox row, as the
              node's plain-post statement string runs them
  no_roots, no_org_age, no_sender
              the same without the index of that name on `messages`
  no_outbox   the insert alone
  relay       base, with the relay's read and mark of the outbox every 100 posts

The statements are copies of the store's: change them here when the store's change. CPU is
this process's, so it includes Python's own cost per statement (the same in every variant):
compare variants, not absolute figures. Each figure is the median of ROUNDS (5) rounds.
"""
import json
import os
import random
import sqlite3
import sys
import tempfile
import time

INSERT = """INSERT INTO messages (room_id, org_id, seq, sender_id, body, client_msg_id, created_at,
  file_id, file_name, file_type, file_size, parent_id, mention_ids)
SELECT r.id, r.org_id, r.last_seq + 1, ?2, ?4, ?3, ?5, NULL, NULL, NULL, NULL, NULL, NULL
FROM rooms r
WHERE r.id = ?1 AND EXISTS (SELECT 1 FROM room_members WHERE room_id = ?1 AND user_id = ?2)
  AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = r.org_id AND o.suspended = 0 AND o.archived_at IS NULL)
  AND (?3 IS NULL OR NOT EXISTS (
    SELECT 1 FROM messages WHERE room_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3))
RETURNING id, room_id, org_id, seq, sender_id, body, client_msg_id, is_deleted, created_at,
  edited_at, file_id, file_name, file_type, file_size, parent_id, reply_count, last_reply_at,
  last_repliers, reactions, mention_ids"""

OUTBOX = """INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at)
SELECT ?1, 'message.created', m.org_id, m.room_id, json_set(?2, '$.id', m.id, '$.org', m.org_id), ?3
FROM messages m WHERE changes() = 1 AND m.id = last_insert_rowid()"""

BODY = "message %d from the load generator, a sentence of ordinary length"
NOW = "2026-12-03T22:00:00.000000Z"
PAYLOAD = json.dumps({"type": "message.created", "message": {
    "id": 0, "room": 1, "org": 0, "seq": 0, "sender": 1, "body": BODY % 0,
    "client_msg_id": "c-1", "created_at": NOW, "edited_at": None, "is_deleted": False,
    "file": None, "parent_id": None, "reply_count": 0, "reactions": [], "mentions": []}})
POSTS = 6000
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DROPPED_INDEX = {"no_roots": "messages_roots", "no_org_age": "messages_org_age",
                 "no_sender": "messages_sender"}


def fresh_copy(source, directory):
    """A copy of the database at `source` in `directory`, opened as the node's writer is."""
    path = os.path.join(directory, "copy.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    # Read-only: closing a writable connection could checkpoint a leftover WAL into the source.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(path)
    src.backup(dst)
    src.close()
    dst.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def members_by_room(db):
    rooms = {}
    for room, user in db.execute("SELECT room_id, user_id FROM room_members"):
        rooms.setdefault(room, []).append(user)
    return rooms


def post(db, rooms, posts, batch, outbox=True, relay=False, start=0):
    """Posts `posts` messages round the rooms, `batch` per transaction; CPU µs per post."""
    room_ids = sorted(rooms)
    n, cpu = start, time.process_time()
    while n < start + posts:
        db.execute("BEGIN")
        for _ in range(batch):
            room = room_ids[n % len(room_ids)]
            sender = rooms[room][n % len(rooms[room])]
            tag = f"{n}-{random.random()}"
            db.execute(INSERT, (room, sender, f"c-{tag}", BODY % n, NOW)).fetchall()
            if outbox:
                db.execute(OUTBOX, (f"ev-{tag}", PAYLOAD, NOW))
            n += 1
        db.execute("COMMIT")
        if relay and n % 100 < batch:
            ids = [row[0] for row in db.execute(
                "SELECT id, event_id, event_type, org_id, room_id, payload, created_at FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT 500")]
            if ids:
                db.execute("UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND id IN (%s)"
                           % ",".join(map(str, ids)), (NOW,))
    return (time.process_time() - cpu) * 1e6 / (n - start)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    source = os.path.join(sys.argv[1], "chatboard.db")
    variants = sys.argv[2:] or ["base", "no_roots", "no_org_age", "no_sender", "no_outbox", "relay"]
    runs = {}
    with tempfile.TemporaryDirectory() as directory:
        # Rounds of every variant in turn, so that a busy moment of the machine does not fall on
        # one variant; the median of the rounds is printed.
        for _ in range(ROUNDS):
            for variant in variants:
                for batch in (1, 3, 8):
                    db = fresh_copy(source, directory)
                    if variant in DROPPED_INDEX:
                        db.execute(f"DROP INDEX {DROPPED_INDEX[variant]}")
                    rooms = members_by_room(db)
                    post(db, rooms, 500, batch)  # warm the cache
                    us = post(db, rooms, POSTS, batch, outbox=variant != "no_outbox",
                              relay=variant == "relay", start=500)
                    runs.setdefault((variant, batch), []).append(us)
                    db.close()
    for (variant, batch), values in runs.items():
        values.sort()
        print(f"{variant:12s} {batch} per commit: {values[len(values) // 2]:6.1f} µs CPU per post "
              f"(median of {len(values)}; {values[0]:.1f} to {values[-1]:.1f})")


if __name__ == "__main__":
    main()
