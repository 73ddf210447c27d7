//! Leader election through a `coordination.k8s.io` Lease, as client-go does it: the holder
//! renews the Lease every third of its duration; another replica takes it over only once a
//! renewal is overdue. Every write is a replace guarded by the Lease's `resourceVersion`, so of
//! two replicas racing for it exactly one wins (the other gets 409 Conflict).
//!
//! "Overdue" is judged on this process's own monotonic clock, never by comparing the holder's
//! `renewTime` with ours: a candidate notes when it saw the Lease's record change and takes over
//! only when it has not changed for a whole lease duration since. A holder whose clock runs
//! behind (renewTimes in the past) is not robbed, and one whose clock runs ahead does not keep
//! the Lease past its death.
//!
//! (The crates we looked at either pin an older `kube` or rely on server-side-apply field
//! ownership for the race; a replace with optimistic concurrency is the smallest correct form.)

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// One replica's candidacy for a Lease.
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    ttl: Duration,
    /// The Lease's record as last seen, and when (on our clock) it was first seen so.
    observed: Mutex<Option<(LeaseSpec, Instant)>>,
}

impl LeaderElection {
    /// A candidacy for the Lease `namespace/name` under `identity` (unique per replica).
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, ttl: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            ttl,
            observed: Mutex::new(None),
        }
    }

    /// Notes the record `spec` as seen now unless it is the one seen before; says whether it
    /// has stood unchanged for longer than the duration it claims (on our clock).
    fn expired_since_observed(&self, spec: &LeaseSpec) -> bool {
        let now = Instant::now();
        let Ok(mut observed) = self.observed.lock() else {
            return false;
        };
        let since = match observed.as_ref() {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                *observed = Some((spec.clone(), now));
                now
            }
        };
        let claimed = spec
            .lease_duration_seconds
            .and_then(|secs| u64::try_from(secs).ok())
            .map_or(self.ttl, Duration::from_secs);
        now.duration_since(since) > claimed
    }

    /// Takes or renews the Lease if it is free, ours or overdue; says whether we hold it now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let ttl_secs = i32::try_from(self.ttl.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_duration_seconds: Some(ttl_secs),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return lost_race_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        let overdue = self.expired_since_observed(&spec);
        if !(ours || free || overdue) {
            return Ok(false);
        }
        let mut next = lease.clone();
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(ttl_secs),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..spec
        });
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &next)
                .await,
        )
    }

    /// Gives the Lease up if we hold it, so another replica takes over at once.
    pub async fn step_down(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    /// Campaigns until `shutdown` fires, telling `leading` whether we hold the Lease. Leadership
    /// lapses two thirds of the Lease's duration after the last renewal that succeeded, timed
    /// from when that renewal was sent (the server may have written it long before its answer
    /// came back), and on time, even while a call hangs: well before another replica may take
    /// the Lease, whatever the calls do meanwhile.
    pub async fn run(self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let period = self.ttl / 3;
        // After an attempt that got no answer, the next comes sooner, so that one failed
        // renewal (an API server restarting) costs no leadership: several fit before the lapse.
        let retry = period / 4;
        // When leadership lapses unless a renewal succeeds first.
        let mut lapse: Option<Instant> = None;
        let tell = |holding: bool| {
            if *leading.borrow() != holding {
                tracing::info!(identity = %self.identity, leading = holding, "leadership changed");
            }
            leading.send_replace(holding);
        };
        loop {
            let sent = Instant::now();
            // Bounded: the client sets no read timeout, and a call hanging on a lost
            // connection would otherwise keep us leading long after a standby took the Lease.
            let attempt = tokio::time::timeout(period, self.try_acquire_or_renew());
            let outcome = tokio::select! {
                outcome = attempt => Some(outcome),
                () = until(lapse) => None,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let answered = match outcome {
                Some(Ok(Ok(true))) => {
                    lapse = Some(sent + period * 2);
                    true
                }
                Some(Ok(Ok(false))) => {
                    lapse = None;
                    true
                }
                Some(Ok(Err(e))) => {
                    tracing::warn!(error = %e, lease = %self.name, "could not reach the leader Lease");
                    false
                }
                Some(Err(_)) => {
                    tracing::warn!(lease = %self.name, "the leader Lease did not answer in time");
                    false
                }
                None => false, // lapsed while the call hung
            };
            if lapse.is_some_and(|at| Instant::now() >= at) {
                lapse = None;
            }
            tell(lapse.is_some());
            // Timed from the send, so that a slow answer does not push the next renewal back.
            let next = if answered {
                sent + period
            } else {
                Instant::now() + retry
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = until(lapse) => {
                    lapse = None;
                    tell(false);
                }
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            // Bounded like a renewal: a hanging API server must not hold the shutdown.
            match tokio::time::timeout(period, self.step_down()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not give the leader Lease up"),
                Err(_) => tracing::warn!("the leader Lease did not answer in time to be given up"),
            }
        }
    }
}

/// Resolves at `at`; never without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A 409 (someone else created or changed the Lease first) means we did not get it.
fn lost_race_is_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
