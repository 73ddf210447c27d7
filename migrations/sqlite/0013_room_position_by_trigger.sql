-- A post on SQLite takes its room's next seq in its INSERT (from rooms.last_seq) and this trigger
-- moves the room's position (last_seq, last_msg_id) in the same statement. Before, a post was
-- three statements (take the seq, insert, record the newest id), and on the single node each
-- statement is a round trip to the connection's thread, which cost more than the work. The one
-- writer connection serialises posts, so reading last_seq + 1 and storing it cannot race.
CREATE TRIGGER messages_room_position AFTER INSERT ON messages
BEGIN
    UPDATE rooms SET last_seq = new.seq, last_msg_id = new.id WHERE id = new.room_id;
END;
