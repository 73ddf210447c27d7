//! Webhook delivery: claims due deliveries from the database, POSTs each signed event to its
//! target, and records the outcome (delivered, retry later with backoff, failed, or 410 gone).
//!
//! State lives in the database, not in the process: a claim is a lease, so a worker that dies
//! mid-attempt leaves its deliveries due again once the lease lapses, and any number of
//! workers can share the table. Up to `concurrency` requests run at once; a slow target holds
//! one slot, never the others. Outcomes are recorded in batches by a separate task.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatboard_core::config::WebhookSettings;
use chatboard_core::webhook_target::is_public;
use chatboard_store::{AttemptOutcome, AttemptResult, DueDelivery, WebhookStore};
use chrono::{DateTime, SubsecRound, Utc};
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::delivery_slots::DeliverySlots;
use crate::service::WorkerMetrics;
use crate::signing::signature;

/// Longest wait between retries, however many attempts came before.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Deliveries claimed per database round at most.
const CLAIM_BATCH: usize = 256;
/// How often to look for due deliveries when nothing wakes the dispatcher.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Outcomes recorded per transaction at most.
const RECORD_BATCH: usize = 500;
/// What a claim lasts beyond three request timeouts: time for the claim and the outcome's
/// recording to wait for the database (SQLite's writer queue, a PostgreSQL failover).
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// The recorder gives a batch up this long before its first lease ends: after that the
/// deliveries may be attempted again, and the outcome would not be recorded anyway.
const RECORD_GIVE_UP_BEFORE: Duration = Duration::from_secs(5);
/// Longest error text kept in the delivery log.
const ERROR_MAX: usize = 500;

/// Why the dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("webhook HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// The delay before retry number `failures` (1 after the first failed attempt): `base` doubled
/// per earlier failure, capped at an hour, then scaled by a random factor in [0.5, 1] so that
/// deliveries that failed together do not retry together.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Resolves target names and keeps only public addresses (unless private ones are allowed), so
/// a name that points at an internal service cannot be reached even if it changed after the
/// webhook was checked at creation.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // One answer whether the name does not resolve or resolves only to private
            // addresses: the delivery log is read by organization admins, and telling the two
            // apart would map which internal names exist (a public name of theirs can be a
            // CNAME to any). The detail goes to the worker's log.
            let refused = || {
                format!("{host} is not a public internet address, or does not resolve (SSRF guard)")
            };
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(found) => found.collect(),
                Err(e) => {
                    tracing::info!(host = %host, error = %e, "a webhook's host does not resolve");
                    return Err(refused().into());
                }
            };
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                tracing::info!(host = %host, "a webhook's host resolves to no public address");
                return Err(refused().into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Runs webhook deliveries.
pub struct Dispatcher {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    settings: WebhookSettings,
    metrics: Arc<WorkerMetrics>,
    wake: Arc<Notify>,
    /// Attempts in flight per webhook and per organization.
    slots: Arc<DeliverySlots>,
}

impl Dispatcher {
    /// A dispatcher; `wake` is notified when new deliveries were queued in this process.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        settings: WebhookSettings,
        metrics: Arc<WorkerMetrics>,
        wake: Arc<Notify>,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could lead anywhere, including inside the network: 3xx is a failure.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve and reach targets past the guard.
            .no_proxy()
            .pool_max_idle_per_host(settings.concurrency as usize);
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self {
            store,
            client: builder.build()?,
            slots: Arc::new(DeliverySlots::new(settings.concurrency as usize)),
            settings,
            metrics,
            wake,
        })
    }

    /// How long a claim lasts: long enough for an attempt and the recording of its outcome,
    /// with the database slow or briefly away.
    fn lease(&self) -> Duration {
        self.settings.timeout * 3 + LEASE_MARGIN
    }

    /// Delivers until `stop` resolves, then lets the attempts in flight finish and records them.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.settings.concurrency as usize));
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_outcomes(
            this.store.clone(),
            this.settings.switch_off_after(),
            outcomes_rx,
        ));
        tokio::pin!(stop);
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = this.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
            // Wait for a free slot, then take as many as are free (up to a batch).
            let first = tokio::select! {
                () = &mut stop => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut permits = vec![first];
            while permits.len() < CLAIM_BATCH {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let now = Utc::now();
            // Stored to the microsecond: outcomes are recorded against this exact value.
            let lease_until = (now + this.lease()).trunc_subsecs(6);
            let busy = this.slots.busy_webhooks();
            let claimed = this
                .store
                .claim_due_deliveries(now, lease_until, permits.len() as u32, &busy)
                .await;
            let due = match claimed {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                    pause = (pause * 2).clamp(IDLE_POLL, Duration::from_secs(10));
                    continue;
                }
            };
            // A full batch means there may be more due right away.
            pause = if due.len() >= permits.len() {
                Duration::ZERO
            } else {
                IDLE_POLL
            };
            let mut handed_back = Vec::new();
            for delivery in due {
                // A webhook, and an organization, get at most their share of the slots; the
                // rest of their deliveries go back to wait, so that neither one slow target
                // nor one organization's can hold up every other one.
                let Some(slot) = this.slots.take(delivery.webhook_id, delivery.event.org_id) else {
                    handed_back.push(delivery.id);
                    continue;
                };
                // The store returns at most what was asked for; should it return more, the
                // extra ones wait for a slot rather than sit claimed until their lease lapses.
                let permit = match permits.pop() {
                    Some(p) => p,
                    None => match slots.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let this = this.clone();
                let outcomes = outcomes_tx.clone();
                tokio::spawn(async move {
                    let outcome = this.attempt(delivery, lease_until).await;
                    let _ = outcomes.send(outcome);
                    drop(slot);
                    drop::<OwnedSemaphorePermit>(permit);
                });
            }
            if !handed_back.is_empty() {
                if let Err(e) = this
                    .store
                    .release_deliveries(&handed_back, lease_until, now)
                    .await
                {
                    // Their claims lapse on their own; they are only late.
                    tracing::warn!(error = %e, "handing deliveries back failed");
                }
            }
        }
        // Wait for the attempts in flight (each bounded by the timeout), then for their records.
        let _ = slots.acquire_many(this.settings.concurrency).await;
        drop(outcomes_tx);
        let _ = recorder.await;
    }

    /// One attempt at one delivery, claimed until `claimed_until`.
    #[tracing::instrument(skip_all, fields(delivery_id = delivery.id, webhook_id = delivery.webhook_id, event_id = %delivery.event.id))]
    async fn attempt(&self, delivery: DueDelivery, claimed_until: DateTime<Utc>) -> AttemptOutcome {
        let started = Instant::now();
        let answer = self.send(&delivery).await;
        self.metrics
            .webhook_request_seconds
            .observe(started.elapsed().as_secs_f64());
        let attempts = delivery.attempts + 1;
        let result = match answer {
            Ok(code) if (200..300).contains(&code) => {
                AttemptResult::Delivered { status_code: code }
            }
            Ok(410) => AttemptResult::Gone,
            Ok(code) => self.failure(attempts, &delivery, Some(code), format!("HTTP {code}")),
            Err(error) => self.failure(attempts, &delivery, None, error),
        };
        let label = match &result {
            AttemptResult::Delivered { .. } => {
                let lag = (Utc::now() - delivery.event.created_at)
                    .num_milliseconds()
                    .max(0);
                self.metrics
                    .webhook_delivery_lag_seconds
                    .observe(lag as f64 / 1000.0);
                "delivered"
            }
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Failed { .. } => "failed",
            AttemptResult::Gone => "gone",
        };
        if label != "retry" {
            self.metrics
                .webhook_attempts_per_delivery
                .observe(f64::from(attempts));
        }
        self.metrics
            .webhook_attempts
            .with_label_values(&[label])
            .inc();
        if label != "delivered" {
            tracing::info!(
                delivery_id = delivery.id,
                webhook_id = delivery.webhook_id,
                attempts,
                result = label,
                "webhook attempt did not succeed"
            );
        }
        AttemptOutcome {
            delivery_id: delivery.id,
            webhook_id: delivery.webhook_id,
            url: delivery.url,
            claimed_until,
            result,
        }
    }

    /// Retry later, or give up when the attempts are used up.
    fn failure(
        &self,
        attempts: i32,
        delivery: &DueDelivery,
        status_code: Option<i32>,
        error: String,
    ) -> AttemptResult {
        let limit = delivery
            .max_attempts
            .filter(|n| *n > 0)
            .unwrap_or(self.settings.max_attempts as i32);
        if attempts >= limit {
            AttemptResult::Failed { status_code, error }
        } else {
            let wait = backoff(self.settings.backoff_base, attempts as u32);
            AttemptResult::Retry {
                status_code,
                error,
                next_attempt_at: Utc::now() + wait,
            }
        }
    }

    /// POSTs the signed event; the target's status code, or why there was none.
    async fn send(&self, delivery: &DueDelivery) -> Result<i32, String> {
        let url = reqwest::Url::parse(&delivery.url).map_err(|e| format!("invalid URL: {e}"))?;
        // Addresses written as such never reach the resolver, so check them here.
        if !self.settings.allow_private {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
                return Err(format!("{ip} is not a public address (SSRF guard)"));
            }
        }
        let event = &delivery.event;
        let body = event
            .webhook_body()
            .map_err(|e| format!("encoding the event failed: {e}"))?;
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("ChatBoard-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-ChatBoard-Event", event.event_type.as_str())
            .header("X-ChatBoard-Delivery", delivery.id.to_string())
            .header("X-ChatBoard-Timestamp", timestamp.to_string())
            .header(
                "X-ChatBoard-Signature",
                signature(&delivery.secret, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e, self.settings.timeout))?;
        Ok(i32::from(response.status().as_u16()))
    }
}

/// A request failure in words, with its causes (reqwest's own message is generic).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let mut text = String::new();
    let mut cause: Option<&dyn StdError> = e.source();
    while let Some(c) = cause {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c.to_string());
        cause = c.source();
    }
    if text.is_empty() {
        text = e.to_string();
    }
    text.chars().take(ERROR_MAX).collect()
}

/// Records outcomes as they come, in batches; on a database failure it keeps the batch and
/// tries again (if it stays down, the leases lapse and the deliveries are attempted again:
/// at-least-once).
async fn record_outcomes(
    store: Arc<dyn WebhookStore>,
    switch_off_after: Option<chrono::Duration>,
    mut rx: mpsc::UnboundedReceiver<AttemptOutcome>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(outcome) => batch.push(outcome),
                Err(_) => break,
            }
        }
        // Tried again until shortly before the batch's first claim lapses: a database away
        // for a while costs the outcomes nothing, where giving up would send them again.
        let give_up_at = batch
            .iter()
            .map(|o| o.claimed_until)
            .min()
            .unwrap_or_else(Utc::now)
            - chrono::Duration::from_std(RECORD_GIVE_UP_BEFORE).unwrap_or_default();
        let mut pause = Duration::from_millis(100);
        loop {
            match store
                .record_attempts(&batch, switch_off_after, Utc::now())
                .await
            {
                Ok(()) => break,
                Err(e) if Utc::now() + pause >= give_up_at => {
                    // Their claims lapse and they are attempted again: late, not lost.
                    tracing::error!(error = %e, outcomes = batch.len(), "recording webhook outcomes failed; giving them up");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, outcomes = batch.len(), "recording webhook outcomes failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(10);
        for failures in 1..=6u32 {
            let full = base * (1 << (failures - 1));
            for _ in 0..50 {
                let wait = backoff(base, failures);
                assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
            }
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
        assert!(backoff(base, 40) >= MAX_BACKOFF / 2);
    }
}
