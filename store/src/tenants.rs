//! What the operator writes: organizations and webhooks owned by custom resources.
//!
//! Every call is idempotent and level-triggered: it makes the database say what the resource
//! says (correcting drift made through other paths) and reports whether anything changed, so a
//! reconcile that finds everything in place writes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{OutgoingEmail, Seat, StoreResult};
use chatboard_core::model::OrgQuotas;

/// An organization as its custom resource describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedOrg {
    /// The owning resource, `<namespace>/<name>`.
    pub resource_key: String,
    /// Display name.
    pub name: String,
    /// Limits (`None` fields: the deployment's defaults).
    pub quotas: OrgQuotas,
    /// Members read; nobody writes.
    pub suspended: bool,
}

/// What applying a [`ManagedOrg`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedOrg {
    /// The organization's id.
    pub org_id: i64,
    /// It was created (or taken back from the archive) by this call.
    pub created: bool,
    /// Some field differed and was corrected.
    pub changed: bool,
}

/// One admin an Organization lists, with the invitation to send if they have no account yet.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecAdmin {
    /// Normalised email.
    pub email: String,
    /// SHA-256 of a fresh invitation token (used only if an invitation is created).
    pub token_hash: String,
    /// When that invitation would expire.
    pub expires_at: DateTime<Utc>,
    /// The invitation email carrying the token.
    pub email_message: OutgoingEmail,
}

/// What applying an Organization's admins did, by email.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedAdmins {
    /// New ADMIN invitations sent.
    pub invited: Vec<String>,
    /// Listed addresses whose ADMIN invitation is open (sent now or before): not ADMIN until
    /// someone accepts it from that mailbox.
    pub awaiting: Vec<String>,
    /// Admins dropped from the list: demoted to MEMBER or their open invitation revoked.
    pub revoked: Vec<String>,
    /// Admins dropped from the list but kept ADMIN: each was the organization's last one.
    pub kept_last: Vec<String>,
    /// Members once the admins are in place.
    pub member_count: i64,
    /// Seats taken with the changes (a demoted admin leaves the MANAGER_ONLY rooms).
    pub seats_lost: Vec<Seat>,
}

impl AppliedAdmins {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.invited.is_empty() && self.revoked.is_empty())
    }
}

/// A webhook as its custom resource describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedWebhook {
    /// The owning resource, `<namespace>/<name>`.
    pub resource_key: String,
    /// Its organization.
    pub org_id: i64,
    /// Target URL, already checked.
    pub url: String,
    /// Event type names, or `["*"]`.
    pub events: Vec<String>,
    /// The HMAC key.
    pub secret: String,
    /// Deliver events.
    pub active: bool,
    /// Attempts per delivery (`None`: the deployment's default).
    pub max_attempts: Option<i32>,
}

/// What applying a [`ManagedWebhook`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWebhook {
    /// The webhook's id.
    pub webhook_id: i64,
    /// It was created by this call.
    pub created: bool,
    /// Some field differed and was corrected.
    pub changed: bool,
    /// Why delivery switched it off (a 410 from the target), if it did: it stays off until its
    /// URL changes or the resource switches it off and on again.
    pub disabled_reason: Option<String>,
}

/// A managed organization's place in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedOrgRef {
    /// Its id.
    pub org_id: i64,
    /// It was archived (its resource was deleted with `Retain`).
    pub archived: bool,
}

/// The operator's side of tenant configuration.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates, takes back from the archive or corrects the organization owned by
    /// `org.resource_key`; it is marked managed.
    async fn apply_managed_org(
        &self,
        org: ManagedOrg,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedOrg>;
    /// Invites by email the listed addresses that are not ADMIN, and takes back what an
    /// earlier list gave to addresses no longer on it. `NotFound` if the org does not exist.
    async fn apply_org_admins(
        &self,
        org_id: i64,
        admins: Vec<SpecAdmin>,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedAdmins>;
    /// The organization a resource owns (or owned, if archived).
    async fn managed_org(&self, resource_key: &str) -> StoreResult<Option<ManagedOrgRef>>;
    /// Archives the organization a resource owns: read-only, no longer managed, data kept.
    /// Returns its id, `None` if there was none.
    async fn archive_managed_org(
        &self,
        resource_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>>;
    /// Deletes the organization a resource owns and everything in it (its messages are left to
    /// [`TenantStore::purge_erased_messages`]). Returns its id and the ids of its rooms, `None`
    /// if there was none.
    async fn purge_managed_org(&self, resource_key: &str) -> StoreResult<Option<(i64, Vec<i64>)>>;
    /// Creates or corrects the webhook owned by `hook.resource_key`; it is marked managed.
    async fn apply_managed_webhook(
        &self,
        hook: ManagedWebhook,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedWebhook>;
    /// Switches off the webhook a resource owns, as `active: false` in an apply does; returns
    /// its id if it was on. For a spec that cannot be applied otherwise: switching off is
    /// applied whatever else is wrong with it.
    async fn switch_off_managed_webhook(
        &self,
        resource_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>>;
    /// Deletes the webhook a resource owns, with its delivery log. Returns its id, `None` if
    /// there was none.
    async fn remove_managed_webhook(&self, resource_key: &str) -> StoreResult<Option<i64>>;
    /// The id of the webhook a resource owns, `None` if there is none (never made, or gone
    /// with its organization).
    async fn managed_webhook_id(&self, resource_key: &str) -> StoreResult<Option<i64>>;
    /// A room's organization and its `rate_limit_per_minute` (`None` when the room does not
    /// exist).
    async fn room_rate_limit(&self, room_id: i64) -> StoreResult<Option<(i64, Option<i32>)>>;
    /// Deletes up to `limit` messages older than their organization's retention period (orgs
    /// without one keep everything); returns how many went.
    async fn purge_expired_messages(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
    /// Deletes up to `limit` messages of one deleted room (rooms and organizations deleted
    /// leave their messages to this, a batch per transaction), forgetting the room once none
    /// are left; returns how many went, `None` when no deleted room has messages left.
    async fn purge_erased_messages(&self, limit: u32) -> StoreResult<Option<u64>>;
}
