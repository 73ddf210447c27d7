//! The upload janitor: deletes the files of uploads past their retention (marking them
//! `expired`) and of uploads presigned but never completed within a day (forgetting them).

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{pending_since, StoreError, UploadStore};
use chrono::Utc;
use objects::ObjectStore;
use tokio::sync::watch;

use crate::service::WorkerMetrics;

/// Uploads handled per query.
const BATCH: u32 = 200;
/// How old a temporary file of a write must be to count as left behind (a write in progress
/// touches its file as the bytes come, and a signed upload URL lasts 15 minutes).
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Deletes expired and abandoned uploads.
pub struct UploadJanitor {
    store: Arc<dyn UploadStore>,
    objects: Arc<dyn ObjectStore>,
    metrics: Arc<WorkerMetrics>,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Ready uploads whose retention ended: files deleted, rows marked expired.
    pub expired: usize,
    /// Pending uploads never completed: files (if any) deleted, rows removed.
    pub abandoned: usize,
}

impl UploadJanitor {
    /// A janitor for uploads kept in `objects`.
    pub fn new(
        store: Arc<dyn UploadStore>,
        objects: Arc<dyn ObjectStore>,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        Self {
            store,
            objects,
            metrics,
        }
    }

    /// Sweeps every `every` until `stop` turns true. A sweep working through a backlog stops
    /// between two of its batches, so a shutdown does not wait for the whole backlog.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            match self.sweep_until(&stop).await {
                Ok(swept) if swept != Swept::default() => {
                    tracing::info!(
                        expired = swept.expired,
                        abandoned = swept.abandoned,
                        "uploads swept"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping uploads failed; retrying later"),
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One sweep over everything due now. A file that cannot be deleted keeps its row as it is,
    /// so the next sweep tries again, and this one walks on past it; several workers sweeping
    /// at once only repeat deletions.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        self.sweep_until(&watch::channel(false).1).await
    }

    /// [`Self::sweep`], ending after the batch in hand once `stop` turns true.
    pub async fn sweep_until(&self, stop: &watch::Receiver<bool>) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        let now = Utc::now();
        let mut after = None;
        loop {
            let due = self
                .store
                .expired_uploads(now, after.as_ref(), BATCH)
                .await?;
            let gone = self.delete_files(&due).await;
            self.store.mark_expired(&gone).await?;
            swept.expired += gone.len();
            self.metrics.uploads_expired.inc_by(gone.len() as u64);
            after = due.last().and_then(|u| Some((u.expires_at?, u.id.clone())));
            if due.len() < BATCH as usize || after.is_none() || *stop.borrow() {
                break;
            }
        }
        if *stop.borrow() {
            return Ok(swept);
        }
        self.store
            .abandon_stale_uploads(pending_since(now), now)
            .await?;
        // Also those given up by an earlier sweep whose files could not be deleted then.
        let mut after = None;
        loop {
            let stale = self.store.abandoned_uploads(after.as_ref(), BATCH).await?;
            let gone = self.delete_files(&stale).await;
            self.store.forget_abandoned_uploads(&gone).await?;
            swept.abandoned += gone.len();
            self.metrics.uploads_abandoned.inc_by(gone.len() as u64);
            after = stale.last().map(|u| (u.created_at, u.id.clone()));
            if stale.len() < BATCH as usize || *stop.borrow() {
                break;
            }
        }
        // What writes cut off by a crash left (the store's own; a lost file is a warning, not
        // a failed sweep).
        match self.objects.remove_leftovers(LEFTOVER_AGE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "temporary files of unfinished uploads removed"),
            Err(e) => tracing::warn!(error = %e, "removing unfinished uploads' files failed"),
        }
        Ok(swept)
    }

    /// Deletes the files; returns the ids of the uploads whose files are gone.
    async fn delete_files(&self, uploads: &[chatboard_core::model::Upload]) -> Vec<String> {
        let mut gone = Vec::new();
        for upload in uploads {
            match self.objects.delete(&upload.object_key).await {
                Ok(()) => gone.push(upload.id.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, upload_id = %upload.id, "deleting an upload's file failed")
                }
            }
        }
        gone
    }
}
