//! Local storage for the single node: objects are files under a directory (with a small JSON
//! sidecar holding the content type), reached through `/files/<key>` URLs that this process
//! signs with HMAC-SHA256 and checks: a PUT URL fixes the content type and the size, a GET URL
//! the download name, and both an expiry. [`router`] serves them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::{content_disposition, valid_key, ObjectError, ObjectInfo, ObjectStore, PresignedPut};
use chatboard_core::error_code::ErrorCode;

/// How long a PUT may go on past its link's expiry by default: a large file on a slow link
/// started in time may finish, yet every write ends long before the worker gives unfinished
/// uploads up (24 hours) and deletes what they left.
pub const WRITE_GRACE: Duration = Duration::from_secs(60 * 60);

/// Files under a directory, behind signed URLs.
pub struct LocalObjects {
    root: PathBuf,
    key: Vec<u8>,
    /// The key derived from the signing secret before a rotation, still accepted.
    previous: Option<Vec<u8>>,
    write_grace: Duration,
    /// Keys a PUT is writing now: one at a time each, so that many PUTs to one signed URL
    /// cannot each stream up to its size into a temporary file of their own.
    writing: Arc<Mutex<HashSet<String>>>,
}

/// A key's turn to be written, given back when dropped.
struct Writing {
    key: String,
    writing: Arc<Mutex<HashSet<String>>>,
}

impl Writing {
    /// The key's turn, unless another PUT has it.
    fn take(writing: &Arc<Mutex<HashSet<String>>>, key: &str) -> Option<Self> {
        let mut keys = writing.lock().unwrap_or_else(PoisonError::into_inner);
        keys.insert(key.to_owned()).then(|| Self {
            key: key.to_owned(),
            writing: writing.clone(),
        })
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The sidecar next to each file.
#[derive(Serialize, Deserialize)]
struct Meta {
    content_type: String,
}

/// Query of a signed URL.
#[derive(Deserialize)]
pub struct Signed {
    /// Expiry, unix seconds.
    exp: i64,
    /// Content type (PUT) or download name (GET).
    v: String,
    /// Size in bytes (PUT only).
    size: Option<i64>,
    /// The signature, hex.
    sig: String,
}

fn unavailable(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(e.to_string())
}

impl LocalObjects {
    /// Storage under `root`, signing URLs with a key derived from `secret`.
    pub fn new(root: impl Into<PathBuf>, secret: &[u8]) -> Self {
        Self {
            root: root.into(),
            key: url_key(secret),
            previous: None,
            write_grace: WRITE_GRACE,
            writing: Arc::default(),
        }
    }

    /// The same storage, also accepting URLs signed from `previous` (the signing secret before
    /// a rotation): links handed out by a replica not rolled yet, or minutes before the
    /// rollout, keep working through it, as the tokens signed with it do.
    pub fn accepting_previous(mut self, previous: Option<&[u8]>) -> Self {
        self.previous = previous.map(url_key);
        self
    }

    /// The same storage, letting a PUT go on for `grace` past its link's expiry (instead of
    /// [`WRITE_GRACE`]); one still writing then is refused and leaves no file.
    pub fn with_write_grace(mut self, grace: Duration) -> Self {
        self.write_grace = grace;
        self
    }

    /// When a PUT whose link expires at `exp` (unix seconds, valid through that second) must
    /// have its file in place.
    fn write_deadline(&self, exp: i64) -> tokio::time::Instant {
        let left = (exp + 1 - chrono::Utc::now().timestamp()).max(0);
        tokio::time::Instant::now() + Duration::from_secs(left.unsigned_abs()) + self.write_grace
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        if valid_key(key) {
            Ok(self.root.join(key))
        } else {
            Err(ObjectError::InvalidKey)
        }
    }

    fn sign(&self, method: &str, key: &str, exp: i64, value: &str, size: Option<i64>) -> String {
        let mut mac = hmac_with(&self.key);
        let size = size.map(|s| s.to_string()).unwrap_or_default();
        mac.update(format!("{method}\n{key}\n{exp}\n{value}\n{size}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, method: &str, key: &str, q: &Signed) -> Result<(), &'static str> {
        let size = q.size.map(|s| s.to_string()).unwrap_or_default();
        let signed = format!("{method}\n{key}\n{}\n{}\n{size}", q.exp, q.v);
        let given = hex::decode(&q.sig).map_err(|_| "bad signature")?;
        let matches = |url_key: &Vec<u8>| {
            let mut mac = hmac_with(url_key);
            mac.update(signed.as_bytes());
            mac.verify_slice(&given).is_ok()
        };
        if !matches(&self.key) && !self.previous.as_ref().is_some_and(matches) {
            return Err("bad signature");
        }
        if q.exp < chrono::Utc::now().timestamp() {
            return Err("this link has expired");
        }
        Ok(())
    }

    fn url(&self, key: &str, exp: i64, value: &str, size: Option<i64>, sig: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("exp", &exp.to_string());
        query.append_pair("v", value);
        if let Some(size) = size {
            query.append_pair("size", &size.to_string());
        }
        query.append_pair("sig", sig);
        format!("/files/{key}?{}", query.finish())
    }
}

/// A random number for temporary file names (two uploads of one key never share one).
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The key URLs are signed with, derived from the signing secret: a key of its own, so that a
/// file URL's signature can never pass for anything else.
fn url_key(secret: &[u8]) -> Vec<u8> {
    let mut mac = hmac_with(secret);
    mac.update(b"chatboard local object URLs");
    mac.finalize().into_bytes().to_vec()
}

fn hmac_with(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm cannot run.
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn expiry(expires: Duration) -> i64 {
    chrono::Utc::now().timestamp() + expires.as_secs() as i64
}

async fn read_meta(path: &Path) -> Option<Meta> {
    let text = tokio::fs::read(meta_path(path)).await.ok()?;
    serde_json::from_slice(&text).ok()
}

fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

#[async_trait]
impl ObjectStore for LocalObjects {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: i64,
        expires: Duration,
    ) -> Result<PresignedPut, ObjectError> {
        self.path(key)?;
        let exp = expiry(expires);
        let sig = self.sign("PUT", key, exp, content_type, Some(size));
        Ok(PresignedPut {
            url: self.url(key, exp, content_type, Some(size), &sig),
            headers: BTreeMap::from([("Content-Type".to_owned(), content_type.to_owned())]),
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        expires: Duration,
    ) -> Result<String, ObjectError> {
        self.path(key)?;
        let exp = expiry(expires);
        let sig = self.sign("GET", key, exp, filename, None);
        Ok(self.url(key, exp, filename, None, &sig))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.len() as i64,
                content_type: read_meta(&path).await.map(|m| m.content_type),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        for file in [meta_path(&path), path] {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(unavailable)
    }

    async fn remove_leftovers(&self, age: Duration) -> Result<usize, ObjectError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || remove_partial_files(&root, age))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }
}

/// Whether a file name is one of [`write_file`]'s temporary names.
fn is_partial(name: &str) -> bool {
    name.contains(".part-") || name.contains(".meta-part-")
}

/// Removes the temporary files older than `age` under `root` and its directories (keys are one
/// directory deep); how many went. A file of another process's write in progress is younger.
fn remove_partial_files(root: &Path, age: Duration) -> std::io::Result<usize> {
    let mut removed = 0;
    let Ok(top) = std::fs::read_dir(root) else {
        return Ok(0); // nothing stored yet
    };
    let mut dirs = vec![root.to_owned()];
    dirs.extend(
        top.filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path()),
    );
    for dir in dirs {
        for entry in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_partial) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|elapsed| elapsed >= age));
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// A write's temporary files, removed however the write ends: also when its request is dropped
/// halfway (the client gone, or a shutdown's drain over), which skipped the removal before.
struct PartialFiles([PathBuf; 2]);

impl Drop for PartialFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `PUT` and `GET /files/{*key}`: the signed URLs of [`LocalObjects`].
pub fn router(objects: Arc<LocalObjects>) -> Router {
    Router::new()
        .route("/files/{*key}", put(put_file).get(get_file))
        // The size limit is the one the signature carries.
        .layer(DefaultBodyLimit::disable())
        .with_state(objects)
}

/// An error answer in the API's shape, with one of its codes.
fn refuse(code: ErrorCode, detail: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(serde_json::json!({"detail": detail, "code": code.code()})),
    )
        .into_response()
}

async fn put_file(
    State(objects): State<Arc<LocalObjects>>,
    UrlPath(key): UrlPath<String>,
    query: Result<Query<Signed>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Query(q)) = query else {
        return refuse(ErrorCode::PermissionDenied, "this URL is not signed");
    };
    if let Err(why) = objects.verify("PUT", &key, &q) {
        return refuse(ErrorCode::PermissionDenied, why);
    }
    let Some(size) = q.size else {
        return refuse(ErrorCode::PermissionDenied, "bad signature");
    };
    let sent_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent_type != q.v {
        return refuse(
            ErrorCode::Invalid,
            "Content-Type must be the one declared when the upload was presigned",
        );
    }
    let Ok(path) = objects.path(&key) else {
        return refuse(ErrorCode::NotFound, "no such file");
    };
    // One PUT at a time per key (on this process; replicas sharing the volume add one each).
    let Some(_turn) = Writing::take(&objects.writing, &key) else {
        return refuse(
            ErrorCode::UploadInProgress,
            "another PUT to this link is still sending; try again once it has ended",
        );
    };
    // An upload is written once: a stored file is never replaced (it may be attached already).
    if tokio::fs::try_exists(&path).await.unwrap_or(true) {
        return refuse(
            ErrorCode::AlreadyUploaded,
            "this file has been uploaded already",
        );
    }
    let deadline = objects.write_deadline(q.exp);
    match write_file(&path, body, size, &q.v, deadline).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(WriteError::Late) => refuse(
            ErrorCode::UploadExpired,
            "the file was still being sent long after its link expired; presign it again",
        ),
        Err(WriteError::TooLarge) => refuse(
            ErrorCode::FileTooLarge,
            "more bytes than declared when the upload was presigned",
        ),
        Err(WriteError::Stalled) => refuse(
            ErrorCode::Invalid,
            "no bytes arrived for a minute; send the file again",
        ),
        Err(WriteError::TooSmall) => refuse(
            ErrorCode::Invalid,
            "fewer bytes than declared when the upload was presigned",
        ),
        Err(WriteError::Exists) => refuse(
            ErrorCode::AlreadyUploaded,
            "this file has been uploaded already",
        ),
        Err(WriteError::Io(e)) => {
            tracing::error!(error = %e, key, "writing an uploaded file failed");
            refuse(ErrorCode::InternalError, "the file could not be stored")
        }
    }
}

/// How long a PUT may go without sending a byte before it is given up.
const STALL_LIMIT: Duration = Duration::from_secs(60);

enum WriteError {
    TooLarge,
    TooSmall,
    /// Another PUT stored the file first.
    Exists,
    /// The body was still arriving at the write's deadline.
    Late,
    /// No bytes came for [`STALL_LIMIT`].
    Stalled,
    Io(std::io::Error),
}

/// Streams the body to a temporary file of its own, which must come to exactly `limit` bytes,
/// then puts it (and its sidecar) in place, so a reader never sees half a file. The file is
/// linked into place, which fails when the name exists: of two PUTs racing on one signed URL
/// exactly one wins, and a stored file is never replaced (a rename would silently overwrite).
/// Nothing is put in place after `deadline`: a file linked after the worker gave its upload
/// up would stay on disk, counted nowhere.
async fn write_file(
    path: &Path,
    body: Body,
    limit: i64,
    content_type: &str,
    deadline: tokio::time::Instant,
) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(WriteError::Io)?;
    let suffix = rand_suffix();
    let partial = path.with_extension(format!("part-{suffix:016x}"));
    let partial_meta = path.with_extension(format!("meta-part-{suffix:016x}"));
    // Linked or failed, the temporary names go.
    let _temporary = PartialFiles([partial.clone(), partial_meta.clone()]);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(WriteError::Io)?;
    let mut written: i64 = 0;
    let mut stream = body.into_data_stream();
    let result = async {
        let received = tokio::time::timeout_at(deadline, async {
            // A sender gone without closing the connection would otherwise hold the link's
            // one turn to be written until the deadline, an hour after its expiry.
            while let Some(chunk) = tokio::time::timeout(STALL_LIMIT, stream.next())
                .await
                .map_err(|_| WriteError::Stalled)?
            {
                let chunk = chunk.map_err(|e| WriteError::Io(std::io::Error::other(e)))?;
                written += chunk.len() as i64;
                if written > limit {
                    return Err(WriteError::TooLarge);
                }
                file.write_all(&chunk).await.map_err(WriteError::Io)?;
            }
            file.flush().await.map_err(WriteError::Io)
        })
        .await;
        received.map_err(|_| WriteError::Late)??;
        if written < limit {
            return Err(WriteError::TooSmall);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WriteError::Late);
        }
        let meta = serde_json::to_vec(&Meta {
            content_type: content_type.to_owned(),
        })
        .map_err(|e| WriteError::Io(std::io::Error::other(e)))?;
        // The sidecar first (racing writers hold the same signed type, so replacing it with
        // the same bytes is harmless), written whole and renamed so it is never read half-done.
        tokio::fs::write(&partial_meta, meta)
            .await
            .map_err(WriteError::Io)?;
        tokio::fs::rename(&partial_meta, meta_path(path))
            .await
            .map_err(WriteError::Io)?;
        match tokio::fs::hard_link(&partial, path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::Exists),
            Err(e) => Err(WriteError::Io(e)),
        }
    }
    .await;
    drop(file);
    result
}

async fn get_file(
    State(objects): State<Arc<LocalObjects>>,
    UrlPath(key): UrlPath<String>,
    query: Result<Query<Signed>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return refuse(ErrorCode::PermissionDenied, "this URL is not signed");
    };
    if let Err(why) = objects.verify("GET", &key, &q) {
        return refuse(ErrorCode::PermissionDenied, why);
    }
    let Ok(path) = objects.path(&key) else {
        return refuse(ErrorCode::NotFound, "no such file");
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(_) => return refuse(ErrorCode::NotFound, "no such file"),
    };
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let content_type = read_meta(&path)
        .await
        .map_or_else(|| "application/octet-stream".to_owned(), |m| m.content_type);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, content_disposition(&q.v)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}
