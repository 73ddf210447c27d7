-- Reactions (issue 20). Same shape as the PostgreSQL schema; see the comments there.
CREATE TABLE reactions (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    emoji      TEXT    NOT NULL,
    user_id    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) WITHOUT ROWID;
CREATE INDEX reactions_user ON reactions (user_id, message_id);
CREATE INDEX reactions_room ON reactions (room_id);

ALTER TABLE messages ADD COLUMN reactions TEXT;
