//! The `operator` binary against a real kube-apiserver, PostgreSQL and NATS: alone with leader
//! election off, and as replicas handing a Lease over when the leader is stopped or killed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use crds::Organization;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cluster::{eventually, leads, org, ready, Cluster, Platform};
use testing::process::{scrape, series, Service};

/// How long the chart gives an operator pod to stop (`terminationGracePeriodSeconds`).
const GRACE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_off_it_reconciles_reports_and_stops_on_sigterm() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let Some(platform) = Platform::start().await else {
        return;
    };
    let ns = cluster.namespace("solo").await;
    let second = cluster.namespace("solo-too").await;
    let both = format!("{ns}, {second}");
    let mut operator = platform.operator(
        &cluster.kubeconfig,
        &ns,
        "solo",
        15,
        &[
            ("CHATBOARD_OPERATOR_NAMESPACE", both.as_str()),
            ("CHATBOARD_OPERATOR_LEADER_ELECTION", "false"),
            ("CHATBOARD_HTTP_HEADER_TIMEOUT_MS", "300"),
        ],
    );
    let base = operator.wait_for_address("the operator's banner");
    // Its health and metrics listener hangs up on slow clients like every other service's.
    testing::slow_client::assert_half_a_head_is_hung_up_on(&base).await;

    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    ready(&orgs, "acme", "True", 1).await;
    // Both namespaces of the comma-separated list are watched.
    let more: Api<Organization> = Api::namespaced(cluster.client.clone(), &second);
    more.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    ready(&more, "acme", "True", 1).await;
    assert_eq!(leads(&base).await, Some(true));
    assert_eq!(
        series(&scrape(&base).await, "chatboard_operator_leader"),
        1.0
    );
    // No Lease is taken when election is off.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
    assert!(leases
        .get_opt("chatboard-operator")
        .await
        .unwrap()
        .is_none());

    let stopping = Instant::now();
    let status = operator
        .stop_within(GRACE)
        .expect("the operator exits within the grace period after SIGTERM");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "leader election off: stopped {:?} after SIGTERM",
        stopping.elapsed()
    );
    cluster.delete_namespace(&ns).await;
    cluster.delete_namespace(&second).await;
}

/// Which of `replicas` (with their bases) leads, once exactly one says so.
async fn the_leader(replicas: &[(&str, &str)]) -> String {
    eventually("exactly one leader", || async {
        let mut leaders = Vec::new();
        for (name, base) in replicas {
            match leads(base).await {
                Some(true) => leaders.push(name.to_string()),
                Some(false) => {}
                None => return None,
            }
        }
        (leaders.len() == 1).then(|| leaders.remove(0))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_after_sigterm_and_after_sigkill() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let Some(platform) = Platform::start().await else {
        return;
    };
    let ns = cluster.namespace("failover").await;
    let ttl = 6;
    let start = |identity: &str| -> (Service, String) {
        let mut replica = platform.operator(&cluster.kubeconfig, &ns, identity, ttl, &[]);
        let base = replica.wait_for_address("the operator's banner");
        (replica, base)
    };
    let (a, base_a) = start("a");
    let (b, base_b) = start("b");
    let leader = the_leader(&[("a", &base_a), ("b", &base_b)]).await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org("one", json!({"displayName": "One"})),
    )
    .await
    .unwrap();
    ready(&orgs, "one", "True", 1).await;

    // SIGTERM: the leader stops reconciling and gives the Lease up; the standby takes it on
    // its next try (every third of the lease duration).
    let (leading, standby, standby_base) = if leader == "a" {
        (a, b, base_b)
    } else {
        (b, a, base_a)
    };
    let sigterm = Instant::now();
    let status = leading
        .stop_within(GRACE)
        .expect("the leader exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    eventually("the standby leads", || async {
        (leads(&standby_base).await == Some(true)).then_some(())
    })
    .await;
    let after_sigterm = sigterm.elapsed();
    orgs.create(
        &PostParams::default(),
        &org("two", json!({"displayName": "Two"})),
    )
    .await
    .unwrap();
    ready(&orgs, "two", "True", 1).await;

    // SIGKILL: nothing is given up; a new standby takes the Lease once it has seen it stand
    // unrenewed for a whole lease duration.
    let (c, base_c) = start("c");
    assert_eq!(leads(&base_c).await, Some(false));
    let sigkill = Instant::now();
    standby.kill();
    eventually("the new standby leads", || async {
        (leads(&base_c).await == Some(true)).then_some(())
    })
    .await;
    let after_sigkill = sigkill.elapsed();
    orgs.create(
        &PostParams::default(),
        &org("three", json!({"displayName": "Three"})),
    )
    .await
    .unwrap();
    ready(&orgs, "three", "True", 1).await;

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
    let lease = leases
        .get("chatboard-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("c"));
    assert!(lease.lease_transitions.unwrap_or(0) >= 2, "{lease:?}");
    eprintln!(
        "failover with a {ttl} s Lease: {after_sigterm:?} after SIGTERM, {after_sigkill:?} after SIGKILL"
    );
    let ttl = Duration::from_secs(ttl.into());
    // A stopped leader gives the Lease up: the standby takes it on its next try (every third of
    // the duration), not after it expires. The bound leaves two thirds of a duration to spare.
    assert!(after_sigterm < ttl, "took {after_sigterm:?}: no step-down?");
    // A killed one gives nothing up: the standby waits a whole duration from the last renewal
    // it saw, which came at most a third of a duration before the kill.
    assert!(
        after_sigkill >= ttl * 2 / 3,
        "took over after {after_sigkill:?}: too soon"
    );
    assert!(c.stop_within(GRACE).is_some_and(|s| s.success()));
    cluster.delete_namespace(&ns).await;
}
