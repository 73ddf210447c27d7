-- Rooms, messages, read state and the event outbox (issue: chat core). Same shape as the
-- PostgreSQL schema; see the comments there.

CREATE TABLE rooms (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    is_dm        BOOLEAN NOT NULL DEFAULT FALSE,
    access_level TEXT    NOT NULL CHECK (access_level IN ('PUBLIC', 'MANAGER_ONLY', 'PRIVATE')),
    dm_key       TEXT,
    created_by   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at   TEXT    NOT NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0,
    last_msg_id  INTEGER,
    edit_version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rooms_org ON rooms (org_id, access_level);
CREATE UNIQUE INDEX rooms_dm ON rooms (org_id, dm_key) WHERE dm_key IS NOT NULL;

CREATE TABLE room_members (
    room_id          INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_msg_id INTEGER,
    last_read_seq    INTEGER NOT NULL DEFAULT 0,
    joined_at        TEXT    NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members (user_id, room_id);

-- A rowid table: AUTOINCREMENT ids never repeat and grow with insertion order, which the single
-- writer makes commit order too.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id       INTEGER NOT NULL,
    org_id        INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    sender_id     INTEGER,
    body          TEXT    NOT NULL,
    client_msg_id TEXT,
    is_deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT    NOT NULL,
    edited_at     TEXT
);
CREATE INDEX messages_room ON messages (room_id, id);
CREATE INDEX messages_sender ON messages (room_id, sender_id, id);
CREATE INDEX messages_deleted ON messages (room_id, id) WHERE is_deleted;
CREATE UNIQUE INDEX messages_client_id ON messages (room_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    org_id       INTEGER NOT NULL,
    room_id      INTEGER,
    payload      TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    published_at TEXT
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
