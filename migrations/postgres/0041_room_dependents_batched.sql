-- Reactions, mentions and thread follows no longer go with their room's row: deleting a room
-- took all of them in its one transaction (an `@room` in a room of 1,000 writes 1,000 mention
-- rows; 5,000 of them, five million rows deleted while the deletion held its locks). They go
-- with their messages instead, a batch per transaction, as the messages of a deleted room do
-- (`erased_rooms`); nothing reads them meanwhile, every read of them joins the room's seats.
ALTER TABLE reactions DROP CONSTRAINT IF EXISTS reactions_room_id_fkey;
ALTER TABLE mentions DROP CONSTRAINT IF EXISTS mentions_room_id_fkey;
ALTER TABLE thread_follows DROP CONSTRAINT IF EXISTS thread_follows_room_id_fkey;
