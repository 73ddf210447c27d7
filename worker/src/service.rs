//! The worker's HTTP side (health and metrics) and the loop that keeps its gauges current.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chatboard_core::metrics::MetricRegistry;
use chatboard_core::probes::{metrics_reply, probe_routes, Health, CHECK_TIMEOUT};
use chatboard_store::Store;
use chrono::Utc;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::queue::NatsJobQueue;

/// The worker's metrics.
pub struct WorkerMetrics {
    registry: MetricRegistry,
    /// Outbox events not yet handed to the job queue.
    pub outbox_backlog: IntGauge,
    /// Age of the oldest of them, in seconds (0 when none).
    pub outbox_oldest_age: IntGauge,
    /// Jobs in the JetStream job queue, waiting or running (scale-out; the single node's relay
    /// runs them itself, and this stays 0).
    pub job_backlog: IntGauge,
    /// Events handed over.
    pub relayed: IntCounter,
    /// Relay rounds that failed.
    pub relay_failures: IntCounter,
    /// Jobs run, by event type and result (`ok`, `error`).
    pub jobs: IntCounterVec,
    /// Webhook deliveries waiting for an attempt.
    pub webhook_backlog: IntGauge,
    /// Age of the oldest of them, in seconds (0 when none).
    pub webhook_oldest_age: IntGauge,
    /// Webhook attempts by result (`delivered`, `retry`, `failed`, `gone`).
    pub webhook_attempts: IntCounterVec,
    /// Time a target took to answer an attempt.
    pub webhook_request_seconds: Histogram,
    /// Time from the event to its successful delivery.
    pub webhook_delivery_lag_seconds: Histogram,
    /// Attempts a delivery took once settled (delivered or failed).
    pub webhook_attempts_per_delivery: Histogram,
    /// Emails by kind (`invitation`, `digest`) and result (`sent`, `retry`, `failed`).
    pub emails: IntCounterVec,
    /// Emails waiting to be sent.
    pub email_backlog: IntGauge,
    /// Uploads whose retention ended (files deleted).
    pub uploads_expired: IntCounter,
    /// Uploads never completed, cleaned up.
    pub uploads_abandoned: IntCounter,
    /// Messages deleted because their organization's retention period ended.
    pub messages_purged: IntCounter,
    /// Outbox events deleted past `CHATBOARD_OUTBOX_RETENTION_DAYS`.
    pub outbox_pruned: IntCounter,
}

impl WorkerMetrics {
    /// Creates the metrics in a registry of their own.
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::register_in(MetricRegistry::new())
    }

    /// Creates the metrics in `registry` (the single-node binary shares the API's).
    pub fn register_in(registry: MetricRegistry) -> Result<Self, prometheus::Error> {
        let outbox_backlog = IntGauge::new(
            "chatboard_outbox_backlog",
            "Outbox events not yet handed to the job queue.",
        )?;
        let outbox_oldest_age = IntGauge::new(
            "chatboard_outbox_oldest_age_seconds",
            "Age of the oldest outbox event not yet handed over (0 when none).",
        )?;
        let relayed = IntCounter::new(
            "chatboard_outbox_relayed_total",
            "Outbox events handed to the job queue.",
        )?;
        let relay_failures = IntCounter::new(
            "chatboard_outbox_relay_failures_total",
            "Outbox relay rounds that failed (database or queue unavailable).",
        )?;
        let jobs = IntCounterVec::new(
            Opts::new(
                "chatboard_jobs_total",
                "Jobs run, by event type and result.",
            ),
            &["type", "result"],
        )?;
        let job_backlog = IntGauge::new(
            "chatboard_job_backlog",
            "Jobs in the JetStream job queue, waiting or running (scale-out; 0 on the single node).",
        )?;
        let webhook_backlog = IntGauge::new(
            "chatboard_webhook_backlog",
            "Webhook deliveries waiting for an attempt (pending or retrying, active webhooks).",
        )?;
        let webhook_oldest_age = IntGauge::new(
            "chatboard_webhook_backlog_oldest_age_seconds",
            "Age of the oldest webhook delivery still waiting (0 when none).",
        )?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "chatboard_webhook_attempts_total",
                "Webhook delivery attempts, by result (delivered, retry, failed, gone).",
            ),
            &["result"],
        )?;
        let webhook_request_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chatboard_webhook_request_seconds",
                "Time a webhook target took to answer (or to fail).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let webhook_delivery_lag_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chatboard_webhook_delivery_lag_seconds",
                "Time from an event to its successful delivery, retries included.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0,
            ]),
        )?;
        let webhook_attempts_per_delivery = Histogram::with_opts(
            HistogramOpts::new(
                "chatboard_webhook_attempts_per_delivery",
                "Attempts a webhook delivery took, once delivered or failed.",
            )
            .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0]),
        )?;
        let emails = IntCounterVec::new(
            Opts::new(
                "chatboard_emails_total",
                "Email attempts by kind (invitation, digest) and result (sent, logged without a mail \
                 server, retry, failed).",
            ),
            &["kind", "result"],
        )?;
        let email_backlog = IntGauge::new("chatboard_email_backlog", "Emails waiting to be sent.")?;
        let uploads_expired = IntCounter::new(
            "chatboard_uploads_expired_total",
            "Uploads past their retention whose files were deleted.",
        )?;
        let uploads_abandoned = IntCounter::new(
            "chatboard_uploads_abandoned_total",
            "Uploads presigned but never completed within a day, cleaned up.",
        )?;
        let messages_purged = IntCounter::new(
            "chatboard_messages_purged_total",
            "Messages deleted because their organization's retention period ended.",
        )?;
        let outbox_pruned = IntCounter::new(
            "chatboard_outbox_pruned_total",
            "Outbox events deleted past their retention (CHATBOARD_OUTBOX_RETENTION_DAYS).",
        )?;
        for kind in ["invitation", "digest"] {
            for result in ["sent", "retry", "failed"] {
                emails.with_label_values(&[kind, result]);
            }
        }
        // Present from the start (at 0), so that rates and ratios over them are defined: a
        // series born at its first failure would not count that jump.
        for result in ["delivered", "retry", "failed", "gone"] {
            webhook_attempts.with_label_values(&[result]);
        }
        for event_type in chatboard_core::events::EventType::ALL {
            for result in ["ok", "error"] {
                jobs.with_label_values(&[event_type.as_str(), result]);
            }
        }
        registry.register(&outbox_backlog)?;
        registry.register(&outbox_oldest_age)?;
        registry.register(&job_backlog)?;
        registry.register(&relayed)?;
        registry.register(&relay_failures)?;
        registry.register(&jobs)?;
        registry.register(&webhook_backlog)?;
        registry.register(&webhook_oldest_age)?;
        registry.register(&webhook_attempts)?;
        registry.register(&webhook_request_seconds)?;
        registry.register(&webhook_delivery_lag_seconds)?;
        registry.register(&webhook_attempts_per_delivery)?;
        registry.register(&emails)?;
        registry.register(&email_backlog)?;
        registry.register(&uploads_expired)?;
        registry.register(&uploads_abandoned)?;
        registry.register(&messages_purged)?;
        registry.register(&outbox_pruned)?;
        Ok(Self {
            registry,
            outbox_backlog,
            outbox_oldest_age,
            job_backlog,
            relayed,
            relay_failures,
            jobs,
            webhook_backlog,
            webhook_oldest_age,
            webhook_attempts,
            webhook_request_seconds,
            webhook_delivery_lag_seconds,
            webhook_attempts_per_delivery,
            emails,
            email_backlog,
            uploads_expired,
            uploads_abandoned,
            messages_purged,
            outbox_pruned,
        })
    }

    fn render(&self) -> Result<String, prometheus::Error> {
        self.registry.render()
    }
}

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct ServiceState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// NATS, for readiness.
    pub nats: async_nats::Client,
    /// Metrics.
    pub metrics: Arc<WorkerMetrics>,
    /// The SMTP server, checked for readiness without deciding it.
    pub smtp: Option<SmtpProbe>,
    /// Upload storage, checked the same way.
    pub objects: Option<Arc<dyn objects::ObjectStore>>,
}

/// `/health/live`, `/health/ready` (database and NATS) and `/metrics`.
pub fn router(state: ServiceState) -> Router {
    probe_routes(get(ready), get(metrics)).with_state(state)
}

/// Ready when the database and NATS answer; mail and upload storage are reported, never
/// fatal (work waits in the queue while they are away).
async fn ready(State(state): State<ServiceState>) -> (StatusCode, Json<Health>) {
    let mut health = Health::checking()
        .require("database", state.store.ping())
        .await
        .require("nats", chatboard_core::bus::round_trip(&state.nats))
        .await;
    if let Some(smtp) = &state.smtp {
        health = health.report("smtp", smtp.check()).await;
    }
    if let Some(objects) = &state.objects {
        health = health.report("storage", objects.ping()).await;
    }
    health.into_reply()
}

/// How long an SMTP check's answer stands: the probe runs every few seconds, and each check
/// connects, says hello and signs in, which mail providers throttle or block when it comes
/// some 17,000 times a day from each pod.
const SMTP_CHECK_STANDS: Duration = Duration::from_secs(60);

/// The longest one SMTP check may take. It runs in a task of its own: the probe's own deadline
/// (under a second) is shorter than a login to a distant server, and a check cut off there
/// would be made again at the next probe.
const SMTP_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// The SMTP server's check for readiness, made at most once a [`SMTP_CHECK_STANDS`], in the
/// background: a probe answers with the latest check's answer at once.
#[derive(Clone)]
pub struct SmtpProbe {
    url: Arc<str>,
    state: Arc<std::sync::Mutex<SmtpState>>,
}

/// The latest SMTP check.
#[derive(Default)]
struct SmtpState {
    /// When the latest check began; `None` before the first.
    began: Option<tokio::time::Instant>,
    /// What the latest finished check found.
    answer: Option<Result<(), String>>,
}

impl SmtpProbe {
    /// A probe of the server at `url` (`CHATBOARD_SMTP_URL`).
    pub fn new(url: String) -> Self {
        Self {
            url: url.into(),
            state: Arc::default(),
        }
    }

    /// The latest check's answer; starts a new check when the latest began a minute ago.
    pub async fn check(&self) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .began
            .is_none_or(|began| began.elapsed() >= SMTP_CHECK_STANDS)
        {
            state.began = Some(tokio::time::Instant::now());
            let (url, shared) = (self.url.clone(), self.state.clone());
            tokio::spawn(async move {
                let answer = tokio::time::timeout(SMTP_CHECK_TIMEOUT, smtp_reachable(&url))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 15 s".to_owned()));
                shared.lock().unwrap_or_else(PoisonError::into_inner).answer = Some(answer);
            });
        }
        state
            .answer
            .clone()
            .unwrap_or_else(|| Err("being checked".to_owned()))
    }
}

/// Whether the SMTP server at `url` accepts a connection.
async fn smtp_reachable(url: &str) -> Result<(), String> {
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| e.to_string())?;
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        builder.timeout(Some(CHECK_TIMEOUT)).build();
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the server did not answer".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

async fn metrics(State(state): State<ServiceState>) -> Response {
    metrics_reply(state.metrics.render())
}

/// Refreshes the job queue's gauge every `every`: in the scale-out shape the outbox is empty
/// once events are handed over, and this is where jobs that the runners do not keep up with
/// (or that fail and come again) wait.
pub async fn watch_job_backlog(
    queue: Arc<NatsJobQueue>,
    metrics: Arc<WorkerMetrics>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match queue.pending().await {
            Ok(jobs) => metrics
                .job_backlog
                .set(i64::try_from(jobs).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!(error = %e, "reading the job queue's backlog failed"),
        }
    }
}

/// Refreshes the backlog gauges (outbox and webhook deliveries) every `every`. While a read
/// fails or takes longer than `every`, a count keeps its last value and an age goes on growing
/// from the oldest item last seen: a database that stops answering mid-backlog must not freeze
/// the age an alert watches.
pub async fn watch_backlog(store: Arc<dyn Store>, metrics: Arc<WorkerMetrics>, every: Duration) {
    let mut outbox_oldest = OldestSeen::default();
    let mut webhook_oldest = OldestSeen::default();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let read = read_within(every, "outbox", store.outbox_backlog()).await;
        if let Some((count, _)) = read {
            metrics.outbox_backlog.set(count);
        }
        metrics
            .outbox_oldest_age
            .set(outbox_oldest.age(read.map(|(_, oldest)| oldest), Utc::now()));
        let read = read_within(every, "webhook", store.delivery_backlog(Utc::now())).await;
        if let Some((count, _)) = read {
            metrics.webhook_backlog.set(count);
        }
        metrics
            .webhook_oldest_age
            .set(webhook_oldest.age(read.map(|(_, oldest)| oldest), Utc::now()));
        if let Some(count) = read_within(every, "email", store.email_backlog()).await {
            metrics.email_backlog.set(count);
        }
    }
}

/// What `read` answers within `limit`; `None` (logged) when it fails or hangs, so that one
/// read stuck on a database that stopped answering holds up neither the others nor the ages.
async fn read_within<T>(
    limit: Duration,
    backlog: &'static str,
    read: impl std::future::Future<Output = Result<T, chatboard_store::StoreError>>,
) -> Option<T> {
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, backlog, "reading a backlog failed");
            None
        }
        Err(_) => {
            tracing::warn!(backlog, ?limit, "reading a backlog took too long");
            None
        }
    }
}

/// The oldest waiting item of a backlog as last read.
#[derive(Default)]
struct OldestSeen(Option<chrono::DateTime<Utc>>);

impl OldestSeen {
    /// The backlog's age in seconds at `now`, after a read that found `read` as its oldest
    /// item (`Some(None)`: nothing waits) or failed (`None`: the last oldest seen stands).
    fn age(
        &mut self,
        read: Option<Option<chrono::DateTime<Utc>>>,
        now: chrono::DateTime<Utc>,
    ) -> i64 {
        if let Some(oldest) = read {
            self.0 = oldest;
        }
        self.0.map_or(0, |t| (now - t).num_seconds().max(0))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_backlogs_age_grows_while_its_reads_fail() {
        let start = Utc::now();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let mut oldest = OldestSeen::default();
        assert_eq!(oldest.age(None, at(0)), 0, "nothing seen yet");
        assert_eq!(oldest.age(Some(Some(at(-30))), at(0)), 30);
        assert_eq!(
            oldest.age(None, at(60)),
            90,
            "a failed read keeps the oldest seen"
        );
        assert_eq!(oldest.age(Some(None), at(70)), 0, "nothing waits");
        assert_eq!(oldest.age(None, at(80)), 0);
    }

    #[tokio::test]
    async fn the_smtp_server_is_asked_once_a_minute_at_most_in_the_background() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("a loopback port");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("its address");
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        // A server that hangs up at once: each check fails, and each connection is counted.
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let probe = SmtpProbe::new(format!("smtp://{addr}"));
        assert_eq!(probe.check().await, Err("being checked".to_owned()));
        // The first check's answer comes from its task; until then the probe says so.
        let mut answer = probe.check().await;
        while answer == Err("being checked".to_owned()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            answer = probe.check().await;
        }
        assert!(answer.is_err(), "a server that hangs up: {answer:?}");
        for _ in 0..5 {
            assert!(probe.check().await.is_err());
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}
