-- The word index moves out of the posting transaction (issue 20, point 5: posts lost 15% to
-- keeping a GIN index of `messages` up to date as each one was written).
--
-- `message_words` holds each message's words for the GIN index; the worker fills it from
-- `message.created` events (a moment after the post's commit, many messages per statement),
-- while an edit or a delete changes its row in its own transaction. `messages.search_vector`
-- stays: searches for frequent words walk each room's newest messages and test it there (new
-- messages are found that way at once), and ranking reads it.
CREATE TABLE message_words (
    room_id    BIGINT   NOT NULL,
    message_id BIGINT   NOT NULL,
    words      tsvector NOT NULL,
    PRIMARY KEY (room_id, message_id),
    -- Deleting a room, an organization or old messages deletes their words with them.
    FOREIGN KEY (room_id, message_id) REFERENCES messages (room_id, id) ON DELETE CASCADE
);
INSERT INTO message_words (room_id, message_id, words)
    SELECT room_id, id, search_vector FROM messages WHERE NOT is_deleted;
-- fastupdate on: the worker's statement adds its messages to the index's pending list (cheap),
-- then empties the list into the index at once (`gin_clean_pending_list`), sorted and merged,
-- which costs far less than adding them one by one. Searches scan what is pending, which is at
-- most the batch being written.
CREATE INDEX message_words_search ON message_words USING GIN (room_id, words)
    WITH (fastupdate = on);
DROP INDEX messages_search;
