-- Rooms, messages, read state and the event outbox (issue: chat core).

CREATE TABLE rooms (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    is_dm        BOOLEAN     NOT NULL DEFAULT FALSE,
    access_level TEXT        NOT NULL CHECK (access_level IN ('PUBLIC', 'MANAGER_ONLY', 'PRIVATE')),
    -- "<low user id>:<high user id>" for direct messages: one DM per pair and org, even when both
    -- open it at the same moment.
    dm_key       TEXT,
    created_by   BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    -- How many messages the room has had: each message takes the next number under this row's
    -- lock, which also makes message ids commit in increasing order within a room. Unread counts
    -- are last_seq minus the reader's last_read_seq, with no scan of the messages.
    last_seq     BIGINT      NOT NULL DEFAULT 0,
    -- Id of the newest message, set by the same statement that takes the seq.
    last_msg_id  BIGINT,
    -- Bumped by every edit and delete of a message: with last_msg_id it tells whether a cached
    -- page of the room is still current.
    edit_version BIGINT      NOT NULL DEFAULT 0
);
CREATE INDEX rooms_org ON rooms (org_id, access_level);
CREATE UNIQUE INDEX rooms_dm ON rooms (org_id, dm_key) WHERE dm_key IS NOT NULL;

CREATE TABLE room_members (
    room_id          BIGINT      NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id          BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The newest message the member has marked read (NULL: none yet) and its seq.
    last_read_msg_id BIGINT,
    last_read_seq    BIGINT      NOT NULL DEFAULT 0,
    joined_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- "Rooms of this user" (room list, unread counts) reads only this index and the rooms rows.
CREATE INDEX room_members_user ON room_members (user_id, room_id);

-- No foreign keys on this, the hottest table: every insert already proves its room and sender
-- exist (it needs the sender's seat in the room, and room_members references both), and the
-- checks cost a fifth of an insert. Deleting a room or an organization deletes its messages
-- explicitly, in the same transaction.
CREATE TABLE messages (
    id            BIGINT GENERATED ALWAYS AS IDENTITY,
    room_id       BIGINT      NOT NULL,
    org_id        BIGINT      NOT NULL,
    seq           BIGINT      NOT NULL,
    sender_id     BIGINT,
    body          TEXT        NOT NULL,
    client_msg_id TEXT,
    is_deleted    BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    edited_at     TIMESTAMPTZ,
    -- Every message read is "in this room": pages (newest, before, after) and single lookups are
    -- range scans of this key, equally fast at any depth.
    PRIMARY KEY (room_id, id)
);
-- Unread counts subtract the reader's own messages after their read pointer.
CREATE INDEX messages_sender ON messages (room_id, sender_id, id);
-- ...and deleted ones, which are few.
CREATE INDEX messages_deleted ON messages (room_id, id) WHERE is_deleted;
-- Idempotent sends.
CREATE UNIQUE INDEX messages_client_id ON messages (room_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Events written in the same transaction as the change they describe; the worker relays them.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A random UUID, unique by construction; consumers de-duplicate on it. (No unique index:
    -- random keys make it the dearest index of the table.)
    event_id     TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    org_id       BIGINT      NOT NULL,
    room_id      BIGINT,
    payload      TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
