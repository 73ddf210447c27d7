-- The worker deletes refresh tokens a day after they expire, and login families left without
-- a token (see worker/src/retention.rs): both by time, a batch at a time.
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_families_age ON refresh_families (created_at);
