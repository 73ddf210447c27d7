//! Organizations, members and invitations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{OutgoingEmail, StoreResult};
use chatboard_core::model::{Invite, OrgMember, OrgView, Role};

/// A new invitation; the token is already hashed.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// Organization.
    pub org_id: i64,
    /// Normalised address.
    pub email: String,
    /// Role granted.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Who invited (`None`: the operator, for an Organization's admins).
    pub invited_by: Option<i64>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// The invitation email, queued in the same transaction (it carries the token).
    pub email_message: Option<OutgoingEmail>,
}

/// How a member leaves an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// On their own: allowed while the organization is suspended or archived.
    Leaves,
    /// Removed by an ADMIN (`by`, checked again under the org's lock): a member change,
    /// refused while the organization is read-only.
    Removed {
        /// The ADMIN removing them.
        by: i64,
    },
}

/// Organizations, members and invitations. Every read is scoped by the caller's membership.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an organization with `creator` as its ADMIN.
    async fn create_org(
        &self,
        creator: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<OrgView>;
    /// The organizations `user_id` belongs to, oldest first.
    async fn orgs_for_user(&self, user_id: i64) -> StoreResult<Vec<OrgView>>;
    /// The organization as `user_id` sees it; `None` if it does not exist or they are not in it.
    async fn org_for_member(&self, org_id: i64, user_id: i64) -> StoreResult<Option<OrgView>>;
    /// The caller's role in an organization, `None` when not a member.
    async fn member_role(&self, org_id: i64, user_id: i64) -> StoreResult<Option<Role>>;
    /// Renames an organization for `actor`, checked again to be its ADMIN
    /// (`Forbidden(permission_denied)`; `Conflict(managed_by_operator)` for managed ones).
    async fn rename_org(&self, org_id: i64, actor: i64, name: &str) -> StoreResult<()>;
    /// Deletes an organization and everything in it for `actor`, checked again to be its ADMIN
    /// (`Forbidden(permission_denied)`; `Conflict(managed_by_operator)` for managed ones);
    /// returns the ids of its rooms. Their messages are left to
    /// [`crate::TenantStore::purge_erased_messages`].
    async fn delete_org(&self, org_id: i64, actor: i64) -> StoreResult<Vec<i64>>;
    /// The members, in joining order.
    async fn org_members(&self, org_id: i64) -> StoreResult<Vec<OrgMember>>;
    /// How many invitations `inviter` has made since `since`, in every organization, and when
    /// the first of them was made.
    async fn invitations_by(
        &self,
        inviter: i64,
        since: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
    /// Creates an invitation: `Conflict(already_member)` or `Conflict(invite_pending)`.
    async fn create_invite(&self, invite: NewInvite, now: DateTime<Utc>) -> StoreResult<Invite>;
    /// The organization's open invitations (neither accepted, revoked nor expired), newest first.
    async fn open_invites(&self, org_id: i64, now: DateTime<Utc>) -> StoreResult<Vec<Invite>>;
    /// Revokes one open invitation of the organization (`NotFound` when it has no such open
    /// invitation): its token stops working. With `by`, `Forbidden(permission_denied)` unless
    /// that user's role, read again under the organization's lock, may still invite to the
    /// invitation's.
    async fn revoke_org_invite(
        &self,
        org_id: i64,
        invite_id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Accepts an open, unexpired invitation for a user whose email must match. Someone already
    /// a member keeps their role, or takes the invitation's if higher (the operator's ADMIN
    /// invitation to a listed member). `NotFound` for unknown, used, revoked or expired tokens.
    async fn accept_invite(
        &self,
        token_hash: &str,
        user_id: i64,
        user_email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JoinedOrg>;
    /// Changes a member's role as `actor` (`NotFound`, `Conflict(last_admin)`; `Forbidden`
    /// when `actor` is no longer an ADMIN under the org's lock; `Conflict(managed_by_operator)`
    /// for an ADMIN the org's resource lists); returns the rooms whose seats went with the old
    /// role (MANAGER_ONLY rooms, on a demotion below MANAGER).
    async fn set_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
        actor: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Removes a member (`NotFound`, `Conflict(last_admin)`, `Conflict(managed_by_operator)`
    /// for an ADMIN the org's resource lists; a removal by someone else also
    /// `Forbidden(org_suspended | org_archived)`, or `Forbidden` when they are no longer an
    /// ADMIN); returns the rooms they sat in.
    async fn remove_member(
        &self,
        org_id: i64,
        user_id: i64,
        how: Departure,
    ) -> StoreResult<Vec<i64>>;
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedOrg {
    /// The organization.
    pub org_id: i64,
    /// The role held in it (the one they had, when they were already a member).
    pub role: Role,
    /// The rooms they were seated in by joining (its PUBLIC rooms).
    pub seated: Vec<i64>,
}
