-- Goes up by one with each reaction added to or taken off a message: the `reaction.*` frames
-- carry the value their change gave it, so a client can tell a frame that arrives late (two
-- reactions announced by two requests, or two API processes, in either order) from a newer one.
ALTER TABLE messages ADD COLUMN reactions_version BIGINT NOT NULL DEFAULT 0;
