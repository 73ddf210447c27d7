-- Each user's unsubscribe token: the link in every digest email that turns digests off without
-- signing in (RFC 8058 one-click as well). Made when the user's first digest is written; it only
-- ever turns emails off, so it is kept as it is (the worker writes it into each digest).
ALTER TABLE users ADD COLUMN email_token TEXT;
CREATE UNIQUE INDEX users_email_token ON users (email_token) WHERE email_token IS NOT NULL;
