-- Whose digest a queued email is: the mailer withdraws one whose recipient turned emails off or
-- was deleted before it went (the email's lines go with a deleted user, and the email alone
-- must still say it was one to withdraw). No foreign key, for that reason. NULL for emails of
-- other kinds and for digests queued before this column.
ALTER TABLE emails ADD COLUMN digest_user_id BIGINT;
