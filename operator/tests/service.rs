//! The operator as a service: controllers run only while this replica leads, and the health
//! and metrics endpoints.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use testing::both_engines;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use crds::{Organization, OrganizationSpec, Webhook, WebhookSpec};
use kube::api::{Api, PostParams};
use operator::service::{router, ServiceState};
use serde_json::json;
use support::{eventually, ready_of, Harness, NS, ORGS};
use testing::TestEngine;
use tokio::sync::watch;
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn reconciles_only_while_leading(engine: TestEngine) {
    let (leading_tx, leading) = watch::channel(false);
    let Some(h) = Harness::start_following(engine, leading.clone()).await else {
        return;
    };
    let app = router(ServiceState {
        ctx: h.ctx.clone(),
        leading,
    });
    let spec: OrganizationSpec = serde_json::from_value(json!({"displayName": "Acme"})).unwrap();
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(&PostParams::default(), &Organization::new("acme", spec))
        .await
        .unwrap();

    // A standby is live and ready, says it does not lead, and leaves the resource alone.
    assert_eq!(get(&app, "/health/live").await.0, StatusCode::OK);
    let (status, body) = get(&app, "/health/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""leader":false"#), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        h.api.get(ORGS, NS, "acme").unwrap()["status"].is_null(),
        "not reconciled while standing by"
    );
    assert_eq!(h.metric("chatboard_operator_leader"), 0.0);

    // Once it leads, it reconciles.
    leading_tx.send_replace(true);
    eventually("Ready while leading", || async {
        let o = h.api.get(ORGS, NS, "acme")?;
        (ready_of(&o)?.0 == "True").then_some(())
    })
    .await;
    h.metric_reaches("chatboard_operator_leader", |n| n == 1.0)
        .await;
    let (_, body) = get(&app, "/health/ready").await;
    assert!(body.contains(r#""leader":true"#), "{body}");
    let (status, metrics) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        r#"chatboard_operator_reconciliations_total{kind="Organization",result="ok"}"#,
        "chatboard_operator_reconcile_duration_seconds_bucket",
        r#"chatboard_operator_resources_not_ready{kind="Webhook"} 0"#,
        "chatboard_operator_leader 1",
    ] {
        assert!(metrics.contains(name), "{name} in\n{metrics}");
    }

    // A Webhook whose Organization does not exist is not Ready, and counted.
    let spec: WebhookSpec = serde_json::from_value(json!({
        "organizationRef": {"name": "nobody"}, "url": "https://hooks.example.com/h", "events": ["*"]
    }))
    .unwrap();
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    hooks
        .create(&PostParams::default(), &Webhook::new("orphan", spec))
        .await
        .unwrap();
    eventually("the orphan Webhook counted as not Ready", || async {
        (h.metric(r#"chatboard_operator_resources_not_ready{kind="Webhook"}"#) == 1.0).then_some(())
    })
    .await;

    // Losing the lead stops the controllers, and a standby reports nothing as not Ready: the
    // new leader does (an alert summing over replicas would otherwise count it twice, forever).
    leading_tx.send_replace(false);
    eventually("controllers stopped", || async {
        (h.metric("chatboard_operator_leader") == 0.0).then_some(())
    })
    .await;
    h.metric_reaches(
        r#"chatboard_operator_resources_not_ready{kind="Webhook"}"#,
        |n| n == 0.0,
    )
    .await;
    h.stop().await;
}

both_engines!(
    reconciles_only_while_leading,
    a_failing_watch_is_counted_and_retried
);

/// The operator announces the seat changes it applies on NATS: while NATS is away it is not
/// ready (503, the body naming NATS), and it is again once NATS is back.
#[tokio::test]
async fn readiness_follows_nats() {
    let Some(mut nats) = testing::OwnNats::start() else {
        return;
    };
    let (_db, url) = testing::TestDb::create(TestEngine::Sqlite)
        .await
        .expect("SQLite is always there");
    let store = chatboard_store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let bus = chatboard_core::bus::NatsBus::connect(&nats.url(), &testing::unique_prefix())
        .await
        .unwrap();
    let api = support::FakeApi::start().await;
    let ctx = support::context(
        api.client(),
        api.client(),
        store,
        std::sync::Arc::new(bus),
        Duration::from_secs(60),
    );
    let (_leading_tx, leading) = watch::channel(true);
    let app = router(ServiceState { ctx, leading });
    let (status, body) = get(&app, "/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""nats":"ok""#), "{body}");

    nats.kill();
    eventually("not ready without NATS", || async {
        let (status, body) = get(&app, "/health/ready").await;
        (status == StatusCode::SERVICE_UNAVAILABLE && !body.contains(r#""nats":"ok""#))
            .then_some(())
    })
    .await;
    nats.run();
    eventually("ready with NATS back", || async {
        let (status, _) = get(&app, "/health/ready").await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

/// A controller that cannot list what it follows (here the Webhooks, as with a missing CRD or
/// RBAC) reconciles nothing of that kind: each failure is counted (and logged as a warning),
/// and the list is tried again, while the other kind goes on.
async fn a_failing_watch_is_counted_and_retried(engine: TestEngine) {
    let (leading_tx, leading) = watch::channel(false);
    let Some(h) = Harness::start_following(engine, leading).await else {
        return;
    };
    h.api.fail(axum::http::Method::GET, "/webhooks", 2);
    leading_tx.send_replace(true);
    let failures = r#"chatboard_operator_watch_errors_total{kind="Webhook"}"#;
    h.metric_reaches(failures, |n| n >= 1.0).await;
    // Tried again until the list went through.
    eventually("the Webhooks listed again", || async {
        (h.api.requests("GET", "/webhooks") >= 3).then_some(())
    })
    .await;
    let spec: OrganizationSpec = serde_json::from_value(json!({"displayName": "Acme"})).unwrap();
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(&PostParams::default(), &Organization::new("acme", spec))
        .await
        .unwrap();
    eventually("the Organization Ready", || async {
        let o = h.api.get(ORGS, NS, "acme")?;
        (ready_of(&o)?.0 == "True").then_some(())
    })
    .await;
    assert_eq!(
        h.metric(r#"chatboard_operator_watch_errors_total{kind="Organization"}"#),
        0.0
    );
}

/// Losing the Lease drops the reconciles in flight at once: a standby may already be reconciling
/// the same objects, and one finishing late wrote an older spec over its work. Here a reconcile
/// waits for a database lock the test holds, and the controllers used to wait for it to finish
/// (as they still do when the operator shuts down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lead_drops_the_reconciles_in_flight() {
    let (leading_tx, leading) = watch::channel(true);
    let Some(h) = Harness::start_following(TestEngine::Postgres, leading).await else {
        return;
    };
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec: OrganizationSpec = serde_json::from_value(json!({"displayName": "Acme"})).unwrap();
    orgs.create(&PostParams::default(), &Organization::new("acme", spec))
        .await
        .unwrap();
    eventually("Ready while leading", || async {
        let o = h.api.get(ORGS, NS, "acme")?;
        (ready_of(&o)?.0 == "True").then_some(())
    })
    .await;

    let held = testing::HeldLocks::take(&h.url, "LOCK TABLE orgs IN EXCLUSIVE MODE").await;
    let renamed = json!({"spec": {"displayName": "Acme Corp"}});
    orgs.patch(
        "acme",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&renamed),
    )
    .await
    .unwrap();
    eventually("the reconcile waits for the database", || async {
        (testing::waiting_for_locks(&h.url).await > 0).then_some(())
    })
    .await;
    leading_tx.send_replace(false);
    h.metric_reaches("chatboard_operator_leader", |n| n == 0.0)
        .await;
    held.release().await;
    h.stop().await;
}
