//! The worker's background tasks, started together and stopped together, in the two shapes:
//! the `worker` binary (relay into JetStream, job consumer, dispatcher) and the single-node
//! binary (relay straight into the job handler, dispatcher), plus in both the mailer and the
//! digest writer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::{EmailSettings, WebhookSettings};
use chatboard_core::presence::Presence;
use chatboard_store::Store;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::delivery::{ClientError, Dispatcher};
use crate::digest::DigestWriter;
use crate::jobs::EventJobs;
use crate::mail::{EmailTiming, MailSetupError, Mailer};
use crate::queue::{consume, NatsJobQueue};
use crate::relay::Relay;
use crate::retention::RetentionSweeper;
use crate::service::{watch_backlog, watch_job_backlog, WorkerMetrics};
use crate::uploads::UploadJanitor;
use objects::ObjectStore;

/// Events handed over per relay round.
const RELAY_BATCH: u32 = 500;
/// Pause between relay rounds when the outbox is empty.
const RELAY_IDLE: Duration = Duration::from_millis(100);
/// How often expired and abandoned uploads are looked for.
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);
/// How often messages past their organization's retention are deleted.
const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);
/// How often the backlog gauges are refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Running background tasks.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// A future that completes when [`Running::shut_down`] is called.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Turns true when the worker stops: for a task that checks between steps of its work.
    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Stops every task: each finishes what it has in hand (a relay round, attempts in
    /// flight and their records), then returns.
    pub async fn shut_down(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What the background tasks are built from.
pub struct Parts {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Who is online (digests go to those who are not).
    pub presence: Arc<dyn Presence>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Email sending and digests.
    pub email: EmailSettings,
    /// How the mailer paces its sends.
    pub email_timing: EmailTiming,
    /// Upload storage, for deleting expired and abandoned files (none: uploads are off).
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// Metrics.
    pub metrics: Arc<WorkerMetrics>,
}

/// Why the tasks could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The webhook HTTP client.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The mailer.
    #[error(transparent)]
    Mail(#[from] MailSetupError),
}

/// The tasks both shapes run: the webhook dispatcher, the mailer, the digest writer and the
/// backlog gauges. Returns the handler for events, for the relay or the consumer to drive.
fn start_common(parts: Parts, running: &mut Running) -> Result<EventJobs, StartError> {
    let deliveries_queued = Arc::new(Notify::new());
    let emails_queued = Arc::new(Notify::new());
    let dispatcher = Dispatcher::new(
        parts.store.clone(),
        parts.webhooks,
        parts.metrics.clone(),
        deliveries_queued.clone(),
    )?;
    let mailer = Mailer::new(
        parts.store.clone(),
        &parts.email,
        parts.email_timing,
        parts.metrics.clone(),
        emails_queued.clone(),
    )?;
    let digests = DigestWriter::new(
        parts.store.clone(),
        parts.email.digest_window,
        parts.email.mention_delay,
        parts.email.public_url.clone(),
        emails_queued,
    );
    let stop = running.stopped();
    running.spawn(dispatcher.run(stop));
    let stop = running.stopped();
    running.spawn(mailer.run(stop));
    let stop = running.stopped();
    running.spawn(digests.run(stop));
    if let Some(objects) = parts.objects.clone() {
        let janitor = UploadJanitor::new(parts.store.clone(), objects, parts.metrics.clone());
        let stop = running.stop_signal();
        running.spawn(janitor.run(UPLOAD_SWEEP_EVERY, stop));
    } else {
        // The api-server may have uploads configured while this worker has not (settings
        // given to one and not the other): then nobody deletes expired files, and quotas fill
        // for good. Said at start, where whoever deploys it looks.
        tracing::info!(
            "no upload storage configured (CHATBOARD_S3_BUCKET or CHATBOARD_UPLOAD_DIR): the \
             upload janitor does not run; if the api-servers keep uploads, give this worker \
             the same settings, or expired and abandoned uploads are never deleted"
        );
    }
    let sweeper = RetentionSweeper::new(
        parts.store.clone(),
        parts.store.clone(),
        parts.store.clone(),
        parts.store.clone(),
        parts.webhooks.outbox_retention,
        parts.metrics.clone(),
    );
    let stop = running.stop_signal();
    running.spawn(sweeper.run(RETENTION_SWEEP_EVERY, stop));
    let (store, metrics) = (parts.store.clone(), parts.metrics.clone());
    let stop = running.stopped();
    running.spawn(async move {
        tokio::select! {
            () = stop => {}
            () = watch_backlog(store, metrics, BACKLOG_EVERY) => {}
        }
    });
    Ok(EventJobs::new(
        parts.store.clone(),
        parts.store.clone(),
        parts.store,
        parts.presence,
        parts.metrics,
        deliveries_queued,
    ))
}

/// Single node: the relay runs each event's jobs itself and marks it handed over only after
/// they are done.
pub fn start_in_process(parts: Parts) -> Result<Running, StartError> {
    let mut running = Running::new();
    let (store, metrics) = (parts.store.clone(), parts.metrics.clone());
    let jobs = Arc::new(start_common(parts, &mut running)?);
    let relay = Relay::new(store, jobs, RELAY_BATCH);
    let stop = running.stopped();
    running.spawn(relay.run(metrics, RELAY_IDLE, stop));
    Ok(running)
}

/// Scale-out: the relay hands events to JetStream; the consumer (shared by every replica) runs
/// their jobs.
pub fn start_scale_out(parts: Parts, queue: Arc<NatsJobQueue>) -> Result<Running, StartError> {
    let mut running = Running::new();
    let (store, metrics) = (parts.store.clone(), parts.metrics.clone());
    let jobs = start_common(parts, &mut running)?;
    let relay = Relay::new(store, queue.clone(), RELAY_BATCH);
    let stop = running.stopped();
    running.spawn(relay.run(metrics.clone(), RELAY_IDLE, stop));
    let stop = running.stopped();
    running.spawn({
        let queue = queue.clone();
        async move {
            tokio::select! {
                () = stop => {}
                () = watch_job_backlog(queue, metrics, BACKLOG_EVERY) => {}
            }
        }
    });
    let stop = running.stopped();
    running.spawn(async move {
        // Setting the consumer up fails only while NATS is away; keep trying until stopped.
        tokio::pin!(stop);
        loop {
            let round = consume(&queue, &jobs, &mut stop);
            match round.await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "job consumer unavailable; retrying");
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    });
    Ok(running)
}
