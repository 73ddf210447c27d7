-- Rooms deleted (alone, or with their organization) whose messages are still to be deleted.
-- A deletion takes the room's row, seats, reactions and mentions in one short transaction and
-- notes the room here; its messages (no foreign key, see `rooms_messages_outbox`) go afterwards
-- a batch per transaction, so that deleting a room of a million messages does not hold one
-- transaction (on SQLite, the only writer) for the whole of it. Nothing reads them meanwhile:
-- every read goes through the room, which is gone.
CREATE TABLE erased_rooms (
    room_id   BIGINT      PRIMARY KEY,
    erased_at TIMESTAMPTZ NOT NULL
);
