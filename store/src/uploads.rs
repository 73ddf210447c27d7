//! Uploads: what the API knows of the files clients put into object storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::config::UploadQuotaSettings;
use chatboard_core::model::Upload;

/// How long a presigned upload may stay pending: after that the upload janitor deletes it (and
/// any file already put), and completing it is refused, so the two never race.
pub const PENDING_UPLOAD_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// When an upload presigned at `now` would have had to be presigned to still be pending: older
/// unfinished ones are expired, and the janitor's.
pub fn pending_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(PENDING_UPLOAD_LIFETIME).unwrap_or(chrono::Duration::days(1))
}

/// Where a walk over uploads got to: the last one's time in the walk's order (its expiry, or
/// its creation) and its id. The janitor walks on past uploads it could not clean up, which
/// otherwise come first in every page.
pub type UploadCursor = (DateTime<Utc>, String);

/// Which upload quota a file would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadQuota {
    /// The uploader's unfinished uploads.
    UserPending,
    /// Everything the uploader holds.
    UserStored,
    /// The organization's unfinished uploads.
    OrgPending,
    /// Everything the organization holds.
    OrgStored,
}

/// A file that does not fit a quota: its limit and what is already used of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The quota.
    pub quota: UploadQuota,
    /// Its limit in bytes.
    pub limit: i64,
    /// Bytes already counted against it.
    pub used: i64,
}

/// What charging an upload to an organization came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgCharge {
    /// It counts against the organization from now on (it counted against none before).
    Charged,
    /// It already counted against this organization.
    AlreadyCharged,
    /// It already counts against another organization.
    OtherOrg,
    /// It does not fit the organization's quota.
    Exceeded(QuotaExceeded),
}

/// A presigned upload to record.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Its id (a UUIDv7).
    pub id: String,
    /// Who uploads it.
    pub owner_id: i64,
    /// Sanitised file name.
    pub filename: String,
    /// Declared MIME type.
    pub content_type: String,
    /// Declared size in bytes.
    pub size: i64,
    /// Where the bytes will be in object storage.
    pub object_key: String,
    /// The organization it counts against, when named at presign.
    pub org_id: Option<i64>,
}

/// Uploads: what the API knows of the files clients put into object storage.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a presigned (pending) upload if it fits the uploader's quotas and, when it names
    /// one, its organization's (whose own quotas override the deployment's); checked and
    /// recorded in one transaction, so concurrent presigns cannot overshoot.
    async fn create_upload(
        &self,
        upload: NewUpload,
        quotas: &UploadQuotaSettings,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Upload, QuotaExceeded>>;
    /// Makes an upload count against `org_id` if it counts against no organization yet and
    /// fits its stored-bytes quota (checked and recorded in one transaction).
    async fn charge_upload_to_org(
        &self,
        id: &str,
        org_id: i64,
        quotas: &UploadQuotaSettings,
    ) -> StoreResult<OrgCharge>;
    /// Undoes a [`OrgCharge::Charged`] whose post was refused: the upload counts against no
    /// organization again, unless a message carries it (a commit whose answer was lost).
    async fn release_org_charge(&self, id: &str, org_id: i64) -> StoreResult<()>;
    /// One upload.
    async fn upload(&self, id: &str) -> StoreResult<Option<Upload>>;
    /// Marks a pending upload ready until `expires_at` (a ready one stays as it is);
    /// `Conflict(upload_expired)` once expired.
    async fn complete_upload(
        &self,
        id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Upload>;
    /// The owner's uploads, newest first, optionally older than the upload `before`.
    async fn uploads_of(
        &self,
        owner_id: i64,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>>;
    /// Whether the upload was posted in a room where the user has a seat.
    async fn upload_visible_to(&self, id: &str, user_id: i64) -> StoreResult<bool>;
    /// Up to `limit` ready uploads whose time is up at `now`, by expiry, after `after`.
    async fn expired_uploads(
        &self,
        now: DateTime<Utc>,
        after: Option<&UploadCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>>;
    /// Gives up the pending uploads presigned before `cutoff` (never completed), and those
    /// their uploaders gave up whose time has come by `now`: they become expired without ever
    /// having been uploaded, so completing one is refused from then on, whatever the completing
    /// process's clock says. Returns how many.
    async fn abandon_stale_uploads(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Gives up `id`, a pending upload of `owner_id`, at their request: it shows as expired
    /// and cannot be completed from now on, and counts against the quotas until
    /// `counts_until` (when its link can no longer write: a file may still be arriving until
    /// then, and must not go uncounted), after which the janitor deletes it with the
    /// abandoned uploads. Whether it was pending, not given up already, and theirs.
    async fn cancel_upload(
        &self,
        id: &str,
        owner_id: i64,
        counts_until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Up to `limit` abandoned uploads whose objects may still exist, oldest first, after
    /// `after`.
    async fn abandoned_uploads(
        &self,
        after: Option<&UploadCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>>;
    /// Marks ready uploads expired (their objects are gone).
    async fn mark_expired(&self, ids: &[String]) -> StoreResult<()>;
    /// Forgets abandoned uploads (their objects, if any, are gone).
    async fn forget_abandoned_uploads(&self, ids: &[String]) -> StoreResult<()>;
}
