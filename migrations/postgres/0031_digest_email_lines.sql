-- The messages a queued digest email covers, kept until the email is settled. The mailer
-- writes the email again from them just before each attempt: a message deleted while the email
-- waited (the mail server down for hours, retries) goes out as "(deleted)", not with its text,
-- and an email whose recipient turned emails off or is gone is not sent. Emails queued before
-- this table, or by a worker of the release before during an upgrade, have no lines and go as
-- they were written.
CREATE TABLE digest_email_lines (
    email_id   BIGINT      NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id BIGINT      NOT NULL,
    room_id    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (email_id, message_id)
);
CREATE INDEX digest_email_lines_user ON digest_email_lines (user_id);
