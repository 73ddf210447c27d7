//! Both controllers against a real kube-apiserver (`.ci/kube/up`, see `support::cluster`): the
//! apiserver judges the CRDs' structural schemas and validates every spec, status and finalizer
//! write; kube-controller-manager garbage-collects what a Webhook owns. Each test works in a
//! namespace of its own with a fresh database.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chatboard_store::Store;
use chrono::Utc;
use crds::{Organization, Webhook};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use support::cluster::{eventually, hook, is_true, org, ready, Cluster};
use support::signing_secret;
use testing::{TestDb, TestEngine};
use tokio::sync::watch;

/// Both controllers of this process, watching `namespaces`, on a fresh SQLite database. Resync
/// is an hour away: what a test sees happen, the watches did.
struct Controllers {
    store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

impl Controllers {
    async fn start(cluster: &Cluster, namespaces: &[&str]) -> Self {
        let (db, url) = TestDb::create(TestEngine::Sqlite)
            .await
            .expect("SQLite is always there");
        let store = chatboard_store::connect(&url, 5).await.unwrap();
        store.migrate().await.unwrap();
        let ctx = support::context(
            cluster.client.clone(),
            cluster.client.clone(),
            store.clone(),
            Arc::new(chatboard_core::bus::LocalBus::default()),
            Duration::from_secs(3600),
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(operator::service::run_controllers(
            ctx,
            namespaces.iter().map(|ns| ns.to_string()).collect(),
            async move {
                let mut stopped = stopped;
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        Self {
            store,
            stop,
            task,
            _db: db,
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controllers stop")
            .unwrap();
    }
}

/// Reasons of the Events published about `name` in `namespace`.
async fn event_reasons(cluster: &Cluster, namespace: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_are_served_with_their_schemas_category_and_list_types() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for name in ["organizations.chatboard.io", "webhooks.chatboard.io"] {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.unwrap().conditions.unwrap();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == wanted && c.status == "True"),
                "{name} not {wanted}: {conditions:?}"
            );
        }
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["chatboard".to_owned()][..])
        );
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let list = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(list["x-kubernetes-list-type"], "map", "{name}");
        assert_eq!(
            list["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{name}"
        );
    }

    // `kubectl get chatboard` lists both kinds.
    let ns = cluster.namespace("crds").await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    let hooks: Api<Webhook> = Api::namespaced(cluster.client.clone(), &ns);
    let spec = json!({"organizationRef": {"name": "acme"}, "url": "https://hooks.example/in", "events": ["*"]});
    hooks
        .create(&PostParams::default(), &hook("audit", spec))
        .await
        .unwrap();
    let out = cluster
        .kubectl()
        .args(["get", "chatboard", "-n", &ns, "-o", "name"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains("organization.chatboard.io/acme"),
        "{listed}"
    );
    assert!(listed.contains("webhook.chatboard.io/audit"), "{listed}");
    cluster.delete_namespace(&ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_goes_through_its_life_on_a_real_apiserver() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let ns = cluster.namespace("orgs").await;
    let op = Controllers::start(&cluster, &[&ns]).await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org(
            "acme",
            json!({"displayName": "Acme", "quotas": {"maxRooms": 5}}),
        ),
    )
    .await
    .unwrap();
    let created = ready(&orgs, "acme", "True", 1).await;
    let org_id = created.status.unwrap().org_id.expect("orgId");
    assert_eq!(
        created.metadata.finalizers,
        Some(vec!["chatboard.io/cleanup".into()])
    );
    let managed = op
        .store
        .managed_org(&format!("{ns}/acme"))
        .await
        .unwrap()
        .expect("in the database");
    assert_eq!((managed.org_id, managed.archived), (org_id, false));

    // What the schema forbids never reaches the operator: the apiserver answers 422.
    let refused = orgs
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"quotas": {"maxRooms": 0}}})),
        )
        .await
        .expect_err("maxRooms 0 is below the schema's minimum");
    assert!(
        matches!(&refused, kube::Error::Api(e) if e.code == 422),
        "{refused}"
    );
    let refused = orgs
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"admins": ["not an address"]}})),
        )
        .await
        .expect_err("format: email is enforced");
    assert!(
        matches!(&refused, kube::Error::Api(e) if e.code == 422),
        "{refused}"
    );

    // What only the operator can judge: Ready=False with a Warning Event, nothing applied.
    orgs.patch(
        "acme",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"displayName": "   "}})),
    )
    .await
    .unwrap();
    let refused = ready(&orgs, "acme", "False", 2).await;
    let condition = refused.status.unwrap().conditions;
    assert_eq!(condition[0].reason, "InvalidSpec");
    eventually("an InvalidSpec Event", || async {
        event_reasons(&cluster, &ns, "acme")
            .await
            .contains(&"InvalidSpec".to_owned())
            .then_some(())
    })
    .await;

    // A good change applies: Ready again at the new generation.
    orgs.patch(
        "acme",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"displayName": "Acme Corp", "suspended": true}})),
    )
    .await
    .unwrap();
    ready(&orgs, "acme", "True", 3).await;

    // Deleted with Retain (the default): archived, the finalizer released.
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("acme gone", || async {
        orgs.get_opt("acme").await.ok()?.is_none().then_some(())
    })
    .await;
    let archived = op.store.managed_org(&format!("{ns}/acme")).await.unwrap();
    assert!(archived.is_some_and(|o| o.archived), "Retain archives");

    // Deleted with Delete: purged.
    orgs.create(
        &PostParams::default(),
        &org(
            "gone",
            json!({"displayName": "Gone", "deletionPolicy": "Delete"}),
        ),
    )
    .await
    .unwrap();
    ready(&orgs, "gone", "True", 1).await;
    orgs.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually("gone gone", || async {
        orgs.get_opt("gone").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(op
        .store
        .managed_org(&format!("{ns}/gone"))
        .await
        .unwrap()
        .is_none());
    op.stop().await;
    cluster.delete_namespace(&ns).await;
}

fn value_of(secret: &Secret) -> String {
    let bytes = &secret.data.as_ref().expect("data")["secret"].0;
    String::from_utf8(bytes.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_owns_its_secret_which_is_rotated_and_garbage_collected() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let ns = cluster.namespace("hooks").await;
    let op = Controllers::start(&cluster, &[&ns]).await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    orgs.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    let hooks: Api<Webhook> = Api::namespaced(cluster.client.clone(), &ns);
    let spec = json!({"organizationRef": {"name": "acme"}, "url": "http://127.0.0.1:9/h", "events": ["*"]});
    hooks
        .create(&PostParams::default(), &hook("audit", spec))
        .await
        .unwrap();
    let webhook_id = eventually("Webhook Ready", || async {
        let w = hooks.get("audit").await.ok()?;
        let status = w.status.as_ref()?;
        is_true(&status.conditions, "Ready").then_some(status.webhook_id?)
    })
    .await;

    // The owned Secret: controller owner reference (the apiserver checks the operator may set
    // blockOwnerDeletion), and its value is what deliveries are signed with.
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns);
    let secret = secrets.get("audit-hmac").await.expect("the owned Secret");
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Webhook", "audit")
    );
    assert_eq!(owner.controller, Some(true));
    let first = value_of(&secret);
    assert_eq!(signing_secret(&op.store, webhook_id).await, first);

    // Rotation: a new value written into the Secret is in use at once (the Secret is watched).
    let rotated = "rotated-secret-0123456789";
    let data = base64::engine::general_purpose::STANDARD.encode(rotated);
    secrets
        .patch(
            "audit-hmac",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"secret": data}})),
        )
        .await
        .unwrap();
    eventually("the rotated secret in use", || async {
        (signing_secret(&op.store, webhook_id).await == rotated).then_some(())
    })
    .await;
    // Deleting the Secret makes a new one with a new value.
    secrets
        .delete("audit-hmac", &DeleteParams::default())
        .await
        .unwrap();
    let fresh = eventually("a new owned Secret", || async {
        let s = secrets.get_opt("audit-hmac").await.ok()??;
        let v = value_of(&s);
        (v != rotated).then_some(v)
    })
    .await;
    assert_ne!(fresh, first);
    eventually("the new secret in use", || async {
        (signing_secret(&op.store, webhook_id).await == fresh).then_some(())
    })
    .await;

    // Deleting the Webhook: the row goes (finalizer), then kube-controller-manager's garbage
    // collector deletes the Secret it owned.
    hooks
        .delete("audit", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Webhook gone", || async {
        hooks.get_opt("audit").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(op.store.webhook(webhook_id).await.unwrap().is_none());
    eventually("the owned Secret garbage-collected", || async {
        secrets
            .get_opt("audit-hmac")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    op.stop().await;
    cluster.delete_namespace(&ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_writers_of_status_and_finalizers_are_lived_with() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let ns = cluster.namespace("writers").await;
    let op = Controllers::start(&cluster, &[&ns]).await;
    let orgs: Api<Organization> = Api::namespaced(cluster.client.clone(), &ns);
    // Another controller's finalizer is there from the start; ours is added beside it.
    let mut acme = org("acme", json!({"displayName": "Acme"}));
    acme.metadata.finalizers = Some(vec!["example.com/backup".into()]);
    orgs.create(&PostParams::default(), &acme).await.unwrap();
    let created = ready(&orgs, "acme", "True", 1).await;
    let mut finalizers = created.metadata.finalizers.unwrap();
    finalizers.sort();
    assert_eq!(finalizers, ["chatboard.io/cleanup", "example.com/backup"]);

    // Someone else overwrites the status (a stale copy, a hand edit): the operator puts the
    // truth back on the change it is told of.
    orgs.patch_status(
        "acme",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"orgId": 999_999, "conditions": [{
            "type": "Ready", "status": "False", "reason": "Tampered", "message": "",
            "lastTransitionTime": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}})),
    )
    .await
    .unwrap();
    let fixed = ready(&orgs, "acme", "True", 1).await;
    let org_id = op
        .store
        .managed_org(&format!("{ns}/acme"))
        .await
        .unwrap()
        .unwrap()
        .org_id;
    assert_eq!(fixed.status.unwrap().org_id, Some(org_id));

    // Deleting: the operator cleans up and removes only its own finalizer; the object stays
    // until the other controller removes its one.
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("our finalizer released", || async {
        let o = orgs.get("acme").await.ok()?;
        (o.metadata.finalizers == Some(vec!["example.com/backup".into()])).then_some(())
    })
    .await;
    assert!(op
        .store
        .managed_org(&format!("{ns}/acme"))
        .await
        .unwrap()
        .is_some_and(|o| o.archived));
    orgs.patch(
        "acme",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("acme gone", || async {
        orgs.get_opt("acme").await.ok()?.is_none().then_some(())
    })
    .await;
    op.stop().await;
    cluster.delete_namespace(&ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_watched_namespaces_are_reconciled() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let (east, west, elsewhere) = (
        cluster.namespace("east").await,
        cluster.namespace("west").await,
        cluster.namespace("unwatched").await,
    );
    let op = Controllers::start(&cluster, &[&east, &west]).await;
    let api = |ns: &str| -> Api<Organization> { Api::namespaced(cluster.client.clone(), ns) };
    // The unwatched one first: by the time the others are Ready it would have been too.
    for ns in [&elsewhere, &east, &west] {
        api(ns)
            .create(
                &PostParams::default(),
                &org("acme", json!({"displayName": "Acme"})),
            )
            .await
            .unwrap();
    }
    for ns in [&east, &west] {
        ready(&api(ns), "acme", "True", 1).await;
        assert!(op
            .store
            .managed_org(&format!("{ns}/acme"))
            .await
            .unwrap()
            .is_some());
    }
    let untouched = api(&elsewhere).get("acme").await.unwrap();
    assert!(untouched.status.is_none() && untouched.metadata.finalizers.is_none());
    assert!(op
        .store
        .managed_org(&format!("{elsewhere}/acme"))
        .await
        .unwrap()
        .is_none());
    op.stop().await;
    for ns in [east, west, elsewhere] {
        cluster.delete_namespace(&ns).await;
    }
}
