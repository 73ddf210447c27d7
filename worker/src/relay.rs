//! The outbox relay: outbox rows (written in the transaction of their change) become jobs.
//!
//! Each round reads the oldest events not yet handed over, enqueues them, and only then marks
//! them handed over. A relay that dies in between enqueues them again on its next round; the
//! queue de-duplicates on the event id, so the job exists once. Several relays may run at once
//! for the same reason: they may both read a row, but only one job results.

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{OutboxStore, StoreError};
use chrono::Utc;

use crate::queue::{JobQueue, QueueError};
use crate::service::WorkerMetrics;

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Moves outbox events into the job queue.
pub struct Relay {
    store: Arc<dyn OutboxStore>,
    queue: Arc<dyn JobQueue>,
    batch: u32,
}

impl Relay {
    /// A relay handing over up to `batch` events per round.
    pub fn new(store: Arc<dyn OutboxStore>, queue: Arc<dyn JobQueue>, batch: u32) -> Self {
        Self {
            store,
            queue,
            batch: batch.max(1),
        }
    }

    /// One round: returns how many events were handed over. After a failure nothing of the
    /// round is marked; the next round hands the same events over again, which the queue
    /// absorbs.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let events = self.store.outbox_unpublished(self.batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        self.queue.enqueue(&events).await?;
        let handed: Vec<i64> = events.iter().map(|e| e.position).collect();
        self.store.mark_published(&handed, Utc::now()).await?;
        Ok(handed.len())
    }

    /// Relays until `stop` resolves: back to back while there is a backlog, every `idle`
    /// otherwise, backing off after failures.
    pub async fn run(
        self,
        metrics: Arc<WorkerMetrics>,
        idle: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut pause = idle;
        loop {
            match self.relay_once().await {
                Ok(n) => {
                    metrics.relayed.inc_by(n as u64);
                    pause = if n >= self.batch as usize {
                        Duration::ZERO
                    } else {
                        idle
                    };
                }
                Err(e) => {
                    metrics.relay_failures.inc();
                    tracing::warn!(error = %e, "outbox relay round failed; retrying");
                    pause = (pause * 2).clamp(idle, Duration::from_secs(30));
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
