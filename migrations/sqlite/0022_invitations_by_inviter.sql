-- An inviter's invitations: counted against CHATBOARD_INVITES_PER_HOUR at every invitation, and
-- revoked with the role that made them.
CREATE INDEX org_invites_inviter ON org_invites (invited_by, created_at);
