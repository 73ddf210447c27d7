-- Reactions (issue 20): one row per person and emoji on a message. The message keeps the
-- counts per emoji (`reactions`, JSON `[{"emoji", "count"}]` in the order first added), kept in
-- step under the message's row lock, so a page of messages reads them without a join.
CREATE TABLE reactions (
    room_id    BIGINT      NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_id BIGINT      NOT NULL,
    emoji      TEXT        NOT NULL,
    user_id    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
-- Which of a page's messages the reader reacted to (`me`).
CREATE INDEX reactions_user ON reactions (user_id, message_id);
CREATE INDEX reactions_room ON reactions (room_id);

ALTER TABLE messages ADD COLUMN reactions TEXT;
