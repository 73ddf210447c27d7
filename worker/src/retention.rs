//! Retention: deletes the messages of deleted rooms that are still there (see `chat`'s
//! `erasure`), messages older than their organization's retention period
//! (`messageRetentionDays` of its Organization resource; organizations without one keep every
//! message), events of the outbox older than `CHATBOARD_OUTBOX_RETENTION_DAYS`, which would
//! otherwise grow without end and keep the text of deleted and purged messages, and refresh
//! tokens (with their login families) a day after they expired.

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{EmailStore, OutboxStore, SessionStore, StoreError, TenantStore};
use chrono::Utc;

use crate::service::WorkerMetrics;

/// Messages deleted per statement, so a large backlog never holds long locks.
const BATCH: u32 = 1_000;
/// The pause between two full batches of messages: a backlog (retention just set on an old
/// organization) is worked through without holding the rooms', or SQLite's one writer, back
/// to back.
const BATCH_PAUSE: Duration = Duration::from_millis(50);
/// How long an expired refresh token is kept (its row is of no use once it expired; a day
/// leaves room for clocks that disagree).
const EXPIRED_SESSION_KEPT: chrono::Duration = chrono::Duration::days(1);

/// Deletes messages and outbox events past retention.
pub struct RetentionSweeper {
    store: Arc<dyn TenantStore>,
    outbox: Arc<dyn OutboxStore>,
    sessions: Arc<dyn SessionStore>,
    emails: Arc<dyn EmailStore>,
    /// How long an outbox event, and a settled email, is kept.
    outbox_retention: Duration,
    metrics: Arc<WorkerMetrics>,
}

impl RetentionSweeper {
    /// A sweeper over `store`, `outbox`, `sessions` and `emails`, keeping outbox events and
    /// settled emails for `outbox_retention`.
    pub fn new(
        store: Arc<dyn TenantStore>,
        outbox: Arc<dyn OutboxStore>,
        sessions: Arc<dyn SessionStore>,
        emails: Arc<dyn EmailStore>,
        outbox_retention: Duration,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        Self {
            store,
            outbox,
            sessions,
            emails,
            outbox_retention,
            metrics,
        }
    }

    /// Sweeps every `every` until `stop` turns true. A sweep working through a backlog stops
    /// between two of its batches, so a shutdown does not wait for the whole backlog (it could
    /// outlast a pod's grace period, and the batch in flight be rolled back by the kill).
    pub async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.sweep_until(&stop).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "messages past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying later"),
            }
            // Given up where they are when the worker stops (each batch is a statement of its
            // own, done or not): a large backlog would outlast the grace period too.
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = self.prune() => {}
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Prunes the outbox, the settled emails and the sessions, saying what went.
    async fn prune(&self) {
        match self.prune_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "outbox events past retention deleted"),
            Err(e) => tracing::warn!(error = %e, "outbox pruning failed; retrying later"),
        }
        match self.prune_emails().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(emails = n, "settled emails past retention deleted"),
            Err(e) => tracing::warn!(error = %e, "email pruning failed; retrying later"),
        }
        match self.prune_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "expired refresh tokens and sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "session pruning failed; retrying later"),
        }
    }

    /// Deletes everything due now, batch by batch; returns how many messages went. Several
    /// workers sweeping at once only find less to do.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        self.sweep_until(&tokio::sync::watch::channel(false).1)
            .await
    }

    /// [`Self::sweep`], ending after the batch in hand once `stop` turns true.
    pub async fn sweep_until(
        &self,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        // Deleted rooms' messages first: their deletion's own task purges them, unless its
        // process stopped before it was done.
        while let Some(n) = self.store.purge_erased_messages(BATCH).await? {
            total += n;
            if *stop.borrow() {
                return Ok(total);
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        loop {
            let n = self.store.purge_expired_messages(Utc::now(), BATCH).await?;
            total += n;
            self.metrics.messages_purged.inc_by(n);
            if n < u64::from(BATCH) || *stop.borrow() {
                return Ok(total);
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
    }

    /// Deletes refresh tokens expired for a day, and the login families they leave empty;
    /// returns how many rows went.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn prune_sessions(&self) -> Result<u64, StoreError> {
        let before = Utc::now() - EXPIRED_SESSION_KEPT;
        self.sessions.prune_sessions(before, BATCH).await
    }

    /// Deletes the outbox's events past retention; returns how many went.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn prune_outbox(&self) -> Result<u64, StoreError> {
        let Some(before) = self.retained_since() else {
            return Ok(0);
        };
        let pruned = self.outbox.prune_outbox(before, BATCH).await?;
        self.metrics.outbox_pruned.inc_by(pruned);
        Ok(pruned)
    }

    /// Deletes emails sent or given up on past retention (their addresses and subjects, which
    /// name organizations, stayed for good); returns how many went.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn prune_emails(&self) -> Result<u64, StoreError> {
        let Some(before) = self.retained_since() else {
            return Ok(0);
        };
        self.emails.prune_settled_emails(before, BATCH).await
    }

    /// Since when events and settled emails are kept (`None`: for ever).
    fn retained_since(&self) -> Option<chrono::DateTime<Utc>> {
        let retention =
            chrono::Duration::from_std(self.outbox_retention).unwrap_or(chrono::Duration::MAX);
        Utc::now().checked_sub_signed(retention)
    }
}
