-- Rooms deleted whose messages are still to be deleted, a batch per transaction; see the
-- PostgreSQL migration of the same name.
CREATE TABLE erased_rooms (
    room_id   INTEGER PRIMARY KEY,
    erased_at TEXT    NOT NULL
);
