-- Threads (issue 20): a message may answer another of the same room. Replies point at the
-- thread's root (never at another reply); the root keeps the thread's counters so that a page
-- of the timeline shows them without reading the replies.
ALTER TABLE messages ADD COLUMN parent_id     BIGINT;
ALTER TABLE messages ADD COLUMN reply_count   BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_reply_at TIMESTAMPTZ;
-- The newest reply's id: the order of "my threads" (latest activity first).
ALTER TABLE messages ADD COLUMN last_reply_id BIGINT;
-- The latest distinct repliers, newest first, as comma-separated user ids (at most three).
ALTER TABLE messages ADD COLUMN last_repliers TEXT;

-- A thread's replies, paged by id.
CREATE INDEX messages_thread ON messages (room_id, parent_id, id) WHERE parent_id IS NOT NULL;
-- The timeline without replies (`?threads=roots`).
CREATE INDEX messages_roots ON messages (room_id, id) WHERE parent_id IS NULL;

-- Who follows which thread, and how far they have read it. A row without `following` keeps a
-- read pointer or an explicit unfollow (`unfollowed`), which automatic follows respect.
CREATE TABLE thread_follows (
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id      BIGINT  NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    root_id      BIGINT  NOT NULL,
    following    BOOLEAN NOT NULL,
    unfollowed   BOOLEAN NOT NULL DEFAULT FALSE,
    last_read_id BIGINT,
    PRIMARY KEY (user_id, root_id)
);
CREATE INDEX thread_follows_room ON thread_follows (room_id);
