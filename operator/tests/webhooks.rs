//! The Webhook controller against a fake Kubernetes API and a real database.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use testing::both_engines;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chatboard_core::error_code::ErrorCode;
use chatboard_store::{StoreError, WebhookPatch};
use chrono::Utc;
use crds::{Organization, OrganizationSpec, Webhook, WebhookSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{eventually, ready_of, signing_secret, Harness, NS, SECRETS, WEBHOOKS};
use testing::TestEngine;

fn webhook(name: &str, spec: serde_json::Value) -> Webhook {
    let spec: WebhookSpec = serde_json::from_value(spec).expect("spec");
    Webhook::new(name, spec)
}

async fn create_org(h: &Harness, name: &str) {
    let spec: OrganizationSpec = serde_json::from_value(json!({"displayName": name})).unwrap();
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(&PostParams::default(), &Organization::new(name, spec))
        .await
        .unwrap();
}

/// The stored webhook once Ready is `status` with `reason` at `generation`.
async fn state(
    h: &Harness,
    name: &str,
    status: &str,
    reason: &str,
    generation: i64,
) -> serde_json::Value {
    eventually(
        &format!("{name} Ready={status} ({reason}) at generation {generation}"),
        || async {
            let o = h.api.get(WEBHOOKS, NS, name)?;
            let (s, r, _) = ready_of(&o)?;
            (s == status && r == reason && o["status"]["observedGeneration"] == generation)
                .then_some(o)
        },
    )
    .await
}

/// Organization `acme` and a Webhook `name` of it delivering everything to a closed port, once
/// Ready: the Webhooks' API and the webhook's id.
async fn ready_webhook(h: &Harness, name: &str) -> (Api<Webhook>, i64) {
    create_org(h, "acme").await;
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "organizationRef": {"name": "acme"},
        "url": "http://127.0.0.1:9/hook",
        "events": ["*"],
    });
    hooks
        .create(&PostParams::default(), &webhook(name, spec))
        .await
        .unwrap();
    let obj = state(h, name, "True", "Reconciled", 1).await;
    (hooks, obj["status"]["webhookId"].as_i64().unwrap())
}

fn secret_in(object: &serde_json::Value, key: &str) -> String {
    let encoded = object["data"][key].as_str().expect("data");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

async fn owned_secret_lifecycle(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "organizationRef": {"name": "acme"},
        "url": "http://127.0.0.1:9/hook",
        "events": ["message.created", "member.joined"],
        "maxAttempts": 5,
    });
    hooks
        .create(&PostParams::default(), &webhook("acme-audit", spec))
        .await
        .unwrap();

    // Its Organization does not exist yet: not Ready, nothing written.
    let obj = state(&h, "acme-audit", "False", "OrganizationNotFound", 1).await;
    assert!(ready_of(&obj).unwrap().2.contains("acme"));
    assert!(h.api.get(SECRETS, NS, "acme-audit-hmac").is_none());

    // Once it does, the webhook is applied (woken by the Organization's change) with a Secret
    // the operator creates and owns.
    create_org(&h, "acme").await;
    let obj = state(&h, "acme-audit", "True", "Reconciled", 1).await;
    let id = obj["status"]["webhookId"].as_i64().expect("webhookId");
    let secret = h
        .api
        .get(SECRETS, NS, "acme-audit-hmac")
        .expect("owned Secret");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        obj["metadata"]["uid"]
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["controller"], true);
    // A foreground deletion of the Webhook waits for its Secret (what the chart's
    // `webhooks/finalizers` rule is for).
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "chatboard-operator"
    );
    let value = secret_in(&secret, "secret");
    assert!(value.starts_with("whsec_"));
    assert_eq!(signing_secret(&h.store, id).await, value);
    let row = h.store.webhook(id).await.unwrap().expect("row");
    assert_eq!(
        (
            row.url.as_str(),
            row.events.clone(),
            row.managed,
            row.is_active
        ),
        (
            "http://127.0.0.1:9/hook",
            vec!["member.joined".to_owned(), "message.created".to_owned()],
            true,
            true
        )
    );
    h.event_seen("acme-audit", "SecretCreated").await;

    // The REST API may not change or delete it.
    let patch = WebhookPatch {
        is_active: Some(false),
        ..WebhookPatch::default()
    };
    assert!(matches!(
        h.store.update_webhook(id, patch, Utc::now()).await,
        Err(StoreError::Conflict(ErrorCode::ManagedByOperator))
    ));
    assert!(matches!(
        h.store.delete_webhook(id, None).await,
        Err(StoreError::Conflict(ErrorCode::ManagedByOperator))
    ));

    // Rotation: a new value in the owned Secret is picked up at once (the Secret is watched).
    let secrets: Api<Secret> = Api::namespaced(h.api.client(), NS);
    let rotated = "rotated-secret-0123456789";
    let change =
        json!({"data": {"secret": base64::engine::general_purpose::STANDARD.encode(rotated)}});
    secrets
        .patch(
            "acme-audit-hmac",
            &PatchParams::default(),
            &Patch::Merge(change),
        )
        .await
        .unwrap();
    eventually("rotated secret in use", || async {
        (signing_secret(&h.store, id).await == rotated).then_some(())
    })
    .await;

    // Deleting the owned Secret makes a new one, with a new value.
    secrets
        .delete("acme-audit-hmac", &DeleteParams::default())
        .await
        .unwrap();
    let fresh = eventually("a new Secret", || async {
        h.api.get(SECRETS, NS, "acme-audit-hmac")
    })
    .await;
    let fresh = secret_in(&fresh, "secret");
    assert_ne!(fresh, rotated);
    eventually("new secret in use", || async {
        (signing_secret(&h.store, id).await == fresh).then_some(())
    })
    .await;

    // Spec changes apply; `*` stands alone.
    let change = json!({"spec": {"events": ["*", "message.created"], "active": false, "url": "http://127.0.0.1:9/v2"}});
    hooks
        .patch("acme-audit", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    state(&h, "acme-audit", "True", "Reconciled", 2).await;
    let row = h.store.webhook(id).await.unwrap().unwrap();
    assert_eq!(
        (row.url.as_str(), row.events.clone(), row.is_active),
        ("http://127.0.0.1:9/v2", vec!["*".to_owned()], false)
    );

    // Drift in the database is corrected on the next reconcile (here, prompted by a label).
    h.sql(&format!(
        "UPDATE webhooks SET url = 'http://127.0.0.1:9/elsewhere' WHERE id = {id}"
    ))
    .await;
    let label = json!({"metadata": {"labels": {"touched": "yes"}}});
    hooks
        .patch("acme-audit", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();
    eventually("url restored", || async {
        (h.store.webhook(id).await.unwrap()?.url == "http://127.0.0.1:9/v2").then_some(())
    })
    .await;

    // Switched off by its target (a 410), it delivers again once the resource is switched off,
    // seen Inactive, and switched on, as its condition says.
    let merge = |change: serde_json::Value| {
        let hooks = hooks.clone();
        async move {
            hooks
                .patch("acme-audit", &PatchParams::default(), &Patch::Merge(change))
                .await
                .unwrap();
        }
    };
    let active = |on: bool| json!({"spec": {"active": on}});
    merge(active(true)).await;
    state(&h, "acme-audit", "True", "Reconciled", 3).await;
    h.sql(&format!(
        "UPDATE webhooks SET is_active = FALSE, disabled_reason = 'the target answered 410 Gone' \
         WHERE id = {id}"
    ))
    .await;
    merge(json!({"metadata": {"labels": {"touched": "again"}}})).await;
    state(&h, "acme-audit", "False", "DisabledByTarget", 3).await;
    merge(active(false)).await;
    let obj = state(&h, "acme-audit", "True", "Reconciled", 4).await;
    assert!(ready_of(&obj).unwrap().2.starts_with("Inactive"));
    merge(active(true)).await;
    state(&h, "acme-audit", "True", "Reconciled", 5).await;
    let row = h.store.webhook(id).await.unwrap().unwrap();
    assert!(row.is_active && row.disabled_reason.is_none(), "{row:?}");

    // Deleted: the row goes, and the owned Secret with the resource.
    hooks
        .delete("acme-audit", &DeleteParams::default())
        .await
        .unwrap();
    eventually("webhook gone", || async {
        h.api
            .get(WEBHOOKS, NS, "acme-audit")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(h.store.webhook(id).await.unwrap().is_none());
    assert!(h.api.get(SECRETS, NS, "acme-audit-hmac").is_none());
    h.stop().await;
}

async fn referenced_secret(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    create_org(&h, "acme").await;
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "organizationRef": {"name": "acme"},
        "url": "http://127.0.0.1:9/hook",
        "events": ["*"],
        "secretRef": {"name": "audit-hmac"},
    });
    hooks
        .create(&PostParams::default(), &webhook("audit", spec))
        .await
        .unwrap();
    state(&h, "audit", "False", "SecretNotFound", 1).await;

    // Too short to be a signing key.
    let secrets: Api<Secret> = Api::namespaced(h.api.client(), NS);
    let secret = |value: &str| Secret {
        metadata: ObjectMeta {
            name: Some("audit-hmac".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "secret".to_owned(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret("short"))
        .await
        .unwrap();
    state(&h, "audit", "False", "InvalidSecret", 1).await;

    // Fixed (found on the next recheck; referenced Secrets are not watched).
    let good = "a-perfectly-good-signing-key";
    secrets
        .replace("audit-hmac", &PostParams::default(), &secret(good))
        .await
        .unwrap();
    let obj = state(&h, "audit", "True", "Reconciled", 1).await;
    let id = obj["status"]["webhookId"].as_i64().unwrap();
    assert_eq!(signing_secret(&h.store, id).await, good);
    assert!(
        h.api.get(SECRETS, NS, "audit-hmac").unwrap()["metadata"]["ownerReferences"].is_null(),
        "not taken over"
    );

    // An invalid URL (the schema forbids it, but a resource may predate the schema) is refused.
    let change = json!({"spec": {"url": "http://user:pw@127.0.0.1/x"}});
    hooks
        .patch("audit", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    let obj = state(&h, "audit", "False", "InvalidURL", 2).await;
    assert!(ready_of(&obj).unwrap().2.contains("credentials"));
    assert_eq!(
        h.store.webhook(id).await.unwrap().unwrap().url,
        "http://127.0.0.1:9/hook",
        "last good spec stays"
    );

    // The status reports the newest delivery.
    hooks
        .patch(
            "audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"url": "http://127.0.0.1:9/hook"}})),
        )
        .await
        .unwrap();
    state(&h, "audit", "True", "Reconciled", 3).await;
    assert_eq!(signing_secret(&h.store, id).await, good);
    hooks
        .patch(
            "audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    eventually("lastDelivery", || async {
        let o = h.api.get(WEBHOOKS, NS, "audit")?;
        (o["status"]["lastDelivery"]["status"] == "pending").then_some(())
    })
    .await;

    // The delivery log emptied (its events pruned): the status no longer shows a delivery.
    testing::execute_sql(&h.url, "DELETE FROM webhook_deliveries").await;
    hooks
        .patch(
            "audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "c"}}})),
        )
        .await
        .unwrap();
    eventually("lastDelivery gone", || async {
        let o = h.api.get(WEBHOOKS, NS, "audit")?;
        o["status"].get("lastDelivery").is_none().then_some(())
    })
    .await;
    h.stop().await;
}

async fn secret_name_taken(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    create_org(&h, "acme").await;
    // Someone else's Secret already has the name the operator would use.
    let secrets: Api<Secret> = Api::namespaced(h.api.client(), NS);
    let theirs = Secret {
        metadata: ObjectMeta {
            name: Some("hook-hmac".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "secret".to_owned(),
            ByteString(b"someone-elses-key-0000".to_vec()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    let spec = json!({"organizationRef": {"name": "acme"}, "url": "http://127.0.0.1:9/h", "events": ["*"]});
    hooks
        .create(&PostParams::default(), &webhook("hook", spec.clone()))
        .await
        .unwrap();
    state(&h, "hook", "False", "SecretConflict", 1).await;
    assert!(h.store.managed_org("tenants/acme").await.unwrap().is_some());
    // A name too long for the Secret the operator would make (`<name>-hmac`, at most 253
    // characters) is said so, rather than retried against the API server's refusal.
    let long = "h".repeat(250);
    hooks
        .create(&PostParams::default(), &webhook(&long, spec))
        .await
        .unwrap();
    let refused = state(&h, &long, "False", "InvalidSpec", 1).await;
    assert!(
        ready_of(&refused).unwrap().2.contains("secretRef"),
        "{refused}"
    );
    assert!(h.api.get(SECRETS, NS, &format!("{long}-hmac")).is_none());
    h.metric_reaches(
        r#"chatboard_operator_resources_not_ready{kind="Webhook"}"#,
        |n| n == 2.0,
    )
    .await;
    h.stop().await;
}

both_engines!(
    owned_secret_lifecycle,
    referenced_secret,
    secret_name_taken,
    a_busy_webhook_does_not_reconcile_in_a_loop,
    a_webhook_beyond_the_limit_waits_for_room,
    switching_off_is_applied_whatever_else_is_wrong,
    an_archived_orgs_webhook_says_so_and_can_be_switched_off,
    a_webhook_purged_with_its_org_is_named_no_more
);

/// The Organization deleted under Retain, its org archived: the Webhook says so, rather than
/// that the organization is not in place (its webhook goes on delivering, as an archived org
/// still has events: members leaving, its deletion), and switching it off still works.
async fn an_archived_orgs_webhook_says_so_and_can_be_switched_off(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (hooks, id) = ready_webhook(&h, "audit").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    let obj = state(&h, "audit", "False", "OrganizationArchived", 1).await;
    assert!(ready_of(&obj).unwrap().2.contains("archived"));
    assert!(h.store.webhook(id).await.unwrap().unwrap().is_active);
    hooks
        .patch(
            "audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"active": false}})),
        )
        .await
        .unwrap();
    state(&h, "audit", "False", "OrganizationArchived", 2).await;
    assert!(!h.store.webhook(id).await.unwrap().unwrap().is_active);
    h.stop().await;
}

/// The Organization deleted under Delete, its org purged and the webhook with it: the Webhook
/// says the organization is not in place, and its status no longer names the webhook that is
/// gone, nor its last delivery (it kept `webhookId`).
async fn a_webhook_purged_with_its_org_is_named_no_more(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (_hooks, id) = ready_webhook(&h, "audit").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.patch(
        "acme",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})),
    )
    .await
    .unwrap();
    eventually("the Delete policy to be seen", || async {
        let o = h.api.get(support::ORGS, NS, "acme")?;
        (o["status"]["observedGeneration"] == 2).then_some(())
    })
    .await;
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("the webhook purged with its org", || async {
        h.store.webhook(id).await.unwrap().is_none().then_some(())
    })
    .await;
    let obj = state(&h, "audit", "False", "OrganizationNotFound", 1).await;
    let status = eventually("webhookId gone from the status", || async {
        let o = h.api.get(WEBHOOKS, NS, "audit")?;
        o["status"]["webhookId"]
            .is_null()
            .then_some(o["status"].clone())
    })
    .await;
    assert!(status["lastDelivery"].is_null(), "{status}");
    assert!(obj["status"]["conditions"].is_array());
    h.stop().await;
}

/// A Webhook switched off in the same change that makes its spec unusable (here a URL with
/// credentials; as well a target that stopped resolving or a Secret deleted) is switched off:
/// the rest of the spec waited for the problem to go, and the webhook went on delivering.
async fn switching_off_is_applied_whatever_else_is_wrong(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (hooks, id) = ready_webhook(&h, "audit").await;
    assert!(h.store.webhook(id).await.unwrap().unwrap().is_active);

    let change = json!({"spec": {"url": "http://user:pw@127.0.0.1/x", "active": false}});
    hooks
        .patch("audit", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    state(&h, "audit", "False", "InvalidURL", 2).await;
    let stored = h.store.webhook(id).await.unwrap().unwrap();
    assert!(!stored.is_active, "still delivering");
    assert_eq!(stored.url, "http://127.0.0.1:9/hook", "the rest waits");
    h.stop().await;
}

/// A webhook whose newest delivery changes all the time: its status shows a newer one at most
/// once per recheck (500 ms here). Every status write is a watch event that reconciles the
/// Webhook again, and each reconcile found a newer delivery to write, so the reconciles (and
/// their status writes) used to follow one another for as long as deliveries kept changing.
async fn a_busy_webhook_does_not_reconcile_in_a_loop(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (hooks, id) = ready_webhook(&h, "busy").await;
    h.store
        .create_test_delivery(id, None, Utc::now())
        .await
        .unwrap();

    // For 3 s the newest delivery's answer changes as fast as the database takes it.
    let url = h.url.clone();
    let window = Duration::from_secs(3);
    let changing = tokio::spawn(async move {
        let mut session = testing::SqlSession::open(&url).await;
        let started = std::time::Instant::now();
        let mut code = 200;
        while started.elapsed() < window {
            code += 1;
            session
                .execute(&format!(
                    "UPDATE webhook_deliveries SET last_status_code = {code} \
                     WHERE id = (SELECT MAX(id) FROM webhook_deliveries)"
                ))
                .await;
        }
        code
    });
    // Woken once (a label) meanwhile: from then on, each status write wakes it again.
    let before = h.api.requests("PATCH", "/webhooks/busy/status");
    hooks
        .patch(
            "busy",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    let last_code = changing.await.unwrap();
    let writes = h.api.requests("PATCH", "/webhooks/busy/status") - before;
    // One write per 500 ms, and one for the first change.
    assert!(writes <= 8, "{writes} status writes in 3 s");
    // It still catches up: the status ends with the last answer.
    // Woken once more, it shows the last answer (within the 500 ms, as a write came just before).
    hooks
        .patch(
            "busy",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "c"}}})),
        )
        .await
        .unwrap();
    eventually("the last answer shown", || async {
        let o = h.api.get(WEBHOOKS, NS, "busy")?;
        (o["status"]["lastDelivery"]["statusCode"] == last_code).then_some(())
    })
    .await;
    h.stop().await;
}

/// An Organization that already has its 100 webhooks takes no Webhook resource more: it is
/// not Ready (`TooManyWebhooks`) until one of the others goes. (The operator used to add it
/// anyway; only the REST API kept to the limit.)
async fn a_webhook_beyond_the_limit_waits_for_room(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    create_org(&h, "acme").await;
    let org_id = eventually("acme applied", || async {
        let o = h.api.get(support::ORGS, NS, "acme")?;
        o["status"]["orgId"].as_i64()
    })
    .await;
    let ids = fill_with_webhooks(&h, org_id).await;
    let hooks: Api<Webhook> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "organizationRef": {"name": "acme"},
        "url": "http://127.0.0.1:9/one-more",
        "events": ["*"],
    });
    hooks
        .create(&PostParams::default(), &webhook("one-more", spec))
        .await
        .unwrap();
    let obj = state(&h, "one-more", "False", "TooManyWebhooks", 1).await;
    assert!(ready_of(&obj).unwrap().2.contains("100"));
    assert_eq!(h.store.webhooks_of_org(org_id).await.unwrap().len(), 100);

    // Room made: applied at the next look.
    h.store.delete_webhook(ids[0], None).await.unwrap();
    let obj = state(&h, "one-more", "True", "Reconciled", 1).await;
    let id = obj["status"]["webhookId"].as_i64().unwrap();

    // Moved to a full Organization and switched off in one edit: the move is refused, and the
    // switch-off is applied all the same (it is how a leaked secret is stopped at once).
    create_org(&h, "full").await;
    let full_id = eventually("full applied", || async {
        let o = h.api.get(support::ORGS, NS, "full")?;
        o["status"]["orgId"].as_i64()
    })
    .await;
    fill_with_webhooks(&h, full_id).await;
    hooks
        .patch(
            "one-more",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"organizationRef": {"name": "full"}, "active": false}})),
        )
        .await
        .unwrap();
    state(&h, "one-more", "False", "TooManyWebhooks", 2).await;
    let row = h.store.webhooks_of_org(org_id).await.unwrap();
    let row = row.iter().find(|w| w.id == id).unwrap();
    assert!(!row.is_active, "switched off where it is");
    h.stop().await;
}

/// Adds webhooks of its own to the organization until it has as many as it may; their ids.
async fn fill_with_webhooks(h: &Harness, org_id: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..chatboard_store::MAX_WEBHOOKS_PER_ORG {
        let hook = h
            .store
            .create_webhook(
                chatboard_store::NewWebhook {
                    org_id,
                    url: format!("http://127.0.0.1:9/hook/{n}"),
                    events: vec!["*".into()],
                    secret: "whsec_test".into(),
                    is_active: true,
                    managed: false,
                    max_attempts: None,
                    created_by: None,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        ids.push(hook.id);
    }
    ids
}
