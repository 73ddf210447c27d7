-- An invitation's email belongs to the invitation: deleting the invitation (with its
-- organization) deletes the email, and an invitation withdrawn (revoked, or accepted through
-- the link shown to the inviter) settles its email, if not sent yet, as failed: it would carry
-- a token that no longer works, for an organization that may be gone.
ALTER TABLE emails ADD COLUMN invite_id INTEGER REFERENCES org_invites (id) ON DELETE CASCADE;
CREATE INDEX emails_invite ON emails (invite_id) WHERE invite_id IS NOT NULL;
CREATE TRIGGER emails_invite_withdrawn AFTER UPDATE OF revoked_at, accepted_at ON org_invites
    WHEN NEW.revoked_at IS NOT NULL OR NEW.accepted_at IS NOT NULL
BEGIN
    UPDATE emails SET status = 'failed', body = '', next_attempt_at = NULL,
        last_error = 'invitation withdrawn or used while its email was pending'
    WHERE invite_id = NEW.id AND status = 'pending';
END;
