-- Each room's number of seats, kept by triggers. Every room in an answer carries its
-- `members_count`, and the access check before each read of a room and each socket's follow
-- counted the room's seats: 0.25 to 0.4 ms a call in a room of 5,000 (BENCHMARKS.md).
--
-- A table of its own, not a column of rooms: a post locks its room's row and then checks the
-- sender's seat, so a change of seats that went on to lock the room's row could deadlock with
-- it. Posts never touch these rows. Each room has its row from its creation, so the seat
-- triggers only update (an insert would check the room's key, which a post may be holding).
-- Nothing may seat, unseat or create a room between the count below and the triggers' start
-- (replicas of the previous version keep writing during a rolling upgrade): such a change would
-- never be counted. Reads go on; the migration's transaction holds this until it commits.
LOCK TABLE rooms, room_members IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE room_seat_counts (
    room_id BIGINT PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seats   BIGINT NOT NULL
);

INSERT INTO room_seat_counts (room_id, seats)
SELECT r.id, (SELECT count(*) FROM room_members m WHERE m.room_id = r.id) FROM rooms r;

CREATE FUNCTION room_seat_count_start() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO room_seat_counts (room_id, seats) VALUES (NEW.id, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER room_seat_count_start AFTER INSERT ON rooms
    FOR EACH ROW EXECUTE FUNCTION room_seat_count_start();

-- Once per statement (a PUBLIC room's creation seats thousands in one), each room's change in
-- one update. The rows are locked in room order first, so two statements changing seats in
-- several rooms wait for each other instead of deadlocking.
CREATE FUNCTION room_seats_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM room_seat_counts
      WHERE room_id IN (SELECT room_id FROM added) ORDER BY room_id FOR UPDATE;
    UPDATE room_seat_counts c SET seats = c.seats + a.n
      FROM (SELECT room_id, count(*) AS n FROM added GROUP BY room_id) a
     WHERE c.room_id = a.room_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER room_seats_added AFTER INSERT ON room_members
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION room_seats_added();

-- Also for seats that go with their room (its row goes too, and the update finds nothing).
CREATE FUNCTION room_seats_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM room_seat_counts
      WHERE room_id IN (SELECT room_id FROM removed) ORDER BY room_id FOR UPDATE;
    UPDATE room_seat_counts c SET seats = c.seats - r.n
      FROM (SELECT room_id, count(*) AS n FROM removed GROUP BY room_id) r
     WHERE c.room_id = r.room_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER room_seats_removed AFTER DELETE ON room_members
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION room_seats_removed();
