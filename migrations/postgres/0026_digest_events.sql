-- The events (`message.created`, `message.mentioned`) whose messages have been noted for
-- digests, kept as long as the outbox keeps events (`CHATBOARD_OUTBOX_RETENTION_DAYS`): a replay
-- of the outbox (the README's recovery step after lost jobs) noted them again, and a message
-- whose digest had gone out was mailed a second time. An edit's new mention is an event of
-- its own, and is noted.
CREATE TABLE digest_events (
    event_id TEXT        PRIMARY KEY,
    noted_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX digest_events_age ON digest_events (noted_at);
