//! Organizations: creating, renaming and deleting them, their members and roles, and
//! invitations (with the email that carries the token).

use std::time::Duration;

use chatboard_core::auth::{hash_token, new_secret_token};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{Invite, OrgMember, OrgView, Role};
use chatboard_store::{Departure, EmailKind, JoinedOrg, NewInvite, OutgoingEmail};
use chrono::{DateTime, Utc};
use tracing::instrument;

use crate::announce::seats_of;
use crate::error::{ChatError, ChatResult};
use crate::validate::Validator;
use crate::Chat;

/// Longest organization name.
pub const ORG_NAME_MAX: usize = 120;
/// Longest invitation token accepted (ours are 43 characters).
const INVITE_TOKEN_MAX: usize = 256;

/// An invitation as the inviter asks for it.
#[derive(Debug, Clone)]
pub struct InviteDraft {
    /// Who to invite.
    pub email: String,
    /// The role on acceptance (default MEMBER).
    pub role: Option<Role>,
}

/// An invitation that passed its checks, not created yet (see [`Chat::check_invite`]).
#[derive(Debug)]
pub struct CheckedInvite {
    inviter: i64,
    org_id: i64,
    email: String,
    role: Role,
    now: DateTime<Utc>,
}

/// A created invitation, with the token: the only time it is seen (it is stored hashed).
#[derive(Debug, Clone)]
pub struct InviteCreated {
    /// Invitation id.
    pub id: i64,
    /// Invited address.
    pub email: String,
    /// Role granted on acceptance.
    pub role: Role,
    /// The secret to send to the invitee (it also went out by email).
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl Chat {
    /// Creates an organization; its creator becomes its ADMIN.
    #[instrument(skip(self, name), err(level = "debug"))]
    pub async fn create_org(&self, creator: i64, name: &str) -> ChatResult<OrgView> {
        let mut v = Validator::default();
        let name = v.text("name", name, 1, ORG_NAME_MAX);
        v.finish()?;
        let org = self.store().create_org(creator, &name, Utc::now()).await?;
        tracing::info!(org_id = org.id, user_id = creator, "organization created");
        Ok(org)
    }

    /// Renames an organization (ADMIN); operator-managed ones are refused.
    #[instrument(skip(self, name), err(level = "debug"))]
    pub async fn rename_org(&self, actor: i64, org_id: i64, name: &str) -> ChatResult<OrgView> {
        let org = self
            .require_role_to_write(org_id, actor, Role::Admin)
            .await?;
        // Refused as managed before the name is looked at (a bad name said 400, where any
        // rename is 409); the store refuses it again under its lock.
        if org.managed {
            return Err(ChatError::refused(ErrorCode::ManagedByOperator));
        }
        let mut v = Validator::default();
        let name = v.text("name", name, 1, ORG_NAME_MAX);
        v.finish()?;
        self.store().rename_org(org_id, actor, &name).await?;
        self.org_view(org_id, actor).await
    }

    /// Deletes an organization and everything in it (ADMIN); operator-managed ones are refused.
    /// Every open socket stops following its rooms.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn delete_org(&self, actor: i64, org_id: i64) -> ChatResult<()> {
        self.require_role(org_id, actor, Role::Admin).await?;
        let rooms = self.store().delete_org(org_id, actor).await?;
        self.purge_erased_soon();
        self.announcer().rooms_deleted(rooms).await;
        tracing::info!(org_id, user_id = actor, "organization deleted");
        Ok(())
    }

    /// The members of an organization, for its members.
    pub async fn org_members(&self, actor: i64, org_id: i64) -> ChatResult<Vec<OrgMember>> {
        self.require_role(org_id, actor, Role::Member).await?;
        Ok(self.store().org_members(org_id).await?)
    }

    /// The open invitations of an organization (MANAGER or ADMIN, who may send them).
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn open_invitations(&self, actor: i64, org_id: i64) -> ChatResult<Vec<Invite>> {
        self.require_role(org_id, actor, Role::Manager).await?;
        Ok(self.store().open_invites(org_id, Utc::now()).await?)
    }

    /// Revokes an open invitation: whoever may send one like it (a MANAGER cannot revoke an
    /// ADMIN's invitation to be ADMIN). Its link and token stop working.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn revoke_invitation(
        &self,
        actor: i64,
        org_id: i64,
        invite_id: i64,
    ) -> ChatResult<()> {
        let actor_role = self
            .require_role_to_write(org_id, actor, Role::Manager)
            .await?
            .role;
        let now = Utc::now();
        let open = self.store().open_invites(org_id, now).await?;
        let invite = open
            .iter()
            .find(|i| i.id == invite_id)
            .ok_or_else(ChatError::not_found)?;
        if !actor_role.may_invite(invite.role) {
            return Err(ChatError::denied(format!(
                "A {} cannot revoke an invitation to be {}.",
                actor_role.as_str(),
                invite.role.as_str()
            )));
        }
        self.store()
            .revoke_org_invite(org_id, invite_id, Some(actor), now)
            .await?;
        tracing::info!(org_id, invite_id, by = actor, "invitation revoked");
        Ok(())
    }

    /// Checks an invitation by email: MANAGER or ADMIN, nobody invites above their own role,
    /// a valid address, the inviter's hour not spent. [`Chat::send_invite`] then creates it;
    /// apart so that an entry point with a budget of its own charges only invitations that
    /// passed (a refused one costs the client address nothing).
    #[instrument(skip(self, draft), err(level = "debug"))]
    pub async fn check_invite(
        &self,
        inviter: i64,
        org_id: i64,
        draft: InviteDraft,
    ) -> ChatResult<CheckedInvite> {
        // A suspended or archived organization takes no invitation: refused here, before an
        // entry point charges for it.
        let inviter_role = self
            .require_role_to_write(org_id, inviter, Role::Manager)
            .await?
            .role;
        let mut v = Validator::default();
        let email = v.email("email", &draft.email);
        v.finish()?;
        let role = draft.role.unwrap_or(Role::Member);
        if !inviter_role.may_invite(role) {
            return Err(ChatError::denied(format!(
                "A {} cannot invite an {}.",
                inviter_role.as_str(),
                role.as_str()
            )));
        }
        let now = Utc::now();
        self.check_invitation_allowance(inviter, now).await?;
        Ok(CheckedInvite {
            inviter,
            org_id,
            email,
            role,
            now,
        })
    }

    /// Creates an invitation [`Chat::check_invite`] passed, with its email queued in the same
    /// transaction.
    #[instrument(skip(self, checked), fields(org_id = checked.org_id), err(level = "debug"))]
    pub async fn send_invite(&self, checked: CheckedInvite) -> ChatResult<InviteCreated> {
        let CheckedInvite {
            inviter,
            org_id,
            email,
            role,
            now,
        } = checked;
        let (token, token_hash) = new_invitation_token();
        let expires_at = now + self.settings().invites.invite_ttl;
        let org = self.org_view(org_id, inviter).await?;
        let who = self.inviter_name(inviter).await?;
        let email_message = self.invitation_email(
            &email,
            &format!(
                "{} invited you to join {} on ChatBoard as {}.",
                who.long,
                org.name,
                role.as_str()
            ),
            format!("{} invited you to {} on ChatBoard", who.short, org.name),
            &token,
            expires_at,
        );
        let invite = self
            .store()
            .create_invite(
                NewInvite {
                    org_id,
                    email,
                    role,
                    token_hash,
                    invited_by: Some(inviter),
                    expires_at,
                    email_message: Some(email_message),
                },
                now,
            )
            .await?;
        tracing::info!(
            org_id,
            invite_id = invite.id,
            invited_by = inviter,
            "invitation created"
        );
        Ok(InviteCreated {
            id: invite.id,
            email: invite.email,
            role: invite.role,
            token,
            expires_at: invite.expires_at,
        })
    }

    /// `RateLimited` once `inviter` has sent their hour's invitations (`CHATBOARD_INVITES_PER_HOUR`,
    /// counted in the database: across every process and organization).
    async fn check_invitation_allowance(&self, inviter: i64, now: DateTime<Utc>) -> ChatResult<()> {
        let per_hour = self.settings().invites.invites_per_hour;
        if per_hour == 0 {
            return Ok(());
        }
        let hour = chrono::Duration::hours(1);
        let (sent, first) = self.store().invitations_by(inviter, now - hour).await?;
        if sent < i64::from(per_hour) {
            return Ok(());
        }
        // A turn comes back when the hour's first invitation leaves the window.
        let retry_after = first
            .map(|first| (first + hour - now).to_std().unwrap_or_default())
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_secs(1));
        Err(ChatError::RateLimited {
            retry_after,
            detail: "You have sent as many invitations as this server allows in an hour.",
        })
    }

    /// Accepts an invitation addressed to the caller's email; joining seats them in the
    /// organization's PUBLIC rooms, and a member already in takes its role if higher.
    #[instrument(skip(self, token), err(level = "debug"))]
    pub async fn accept_invite(&self, user_id: i64, token: &str) -> ChatResult<JoinedOrg> {
        let mut v = Validator::default();
        let token = v.text("token", token, 1, INVITE_TOKEN_MAX);
        v.finish()?;
        let me = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or_else(unknown_account)?;
        let joined = self
            .store()
            .accept_invite(&hash_token(&token), user_id, &me.email, Utc::now())
            .await?;
        self.announcer()
            .seats_gained(&seats_of(user_id, &joined.seated))
            .await;
        tracing::info!(
            org_id = joined.org_id,
            user_id,
            role = joined.role.as_str(),
            "invitation accepted"
        );
        Ok(joined)
    }

    /// Changes a member's role (ADMIN); the last ADMIN cannot be demoted. A demotion below
    /// MANAGER takes the MANAGER_ONLY seats with it.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn set_member_role(
        &self,
        actor: i64,
        org_id: i64,
        member: i64,
        role: Role,
    ) -> ChatResult<()> {
        self.require_role(org_id, actor, Role::Admin).await?;
        let left = self
            .store()
            .set_member_role(org_id, member, role, actor)
            .await?;
        self.announcer().seats_lost(&seats_of(member, &left)).await;
        tracing::info!(
            org_id,
            member_id = member,
            role = role.as_str(),
            "member role changed"
        );
        Ok(())
    }

    /// Removes a member (ADMIN), or leaves (the member themself); the last ADMIN cannot go.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn remove_member(&self, actor: i64, org_id: i64, member: i64) -> ChatResult<()> {
        let (needed, how) = if member == actor {
            (Role::Member, Departure::Leaves)
        } else {
            (Role::Admin, Departure::Removed { by: actor })
        };
        self.require_role(org_id, actor, needed).await?;
        let left = self.store().remove_member(org_id, member, how).await?;
        self.announcer().seats_lost(&seats_of(member, &left)).await;
        tracing::info!(org_id, member_id = member, by = actor, "member removed");
        Ok(())
    }

    /// The invitation email: `opening` says who invites to what; then the web client's link
    /// (with a public URL), the token and how to use it from any client.
    pub(crate) fn invitation_email(
        &self,
        to: &str,
        opening: &str,
        subject: String,
        token: &str,
        expires_at: DateTime<Utc>,
    ) -> OutgoingEmail {
        let base = self.settings().public_url.as_deref().unwrap_or("");
        // The web client's accept page, when the platform knows its public address.
        let link = if base.is_empty() {
            "To accept, ".to_owned()
        } else {
            format!("Open this link to accept in your browser:\n\n    {base}/#/invite/{token}\n\nOr, from any other client, ")
        };
        let body = format!(
            "{opening}\n\n\
             {link}sign in to ChatBoard with this address (register first if you have no \
             account) and accept the invitation:\n\n\
             \x20   POST {base}/api/orgs/accept-invite/  {{\"token\": \"{token}\"}}\n\n\
             Invitation token: {token}\n\n\
             The invitation expires on {expires} UTC. If you did not expect it, ignore this email.\n",
            expires = expires_at.format("%Y-%m-%d %H:%M"),
        );
        OutgoingEmail {
            kind: EmailKind::Invitation,
            to: to.to_owned(),
            subject,
            body,
        }
    }

    /// How an inviter is named in the email: the full name with the address, or the address.
    async fn inviter_name(&self, inviter: i64) -> ChatResult<InviterName> {
        let user = self
            .store()
            .user_by_id(inviter)
            .await?
            .ok_or_else(unknown_account)?;
        let full_name = format!("{} {}", user.first_name, user.last_name);
        Ok(match full_name.trim() {
            "" => InviterName {
                short: user.email.clone(),
                long: user.email,
            },
            full => InviterName {
                short: full.to_owned(),
                long: format!("{full} ({})", user.email),
            },
        })
    }
}

/// The token's account is gone (deleted since the token was issued).
fn unknown_account() -> ChatError {
    ChatError::refused_because(ErrorCode::NotAuthenticated, "Unknown account.")
}

/// An inviter's name for the subject (`short`) and the body (`long`).
struct InviterName {
    short: String,
    long: String,
}

/// A fresh invitation token (shown once) and its stored hash.
pub(crate) fn new_invitation_token() -> (String, String) {
    let token = new_secret_token();
    let hash = hash_token(&token);
    (token, hash)
}
