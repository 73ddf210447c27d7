-- The messages each user's digests have covered, kept as long as the outbox keeps the events
-- that could bring them back (`CHATBOARD_OUTBOX_RETENTION_DAYS`): a replay of the outbox (the
-- README's recovery step after lost jobs) noted them again and mailed them a second time.
CREATE TABLE digest_sent (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    sent_at    TEXT    NOT NULL,
    PRIMARY KEY (user_id, message_id)
) WITHOUT ROWID;
CREATE INDEX digest_sent_age ON digest_sent (sent_at);
