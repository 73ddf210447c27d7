-- The messages a queued digest email covers, until it is settled: the mailer writes the email
-- again from them before each attempt. Same shape as the PostgreSQL schema; see the comments
-- there.
CREATE TABLE digest_email_lines (
    email_id   INTEGER NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    room_id    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (email_id, message_id)
) WITHOUT ROWID;
CREATE INDEX digest_email_lines_user ON digest_email_lines (user_id);
