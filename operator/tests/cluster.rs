//! Opt-in end-to-end suite against a real Kubernetes cluster (kind, k3d, ...): the CRDs are
//! applied, both controllers run in this process against the cluster from `KUBECONFIG` and a
//! PostgreSQL database from `DATABASE_URL`, and an Organization and a Webhook go through their
//! life in a namespace of their own (deleted afterwards).
//!
//! ```sh
//! KUBECONFIG=~/.kube/config DATABASE_URL=postgres://... cargo test -p operator --test cluster -- --ignored
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use crds::{Organization, OrganizationSpec, Webhook, WebhookSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use operator::context::{Context, Settings};
use operator::metrics::Metrics;
use serde_json::json;
use testing::{TestDb, TestEngine};
use tokio::sync::watch;

/// Polls `check` every 250 ms for up to 60 s.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..240 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}

fn is_ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes cluster (KUBECONFIG) and PostgreSQL (DATABASE_URL)"]
async fn organization_and_webhook_on_a_real_cluster() {
    let client = kube::Client::try_default()
        .await
        .expect("a cluster from KUBECONFIG");
    let (_db, url) = TestDb::create(TestEngine::Postgres)
        .await
        .expect("DATABASE_URL names PostgreSQL");
    let store = chatboard_store::connect(&url, 5).await.unwrap();
    store.migrate().await.unwrap();

    // The CRDs, as the chart installs them, established before use.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Organization::crd(), Webhook::crd()] {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("chatboard-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        wait_for(&format!("CRD {name} established"), || async {
            let crd = crds.get(&name).await.ok()?;
            let conditions = crd.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
    let ns = format!("chatboard-e2e-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    let settings = Settings {
        resync: Duration::from_secs(5),
        recheck: Duration::from_secs(1),
        allow_private_webhooks: true,
    };
    let metrics = Arc::new(Metrics::new().unwrap());
    let chat = chat::Chat::new(
        store.clone(),
        Arc::new(chatboard_core::bus::LocalBus::default()),
        chat::ChatSettings {
            posts_per_minute: 0,
            invite_ttl: Duration::from_secs(3600),
            public_url: None,
            allow_private_webhooks: true,
            upload_quotas: Default::default(),
        },
        &metrics.registry,
    )
    .unwrap();
    let ctx = Arc::new(Context::new(client.clone(), chat, settings, metrics, "e2e"));
    let (stop, stopped) = watch::channel(false);
    let controllers = tokio::spawn(operator::service::run_controllers(
        ctx,
        Some(ns.clone()),
        async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));

    let orgs: Api<Organization> = Api::namespaced(client.clone(), &ns);
    let spec: OrganizationSpec =
        serde_json::from_value(json!({"displayName": "Acme", "quotas": {"maxRooms": 5}})).unwrap();
    orgs.create(&PostParams::default(), &Organization::new("acme", spec))
        .await
        .unwrap();
    let org_id = wait_for("Organization Ready", || async {
        let o = orgs.get("acme").await.ok()?;
        let status = o.status.as_ref()?;
        is_ready(&status.conditions).then_some(status.org_id?)
    })
    .await;
    let managed = store
        .managed_org(&format!("{ns}/acme"))
        .await
        .unwrap()
        .expect("in the database");
    assert_eq!(managed.org_id, org_id);

    let hooks: Api<Webhook> = Api::namespaced(client.clone(), &ns);
    let spec: WebhookSpec =
        serde_json::from_value(json!({"organizationRef": {"name": "acme"}, "url": "http://127.0.0.1:9/h", "events": ["*"]})).unwrap();
    hooks
        .create(&PostParams::default(), &Webhook::new("audit", spec))
        .await
        .unwrap();
    let webhook_id = wait_for("Webhook Ready", || async {
        let w = hooks.get("audit").await.ok()?;
        let status = w.status.as_ref()?;
        is_ready(&status.conditions).then_some(status.webhook_id?)
    })
    .await;
    assert!(store
        .webhook(webhook_id)
        .await
        .unwrap()
        .is_some_and(|w| w.managed));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = secrets.get("audit-hmac").await.expect("the owned Secret");
    assert_eq!(secret.owner_references().len(), 1);

    // Deleting releases the finalizers once the database is cleaned up.
    hooks
        .delete("audit", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("Webhook gone", || async {
        hooks.get_opt("audit").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(store.webhook(webhook_id).await.unwrap().is_none());
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    wait_for("Organization gone", || async {
        orgs.get_opt("acme").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        store
            .managed_org(&format!("{ns}/acme"))
            .await
            .unwrap()
            .is_some_and(|o| o.archived),
        "Retain archives"
    );

    stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
