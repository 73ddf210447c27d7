//! Leader election through a Lease on the fake Kubernetes API.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use operator::leader::LeaderElection;
use support::FakeApi;

const LEASES: &str = "coordination.k8s.io/v1/leases";

fn candidate(api: &FakeApi, identity: &str, ttl: Duration) -> LeaderElection {
    LeaderElection::new(api.client(), "ops", "chatboard-operator", identity, ttl)
}

/// Candidate "a" campaigning (until the returned sender is dropped), once it leads: whether it
/// leads, as it says.
async fn leader(
    api: &FakeApi,
    ttl: Duration,
) -> (
    tokio::sync::watch::Receiver<bool>,
    tokio::sync::watch::Sender<bool>,
) {
    let (leading_tx, mut leading) = tokio::sync::watch::channel(false);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(candidate(api, "a", ttl).run(leading_tx, stop));
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| *l))
        .await
        .expect("leads within 30 s")
        .unwrap();
    (leading, stop_tx)
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
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    // a renews what it holds while b takes what it has seen stand unrenewed for a whole
    // duration; both replace the same resourceVersion, which lets one through.
    let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    assert!(won_a.unwrap() ^ won_b.unwrap());
}

/// Writes the Lease as another replica whose clock is `skew` off ours would: holder `holder`,
/// renewed "now" by its clock, lasting one second.
async fn renew_as(api: &FakeApi, holder: &str, skew: SignedDuration) {
    let leases: Api<Lease> = Api::namespaced(api.client(), "ops");
    let renewed = MicroTime(Timestamp::now() + skew);
    let spec = LeaseSpec {
        holder_identity: Some(holder.into()),
        renew_time: Some(renewed.clone()),
        acquire_time: Some(renewed),
        lease_duration_seconds: Some(1),
        ..LeaseSpec::default()
    };
    match leases.get_opt("chatboard-operator").await.unwrap() {
        Some(mut lease) => {
            lease.spec = Some(spec);
            leases
                .replace("chatboard-operator", &PostParams::default(), &lease)
                .await
                .unwrap();
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some("chatboard-operator".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &lease).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_holder_whose_clock_is_behind_keeps_the_lease_while_it_renews() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(1);
    let behind = SignedDuration::from_hours(-1);
    let standby = candidate(&api, "standby", ttl);
    // Every renewal carries a renewTime an hour old by our clock, yet it is a renewal: for more
    // than two lease durations the standby must keep off.
    for round in 0..10 {
        renew_as(&api, "holder", behind).await;
        assert!(
            !standby.try_acquire_or_renew().await.unwrap(),
            "took a renewed Lease over in round {round}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Once the renewals stop, the Lease is taken over a whole duration after the last one was
    // seen, and not before.
    renew_as(&api, "holder", behind).await;
    let last_seen = Instant::now();
    assert!(!standby.try_acquire_or_renew().await.unwrap());
    while !standby.try_acquire_or_renew().await.unwrap() {
        assert!(
            last_seen.elapsed() < Duration::from_secs(30),
            "never taken over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last_seen.elapsed() >= ttl);
}

#[tokio::test]
async fn a_dead_holder_whose_clock_was_ahead_loses_the_lease_after_one_duration() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(1);
    // Its last renewTime lies an hour ahead of our clock: by timestamps it would hold on for
    // an hour after dying.
    renew_as(&api, "holder", SignedDuration::from_hours(1)).await;
    let standby = candidate(&api, "standby", ttl);
    let first_seen = Instant::now();
    while !standby.try_acquire_or_renew().await.unwrap() {
        assert!(
            first_seen.elapsed() < Duration::from_secs(30),
            "a dead holder kept the Lease for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first_seen.elapsed() >= ttl);
}

/// A leader whose renewals hang (its connection to the API server lost without a reset) stops
/// leading on its own, before a standby may take the Lease: the client has no read timeout, and
/// a hanging call once kept it leading for as long as it hung.
#[tokio::test]
async fn a_leader_whose_renewals_hang_steps_down() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(3);
    let (mut leading, _stop) = leader(&api, ttl).await;
    api.stall(axum::http::Method::GET, "leases");
    api.stall(axum::http::Method::PUT, "leases");
    let stalled_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| !*l))
        .await
        .expect("steps down while its renewals hang")
        .unwrap();
    eprintln!("stepped down {:?} after the stall", stalled_at.elapsed());
}

/// A renewal counts from when it was sent, not from when its answer came back: the server wrote
/// it before answering, and a standby times its takeover from that write. A leader whose answers
/// came back late (a slow network) kept leading that much longer after its last renewal, into
/// the time a standby may take the Lease; and it stepped down only between its calls.
#[tokio::test]
async fn a_leader_steps_down_on_time_from_its_last_renewal_sent() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(6);
    let period = ttl / 3;
    let (mut leading, _stop) = leader(&api, ttl).await;
    api.answer_late(axum::http::Method::PUT, "leases", period * 9 / 10);
    // Two renewals answered late, then none at all.
    let renewals = api.requests("PUT", "leases");
    while api.requests("PUT", "leases") < renewals + 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.stall(axum::http::Method::GET, "leases");
    api.stall(axum::http::Method::PUT, "leases");
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| !*l))
        .await
        .expect("steps down")
        .unwrap();
    let stepped_down = Timestamp::now();
    let lease = api
        .get(LEASES, "ops", "chatboard-operator")
        .expect("the Lease");
    let renewed: Timestamp = lease["spec"]["renewTime"]
        .as_str()
        .expect("a renewTime")
        .parse()
        .expect("a time");
    // Two thirds of the duration after the last renewal was written (its renewTime is taken
    // after it was sent), with a second's slack for this test's own wake-up.
    let latest = renewed + SignedDuration::try_from(period * 2 + Duration::from_secs(1)).unwrap();
    assert!(
        stepped_down <= latest,
        "stepped down at {stepped_down}, renewed at {renewed}: later than {latest}"
    );
}

/// One renewal that fails (an API server restarting) costs no leadership: the next attempt
/// comes soon enough to renew before the lapse. It used to come a whole period later, at the
/// lapse itself, and every such failure stopped and restarted the controllers.
#[tokio::test]
async fn one_failed_renewal_costs_no_leadership() {
    let api = FakeApi::start().await;
    let ttl = Duration::from_secs(3);
    let (leading, _stop) = leader(&api, ttl).await;
    let mut watching = leading.clone();
    let stepped_down = tokio::spawn(async move {
        let _ = watching.wait_for(|l| !*l).await;
    });
    let renewals = api.requests("PUT", "leases");
    api.fail(axum::http::Method::PUT, "leases", 1);
    // The failed renewal and three good ones after it.
    while api.requests("PUT", "leases") < renewals + 4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!stepped_down.is_finished(), "stepped down over one failure");
    assert!(*leading.borrow());
}
