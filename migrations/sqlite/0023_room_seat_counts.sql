-- Each room's number of seats, kept by triggers. Every room in an answer carries its
-- `members_count`, and the access check before each read of a room and each socket's follow
-- counted the room's seats: about 0.12 ms a call in a room of 5,000 (BENCHMARKS.md). A table
-- of its own, as on PostgreSQL (where posts lock the room's row).
CREATE TABLE room_seat_counts (
    room_id INTEGER PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seats   INTEGER NOT NULL
);

INSERT INTO room_seat_counts (room_id, seats)
SELECT r.id, (SELECT count(*) FROM room_members m WHERE m.room_id = r.id) FROM rooms r;

CREATE TRIGGER room_seat_count_start AFTER INSERT ON rooms
BEGIN
    INSERT INTO room_seat_counts (room_id, seats) VALUES (NEW.id, 0);
END;

CREATE TRIGGER room_seats_added AFTER INSERT ON room_members
BEGIN
    UPDATE room_seat_counts SET seats = seats + 1 WHERE room_id = NEW.room_id;
END;

-- Also for seats that go with their room (its row goes too, and the update finds nothing).
CREATE TRIGGER room_seats_removed AFTER DELETE ON room_members
BEGIN
    UPDATE room_seat_counts SET seats = seats - 1 WHERE room_id = OLD.room_id;
END;
