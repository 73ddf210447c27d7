//! Uploads: what the API knows of the files clients put into object storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Pool, SqlStore};
use crate::sql::rows::placeholders;
use crate::{NewUpload, StoreError, StoreResult, UploadStore};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{Upload, UploadStatus};

/// Columns selected for an upload.
const UPLOAD_COLUMNS: &str = "id, owner_id, filename, content_type, size, object_key, status, \
     created_at, uploaded_at, expires_at";

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    owner_id: i64,
    filename: String,
    content_type: String,
    size: i64,
    object_key: String,
    status: String,
    created_at: DateTime<Utc>,
    uploaded_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<UploadRow> for Upload {
    type Error = StoreError;
    fn try_from(r: UploadRow) -> Result<Self, StoreError> {
        let status = UploadStatus::parse(&r.status).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Decode(
                format!("upload {} status {:?}", r.id, r.status).into(),
            ))
        })?;
        Ok(Upload {
            id: r.id,
            owner_id: r.owner_id,
            filename: r.filename,
            content_type: r.content_type,
            size: r.size,
            object_key: r.object_key,
            status,
            created_at: r.created_at,
            uploaded_at: r.uploaded_at,
            expires_at: r.expires_at,
        })
    }
}

fn uploads(rows: Vec<UploadRow>) -> StoreResult<Vec<Upload>> {
    rows.into_iter().map(Upload::try_from).collect()
}

/// `UPDATE uploads SET <set> WHERE status = '<from>' AND id IN (...)`, in chunks.
async fn update_uploads(pool: &Pool, set: &str, from: &str, ids: &[String]) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let sql = format!(
            "{set} WHERE status = '{from}' AND id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(pool).await?;
    }
    Ok(())
}

#[async_trait]
impl UploadStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_upload(&self, upload: NewUpload, now: DateTime<Utc>) -> StoreResult<Upload> {
        let sql = format!(
            "INSERT INTO uploads (id, owner_id, filename, content_type, size, object_key, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING {UPLOAD_COLUMNS}"
        );
        let row: UploadRow = sqlx::query_as(&sql)
            .bind(&upload.id)
            .bind(upload.owner_id)
            .bind(&upload.filename)
            .bind(&upload.content_type)
            .bind(upload.size)
            .bind(&upload.object_key)
            .bind(now)
            .fetch_one(&self.write)
            .await?;
        row.try_into()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn upload(&self, id: &str) -> StoreResult<Option<Upload>> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
        let row: Option<UploadRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(Upload::try_from).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn complete_upload(
        &self,
        id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Upload> {
        let sql = format!(
            "UPDATE uploads SET status = 'ready', uploaded_at = $2, expires_at = $3 \
             WHERE id = $1 AND status = 'pending' RETURNING {UPLOAD_COLUMNS}"
        );
        let row: Option<UploadRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&self.write)
            .await?;
        match row {
            Some(row) => row.try_into(),
            None => match self.upload(id).await? {
                Some(upload) if upload.status == UploadStatus::Ready => Ok(upload),
                Some(_) => Err(StoreError::Conflict(ErrorCode::UploadExpired)),
                None => Err(StoreError::NotFound),
            },
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn uploads_of(
        &self,
        owner_id: i64,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE owner_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<UploadRow> = sqlx::query_as(&sql)
            .bind(owner_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        uploads(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn upload_visible_to(&self, id: &str, user_id: i64) -> StoreResult<bool> {
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT m.id FROM messages m JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = $2 \
             WHERE m.file_id = $1 LIMIT 1",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn expired_uploads(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'ready' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2"
        );
        let rows: Vec<UploadRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        uploads(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn stale_uploads(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'pending' AND created_at < $1 \
             ORDER BY created_at LIMIT $2"
        );
        let rows: Vec<UploadRow> = sqlx::query_as(&sql)
            .bind(cutoff)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        uploads(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mark_expired(&self, ids: &[String]) -> StoreResult<()> {
        update_uploads(
            &self.write,
            "UPDATE uploads SET status = 'expired'",
            "ready",
            ids,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_pending_uploads(&self, ids: &[String]) -> StoreResult<()> {
        update_uploads(&self.write, "DELETE FROM uploads", "pending", ids).await
    }
}
