//! What a member may do in an organization ends with the role that allowed it: the open
//! invitations they made beyond their role now, and an organization's deletion or rename
//! checked again under its lock. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{OrgQuotas, Role};
use chatboard_store::{NewInvite, StoreError};
use common::{Engine, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    invitations_go_with_the_role_that_made_them,
    an_org_is_changed_only_by_a_current_admin,
    invitations_are_limited_per_inviter_and_hour,
    invitations_are_limited_per_client_address,
    a_refused_invitation_costs_the_address_nothing,
    a_listed_member_becomes_admin_only_from_the_mailbox,
);

/// `inviter` invites `email` into `org` as `role`: the invitation's token.
async fn invite(app: &TestApp, org: i64, inviter: &TestUser, email: &str, role: &str) -> String {
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&inviter.access),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["token"].as_str().unwrap().to_owned()
}

async fn accept(app: &TestApp, user: &TestUser, token: &str) -> Reply {
    app.post(
        "/api/orgs/accept-invite/",
        Some(&user.access),
        json!({"token": token}),
    )
    .await
}

/// The inviter is shown the token. A MANAGER removed from the org, or an ADMIN demoted, could
/// accept an invitation they had made, at an address of their own, and be back at the role
/// they had (the invitations outlived them). They are revoked with the removal or demotion;
/// those the new role may still make stay.
async fn invitations_go_with_the_role_that_made_them(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let (bob, carol) = (
        app.user("bob@example.com").await,
        app.user("carol@example.com").await,
    );
    app.join(org, &alice, &bob, "MANAGER").await;
    app.join(org, &alice, &carol, "ADMIN").await;
    let by_bob = invite(&app, org, &bob, "bob.alt@example.com", "MANAGER").await;
    let carol_admin = invite(&app, org, &carol, "carol.alt@example.com", "ADMIN").await;
    let carol_member = invite(&app, org, &carol, "friend@example.com", "MEMBER").await;

    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", carol.id),
            Some(&alice.access),
            json!({"role": "MANAGER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    for (email, token) in [
        ("bob.alt@example.com", &by_bob),
        ("carol.alt@example.com", &carol_admin),
    ] {
        let alt = app.user(email).await;
        let r = accept(&app, &alt, token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}: {}", r.text);
    }
    // A MANAGER may still invite members: that one stands.
    let friend = app.user("friend@example.com").await;
    let r = accept(&app, &friend, &carol_member).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let open = app
        .get(&format!("/api/orgs/{org}/invitations/"), &alice.access)
        .await;
    assert_eq!(open.body.as_array().map(Vec::len), Some(0), "{}", open.text);
}

/// The use case checks the actor's role on a read; the store checks it again under the org's
/// lock, where a removal or demotion committed meanwhile is seen (a deletion by an ADMIN
/// removed since erased the whole organization, and an invitation outlived the role it needed).
async fn an_org_is_changed_only_by_a_current_admin(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, _room, alice, bob) = app.room_for_two().await;
    let store = &app.state.store;
    assert!(matches!(
        store.rename_org(org, bob.id, "Bob's now").await,
        Err(StoreError::Forbidden(ErrorCode::PermissionDenied))
    ));
    assert!(matches!(
        store.delete_org(org, bob.id).await,
        Err(StoreError::Forbidden(ErrorCode::PermissionDenied))
    ));
    // An invitation likewise: Bob may invite no one.
    let now = chrono::Utc::now();
    let by_bob = NewInvite {
        org_id: org,
        email: "eve@example.com".into(),
        role: Role::Member,
        token_hash: "unused".into(),
        invited_by: Some(bob.id),
        expires_at: now + chrono::Duration::days(1),
        email_message: None,
    };
    assert!(matches!(
        store.create_invite(by_bob, now).await,
        Err(StoreError::Forbidden(ErrorCode::PermissionDenied))
    ));
    let view = app.get(&format!("/api/orgs/{org}/"), &alice.access).await;
    assert_eq!(view.body["name"], "Acme", "{}", view.text);
    store.rename_org(org, alice.id, "Acme 2").await.unwrap();
    store.delete_org(org, alice.id).await.unwrap();
}

/// Asserts that `r` is `429 rate_limited`, to be tried again within the hour.
fn refused_for_the_hour(r: &Reply) {
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        r.text
    );
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
}

/// Any account may make organizations and invite any address, each invitation an email with
/// the names the account chose: unlimited, that is a spam relay. One user sends at most
/// `CHATBOARD_INVITES_PER_HOUR`, across every organization; a revoked one still counts.
async fn invitations_are_limited_per_inviter_and_hour(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.invites.invites_per_hour = 3).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let (first, second) = (app.org(&alice, "One").await, app.org(&alice, "Two").await);
    invite(&app, first, &alice, "a@example.com", "MEMBER").await;
    invite(&app, second, &alice, "b@example.com", "MEMBER").await;
    let open = app
        .get(&format!("/api/orgs/{first}/invitations/"), &alice.access)
        .await;
    let id = open.body[0]["id"].as_i64().unwrap();
    let r = app
        .delete(
            &format!("/api/orgs/{first}/invitations/{id}/"),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    invite(&app, first, &alice, "a@example.com", "MEMBER").await;
    let r = app
        .post(
            &format!("/api/orgs/{second}/invite/"),
            Some(&alice.access),
            json!({"email": "c@example.com"}),
        )
        .await;
    refused_for_the_hour(&r);
    // Someone else has an hour of their own.
    let bob = app.user("bob@example.com").await;
    let his = app.org(&bob, "Bob's").await;
    invite(&app, his, &bob, "c@example.com", "MEMBER").await;
}

/// Accounts cost nothing: each with its own hour of invitations, one client could make as
/// many as it liked and mail on through them all. A client address sends at most
/// `CHATBOARD_INVITES_PER_HOUR_PER_ADDRESS` an hour, whichever of its accounts sends them.
async fn invitations_are_limited_per_client_address(engine: Engine) {
    let Some(app) =
        TestApp::spawn_with(engine, |c| c.invites.invites_per_hour_per_address = 2).await
    else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (hers, his) = (app.org(&alice, "One").await, app.org(&bob, "Two").await);
    invite(&app, hers, &alice, "a@example.com", "MEMBER").await;
    invite(&app, his, &bob, "b@example.com", "MEMBER").await;
    let r = app
        .post(
            &format!("/api/orgs/{his}/invite/"),
            Some(&bob.access),
            json!({"email": "c@example.com"}),
        )
        .await;
    refused_for_the_hour(&r);
    let open = app
        .get(&format!("/api/orgs/{his}/invitations/"), &bob.access)
        .await;
    assert_eq!(open.body.as_array().map(Vec::len), Some(1), "{}", open.text);
}

/// The client address's hour counts invitations sent, not attempts: a mistyped address, a
/// suspended organization, a role above the inviter's or an organization they cannot invite to
/// is refused for what it is and leaves the hour as it was (each used to spend one).
async fn a_refused_invitation_costs_the_address_nothing(engine: Engine) {
    let Some(app) =
        TestApp::spawn_with(engine, |c| c.invites.invites_per_hour_per_address = 2).await
    else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "One").await;
    let manager = app.user("manager@example.com").await;
    let token = invite(&app, org, &alice, "manager@example.com", "MANAGER").await;
    assert_eq!(accept(&app, &manager, &token).await.status, StatusCode::OK);
    let frozen = app
        .managed_org(&alice, "frozen", OrgQuotas::default(), true)
        .await;
    let attempts = [
        (&alice, org, json!({"email": "not an address"}), "invalid"),
        (
            &alice,
            frozen,
            json!({"email": "z@example.com"}),
            "org_suspended",
        ),
        (
            &manager,
            org,
            json!({"email": "x@example.com", "role": "ADMIN"}),
            "permission_denied",
        ),
        (
            &manager,
            org + 1000,
            json!({"email": "y@example.com"}),
            "not_found",
        ),
    ];
    for (who, org, body, code) in attempts {
        let r = app
            .post(&format!("/api/orgs/{org}/invite/"), Some(&who.access), body)
            .await;
        assert_eq!(r.code(), code, "{}", r.text);
    }
    // The hour's second invitation: the first went to the manager.
    invite(&app, org, &manager, "b@example.com", "MEMBER").await;
    let r = app
        .post(
            &format!("/api/orgs/{org}/invite/"),
            Some(&alice.access),
            json!({"email": "c@example.com"}),
        )
        .await;
    refused_for_the_hour(&r);
}

/// In an operator-managed organization, a MANAGER invited an address of their own as MEMBER
/// (the inviter sees the token), registered it and joined; once the platform team listed that
/// address as an admin, the operator promoted the member at once: the MANAGER held an ADMIN
/// account. A listed member now gets the operator's ADMIN invitation by email like anyone
/// else, and only its token (sent to the mailbox alone) raises them.
async fn a_listed_member_becomes_admin_only_from_the_mailbox(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ops = app.user("ops@example.com").await;
    let org = app
        .managed_org(&ops, "acme", OrgQuotas::default(), false)
        .await;
    let manager = app.user("manager@example.com").await;
    app.join(org, &ops, &manager, "MANAGER").await;
    let own = invite(&app, org, &manager, "boss@example.com", "MEMBER").await;
    let boss = app.user("boss@example.com").await;
    let r = accept(&app, &boss, &own).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let applied = app
        .list_org_admins(
            org,
            &[
                ("ops@example.com", "unused"),
                ("boss@example.com", "mailed-token"),
            ],
        )
        .await;
    assert_eq!(applied.invited, vec!["boss@example.com".to_owned()]);
    let role = app.state.store.member_role(org, boss.id).await.unwrap();
    assert_eq!(role, Some(Role::Member), "promoted without the mailbox");
    // Listing again changes nothing: the invitation is open.
    let again = app
        .list_org_admins(
            org,
            &[
                ("ops@example.com", "unused"),
                ("boss@example.com", "another-token"),
            ],
        )
        .await;
    assert!(!again.changed(), "{again:?}");

    // Whoever reads the mailbox accepts; the member is then ADMIN.
    let r = accept(&app, &boss, "mailed-token").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "ADMIN", "{}", r.text);
    let role = app.state.store.member_role(org, boss.id).await.unwrap();
    assert_eq!(role, Some(Role::Admin));
    // A member at that role already keeps it: an invitation never lowers one.
    let applied = app
        .list_org_admins(org, &[("ops@example.com", "x"), ("boss@example.com", "y")])
        .await;
    assert!(!applied.changed(), "{applied:?}");
}
