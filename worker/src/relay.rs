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
        self.relay_up_to(self.batch).await
    }

    /// One round of at most `batch` events.
    async fn relay_up_to(&self, batch: u32) -> Result<usize, RelayError> {
        let events = self.store.outbox_unpublished(batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        self.queue.enqueue(&events).await?;
        let handed: Vec<i64> = events.iter().map(|e| e.position).collect();
        self.store.mark_published(&handed, Utc::now()).await?;
        Ok(handed.len())
    }

    /// Relays until `stop` resolves: back to back while there is a backlog, every `idle`
    /// otherwise, backing off after failures. A failed round's batch is halved for the next
    /// (and grows back as rounds succeed): a batch too heavy to hand over within the queue's
    /// time (large events) was tried again whole, round after round, and held every event
    /// behind it.
    pub async fn run(
        self,
        metrics: Arc<WorkerMetrics>,
        idle: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut pause = idle;
        let mut batch = self.batch;
        loop {
            match self.relay_up_to(batch).await {
                Ok(n) => {
                    metrics.relayed.inc_by(n as u64);
                    pause = if n >= batch as usize {
                        Duration::ZERO
                    } else {
                        idle
                    };
                    batch = batch.saturating_mul(2).min(self.batch);
                }
                Err(e) => {
                    metrics.relay_failures.inc();
                    tracing::warn!(error = %e, batch, "outbox relay round failed; retrying");
                    pause = (pause * 2).clamp(idle, Duration::from_secs(30));
                    batch = (batch / 2).max(1);
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
