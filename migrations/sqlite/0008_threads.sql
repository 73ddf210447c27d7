-- Threads (issue 20). Same shape as the PostgreSQL schema; see the comments there.
ALTER TABLE messages ADD COLUMN parent_id     INTEGER;
ALTER TABLE messages ADD COLUMN reply_count   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_reply_at TEXT;
ALTER TABLE messages ADD COLUMN last_reply_id INTEGER;
ALTER TABLE messages ADD COLUMN last_repliers TEXT;

CREATE INDEX messages_thread ON messages (room_id, parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_roots ON messages (room_id, id) WHERE parent_id IS NULL;

CREATE TABLE thread_follows (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id      INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    root_id      INTEGER NOT NULL,
    following    BOOLEAN NOT NULL,
    unfollowed   BOOLEAN NOT NULL DEFAULT FALSE,
    last_read_id INTEGER,
    PRIMARY KEY (user_id, root_id)
) WITHOUT ROWID;
CREATE INDEX thread_follows_room ON thread_follows (room_id);
