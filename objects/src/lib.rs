//! Object storage for uploads. Files never pass through the API: clients PUT them to a
//! presigned URL and fetch them from another. Two backends behind [`ObjectStore`]: [`local`]
//! (files under a directory, behind URLs signed by this process and served by the single-node
//! binary) and [`s3`] (any S3-compatible store, presigned by the AWS SDK).

pub mod local;
pub mod s3;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatboard_core::config::UploadSettings;

use crate::local::LocalObjects;

/// What a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The store could not be reached or refused the request.
    #[error("object storage unavailable: {0}")]
    Unavailable(String),
    /// The key is not one we would have made.
    #[error("invalid object key")]
    InvalidKey,
}

/// Where and how to PUT an object.
#[derive(Debug, Clone, PartialEq)]
pub struct PresignedPut {
    /// The URL; relative (`/files/...`) for local storage, for the API to complete with its own
    /// origin.
    pub url: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// What storage holds under a key.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: i64,
    /// The content type it was stored with.
    pub content_type: Option<String>,
}

/// A place to keep uploaded files.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL to PUT exactly `size` bytes of `content_type` to, valid for `expires`.
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: i64,
        expires: Duration,
    ) -> Result<PresignedPut, ObjectError>;
    /// A URL to download the object as `filename`, valid for `expires`.
    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        expires: Duration,
    ) -> Result<String, ObjectError>;
    /// What is stored under `key`, if anything.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError>;
    /// Deletes the object (no error when it is already gone).
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), ObjectError>;
    /// Removes what unfinished writes left behind, older than `age` (a process killed while it
    /// received a file); how many. Nothing to do for a store that writes whole objects.
    async fn remove_leftovers(&self, _age: Duration) -> Result<usize, ObjectError> {
        Ok(0)
    }
}

/// The storage the settings name: S3 when a bucket is set, else a local directory, else none
/// (uploads are off). The local store is also returned on its own, for serving its URLs; its
/// URLs are signed with a key derived from `secret` (and accepted from `previous_secret` too).
pub fn from_settings(
    settings: &UploadSettings,
    secret: &[u8],
    previous_secret: Option<&[u8]>,
) -> (Option<Arc<dyn ObjectStore>>, Option<Arc<LocalObjects>>) {
    if let Some(s3) = &settings.s3 {
        return (Some(Arc::new(s3::S3Objects::new(s3))), None);
    }
    match &settings.local_dir {
        Some(dir) => {
            let local =
                Arc::new(LocalObjects::new(dir, secret).accepting_previous(previous_secret));
            (Some(local.clone()), Some(local))
        }
        None => (None, None),
    }
}

/// Whether a key is made of the characters our keys use (`uploads/<uuid>`): no `..`, no
/// leading `/`, nothing a file system or URL would read differently.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('/')
        && !key.contains("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// `attachment; filename="..."; filename*=UTF-8''...`: the first with anything unsafe in a
/// header replaced (for clients without RFC 6266), the second the name as it is, so that a
/// name in another script is saved as written rather than as underscores.
pub fn content_disposition(filename: &str) -> String {
    /// What RFC 5987 lets stand unencoded in `filename*` (its `attr-char`).
    const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = percent_encoding::utf8_percent_encode(filename, NOT_ATTR_CHAR);
    format!("attachment; filename=\"{safe}\"; filename*=UTF-8''{exact}")
}
