//! Message retention: deletes messages older than their organization's retention period
//! (`messageRetentionDays` of its Organization resource). Organizations without one keep
//! everything.

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{StoreError, TenantStore};
use chrono::Utc;

use crate::service::WorkerMetrics;

/// Messages deleted per statement, so a large backlog never holds long locks.
const BATCH: u32 = 1_000;

/// Deletes messages past retention.
pub struct RetentionSweeper {
    store: Arc<dyn TenantStore>,
    metrics: Arc<WorkerMetrics>,
}

impl RetentionSweeper {
    /// A sweeper over `store`.
    pub fn new(store: Arc<dyn TenantStore>, metrics: Arc<WorkerMetrics>) -> Self {
        Self { store, metrics }
    }

    /// Sweeps every `every` until `stop` resolves.
    pub async fn run(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "messages past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying later"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Deletes everything due now, batch by batch; returns how many messages went. Several
    /// workers sweeping at once only find less to do.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.store.purge_expired_messages(Utc::now(), BATCH).await?;
            total += n;
            self.metrics.messages_purged.inc_by(n);
            if n < u64::from(BATCH) {
                return Ok(total);
            }
        }
    }
}
