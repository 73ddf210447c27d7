//! The worker's event jobs for a test's database, run in-process as the single node runs them
//! (the outbox relay straight into the job handler): what the API server leaves to the worker,
//! such as indexing new messages for search on PostgreSQL, then happens in the test too.

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::{EmailSettings, WebhookSettings};
use chatboard_core::presence::LocalPresence;
use chatboard_store::Store;
use worker::mail::EmailTiming;
use worker::runtime::{start_in_process, Parts, Running};
use worker::service::WorkerMetrics;

/// The worker's tasks over one store.
pub struct TestJobs {
    store: Arc<dyn Store>,
    _running: Running,
}

impl TestJobs {
    /// Starts the relay, the event jobs and the other background tasks over `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let running = start_in_process(Parts {
            store: store.clone(),
            presence: Arc::new(LocalPresence::new()),
            webhooks: WebhookSettings::default(),
            email: EmailSettings::default(),
            email_timing: EmailTiming::quick(),
            objects: None,
            metrics: Arc::new(WorkerMetrics::new().expect("worker metrics")),
        })
        .expect("start the worker's tasks");
        Self {
            store,
            _running: running,
        }
    }

    /// Waits until every event written so far has had its jobs run (see [`settled`]).
    pub async fn settled(&self) {
        settled(&self.store).await;
    }
}

/// Waits until every event written to `store` so far has had its jobs run: the in-process
/// relay marks an event handed over only once they are done.
pub async fn settled(store: &Arc<dyn Store>) {
    for _ in 0..600 {
        let (waiting, _) = store.outbox_backlog().await.expect("outbox backlog");
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker's jobs did not catch up within 30 s");
}
