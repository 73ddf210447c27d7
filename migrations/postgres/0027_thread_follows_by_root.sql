-- Retention deletes the follows of the thread roots it removes, by (room, root): with an index
-- on the room alone each batch read every follow row of the room. The new index serves the
-- room-only lookups too.
CREATE INDEX thread_follows_room_root ON thread_follows (room_id, root_id);
DROP INDEX thread_follows_room;
