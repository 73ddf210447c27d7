//! Uploads: what the API knows of the files clients put into object storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ReadPool, SqlStore, Tx, WritePool, ORG_LOCK};
use crate::sql::rows::placeholders;
use crate::{
    pending_since, NewUpload, OrgCharge, QuotaExceeded, StoreError, StoreResult, UploadCursor,
    UploadQuota, UploadStore,
};
use chatboard_core::config::UploadQuotaSettings;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{Upload, UploadStatus};

/// Columns selected for an upload.
const UPLOAD_COLUMNS: &str = "id, owner_id, filename, content_type, size, object_key, org_id, \
     status, created_at, uploaded_at, expires_at";

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    owner_id: i64,
    filename: String,
    content_type: String,
    size: i64,
    object_key: String,
    org_id: Option<i64>,
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
        // Expired from the moment its time is up, not from when the janitor gets to it (every
        // few minutes, and never without a worker): no download link, no new attachment.
        // Likewise an unfinished one past its lifetime: it can no longer be completed.
        let now = chrono::Utc::now();
        let (status, expires_at) = match (status, r.expires_at) {
            (UploadStatus::Ready, Some(at)) if at <= now => (UploadStatus::Expired, r.expires_at),
            (UploadStatus::Pending, _) if r.created_at <= pending_since(now) => {
                (UploadStatus::Expired, None)
            }
            // Given up by its uploader (its time is when it stops counting, see `cancel_upload`).
            (UploadStatus::Pending, Some(_)) => (UploadStatus::Expired, None),
            (status, _) => (status, r.expires_at),
        };
        Ok(Upload {
            id: r.id,
            owner_id: r.owner_id,
            filename: r.filename,
            content_type: r.content_type,
            size: r.size,
            object_key: r.object_key,
            org_id: r.org_id,
            status,
            created_at: r.created_at,
            uploaded_at: r.uploaded_at,
            expires_at,
        })
    }
}

fn uploads(rows: Vec<UploadRow>) -> StoreResult<Vec<Upload>> {
    rows.into_iter().map(Upload::try_from).collect()
}

/// Bytes of unfinished uploads and of all live uploads (unfinished and ready) whose `column`
/// (`owner_id` or `org_id`) is `id`, at `now`: an upload whose time is up counts no more,
/// whether or not the janitor has come to it (it runs every few minutes, and not at all
/// without a worker), as it shows as expired from then on. Read through the live uploads'
/// indexes (the status condition is spelled out for them), not the whole history.
async fn usage(
    tx: &mut Tx<'_>,
    column: &str,
    id: i64,
    now: DateTime<Utc>,
) -> StoreResult<(i64, i64)> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN size ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(size), 0) AS BIGINT) \
         FROM uploads WHERE {column} = $1 AND status IN ('pending', 'ready') \
           AND ((status = 'pending' AND created_at > $2 AND (expires_at IS NULL OR expires_at > $3)) \
                OR (status = 'ready' AND (expires_at IS NULL OR expires_at > $3)))"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(pending_since(now))
        .bind(now)
        .fetch_one(&mut **tx)
        .await?)
}

/// The organization's pending and stored limits (its own, else the deployment's), its row
/// locked so that charges to it are counted one after the other.
async fn org_limits(
    tx: &mut Tx<'_>,
    org_id: i64,
    quotas: &UploadQuotaSettings,
) -> StoreResult<(i64, i64)> {
    let sql = format!(
        "SELECT upload_pending_bytes, upload_stored_bytes FROM orgs WHERE id = $1{ORG_LOCK}"
    );
    let (pending, stored): (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
        .bind(org_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok((
        pending.unwrap_or(quotas.org_pending_bytes),
        stored.unwrap_or(quotas.org_stored_bytes),
    ))
}

/// `Some` when `size` more bytes would take `used` past `limit` (0: no limit).
fn exceeds(quota: UploadQuota, limit: i64, used: i64, size: i64) -> Option<QuotaExceeded> {
    (limit > 0 && used.saturating_add(size) > limit).then_some(QuotaExceeded { quota, limit, used })
}

/// Up to `limit` uploads matching `filter` (which may use `$1`, bound to `now`), in the order of
/// `by` (a time column) then id, from after `after`.
async fn page_of_uploads(
    pool: &ReadPool,
    filter: &str,
    by: &str,
    now: Option<DateTime<Utc>>,
    after: Option<&UploadCursor>,
    limit: u32,
) -> StoreResult<Vec<Upload>> {
    let mut n = usize::from(now.is_some());
    let mut next = || {
        n += 1;
        n
    };
    let past = match after {
        Some(_) => format!(" AND ({by}, id) > (${}, ${})", next(), next()),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE {filter}{past} ORDER BY {by}, id LIMIT ${}",
        next()
    );
    let mut query = sqlx::query_as::<_, UploadRow>(&sql);
    if let Some(now) = now {
        query = query.bind(now);
    }
    if let Some((at, id)) = after {
        query = query.bind(*at).bind(id.as_str());
    }
    let rows = query.bind(i64::from(limit)).fetch_all(pool).await?;
    uploads(rows)
}

/// `<statement> status = '<from>' AND id IN (...)`, in chunks; `statement` ends in `WHERE`
/// or `AND` (e.g. `UPDATE uploads SET status = 'expired' WHERE`).
async fn update_uploads(
    pool: &WritePool,
    statement: &str,
    from: &str,
    ids: &[String],
) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let sql = format!(
            "{statement} status = '{from}' AND id IN ({})",
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
    async fn create_upload(
        &self,
        upload: NewUpload,
        quotas: &UploadQuotaSettings,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Upload, QuotaExceeded>> {
        let mut tx = self.write.begin().await?;
        // The uploader's row (and the org's) is locked, so two presigns of one user are
        // counted one after the other.
        let user = format!("SELECT id FROM users WHERE id = $1{ORG_LOCK}");
        sqlx::query(&user)
            .bind(upload.owner_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (pending, stored) = usage(&mut tx, "owner_id", upload.owner_id, now).await?;
        let mut verdict = exceeds(
            UploadQuota::UserPending,
            quotas.user_pending_bytes,
            pending,
            upload.size,
        )
        .or(exceeds(
            UploadQuota::UserStored,
            quotas.user_stored_bytes,
            stored,
            upload.size,
        ));
        if let Some(org_id) = upload.org_id {
            let (pending_limit, stored_limit) = org_limits(&mut tx, org_id, quotas).await?;
            let (pending, stored) = usage(&mut tx, "org_id", org_id, now).await?;
            verdict = verdict
                .or(exceeds(
                    UploadQuota::OrgPending,
                    pending_limit,
                    pending,
                    upload.size,
                ))
                .or(exceeds(
                    UploadQuota::OrgStored,
                    stored_limit,
                    stored,
                    upload.size,
                ));
        }
        if let Some(exceeded) = verdict {
            return Ok(Err(exceeded));
        }
        let sql = format!(
            "INSERT INTO uploads (id, owner_id, filename, content_type, size, object_key, org_id, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) RETURNING {UPLOAD_COLUMNS}"
        );
        let row: UploadRow = sqlx::query_as(&sql)
            .bind(&upload.id)
            .bind(upload.owner_id)
            .bind(&upload.filename)
            .bind(&upload.content_type)
            .bind(upload.size)
            .bind(&upload.object_key)
            .bind(upload.org_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(row.try_into()?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn charge_upload_to_org(
        &self,
        id: &str,
        org_id: i64,
        quotas: &UploadQuotaSettings,
    ) -> StoreResult<OrgCharge> {
        let mut tx = self.write.begin().await?;
        let (_, stored_limit) = org_limits(&mut tx, org_id, quotas).await?;
        let upload: Option<(Option<i64>, i64)> =
            sqlx::query_as("SELECT org_id, size FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (charged_to, size) = upload.ok_or(StoreError::NotFound)?;
        match charged_to {
            Some(other) if other != org_id => return Ok(OrgCharge::OtherOrg),
            Some(_) => return Ok(OrgCharge::AlreadyCharged),
            None => {}
        }
        let (_, stored) = usage(&mut tx, "org_id", org_id, Utc::now()).await?;
        if let Some(exceeded) = exceeds(UploadQuota::OrgStored, stored_limit, stored, size) {
            return Ok(OrgCharge::Exceeded(exceeded));
        }
        let done = sqlx::query("UPDATE uploads SET org_id = $2 WHERE id = $1 AND org_id IS NULL")
            .bind(id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            // Charged meanwhile by a post in another organization (it held that one's lock,
            // not this one's): what it is charged to now decides.
            let now: Option<i64> = sqlx::query_scalar("SELECT org_id FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(if now == Some(org_id) {
                OrgCharge::AlreadyCharged
            } else {
                OrgCharge::OtherOrg
            });
        }
        tx.commit().await?;
        Ok(OrgCharge::Charged)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn release_org_charge(&self, id: &str, org_id: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE uploads SET org_id = NULL WHERE id = $1 AND org_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM messages WHERE file_id = $1)",
        )
        .bind(id)
        .bind(org_id)
        .execute(&self.write)
        .await?;
        Ok(())
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
        // A pending upload older than its lifetime is the janitor's: completing it could race
        // with the deletion of its file.
        let sql = format!(
            "UPDATE uploads SET status = 'ready', uploaded_at = $2, expires_at = $3 \
             WHERE id = $1 AND status = 'pending' AND expires_at IS NULL AND created_at > $4 \
             RETURNING {UPLOAD_COLUMNS}"
        );
        let row: Option<UploadRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(now)
            .bind(expires_at)
            .bind(pending_since(now))
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
    async fn expired_uploads(
        &self,
        now: DateTime<Utc>,
        after: Option<&UploadCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>> {
        page_of_uploads(
            &self.read,
            "status = 'ready' AND expires_at <= $1",
            "expires_at",
            Some(now),
            after,
            limit,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn abandon_stale_uploads(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        // Given up first, its file deleted after: a completion racing the janitor finds the
        // upload expired (409) instead of turning ready with its file gone.
        let done = sqlx::query(
            "UPDATE uploads SET status = 'expired' \
             WHERE status = 'pending' AND (created_at < $1 OR expires_at <= $2)",
        )
        .bind(cutoff)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn abandoned_uploads(
        &self,
        after: Option<&UploadCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>> {
        page_of_uploads(
            &self.read,
            "status = 'expired' AND uploaded_at IS NULL",
            "created_at",
            None,
            after,
            limit,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn cancel_upload(
        &self,
        id: &str,
        owner_id: i64,
        counts_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Still pending for the janitor, which gives it up once that time has come; its time,
        // set, is what says it was given up (a pending upload has none until completed).
        let done = sqlx::query(
            "UPDATE uploads SET expires_at = $3 \
             WHERE id = $1 AND owner_id = $2 AND status = 'pending' AND expires_at IS NULL",
        )
        .bind(id)
        .bind(owner_id)
        .bind(counts_until)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mark_expired(&self, ids: &[String]) -> StoreResult<()> {
        update_uploads(
            &self.write,
            "UPDATE uploads SET status = 'expired' WHERE",
            "ready",
            ids,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn forget_abandoned_uploads(&self, ids: &[String]) -> StoreResult<()> {
        // `uploaded_at` is set on completion, so an upload that expired after being used is
        // never forgotten here: messages may name it.
        update_uploads(
            &self.write,
            "DELETE FROM uploads WHERE uploaded_at IS NULL AND",
            "expired",
            ids,
        )
        .await
    }
}
