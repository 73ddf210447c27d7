//! The Organization controller against a fake Kubernetes API and a real database.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use testing::both_engines;

use std::time::Duration;

use chatboard_core::auth::hash_token;
use chatboard_core::bus::{BusEvent, BusStream, Delivery};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{AccessLevel, Role};
use chatboard_store::{NewInvite, NewRoom, StoreError};
use chrono::Utc;
use crds::{Organization, OrganizationSpec};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{eventually, ready_of, Harness, NS, ORGS};
use testing::TestEngine;

fn org(name: &str, spec: serde_json::Value) -> Organization {
    let spec: OrganizationSpec = serde_json::from_value(spec).expect("spec");
    Organization::new(name, spec)
}

/// The stored object once its Ready condition says `status` for `generation`.
async fn ready(h: &Harness, name: &str, status: &str, generation: i64) -> serde_json::Value {
    eventually(
        &format!("{name} Ready={status} at generation {generation}"),
        || async {
            let o = h.api.get(ORGS, NS, name)?;
            let (s, _, _) = ready_of(&o)?;
            (s == status && o["status"]["observedGeneration"] == generation).then_some(o)
        },
    )
    .await
}

async fn lifecycle(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_millis(500)).await else {
        return;
    };
    let ops = h.user("ops@acme.example").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "displayName": "Acme Corp",
        "admins": ["Ops@Acme.example", "new@acme.example"],
        "quotas": {"maxMembers": 500, "maxRooms": 200, "messageRetentionDays": 365},
    });
    orgs.create(&PostParams::default(), &org("acme", spec))
        .await
        .unwrap();

    // Created: the org row and an ADMIN invitation for each address, the one with an account
    // too (an account proves no address: whoever registered it first was made ADMIN).
    let obj = ready(&h, "acme", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().expect("orgId");
    assert_eq!(obj["status"]["memberCount"], 0);
    // The condition names who has not accepted yet: an org none of them joined has no ADMIN.
    let (_, _, message) = ready_of(&obj).unwrap();
    assert!(
        message.contains("ops@acme.example") && message.contains("new@acme.example"),
        "{message}"
    );
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["chatboard.io/cleanup"])
    );
    assert!(h.store.org_for_member(org_id, ops).await.unwrap().is_none());
    h.accept_admin_invitation("ops@acme.example", ops).await;
    eventually("memberCount 1, ops no longer awaited", || async {
        let o = h.api.get(ORGS, NS, "acme")?;
        let (_, _, message) = ready_of(&o)?;
        (o["status"]["memberCount"] == 1
            && !message.contains("ops@acme.example")
            && message.contains("new@acme.example"))
        .then_some(())
    })
    .await;
    let view = h
        .store
        .org_for_member(org_id, ops)
        .await
        .unwrap()
        .expect("ops is a member");
    assert_eq!(
        (view.name.as_str(), view.role, view.managed, view.suspended),
        ("Acme Corp", Role::Admin, true, false)
    );
    assert_eq!(
        (
            view.quotas.max_members,
            view.quotas.max_rooms,
            view.quotas.retention_days
        ),
        (Some(500), Some(200), Some(365))
    );
    let now = Utc::now();
    let emails = h
        .store
        .claim_due_emails(now, now + chrono::Duration::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(
        emails.len(),
        1,
        "one invitation left, ops's accepted: {emails:?}"
    );
    assert_eq!(emails[0].email.to, "new@acme.example");
    assert!(emails[0].email.subject.contains("Acme Corp"));
    assert!(emails[0]
        .email
        .body
        .contains("https://chat.example/api/orgs/accept-invite/"));
    for reason in ["Created", "AdminInvited"] {
        h.event_seen("acme", reason).await;
    }
    // Both addresses invited at creation are told: Events of one reason in a reconcile were
    // folded into the first one's (the recorder keys them by reason, not by note).
    let notes = h.event_notes("acme", "AdminInvited").join("\n");
    assert!(
        notes.contains("ops@acme.example") && notes.contains("new@acme.example"),
        "{notes}"
    );
    let reasons = h.event_reasons("acme");

    // Re-running on an unchanged resource changes nothing: no status write, no Event, no email.
    let patches = h.api.requests("PATCH", "/organizations/acme/status");
    let events = reasons.len();
    let series = r#"chatboard_operator_reconciliations_total{kind="Organization",result="ok"}"#;
    // The first reconcile counts itself after the status write the test has seen.
    let before = h.metric_reaches(series, |n| n >= 1.0).await;
    eventually("three more reconciles", || async {
        (h.metric(series) >= before + 3.0).then_some(())
    })
    .await;
    assert_eq!(
        h.api.requests("PATCH", "/organizations/acme/status"),
        patches
    );
    assert_eq!(h.event_reasons("acme").len(), events);
    let now = Utc::now();
    assert!(h
        .store
        .claim_due_emails(now, now + chrono::Duration::minutes(10), 10)
        .await
        .unwrap()
        .is_empty());

    // Update: renamed, suspended, the invited address dropped from the list and another one
    // listed.
    let change = json!({"spec": {"displayName": "Acme Inc", "suspended": true, "admins": ["ops@acme.example", "cto@acme.example"]}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    let obj = ready(&h, "acme", "True", 2).await;
    assert!(ready_of(&obj).unwrap().2.contains("Suspended"));
    let view = h.store.org_for_member(org_id, ops).await.unwrap().unwrap();
    assert_eq!((view.name.as_str(), view.suspended), ("Acme Inc", true));
    eventually("AdminRevoked and Updated events", || async {
        let r = h.event_reasons("acme");
        (r.iter().any(|r| r == "AdminRevoked") && r.iter().any(|r| r == "Updated")).then_some(())
    })
    .await;
    // Invited minutes after the first ones, and told in an Event of its own: Events of one
    // reason were counted into the first one's for six minutes, its note kept.
    let notes = h.event_notes("acme", "AdminInvited").join("\n");
    assert!(notes.contains("cto@acme.example"), "{notes}");

    // The REST API may not rename or delete it; drift made in the database is corrected.
    assert!(matches!(
        h.store.rename_org(org_id, ops, "Mine now").await,
        Err(StoreError::Conflict(ErrorCode::ManagedByOperator))
    ));
    assert!(matches!(
        h.store.delete_org(org_id, ops).await,
        Err(StoreError::Conflict(ErrorCode::ManagedByOperator))
    ));
    h.sql(&format!(
        "UPDATE orgs SET name = 'Hacked', max_members = NULL WHERE id = {org_id}"
    ))
    .await;
    h.sql(&format!(
        "UPDATE org_members SET role = 'MEMBER' WHERE org_id = {org_id} AND user_id = {ops}"
    ))
    .await;
    eventually("drift corrected", || async {
        let v = h.store.org_for_member(org_id, ops).await.unwrap()?;
        (v.name == "Acme Inc" && v.quotas.max_members == Some(500)).then_some(())
    })
    .await;
    // The listed admin demoted behind its back is invited again, not promoted: a member
    // proves no address (whoever invited them saw the token), the mailbox does.
    eventually("a second ADMIN invitation for ops", || async {
        let sent = testing::query_texts(
            &h.url,
            "SELECT to_address FROM emails WHERE to_address = 'ops@acme.example' AND kind = 'invitation'",
        )
        .await;
        (sent.len() == 2).then_some(())
    })
    .await;
    // (Accepting it, once the organization is no longer suspended, makes them ADMIN again:
    // api-server/tests/org_authority.rs.)
    let view = h.store.org_for_member(org_id, ops).await.unwrap().unwrap();
    assert_eq!(view.role, Role::Member, "promoted without the mailbox");

    // Deleted with the default policy (Retain): archived, data kept, finalizer released.
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("acme gone", || async {
        h.api.get(ORGS, NS, "acme").is_none().then_some(())
    })
    .await;
    let view = h
        .store
        .org_for_member(org_id, ops)
        .await
        .unwrap()
        .expect("data kept");
    assert!(view.archived && !view.managed, "{view:?}");
    h.event_seen("acme", "Deleted").await;

    // The same resource created again takes its org back.
    orgs.create(
        &PostParams::default(),
        &org(
            "acme",
            json!({"displayName": "Acme Inc", "admins": ["ops@acme.example"]}),
        ),
    )
    .await
    .unwrap();
    let obj = ready(&h, "acme", "True", 1).await;
    assert_eq!(obj["status"]["orgId"].as_i64(), Some(org_id));
    let view = h.store.org_for_member(org_id, ops).await.unwrap().unwrap();
    assert!(!view.archived && view.managed);
    h.stop().await;
}

async fn invalid_spec_is_not_applied(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(
        &PostParams::default(),
        &org(
            "bad",
            json!({"displayName": "Bad", "admins": ["ok@bad.example", "not-an-email"]}),
        ),
    )
    .await
    .unwrap();
    let obj = ready(&h, "bad", "False", 1).await;
    let (_, reason, message) = ready_of(&obj).unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("not-an-email"), "{message}");
    assert!(
        h.store.managed_org("tenants/bad").await.unwrap().is_none(),
        "nothing applied"
    );
    h.event_seen("bad", "InvalidSpec").await;
    // The reconcile counts itself after its status write, which the test has already seen.
    h.metric_reaches(
        r#"chatboard_operator_reconciliations_total{kind="Organization",result="invalid"}"#,
        |n| n >= 1.0,
    )
    .await;
    h.metric_reaches(
        r#"chatboard_operator_resources_not_ready{kind="Organization"}"#,
        |n| n == 1.0,
    )
    .await;

    // A blank name is caught too (the schema's minLength lets spaces through).
    let change = json!({"spec": {"displayName": "   ", "admins": ["ok@bad.example"]}});
    orgs.patch("bad", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    let obj = ready(&h, "bad", "False", 2).await;
    assert!(ready_of(&obj).unwrap().2.contains("displayName"));

    // Fixed: applied.
    let change = json!({"spec": {"displayName": "Good"}});
    orgs.patch("bad", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    let obj = ready(&h, "bad", "True", 3).await;
    assert!(obj["status"]["orgId"].is_i64());
    h.metric_reaches(
        r#"chatboard_operator_resources_not_ready{kind="Organization"}"#,
        |n| n == 0.0,
    )
    .await;
    h.stop().await;
}

async fn delete_policy_purges(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let ops = h.user("ops@gone.example").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec =
        json!({"displayName": "Gone", "admins": ["ops@gone.example"], "deletionPolicy": "Delete"});
    orgs.create(&PostParams::default(), &org("gone", spec))
        .await
        .unwrap();
    let obj = ready(&h, "gone", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().unwrap();
    h.accept_admin_invitation("ops@gone.example", ops).await;
    assert!(h.store.org_for_member(org_id, ops).await.unwrap().is_some());
    let room = h
        .store
        .create_room(
            NewRoom {
                org_id,
                name: "general".into(),
                access_level: AccessLevel::Public,
                created_by: ops,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    for i in 0..3 {
        let message = chatboard_store::NewMessage {
            room_id: room.id,
            sender_id: ops,
            body: format!("m{i}"),
            client_msg_id: None,
            file: None,
            parent_id: None,
            mentions: Default::default(),
        };
        h.store.post_message(message, Utc::now()).await.unwrap();
    }
    orgs.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually("gone removed", || async {
        h.api.get(ORGS, NS, "gone").is_none().then_some(())
    })
    .await;
    assert!(
        h.store.org_for_member(org_id, ops).await.unwrap().is_none(),
        "purged"
    );
    assert!(h.store.managed_org("tenants/gone").await.unwrap().is_none());
    // Its messages go after the reconcile, in the background.
    let left = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE room_id = {} \
         UNION ALL SELECT CAST(COUNT(*) AS TEXT) FROM erased_rooms",
        room.id
    );
    eventually("its messages purged", || async {
        (testing::query_texts(&h.url, &left).await == ["0", "0"]).then_some(())
    })
    .await;
    h.stop().await;
}

async fn errors_are_retried_with_backoff(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    // The first three status writes fail: the reconcile errors (its status write, then the
    // one showing the failure), is retried 2 s later and errors again (its status write fails,
    // the failure is shown), and the retry 4 s after that succeeds. (Showing the failure is a
    // change to the status alone, which starts no reconcile of its own.)
    h.api
        .fail(axum::http::Method::PATCH, "/organizations/flaky/status", 3);
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(
        &PostParams::default(),
        &org("flaky", json!({"displayName": "Flaky"})),
    )
    .await
    .unwrap();
    ready(&h, "flaky", "True", 1).await;
    h.metric_reaches(
        r#"chatboard_operator_reconciliations_total{kind="Organization",result="error"}"#,
        |n| n == 2.0,
    )
    .await;
    assert_eq!(
        h.store
            .managed_org("tenants/flaky")
            .await
            .unwrap()
            .map(|o| o.archived),
        Some(false)
    );
    h.stop().await;
}

/// A Kubernetes API call that never gets an answer (a connection that died without a reset)
/// fails its reconcile after the call timeout, which is then retried, instead of holding the
/// resource (and, at a lost leadership, the controllers' shutdown) for good.
async fn a_call_that_never_answers_fails_the_reconcile(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    h.api
        .stall(axum::http::Method::PATCH, "/organizations/stuck/status");
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(
        &PostParams::default(),
        &org("stuck", json!({"displayName": "Stuck"})),
    )
    .await
    .unwrap();
    h.metric_reaches(
        r#"chatboard_operator_reconciliations_total{kind="Organization",result="error"}"#,
        |n| n >= 1.0,
    )
    .await;
    // What could be applied was: only the status write hangs.
    assert!(h
        .store
        .managed_org("tenants/stuck")
        .await
        .unwrap()
        .is_some());
    h.stop().await;
}

/// The next seat change on the bus: `(room, user, left)`.
async fn next_seat_change(events: &mut BusStream) -> (i64, i64, bool) {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a bus event within 20 s")
            .expect("the subscription stays open");
        match next {
            Delivery::Event(BusEvent::MemberLeft { room, user_id, .. }) => {
                return (room, user_id, true)
            }
            Delivery::Event(BusEvent::MemberSeated { room, user_id, .. }) => {
                return (room, user_id, false)
            }
            _ => continue,
        }
    }
}

/// Seats the operator gives or takes are announced, so open sockets follow: an admin dropped
/// from the list loses the MANAGER_ONLY rooms with the role (open sockets once kept following
/// them), and deleting the resource with the Delete policy ends its rooms.
async fn seat_changes_are_announced(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let ops = h.user("ops@seats.example").await;
    let lead = h.user("lead@seats.example").await;
    let mut events = h.bus.subscribe().await.unwrap();
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec = json!({
        "displayName": "Seats",
        "admins": ["ops@seats.example", "lead@seats.example"],
        "deletionPolicy": "Delete",
    });
    orgs.create(&PostParams::default(), &org("seats", spec))
        .await
        .unwrap();
    let obj = ready(&h, "seats", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().unwrap();
    h.accept_admin_invitation("ops@seats.example", ops).await;
    h.accept_admin_invitation("lead@seats.example", lead).await;
    let managers = h
        .store
        .create_room(
            NewRoom {
                org_id,
                name: "managers".into(),
                access_level: AccessLevel::ManagerOnly,
                created_by: ops,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let seated: Vec<i64> = h
        .store
        .room_members(managers.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.user_id)
        .collect();
    assert!(seated.contains(&lead), "{seated:?}");

    let change = json!({"spec": {"admins": ["ops@seats.example"]}});
    orgs.patch("seats", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    assert_eq!(
        next_seat_change(&mut events).await,
        (managers.id, lead, true),
        "the demoted admin's seat in the MANAGER_ONLY room goes, on the bus too"
    );

    orgs.delete("seats", &DeleteParams::default())
        .await
        .unwrap();
    // Purging the organization: its rooms are gone, on the bus too.
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the rooms' end announced within 20 s")
            .expect("the subscription stays open");
        if let Delivery::Event(BusEvent::RoomDeleted { room }) = next {
            if room == managers.id {
                break;
            }
        }
    }
    h.stop().await;
}

both_engines!(
    lifecycle,
    invalid_spec_is_not_applied,
    delete_policy_purges,
    an_archive_outlives_a_namesake_that_never_applied,
    a_failing_reconcile_shows_in_the_status,
    the_first_retry_waits_for_its_backoff,
    the_first_retry_waits_for_its_backoff_after_a_restart,
    a_status_removed_by_hand_is_put_back,
    a_resource_gone_without_its_cleanup_is_not_counted_as_not_ready,
    the_last_admin_stays_when_the_list_drops_them,
    an_admin_the_list_did_not_make_stays_when_unlisted,
    a_role_set_through_the_api_ends_a_demotion_owed,
    errors_are_retried_with_backoff,
    a_call_that_never_answers_fails_the_reconcile,
    seat_changes_are_announced,
    a_long_admin_list_is_told_within_an_events_limit
);

/// An Organization whose reconciles fail (the database refusing) is deleted; its cleanup
/// fails too, and an administrator removes the finalizer by hand. The object is gone without
/// a cleanup having said so: the not-Ready gauge forgets it (it counted it for good, which
/// kept an alert on the gauge firing).
async fn a_resource_gone_without_its_cleanup_is_not_counted_as_not_ready(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let orgs = acme_failing(&h).await;
    let not_ready = r#"chatboard_operator_resources_not_ready{kind="Organization"}"#;
    h.metric_reaches(not_ready, |n| n == 1.0).await;

    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    // The cleanup fails while the table is away: the finalizer stays.
    let failed = r#"chatboard_operator_reconciliations_total{kind="Organization",result="error"}"#;
    let before = h.metric(failed);
    h.metric_reaches(failed, |n| n > before).await;
    assert!(
        h.api.get(ORGS, NS, "acme").is_some(),
        "held by its finalizer"
    );
    let unhold = json!({"metadata": {"finalizers": null}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(unhold))
        .await
        .unwrap();
    eventually("acme gone", || async {
        h.api.get(ORGS, NS, "acme").is_none().then_some(())
    })
    .await;
    h.metric_reaches(not_ready, |n| n == 0.0).await;
    h.sql("ALTER TABLE orgs_away RENAME TO orgs").await;
    h.stop().await;
}

/// `acme` is deleted with Retain (archived); a new `acme` asking for Delete, whose spec is
/// invalid, is deleted before it ever applied. It never took the archive back, so the archive
/// stays. (Its deletion used to purge the archive, found by the resource's name alone.)
async fn an_archive_outlives_a_namesake_that_never_applied(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let ops = h.user("ops@acme.example").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec = json!({"displayName": "Acme", "admins": ["ops@acme.example"]});
    orgs.create(&PostParams::default(), &org("acme", spec))
        .await
        .unwrap();
    let obj = ready(&h, "acme", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().unwrap();
    h.accept_admin_invitation("ops@acme.example", ops).await;
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("acme gone", || async {
        h.api.get(ORGS, NS, "acme").is_none().then_some(())
    })
    .await;

    let spec = json!({
        "displayName": "Acme",
        "admins": ["not-an-email"],
        "deletionPolicy": "Delete",
    });
    orgs.create(&PostParams::default(), &org("acme", spec))
        .await
        .unwrap();
    ready(&h, "acme", "False", 1).await;
    orgs.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("the namesake gone", || async {
        h.api.get(ORGS, NS, "acme").is_none().then_some(())
    })
    .await;
    let view = h
        .store
        .org_for_member(org_id, ops)
        .await
        .unwrap()
        .expect("the archive is kept");
    assert!(view.archived, "{view:?}");
    h.stop().await;
}

/// `acme`, Ready, then its org table out of reach (renamed `orgs_away`) and a spec change
/// that cannot apply: its Ready turns False at generation 2.
async fn acme_failing(h: &Harness) -> Api<Organization> {
    let (orgs, _) = acme_changed_out_of_reach(h).await;
    ready(h, "acme", "False", 2).await;
    orgs
}

/// `acme` created and Ready: the Organizations API and the stored object.
async fn acme_ready(h: &Harness) -> (Api<Organization>, serde_json::Value) {
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(
        &PostParams::default(),
        &org("acme", json!({"displayName": "Acme"})),
    )
    .await
    .unwrap();
    let obj = ready(h, "acme", "True", 1).await;
    (orgs, obj)
}

/// As [`acme_failing`], without waiting for the failure: the Organizations API, and the time
/// just before the change.
async fn acme_changed_out_of_reach(h: &Harness) -> (Api<Organization>, std::time::Instant) {
    let (orgs, _) = acme_ready(h).await;
    h.sql("ALTER TABLE orgs RENAME TO orgs_away").await;
    let changed = std::time::Instant::now();
    let change = json!({"spec": {"displayName": "Acme Inc"}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    (orgs, changed)
}

/// While the database refuses the operator's writes, `Ready` says so (`ReconcileError`); once
/// they go through again, it is `True`. It used to stay `True` through any failure.
async fn a_failing_reconcile_shows_in_the_status(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    acme_failing(&h).await;
    let obj = ready(&h, "acme", "False", 2).await;
    let (_, reason, message) = ready_of(&obj).unwrap();
    assert_eq!(reason, "ReconcileError");
    assert!(message.contains("database"), "{message}");
    h.metric_reaches(
        r#"chatboard_operator_resources_not_ready{kind="Organization"}"#,
        |n| n == 1.0,
    )
    .await;

    // Back: the next retry applies the change.
    h.sql("ALTER TABLE orgs_away RENAME TO orgs").await;
    let obj = ready(&h, "acme", "True", 2).await;
    assert_eq!(ready_of(&obj).unwrap().1, "Reconciled");
    h.stop().await;
}

/// A failing reconcile's first retry waits for its backoff (2 s). Showing the failure in the
/// status is a change of the resource: the operator used to take it for news and retry at once.
async fn the_first_retry_waits_for_its_backoff(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(600)).await else {
        return;
    };
    let (_, changed) = acme_changed_out_of_reach(&h).await;
    first_failure_alone(&h, changed).await;
    // And the retry comes, and applies the change once the database is back.
    h.metric_reaches(ORG_ERRORS, |n| n >= 2.0).await;
    h.sql("ALTER TABLE orgs_away RENAME TO orgs").await;
    ready(&h, "acme", "True", 2).await;
    h.stop().await;
}

/// As above for an operator that finds the status an earlier one wrote (a restart, a new
/// leader) and fails at once: its first status write is its own too, not someone else's.
async fn the_first_retry_waits_for_its_backoff_after_a_restart(engine: TestEngine) {
    let (leading, following) = tokio::sync::watch::channel(false);
    let Some(h) = Harness::start_following(engine, following).await else {
        return;
    };
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let mut acme = org("acme", json!({"displayName": "Acme"}));
    acme.metadata.finalizers = Some(vec![operator::reconciler::FINALIZER.into()]);
    orgs.create(&PostParams::default(), &acme).await.unwrap();
    let earlier = json!({"status": {"orgId": 1, "observedGeneration": 1, "conditions": [{
        "type": "Ready", "status": "True", "reason": "Reconciled", "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
    }]}});
    orgs.patch_status("acme", &PatchParams::default(), &Patch::Merge(earlier))
        .await
        .unwrap();
    h.sql("ALTER TABLE orgs RENAME TO orgs_away").await;
    let changed = std::time::Instant::now();
    leading.send_replace(true);
    ready(&h, "acme", "False", 1).await;
    first_failure_alone(&h, changed).await;
    h.stop().await;
}

/// A status someone else removes is a change like any other: the operator writes it again at
/// once, not at the next resync (an hour away here).
async fn a_status_removed_by_hand_is_put_back(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(3600)).await else {
        return;
    };
    let (orgs, before) = acme_ready(&h).await;
    let removal = json!({"status": null});
    orgs.patch_status("acme", &PatchParams::default(), &Patch::Merge(removal))
        .await
        .unwrap();
    let after = ready(&h, "acme", "True", 1).await;
    assert_eq!(after["status"]["orgId"], before["status"]["orgId"]);
    h.stop().await;
}

/// Failed reconciles of Organizations.
const ORG_ERRORS: &str =
    r#"chatboard_operator_reconciliations_total{kind="Organization",result="error"}"#;

/// Waits for the first failed reconcile after `changed` and checks that no second one follows
/// before its backoff (2 s) is over. The retry is due 2 s after the failure, itself after
/// `changed`: a count read sooner than that must be the first failure's alone.
async fn first_failure_alone(h: &Harness, changed: std::time::Instant) {
    h.metric_reaches(ORG_ERRORS, |n| n >= 1.0).await;
    let mut judged = 0;
    loop {
        let count = h.metric(ORG_ERRORS);
        if changed.elapsed() >= Duration::from_millis(1900) {
            break;
        }
        assert_eq!(
            count,
            1.0,
            "retried {:?} after the change",
            changed.elapsed()
        );
        judged += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if judged == 0 {
        eprintln!("the machine was too slow to judge the first retry's wait");
    }
}

/// The list of admins emptied (or naming only people without an account yet): the org's only
/// ADMIN stays ADMIN, with a Warning Event, as the REST API never leaves an org without one.
/// (The operator used to demote them, leaving nobody to manage the org.)
async fn the_last_admin_stays_when_the_list_drops_them(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let ops = h.user("ops@acme.example").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    orgs.create(
        &PostParams::default(),
        &org(
            "acme",
            json!({"displayName": "Acme", "admins": ["ops@acme.example"]}),
        ),
    )
    .await
    .unwrap();
    let obj = ready(&h, "acme", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().unwrap();
    h.accept_admin_invitation("ops@acme.example", ops).await;

    let change = json!({"spec": {"admins": ["newlead@acme.example"]}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    ready(&h, "acme", "True", 2).await;
    let view = h.store.org_for_member(org_id, ops).await.unwrap().unwrap();
    assert_eq!(view.role, Role::Admin, "the only ADMIN was demoted");
    h.event_seen("acme", "LastAdminKept").await;

    // Kept only while the org has no other: once the new lead accepts, the next reconcile takes
    // back what the list gave (it used to forget the address, and ops stayed ADMIN for good).
    let newlead = h.user("newlead@acme.example").await;
    h.accept_admin_invitation("newlead@acme.example", newlead)
        .await;
    let label = json!({"metadata": {"labels": {"touched": "yes"}}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();
    eventually("ops demoted once another ADMIN is there", || async {
        let view = h.store.org_for_member(org_id, ops).await.unwrap()?;
        (view.role == Role::Member).then_some(())
    })
    .await;
    h.stop().await;
}

/// `acme`, listing ops@acme.example as its admin, who has accepted; and bob@acme.example, an
/// account with no seat in it: (the Organizations API, the org's id, ops, bob).
async fn acme_led_by_ops(h: &Harness) -> (Api<Organization>, i64, i64, i64) {
    let ops = h.user("ops@acme.example").await;
    let bob = h.user("bob@acme.example").await;
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let spec = json!({"displayName": "Acme", "admins": ["ops@acme.example"]});
    orgs.create(&PostParams::default(), &org("acme", spec))
        .await
        .unwrap();
    let obj = ready(h, "acme", "True", 1).await;
    let org_id = obj["status"]["orgId"].as_i64().unwrap();
    h.accept_admin_invitation("ops@acme.example", ops).await;
    (orgs, org_id, ops, bob)
}

/// `by` makes bob@acme.example (`bob`) ADMIN the REST API's way: an invitation of theirs,
/// accepted.
async fn made_admin_through_the_api(h: &Harness, org_id: i64, by: i64, bob: i64) {
    let invite = NewInvite {
        org_id,
        email: "bob@acme.example".into(),
        role: Role::Admin,
        token_hash: hash_token("bobs-token"),
        invited_by: Some(by),
        expires_at: Utc::now() + chrono::Duration::days(1),
        email_message: None,
    };
    h.store.create_invite(invite, Utc::now()).await.unwrap();
    let joined = h
        .store
        .accept_invite(
            &hash_token("bobs-token"),
            bob,
            "bob@acme.example",
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(joined.role, Role::Admin);
}

/// Dropped from the list while the last ADMIN, then confirmed as ADMIN through the REST API by
/// another ADMIN (the role they have, set again): the role is the API's now, and the demotion
/// the operator owed is forgotten (the next reconcile used to take it; a change of role ended
/// it, but setting the same one did not).
async fn a_role_set_through_the_api_ends_a_demotion_owed(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (orgs, org_id, ops, bob) = acme_led_by_ops(&h).await;
    let change = json!({"spec": {"admins": []}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    ready(&h, "acme", "True", 2).await;
    h.event_seen("acme", "LastAdminKept").await;
    made_admin_through_the_api(&h, org_id, ops, bob).await;
    // Bob confirms ops as ADMIN: the role they have, set through the API.
    h.store
        .set_member_role(org_id, ops, Role::Admin, bob)
        .await
        .unwrap();
    let change = json!({"spec": {"displayName": "Acme Inc"}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    ready(&h, "acme", "True", 3).await;
    let view = h.store.org_for_member(org_id, ops).await.unwrap().unwrap();
    assert_eq!(
        view.role,
        Role::Admin,
        "the operator took a role the API gave"
    );
    h.stop().await;
}

/// An ADMIN made through the REST API, then listed and unlisted, stays ADMIN: the list never
/// gave them the role, so dropping them from it takes nothing back.
async fn an_admin_the_list_did_not_make_stays_when_unlisted(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_secs(60)).await else {
        return;
    };
    let (orgs, org_id, ops, bob) = acme_led_by_ops(&h).await;
    made_admin_through_the_api(&h, org_id, ops, bob).await;
    for (generation, admins) in [
        (2, json!(["ops@acme.example", "bob@acme.example"])),
        (3, json!(["ops@acme.example"])),
    ] {
        let change = json!({"spec": {"admins": admins}});
        orgs.patch("acme", &PatchParams::default(), &Patch::Merge(change))
            .await
            .unwrap();
        ready(&h, "acme", "True", generation).await;
    }
    let view = h.store.org_for_member(org_id, bob).await.unwrap().unwrap();
    assert_eq!(view.role, Role::Admin, "the list took what it never gave");
    h.stop().await;
}

/// Forty admins listed at once: the AdminInvited Event names as many as its note takes (the API
/// server refuses an Event whose note is over 1 KiB, and the operator only logged that) and
/// counts the rest.
async fn a_long_admin_list_is_told_within_an_events_limit(engine: TestEngine) {
    let Some(h) = Harness::start(engine, Duration::from_millis(500)).await else {
        return;
    };
    let orgs: Api<Organization> = Api::namespaced(h.api.client(), NS);
    let admins: Vec<String> = (0..40)
        .map(|i| format!("administrator-number-{i:02}@large-company.example"))
        .collect();
    let spec = json!({"displayName": "Large", "admins": admins});
    orgs.create(&PostParams::default(), &org("large", spec))
        .await
        .unwrap();
    ready(&h, "large", "True", 1).await;
    h.event_seen("large", "AdminInvited").await;
    let notes = h.event_notes("large", "AdminInvited");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].len() <= 1024, "{}", notes[0].len());
    assert!(
        notes[0].starts_with("administrator-number-00@large-company.example, "),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains(" more are not ADMIN yet"), "{}", notes[0]);
}
