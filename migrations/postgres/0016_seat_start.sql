-- Where the room stood when each seat was taken (its newest message id, 0 if none, and that
-- message's seq), recorded in the seat's own transaction. A multiplexed socket that learns of
-- the seat later delivers everything after this point; the room's position read afterwards
-- would skip what was posted in between. A post not yet committed when the seat's statement
-- reads the room holds a larger id (ids are taken under the room's row lock), so it is after
-- this point too. NULL for seats older than this migration.
ALTER TABLE room_members ADD COLUMN seated_after_msg_id BIGINT, ADD COLUMN seated_after_seq BIGINT;

CREATE FUNCTION room_members_seat_start() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT COALESCE(last_msg_id, 0), last_seq
      INTO NEW.seated_after_msg_id, NEW.seated_after_seq
      FROM rooms WHERE id = NEW.room_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER room_members_seat_start BEFORE INSERT ON room_members
    FOR EACH ROW EXECUTE FUNCTION room_members_seat_start();
