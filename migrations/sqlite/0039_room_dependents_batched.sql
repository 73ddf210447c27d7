-- Reactions, mentions and thread follows no longer go with their room's row: see the
-- PostgreSQL migration of the same name. SQLite cannot drop a foreign key, so each table is
-- made again without it (its rows copied once, here).
CREATE TABLE reactions_batched (
    room_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    emoji      TEXT    NOT NULL,
    user_id    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) WITHOUT ROWID;
INSERT INTO reactions_batched (room_id, message_id, emoji, user_id, created_at)
    SELECT room_id, message_id, emoji, user_id, created_at FROM reactions;
DROP TABLE reactions;
ALTER TABLE reactions_batched RENAME TO reactions;
CREATE INDEX reactions_user ON reactions (user_id, message_id);
CREATE INDEX reactions_room ON reactions (room_id);

CREATE TABLE mentions_batched (
    message_id INTEGER NOT NULL,
    room_id    INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
INSERT INTO mentions_batched (message_id, room_id, user_id)
    SELECT message_id, room_id, user_id FROM mentions;
DROP TABLE mentions;
ALTER TABLE mentions_batched RENAME TO mentions;
CREATE INDEX mentions_reader ON mentions (user_id, message_id);
CREATE INDEX mentions_unread ON mentions (user_id, room_id, message_id);
CREATE INDEX mentions_room ON mentions (room_id);

CREATE TABLE thread_follows_batched (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id      INTEGER NOT NULL,
    root_id      INTEGER NOT NULL,
    following    BOOLEAN NOT NULL,
    unfollowed   BOOLEAN NOT NULL DEFAULT FALSE,
    last_read_id INTEGER,
    PRIMARY KEY (user_id, root_id)
) WITHOUT ROWID;
INSERT INTO thread_follows_batched (user_id, room_id, root_id, following, unfollowed, last_read_id)
    SELECT user_id, room_id, root_id, following, unfollowed, last_read_id FROM thread_follows;
DROP TABLE thread_follows;
ALTER TABLE thread_follows_batched RENAME TO thread_follows;
CREATE INDEX thread_follows_room_root ON thread_follows (room_id, root_id);
