//! Uploads: files on their way to being attached to messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    /// Presigned; the client has not completed it yet.
    Pending,
    /// In storage with the declared size and type; may be attached to messages.
    Ready,
    /// Past its retention: the object is deleted.
    Expired,
}

impl UploadStatus {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Pending => "pending",
            UploadStatus::Ready => "ready",
            UploadStatus::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            UploadStatus::Pending,
            UploadStatus::Ready,
            UploadStatus::Expired,
        ]
        .into_iter()
        .find(|u| u.as_str() == s)
    }
}

/// An upload as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// Upload id (a UUIDv7).
    pub id: String,
    /// Who uploaded it.
    pub owner_id: i64,
    /// Sanitised file name.
    pub filename: String,
    /// MIME type, as declared and checked.
    pub content_type: String,
    /// Size in bytes, as declared and checked.
    pub size: i64,
    /// Where the bytes are in object storage.
    pub object_key: String,
    /// The organization whose quota it counts against: named at presign, or the first one
    /// it was posted in.
    pub org_id: Option<i64>,
    /// Where it stands.
    pub status: UploadStatus,
    /// When it was presigned.
    pub created_at: DateTime<Utc>,
    /// When it was completed.
    pub uploaded_at: Option<DateTime<Utc>>,
    /// When it expires (set on completion).
    pub expires_at: Option<DateTime<Utc>>,
}
