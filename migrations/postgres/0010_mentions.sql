-- Mentions (issue 20): who a message mentions, by address, `@room` (everyone seated) or
-- `@here` (those online when it was posted), one row per person, written with the message and
-- rewritten by edits. Unread mention counts and the reader's mentions page read them.
CREATE TABLE mentions (
    message_id BIGINT NOT NULL,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_reader ON mentions (user_id, message_id);
CREATE INDEX mentions_unread ON mentions (user_id, room_id, message_id);
CREATE INDEX mentions_room ON mentions (room_id);

-- The people mentioned by address, in order (comma-separated ids), for the message object.
ALTER TABLE messages ADD COLUMN mention_ids TEXT;

-- A digest line for a mention makes the digest due sooner (CHATBOARD_EMAIL_MENTION_DELAY).
ALTER TABLE digest_items ADD COLUMN mentioned BOOLEAN NOT NULL DEFAULT FALSE;
