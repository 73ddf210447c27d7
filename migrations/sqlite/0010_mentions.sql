-- Mentions (issue 20). Same shape as the PostgreSQL schema; see the comments there.
CREATE TABLE mentions (
    message_id INTEGER NOT NULL,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
CREATE INDEX mentions_reader ON mentions (user_id, message_id);
CREATE INDEX mentions_unread ON mentions (user_id, room_id, message_id);
CREATE INDEX mentions_room ON mentions (room_id);

ALTER TABLE messages ADD COLUMN mention_ids TEXT;

ALTER TABLE digest_items ADD COLUMN mentioned BOOLEAN NOT NULL DEFAULT FALSE;
