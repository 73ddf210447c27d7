//! Leader election through a Lease on the fake Kubernetes API.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use operator::leader::LeaderElection;
use support::FakeApi;

const LEASES: &str = "coordination.k8s.io/v1/leases";

fn candidate(api: &FakeApi, identity: &str, ttl: Duration) -> LeaderElection {
    LeaderElection::new(api.client(), "ops", "chatboard-operator", identity, ttl)
}

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(2);
    let (a, b) = (candidate(&api, "a", ttl), candidate(&api, "b", ttl));

    // Racing for a Lease that does not exist yet: exactly one creates it.
    let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
    assert!(won_a ^ won_b, "exactly one wins: a={won_a} b={won_b}");
    let (leader, standby) = if won_a { (&a, &b) } else { (&b, &a) };

    // The holder renews; the other keeps waiting.
    assert!(leader.try_acquire_or_renew().await.unwrap());
    assert!(!standby.try_acquire_or_renew().await.unwrap());

    // A holder that stops renewing loses the Lease once it is overdue (and not before).
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(standby.try_acquire_or_renew().await.unwrap());
    assert!(!leader.try_acquire_or_renew().await.unwrap());
    let lease = api.get(LEASES, "ops", "chatboard-operator").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // Stepping down frees it at once.
    standby.step_down().await.unwrap();
    assert!(leader.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn a_stale_write_loses() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(1);
    let (a, b) = (candidate(&api, "a", ttl), candidate(&api, "b", ttl));
    assert!(a.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    // Both see the overdue Lease and try to take it; the resourceVersion lets one through.
    let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    assert!(won_a.unwrap() ^ won_b.unwrap());
}
