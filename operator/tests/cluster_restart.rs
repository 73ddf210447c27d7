//! The operator carries on across a kube-apiserver restart: its watches break and are opened
//! again (a relist, since the new apiserver's watch cache starts past the resourceVersion they
//! held: 410 Gone), its Lease renewals fail for a while and then succeed. Alone in its test
//! binary, because it restarts the apiserver every test shares.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use crds::Organization;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::cluster::{eventually, leads, org, ready, Cluster, Platform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_carries_on_after_the_apiserver_restarts() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let Some(platform) = Platform::start().await else {
        return;
    };
    let ns = cluster.namespace("restart").await;
    // A Lease that outlasts the restart: leadership is kept throughout, so what happens after
    // is the same controllers' watches coming back, not new controllers listing afresh.
    let mut operator = platform.operator(&cluster.kubeconfig, &ns, "survivor", 90, &[]);
    let base = operator.wait_for_address("the operator's banner");
    eventually("the operator leads", || async {
        (leads(&base).await == Some(true)).then_some(())
    })
    .await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org("before", json!({"displayName": "Before"})),
    )
    .await
    .unwrap();
    ready(&orgs, "before", "True", 1).await;

    let restarting = Instant::now();
    tokio::task::block_in_place(|| cluster.restart_apiserver());
    eprintln!(
        "kube-apiserver down and up again in {:?}",
        restarting.elapsed()
    );

    // What changes after the restart is reconciled: a new resource and a spec change.
    orgs.create(
        &PostParams::default(),
        &org("after", json!({"displayName": "After"})),
    )
    .await
    .unwrap();
    orgs.patch(
        "before",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"displayName": "Before, renamed"}})),
    )
    .await
    .unwrap();
    ready(&orgs, "after", "True", 1).await;
    ready(&orgs, "before", "True", 2).await;
    assert_eq!(leads(&base).await, Some(true));
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
    let lease = leases
        .get("chatboard-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        lease.lease_transitions,
        Some(0),
        "leadership never changed hands"
    );
    let status = operator
        .stop_within(Duration::from_secs(20))
        .expect("the operator exits after SIGTERM");
    assert!(status.success());
    cluster.delete_namespace(&ns).await;
}
