//! `/api/uploads/`: presigned uploads straight to object storage, their completion (checked
//! against what storage holds), the caller's uploads, and short-lived download URLs.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{Upload, UploadStatus};
use chatboard_store::NewUpload;
use chrono::{DateTime, Utc};
use objects::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
use chat::validate::Validator;

/// How long a presigned upload URL works.
const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a download URL works.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest file name kept.
const FILENAME_MAX: usize = 255;
/// Page size of my-uploads when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// Largest my-uploads page.
const MAX_LIMIT: i64 = 100;

/// The content types uploads may have: images, PDF, text, office documents, zip, audio and
/// video. (No SVG or HTML: a browser would run scripts in them.)
pub const ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/markdown",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/zip",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/quicktime",
];

/// Body of `POST /api/uploads/presign/`.
#[derive(Deserialize, ToSchema)]
pub struct PresignRequest {
    /// The file's name (path parts, control characters and invisible formatting ones such as
    /// direction overrides are dropped).
    filename: String,
    /// Its MIME type, from the allowlist.
    content_type: String,
    /// Its exact size in bytes: 1 to 100 MiB.
    size: i64,
    /// The organization it is for (optional): it then counts against that organization's
    /// upload quotas from now on; without it, from when it is first posted in one.
    #[serde(default)]
    org: Option<i64>,
}

/// Where to PUT the file.
#[derive(Serialize, ToSchema)]
pub struct PresignResponse {
    /// The upload's id (complete it with `POST /api/uploads/{id}/complete/` once the PUT is done).
    id: String,
    /// Where to send the bytes.
    upload_url: String,
    /// Always `PUT`.
    method: &'static str,
    /// Headers to send with exactly these values.
    headers: BTreeMap<String, String>,
    /// Seconds the URL works.
    expires_in: u64,
}

/// An upload as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct UploadView {
    /// Upload id.
    id: String,
    /// Sanitised file name.
    filename: String,
    /// MIME type.
    content_type: String,
    /// Size in bytes.
    size: i64,
    /// `pending`, `ready` or `expired`.
    status: UploadStatus,
    /// When it was completed, or null.
    uploaded_at: Option<DateTime<Utc>>,
    /// When it expires (and its file is deleted), or null while pending.
    expires_at: Option<DateTime<Utc>>,
    /// A short-lived (5 min) URL to download it while ready, else null.
    download_url: Option<String>,
}

/// Paging of my-uploads.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadsQuery {
    /// 1 to 100, default 50.
    limit: Option<String>,
    /// Uploads older than this upload id.
    before: Option<String>,
}

/// The file name as stored: the last path part, without control characters or invisible
/// formatting ones, at most 255 characters, never empty.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !invisible_format(*c))
        .take(FILENAME_MAX)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Characters that change how the text around them is shown without showing themselves:
/// direction overrides and isolates (`invoice\u{202E}fdp.exe` shows as "invoiceexe.pdf"),
/// zero-width characters and joiners, and the byte-order mark.
fn invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn storage(state: &AppState) -> ApiResult<&Arc<dyn ObjectStore>> {
    state
        .objects
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::UploadsUnavailable))
}

fn storage_failed(e: objects::ObjectError) -> ApiError {
    tracing::error!(error = %e, "object storage failed");
    ApiError::new(ErrorCode::StorageUnavailable)
}

/// An absolute URL: local storage hands out paths, completed with the public URL or the
/// origin the client used.
fn absolute(state: &AppState, headers: &HeaderMap, url: String) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        return url;
    }
    if let Some(base) = &state.config.email.public_url {
        return format!("{base}{url}");
    }
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let host = header("host").unwrap_or("localhost");
    // Behind a TLS-terminating proxy the client came in over https.
    let scheme = match header("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{url}")
}

/// The API's view of an upload, with a fresh download URL when it is ready.
async fn view(state: &AppState, headers: &HeaderMap, upload: Upload) -> ApiResult<UploadView> {
    let download_url = match upload.status {
        UploadStatus::Ready => {
            let url = storage(state)?
                .presign_get(&upload.object_key, &upload.filename, DOWNLOAD_URL_TTL)
                .await
                .map_err(storage_failed)?;
            Some(absolute(state, headers, url))
        }
        _ => None,
    };
    Ok(UploadView {
        id: upload.id,
        filename: upload.filename,
        content_type: upload.content_type,
        size: upload.size,
        status: upload.status,
        uploaded_at: upload.uploaded_at,
        expires_at: upload.expires_at,
        download_url,
    })
}

/// Presigns an upload: the answer says where to PUT the bytes, with which headers.
#[utoipa::path(post, path = "/api/uploads/presign/", tag = "uploads", request_body = PresignRequest, security(("bearer" = [])),
    responses((status = 201, body = PresignResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "org_suspended or org_archived: the named organization takes no changes", body = ErrorBody),
        (status = 404, description = "not a member of the named organization", body = ErrorBody),
        (status = 409, description = "upload_quota_exceeded: the file does not fit the caller's or the organization's upload quota", body = ErrorBody),
        (status = 413, description = "size outside 1 byte to 100 MiB, or larger than a whole upload quota", body = ErrorBody), (status = 415, description = "content type not allowed", body = ErrorBody),
        (status = 503, description = "uploads not configured or storage down", body = ErrorBody)))]
pub async fn presign(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PresignRequest>,
) -> ApiResult<(StatusCode, Json<PresignResponse>)> {
    let objects = storage(&state)?;
    let mut v = Validator::default();
    if body.filename.trim().is_empty() {
        v.add("filename", "This field may not be blank.");
    }
    v.finish()?;
    let max = state.config.uploads.max_bytes;
    if body.size < 1 || body.size > max {
        return Err(ApiError::new(ErrorCode::FileTooLarge)
            .with_detail(format!("A file must have 1 to {max} bytes.")));
    }
    let content_type = body.content_type.trim().to_ascii_lowercase();
    if !ALLOWED_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::new(ErrorCode::UnsupportedType)
            .with_detail(format!("Files of type {content_type:?} are not accepted.")));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let object_key = format!("uploads/{id}");
    let presigned = objects
        .presign_put(&object_key, &content_type, body.size, UPLOAD_URL_TTL)
        .await
        .map_err(storage_failed)?;
    state
        .chat
        .reserve_upload(NewUpload {
            id: id.clone(),
            owner_id: user.id,
            filename: sanitize_filename(&body.filename),
            content_type,
            size: body.size,
            object_key,
            org_id: body.org,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PresignResponse {
            id,
            upload_url: absolute(&state, &headers, presigned.url),
            method: "PUT",
            headers: presigned.headers,
            expires_in: UPLOAD_URL_TTL.as_secs(),
        }),
    ))
}

/// The caller's own upload, or 404.
async fn own_upload(state: &AppState, id: &str, user_id: i64) -> ApiResult<Upload> {
    match state.store.upload(id).await? {
        Some(upload) if upload.owner_id == user_id => Ok(upload),
        _ => Err(ApiError::not_found()),
    }
}

/// Completes an upload once storage holds the file with the declared size and type.
#[utoipa::path(post, path = "/api/uploads/{id}/complete/", tag = "uploads", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UploadView), (status = 404, body = ErrorBody),
        (status = 409, description = "not_uploaded, size_mismatch, type_mismatch or upload_expired", body = ErrorBody),
        (status = 503, description = "uploads_unavailable or storage_unavailable: uploads are off, or the object store cannot be reached", body = ErrorBody)))]
pub async fn complete(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<UploadView>> {
    let upload = own_upload(&state, &id, user.id).await?;
    if upload.status == UploadStatus::Pending {
        let stored = storage(&state)?
            .head(&upload.object_key)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotUploaded))?;
        if stored.size != upload.size {
            return Err(ApiError::new(ErrorCode::SizeMismatch).with_detail(format!(
                "The stored file has {} bytes, not the {} declared.",
                stored.size, upload.size
            )));
        }
        let stored_type = stored.content_type.unwrap_or_default();
        if !stored_type.eq_ignore_ascii_case(&upload.content_type) {
            return Err(ApiError::new(ErrorCode::TypeMismatch).with_detail(format!(
                "The stored file is of type {stored_type:?}, not the {:?} declared.",
                upload.content_type
            )));
        }
    }
    let now = Utc::now();
    let retention = chrono::Duration::from_std(state.config.uploads.retention)
        .unwrap_or(chrono::Duration::days(30));
    let ready = state
        .store
        .complete_upload(&id, now, now + retention)
        .await?;
    Ok(Json(view(&state, &headers, ready).await?))
}

/// Seconds added to how long a given-up upload's file may still land: its link's last second
/// and the replicas' clock differences.
const LANDING_MARGIN_SECS: i64 = 30;

/// Gives up one of the caller's unfinished uploads (a failed attempt the client will not
/// complete): completing it is refused from then on, and its bytes stop counting against the
/// upload quotas once its link can no longer write a file (bytes still arriving must be
/// counted): on local storage after the link's 15 minutes and the hour a write begun in time
/// may go on, rather than after the day an unfinished upload is kept; on S3, which checks a
/// link only when a PUT begins, after that day. A file that lands anyway is deleted then. Giving up
/// one given up already changes nothing.
#[utoipa::path(delete, path = "/api/uploads/{id}/", tag = "uploads", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "given up"), (status = 404, body = ErrorBody),
        (status = 409, description = "already_uploaded: a completed upload stays until its retention ends", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn cancel(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let upload = own_upload(&state, &id, user.id).await?;
    // The local store refuses a write that goes on past its link's hour of grace; S3 checks a
    // link only when a PUT begins, so a PUT begun in time may land at any time after, and its
    // bytes count for the day an unfinished upload is kept.
    let writable_for = if state.local_files.is_some() {
        UPLOAD_URL_TTL + objects::local::WRITE_GRACE
    } else {
        chatboard_store::PENDING_UPLOAD_LIFETIME
    };
    // A local link is good through its expiry's last second, and replicas' clocks differ a
    // little: a margin, so that the janitor never forgets an upload whose file may still land.
    let counts_until = upload.created_at
        + chrono::Duration::from_std(writable_for).unwrap_or(chrono::Duration::days(1))
        + chrono::Duration::seconds(LANDING_MARGIN_SECS);
    match upload.status {
        UploadStatus::Ready => Err(ApiError::new(ErrorCode::AlreadyUploaded)
            .with_detail("A completed upload stays until its retention ends.")),
        UploadStatus::Pending
            if !state
                .store
                .cancel_upload(&id, user.id, counts_until)
                .await? =>
        {
            // Completed (or given up) meanwhile: say what it is now.
            match own_upload(&state, &id, user.id).await?.status {
                UploadStatus::Ready => Err(ApiError::new(ErrorCode::AlreadyUploaded)),
                _ => Ok(StatusCode::NO_CONTENT),
            }
        }
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// The caller's uploads, newest first.
#[utoipa::path(get, path = "/api/uploads/my-uploads/", tag = "uploads", security(("bearer" = [])), params(UploadsQuery),
    responses((status = 200, body = [UploadView]), (status = 400, body = ErrorBody),
        (status = 503, description = "uploads_unavailable or storage_unavailable: uploads are off, or the object store cannot be reached", body = ErrorBody)))]
pub async fn mine(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UploadsQuery>,
) -> ApiResult<Json<Vec<UploadView>>> {
    let mut v = Validator::default();
    let limit = v.int_in("limit", query.limit.as_deref(), 1, MAX_LIMIT, DEFAULT_LIMIT);
    // Upload ids are UUIDs (version 7, so they sort by age); anything else would page
    // somewhere arbitrary. Compared as stored (lower case, hyphenated): another spelling of
    // the same id (upper case, braces, a URN) compared as text would skip or repeat uploads.
    let before = match query.before.as_deref().map(str::trim) {
        None => None,
        Some(id) => match uuid::Uuid::try_parse(id) {
            Ok(id) => Some(id.hyphenated().to_string()),
            Err(_) => {
                v.add("before", "Must be an upload id.");
                None
            }
        },
    };
    v.finish()?;
    let uploads = state
        .store
        .uploads_of(user.id, before.as_deref(), limit as u32)
        .await?;
    let mut out = Vec::with_capacity(uploads.len());
    for upload in uploads {
        out.push(view(&state, &headers, upload).await?);
    }
    Ok(Json(out))
}

/// An upload the caller may see: their own, or one posted in a room where they sit.
async fn visible_upload(state: &AppState, id: &str, user_id: i64) -> ApiResult<Upload> {
    let upload = state
        .store
        .upload(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if upload.owner_id == user_id || state.store.upload_visible_to(id, user_id).await? {
        Ok(upload)
    } else {
        Err(ApiError::not_found())
    }
}

/// One upload with a fresh short-lived download URL (uploader, or a member of a room where it
/// was posted).
#[utoipa::path(get, path = "/api/uploads/{id}/", tag = "uploads", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UploadView), (status = 404, body = ErrorBody),
        (status = 503, description = "uploads_unavailable or storage_unavailable: uploads are off, or the object store cannot be reached", body = ErrorBody)))]
pub async fn get(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<UploadView>> {
    let upload = visible_upload(&state, &id, user.id).await?;
    Ok(Json(view(&state, &headers, upload).await?))
}

/// Redirects (307) to a fresh download URL: the stable link that message objects carry as
/// `file.download_url` (409 while the upload is not completed, 410 once it has expired).
#[utoipa::path(get, path = "/api/uploads/{id}/download/", tag = "uploads", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 307, description = "to a short-lived download URL"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 503, description = "uploads_unavailable or storage_unavailable: uploads are off, or the object store cannot be reached", body = ErrorBody)))]
pub async fn download(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let upload = visible_upload(&state, &id, user.id).await?;
    // Not there yet, rather than gone for good: a client told "expired" gives the upload up.
    if upload.status == UploadStatus::Pending {
        return Err(ApiError::new(ErrorCode::NotUploaded).with_status(StatusCode::CONFLICT));
    }
    match view(&state, &headers, upload).await?.download_url {
        Some(url) => Ok(Redirect::temporary(&url).into_response()),
        None => Err(ApiError::new(ErrorCode::UploadExpired).with_status(StatusCode::GONE)),
    }
}
