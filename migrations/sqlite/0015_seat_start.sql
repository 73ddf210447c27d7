-- Where the room stood when each seat was taken (its newest message id, 0 if none, and that
-- message's seq), recorded in the seat's own transaction. A multiplexed socket that learns of
-- the seat later delivers everything after this point; the room's position read afterwards
-- would skip what was posted in between. NULL for seats older than this migration.
ALTER TABLE room_members ADD COLUMN seated_after_msg_id INTEGER;
ALTER TABLE room_members ADD COLUMN seated_after_seq INTEGER;

-- SQLite's BEFORE triggers cannot change the new row, so the seat is completed after it is
-- inserted, in the same statement.
CREATE TRIGGER room_members_seat_start AFTER INSERT ON room_members
BEGIN
    UPDATE room_members
       SET seated_after_msg_id = (SELECT COALESCE(last_msg_id, 0) FROM rooms WHERE id = new.room_id),
           seated_after_seq = (SELECT last_seq FROM rooms WHERE id = new.room_id)
     WHERE room_id = new.room_id AND user_id = new.user_id;
END;
