//! `/api/orgs/`: organizations, members, invitations, roles; tenant isolation. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    a_listed_admin_is_the_operators_to_change,
    a_managed_org_is_refused_as_managed_whatever_the_change,
    create_list_get_rename_delete,
    org_names_are_validated,
    invitation_flow,
    invitation_rules,
    expired_invitations_are_refused_and_can_be_reissued,
    open_invitations_are_listed_and_revoked,
    role_changes_keep_an_admin,
    member_removal_and_leaving,
    other_tenants_objects_are_not_found,
);

async fn create_list_get_rename_delete(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let r = app
        .post(
            "/api/orgs/",
            Some(&alice.access),
            json!({"name": "  Acme Corp "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let org = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["name"], "Acme Corp");
    let slug = r.body["slug"].as_str().unwrap().to_owned();
    assert!(
        slug.starts_with("acme-corp-") && slug.len() == "acme-corp-".len() + 6,
        "{slug}"
    );
    assert_eq!(r.body["role"], "ADMIN");
    assert_eq!(r.body["member_count"], 1);
    assert_eq!(r.body["managed"], false);
    assert!(r.body["created_at"].is_string());

    // Same name again: its own slug, which says nothing of the first (no `-2`).
    let second = app
        .post(
            "/api/orgs/",
            Some(&alice.access),
            json!({"name": "Acme Corp"}),
        )
        .await;
    let second_slug = second.body["slug"].as_str().unwrap();
    assert!(second_slug.starts_with("acme-corp-"), "{second_slug}");
    assert_ne!(second_slug, slug);
    assert_eq!(second_slug.len(), slug.len());

    let list = app.get("/api/orgs/", &alice.access).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert_eq!(list.body[0]["id"], org);

    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .body["name"],
        "Acme Corp"
    );
    let renamed = app
        .patch(
            &format!("/api/orgs/{org}/"),
            &alice.access,
            json!({"name": "Acme Inc"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "Acme Inc");
    assert_eq!(
        renamed.body["slug"],
        slug.as_str(),
        "slugs are stable identifiers"
    );

    let members = app
        .get(&format!("/api/orgs/{org}/members/"), &alice.access)
        .await;
    assert_eq!(members.body[0]["user_id"], alice.id);
    assert_eq!(members.body[0]["role"], "ADMIN");
    assert_eq!(members.body[0]["email"], "alice@example.com");
    assert!(members.body[0]["joined_at"].is_string());

    assert_eq!(
        app.delete(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/orgs/", &alice.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn org_names_are_validated(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    for bad in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(121)}),
        json!({"name": 42}),
        json!({}),
        json!({"name": null}),
    ] {
        let r = app
            .post("/api/orgs/", Some(&alice.access), bad.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert!(r.body["errors"]["name"].is_array(), "{bad}: {}", r.text);
    }
    let ok = app
        .post(
            "/api/orgs/",
            Some(&alice.access),
            json!({"name": "é".repeat(120)}),
        )
        .await;
    assert_eq!(
        ok.status,
        StatusCode::CREATED,
        "120 characters, more bytes: {}",
        ok.text
    );
    let org = ok.body["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/orgs/{org}/"),
            &alice.access,
            json!({"name": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn invite(
    app: &TestApp,
    org: i64,
    by: &TestUser,
    email: &str,
    role: Option<&str>,
) -> common::Reply {
    let body = match role {
        Some(role) => json!({"email": email, "role": role}),
        None => json!({"email": email}),
    };
    app.post(&format!("/api/orgs/{org}/invite/"), Some(&by.access), body)
        .await
}

async fn invitation_flow(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;

    let r = invite(&app, org, &alice, " Bob@Example.com", None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email"], "bob@example.com");
    assert_eq!(r.body["role"], "MEMBER");
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "at least 256 bits");
    assert!(r.body["expires_at"].is_string() && r.body["id"].is_i64());

    // Bob cannot see the org before accepting.
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &bob.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let a = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&bob.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body, json!({"org_id": org, "role": "MEMBER"}));

    let view = app.get(&format!("/api/orgs/{org}/"), &bob.access).await;
    assert_eq!(view.body["role"], "MEMBER");
    assert_eq!(view.body["member_count"], 2);
    let members = app
        .get(&format!("/api/orgs/{org}/members/"), &bob.access)
        .await;
    let ids: Vec<i64> = members
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![alice.id, bob.id]);

    // The token is single-use.
    let again = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&bob.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn invitation_rules(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let manager = app.user("manager@example.com").await;
    let member = app.user("member@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &manager, "MANAGER").await;
    app.join(org, &alice, &member, "MEMBER").await;

    // Roles: members cannot invite, managers cannot hand out ADMIN.
    assert_eq!(
        invite(&app, org, &member, "x@example.com", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = invite(&app, org, &manager, "x@example.com", Some("ADMIN")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "permission_denied");
    assert_eq!(
        invite(&app, org, &manager, "x@example.com", Some("MANAGER"))
            .await
            .status,
        StatusCode::CREATED
    );

    // One open invitation per address; members cannot be invited again.
    let r = invite(&app, org, &alice, "X@example.com", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "invite_pending");
    let r = invite(&app, org, &alice, "member@example.com", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "already_member");

    // Bad input.
    for body in [
        json!({"email": "nope"}),
        json!({"email": "y@example.com", "role": "KING"}),
        json!({"role": "MEMBER"}),
        json!({"email": 1}),
    ] {
        let r = app
            .post(
                &format!("/api/orgs/{org}/invite/"),
                Some(&alice.access),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }

    // The invite's email must be the accepting user's.
    let r = invite(&app, org, &alice, "dave@example.com", None).await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&carol.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &carol.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Unknown tokens, blank and over-long ones.
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&carol.access),
            json!({"token": "bogus"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&carol.access),
            json!({"token": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&carol.access),
            json!({"token": "t".repeat(300)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A dave who registers later can use it, with the role it carries.
    let dave = app.user("dave@example.com").await;
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&dave.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.body["role"], "MEMBER");
}

async fn expired_invitations_are_refused_and_can_be_reissued(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| {
        c.invites.invite_ttl = std::time::Duration::from_secs(1)
    })
    .await
    else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let r = invite(&app, org, &alice, "bob@example.com", None).await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    // Waiting past a one-second lifetime: the outcome does not depend on timing luck.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&bob.access),
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // An expired invitation does not block a new one.
    let r = invite(&app, org, &alice, "bob@example.com", None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let fresh = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/orgs/accept-invite/",
            Some(&bob.access),
            json!({"token": fresh}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// `user` accepts the invitation whose creation answered `invited`.
async fn accept(app: &TestApp, user: &TestUser, invited: &common::Reply) -> common::Reply {
    let token = invited.body["token"].as_str().unwrap();
    app.post(
        "/api/orgs/accept-invite/",
        Some(&user.access),
        json!({"token": token}),
    )
    .await
}

/// Those who send invitations see the open ones and may take them back; a revoked token no
/// longer works; members and outsiders see nothing.
async fn open_invitations_are_listed_and_revoked(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let other = app.org(&carol, "Elsewhere").await;
    let for_bob = invite(&app, org, &alice, "bob@example.com", Some("MANAGER")).await;
    let for_dan = invite(&app, org, &alice, "dan@example.com", None).await;
    let for_eve = invite(&app, org, &alice, "eve@example.com", Some("ADMIN")).await;
    let carols = invite(&app, other, &carol, "zed@example.com", None).await;
    let id = |r: &common::Reply| r.body["id"].as_i64().unwrap();

    let list = app
        .get(&format!("/api/orgs/{org}/invitations/"), &alice.access)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let emails: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["eve@example.com", "dan@example.com", "bob@example.com"],
        "newest first"
    );
    assert_eq!(list.body[2]["role"], "MANAGER");
    assert!(
        list.body[0].get("token").is_none(),
        "tokens are shown once: {}",
        list.text
    );

    // Bob accepts (now a MANAGER): his invitation is no longer open.
    let a = accept(&app, &bob, &for_bob).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let list = app
        .get(&format!("/api/orgs/{org}/invitations/"), &bob.access)
        .await;
    assert_eq!(
        list.status,
        StatusCode::OK,
        "a MANAGER sees them: {}",
        list.text
    );
    assert_eq!(list.body.as_array().unwrap().len(), 2);

    // A MANAGER may revoke Dan's (MEMBER) but not Eve's (ADMIN).
    let path = |org: i64, invite: i64| format!("/api/orgs/{org}/invitations/{invite}/");
    let r = app.delete(&path(org, id(&for_eve)), &bob.access).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app.delete(&path(org, id(&for_dan)), &bob.access).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app.delete(&path(org, id(&for_dan)), &bob.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoked already");
    // Dan's token stops working.
    let dan = app.user("dan@example.com").await;
    let a = accept(&app, &dan, &for_dan).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    // Another org's invitation, through this org: not found.
    let r = app.delete(&path(org, id(&carols)), &alice.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The ADMIN revokes Eve's; nothing is open any more.
    let r = app.delete(&path(org, id(&for_eve)), &alice.access).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let list = app
        .get(&format!("/api/orgs/{org}/invitations/"), &alice.access)
        .await;
    assert_eq!(list.body, json!([]));

    // A member may not look; an outsider gets 404.
    let frank = app.user("frank@example.com").await;
    let invited = invite(&app, org, &alice, "frank@example.com", None).await;
    accept(&app, &frank, &invited).await;
    let r = app
        .get(&format!("/api/orgs/{org}/invitations/"), &frank.access)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .get(&format!("/api/orgs/{org}/invitations/"), &carol.access)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn role_changes_keep_an_admin(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    let role_path = |user: i64| format!("/api/orgs/{org}/members/{user}/role/");

    // Only admins change roles.
    assert_eq!(
        app.post(
            &role_path(alice.id),
            Some(&bob.access),
            json!({"role": "MEMBER"})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // The last admin cannot step down.
    let r = app
        .post(
            &role_path(alice.id),
            Some(&alice.access),
            json!({"role": "MANAGER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "last_admin");

    let r = app
        .post(
            &role_path(bob.id),
            Some(&alice.access),
            json!({"role": "ADMIN"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"user_id": bob.id, "role": "ADMIN"}));
    // With two admins, one may step down; then the other is the last.
    assert_eq!(
        app.post(
            &role_path(alice.id),
            Some(&alice.access),
            json!({"role": "MEMBER"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            &role_path(bob.id),
            Some(&bob.access),
            json!({"role": "MANAGER"})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .body["role"],
        "MEMBER"
    );

    // Bad roles and unknown members.
    let r = app
        .post(
            &role_path(alice.id),
            Some(&bob.access),
            json!({"role": "OWNER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["errors"]["role"].is_array(), "{}", r.text);
    assert_eq!(
        app.post(&role_path(alice.id), Some(&bob.access), json!({}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post(
            &role_path(99_999),
            Some(&bob.access),
            json!({"role": "MEMBER"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

async fn member_removal_and_leaving(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    app.join(org, &alice, &carol, "MANAGER").await;
    let member_path = |user: i64| format!("/api/orgs/{org}/members/{user}/");

    // Non-admins cannot remove others, not even a manager.
    assert_eq!(
        app.delete(&member_path(bob.id), &carol.access).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&member_path(bob.id), &alice.access).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &bob.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&member_path(bob.id), &alice.access).await.status,
        StatusCode::NOT_FOUND
    );

    // Carol leaves by herself.
    assert_eq!(
        app.delete(&member_path(carol.id), &carol.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/orgs/", &carol.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The last admin cannot leave.
    let r = app.delete(&member_path(alice.id), &alice.access).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "last_admin");
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .body["member_count"],
        1
    );
}

async fn other_tenants_objects_are_not_found(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let own = app.org(&mallory, "Mallory Ltd").await;
    let missing = org + own + 1000;

    for id in [org, missing] {
        let paths_get = [
            format!("/api/orgs/{id}/"),
            format!("/api/orgs/{id}/members/"),
        ];
        for path in &paths_get {
            let r = app.get(path, &mallory.access).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "GET {path}: {}", r.text);
            assert_eq!(r.code(), "not_found");
        }
        let checks = [
            app.patch(
                &format!("/api/orgs/{id}/"),
                &mallory.access,
                json!({"name": "pwned"}),
            )
            .await,
            app.delete(&format!("/api/orgs/{id}/"), &mallory.access)
                .await,
            app.post(
                &format!("/api/orgs/{id}/invite/"),
                Some(&mallory.access),
                json!({"email": "m2@example.com"}),
            )
            .await,
            app.post(
                &format!("/api/orgs/{id}/members/{}/role/", alice.id),
                Some(&mallory.access),
                json!({"role": "MEMBER"}),
            )
            .await,
            app.delete(
                &format!("/api/orgs/{id}/members/{}/", alice.id),
                &mallory.access,
            )
            .await,
        ];
        for r in checks {
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        }
    }
    // Mallory's admin rights in her own org do not reach into Alice's through member ids.
    let r = app
        .post(
            &format!("/api/orgs/{own}/members/{}/role/", alice.id),
            Some(&mallory.access),
            json!({"role": "ADMIN"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/orgs/{org}/"), &alice.access)
            .await
            .body["name"],
        "Acme"
    );
    assert_eq!(
        app.get("/api/orgs/not-a-number/", &alice.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// An ADMIN the org's resource lists (`spec.admins`) is the operator's: demoting or removing
/// them through the API, or their leaving, answers 409 `managed_by_operator` (the operator would
/// invite them to be ADMIN again at its next look). Others are changed as usual.
async fn a_listed_admin_is_the_operators_to_change(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "ADMIN").await;
    testing::execute_sql(
        &app.db_url,
        &format!("INSERT INTO org_spec_admins (org_id, email) VALUES ({org}, 'bob@example.com')"),
    )
    .await;
    let refused = [
        app.post(
            &format!("/api/orgs/{org}/members/{}/role/", bob.id),
            Some(&alice.access),
            json!({"role": "MEMBER"}),
        )
        .await,
        app.delete(
            &format!("/api/orgs/{org}/members/{}/", bob.id),
            &alice.access,
        )
        .await,
        app.delete(&format!("/api/orgs/{org}/members/{}/", bob.id), &bob.access)
            .await,
    ];
    for r in refused {
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.body["code"], "managed_by_operator", "{}", r.text);
    }
    // Alice is not listed: Bob may demote her.
    app.set_role(org, &bob, &alice, "MEMBER").await;
}

/// An organization the operator owns is renamed and deleted through its resource only: 409
/// `managed_by_operator` for any change, a name the API would refuse included (it said 400).
async fn a_managed_org_is_refused_as_managed_whatever_the_change(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET managed = TRUE WHERE id = {org}"),
    )
    .await;
    let path = format!("/api/orgs/{org}/");
    for name in ["Acme Two", "", &"x".repeat(500)] {
        let r = app
            .patch(&path, &alice.access, json!({ "name": name }))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "managed_by_operator"),
            "{name:?}: {}",
            r.text
        );
    }
    let r = app.delete(&path, &alice.access).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "managed_by_operator")
    );
    assert_eq!(app.get(&path, &alice.access).await.body["name"], "Acme");
}
