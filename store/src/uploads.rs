//! Uploads: what the API knows of the files clients put into object storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::model::Upload;

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
}

/// Uploads: what the API knows of the files clients put into object storage.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a presigned (pending) upload.
    async fn create_upload(&self, upload: NewUpload, now: DateTime<Utc>) -> StoreResult<Upload>;
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
    /// Ready uploads whose time is up at `now`.
    async fn expired_uploads(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>>;
    /// Pending uploads presigned before `cutoff` and never completed.
    async fn stale_uploads(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>>;
    /// Marks ready uploads expired (their objects are gone).
    async fn mark_expired(&self, ids: &[String]) -> StoreResult<()>;
    /// Forgets pending uploads (their objects, if any, are gone).
    async fn delete_pending_uploads(&self, ids: &[String]) -> StoreResult<()>;
}
