//! `/api/webhooks/`: management by org ADMINs, the secret shown once, validation, the SSRF
//! guard at creation, managed webhooks, the delivery log and test deliveries. Both engines.
//! (Delivery itself is the worker's; see worker/tests/webhooks.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use chatboard_store::NewWebhook;
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    admins_manage_webhooks_and_see_the_secret_once,
    only_admins_of_the_org_may_touch_webhooks,
    bad_webhooks_are_refused,
    private_targets_are_refused_unless_allowed,
    managed_webhooks_cannot_be_changed_through_rest,
    test_deliveries_show_in_the_log,
    the_webhook_limit_holds_under_concurrent_creations,
    a_webhook_goes_off_when_its_admin_stops_being_one,
);

/// An app whose webhooks may target loopback (test receivers live there).
async fn app_allowing_private(engine: Engine) -> Option<TestApp> {
    TestApp::spawn_with(engine, |c| c.webhooks.allow_private = true).await
}

async fn admins_manage_webhooks_and_see_the_secret_once(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Acme").await;
    let r = app
        .post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "http://127.0.0.1:9/hook", "events": ["message.created", "member.joined", "message.created"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_i64().unwrap();
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(r.body["org"], org);
    assert_eq!(
        r.body["events"],
        json!(["message.created", "member.joined"])
    );
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["managed"], false);

    // Never again: not in the list, not in the object, not after a change.
    let list = app
        .get(&format!("/api/webhooks/?org={org}"), &admin.access)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(TestApp::ids(&list.body, "id"), vec![id]);
    assert!(!list.text.contains(&secret) && list.body[0].get("secret").is_none());
    let one = app
        .get(&format!("/api/webhooks/{id}/"), &admin.access)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(!one.text.contains(&secret));

    let changed = app
        .patch(
            &format!("/api/webhooks/{id}/"),
            &admin.access,
            json!({"events": ["*", "room.created"], "is_active": false}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["events"], json!(["*"]));
    assert_eq!(changed.body["is_active"], false);
    assert_eq!(changed.body["url"], "http://127.0.0.1:9/hook");
    assert!(!changed.text.contains(&secret));

    let gone = app
        .delete(&format!("/api/webhooks/{id}/"), &admin.access)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let after = app
        .get(&format!("/api/webhooks/{id}/"), &admin.access)
        .await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

async fn only_admins_of_the_org_may_touch_webhooks(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let manager = app.user("manager@example.com").await;
    let stranger = app.user("stranger@example.com").await;
    let org = app.org(&admin, "Acme").await;
    app.join(org, &admin, &manager, "MANAGER").await;
    let body = json!({"org": org, "url": "http://127.0.0.1:9/", "events": ["*"]});
    let r = app
        .post("/api/webhooks/", Some(&manager.access), body.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post("/api/webhooks/", Some(&stranger.access), body.clone())
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "outsiders do not learn the org exists"
    );
    let r = app.post("/api/webhooks/", None, body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let id = app
        .post("/api/webhooks/", Some(&admin.access), body)
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    for (who, status) in [
        (&manager, StatusCode::FORBIDDEN),
        (&stranger, StatusCode::NOT_FOUND),
    ] {
        let path = format!("/api/webhooks/{id}/");
        assert_eq!(app.get(&path, &who.access).await.status, status);
        assert_eq!(
            app.patch(&path, &who.access, json!({"is_active": false}))
                .await
                .status,
            status
        );
        assert_eq!(app.delete(&path, &who.access).await.status, status);
        assert_eq!(
            app.get(&format!("{path}events/"), &who.access).await.status,
            status
        );
        assert_eq!(
            app.post(&format!("{path}test/"), Some(&who.access), json!({}))
                .await
                .status,
            status
        );
        let list = app
            .get(&format!("/api/webhooks/?org={org}"), &who.access)
            .await;
        assert_eq!(list.status, status);
    }
}

async fn bad_webhooks_are_refused(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Acme").await;
    for (body, field) in [
        (
            json!({"org": org, "url": "ftp://example.com/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"org": org, "url": "not a url", "events": ["*"]}),
            "url",
        ),
        (
            json!({"org": org, "url": "https://u:p@example.com/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"org": org, "url": format!("https://example.com/{}", "a".repeat(2100)), "events": ["*"]}),
            "url",
        ),
        (
            json!({"org": org, "url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"org": org, "url": "https://example.com/", "events": ["message.exploded"]}),
            "events",
        ),
    ] {
        let r = app
            .post("/api/webhooks/", Some(&admin.access), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.body["errors"][field].is_array(), "{body}: {}", r.text);
    }
    let r = app
        .post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "https://example.com/"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "events missing: {}",
        r.text
    );
    let r = app.get("/api/webhooks/", &admin.access).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "org missing: {}", r.text);
    assert!(r.body["errors"]["org"].is_array());
    let r = app
        .get(&format!("/api/webhooks/?org={org}"), &admin.access)
        .await;
    assert_eq!(r.body, json!([]));
}

async fn private_targets_are_refused_unless_allowed(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Acme").await;
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00::1]/",
    ] {
        let r = app
            .post(
                "/api/webhooks/",
                Some(&admin.access),
                json!({"org": org, "url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        let problem = r.body["errors"]["url"][0].as_str().unwrap_or_default();
        // In the same words whatever the address or name: saying where an internal name
        // resolves mapped the internal network for anyone.
        assert_eq!(
            problem, "The host is not a public internet address, or does not resolve.",
            "{url}"
        );
    }
    let r = app
        .post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "http://no-such-name.invalid/", "events": ["*"]}),
        )
        .await;
    assert_eq!(
        r.body["errors"]["url"][0],
        "The host is not a public internet address, or does not resolve.",
        "{}",
        r.text
    );
    // Public addresses pass (no request is made at creation).
    let r = app
        .post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "https://93.184.216.34/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_i64().unwrap();
    // ...and changing the URL is checked the same way.
    let r = app
        .patch(
            &format!("/api/webhooks/{id}/"),
            &admin.access,
            json!({"url": "http://127.0.0.1/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn managed_webhooks_cannot_be_changed_through_rest(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Acme").await;
    let hook = app
        .state
        .store
        .create_webhook(
            NewWebhook {
                org_id: org,
                url: "https://audit.example.com/".into(),
                events: vec!["*".into()],
                secret: "from-a-kubernetes-secret".into(),
                is_active: true,
                managed: true,
                max_attempts: Some(3),
                created_by: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let path = format!("/api/webhooks/{}/", hook.id);
    let r = app.get(&path, &admin.access).await;
    assert_eq!(
        (r.status, r.body["managed"].clone()),
        (StatusCode::OK, json!(true))
    );
    // Whatever the change, valid or not (a bad field said 400 before the 409).
    for change in [
        json!({"is_active": false}),
        json!({"events": ["bogus"]}),
        json!({"url": "http://127.0.0.1/"}),
    ] {
        let r = app.patch(&path, &admin.access, change.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "managed_by_operator"),
            "{change}: {}",
            r.text
        );
    }
    let r = app.delete(&path, &admin.access).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "managed_by_operator")
    );
    assert!(
        app.state
            .store
            .webhook(hook.id)
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
}

async fn test_deliveries_show_in_the_log(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Acme").await;
    let id = app
        .post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": "http://127.0.0.1:9/", "events": ["message.created"]}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        let r = app
            .post(
                &format!("/api/webhooks/{id}/test/"),
                Some(&admin.access),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        queued.push(r.body["delivery_id"].as_i64().unwrap());
    }
    // No worker runs here: the deliveries wait, newest first.
    let log = app
        .get(&format!("/api/webhooks/{id}/events/"), &admin.access)
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    queued.reverse();
    assert_eq!(TestApp::ids(&log.body, "id"), queued);
    let first = &log.body[0];
    assert_eq!(first["event_type"], "webhook.test");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["attempts"], 0);
    assert!(first["event_id"].as_str().is_some_and(|e| e.len() == 36));
    assert!(first["next_attempt_at"].is_string() && first["delivered_at"].is_null());
    let page = app
        .get(
            &format!("/api/webhooks/{id}/events/?limit=1&before={}", queued[0]),
            &admin.access,
        )
        .await;
    assert_eq!(TestApp::ids(&page.body, "id"), vec![queued[1]]);
    let bad = app
        .get(
            &format!("/api/webhooks/{id}/events/?limit=500"),
            &admin.access,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A test delivery is for its webhook only: it is not in the relay's backlog.
    let backlog = app.state.store.outbox_unpublished(100).await.unwrap();
    assert!(backlog.iter().all(|e| e.event_type != "webhook.test"));
    // Switched off, its waiting deliveries are parked (no due time) and it cannot be tested.
    app.patch(
        &format!("/api/webhooks/{id}/"),
        &admin.access,
        json!({"is_active": false}),
    )
    .await;
    let parked = app
        .get(&format!("/api/webhooks/{id}/events/"), &admin.access)
        .await;
    assert!(
        parked
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["next_attempt_at"].is_null() && d["status"] == "pending"),
        "{}",
        parked.text
    );
    let r = app
        .post(
            &format!("/api/webhooks/{id}/test/"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "webhook_inactive")
    );
    // The store checks it again under the webhook's lock: a switch-off committed after the
    // use case read the webhook as on queues no test (it did, parked until switched on).
    assert!(matches!(
        app.state
            .store
            .create_test_delivery(id, None, chrono::Utc::now())
            .await,
        Err(chatboard_store::StoreError::Conflict(
            chatboard_core::error_code::ErrorCode::WebhookInactive
        ))
    ));
    // Switched on again, they are due again.
    app.patch(
        &format!("/api/webhooks/{id}/"),
        &admin.access,
        json!({"is_active": true}),
    )
    .await;
    let resumed = app
        .get(&format!("/api/webhooks/{id}/events/"), &admin.access)
        .await;
    assert!(
        resumed
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["next_attempt_at"].is_string()),
        "{}",
        resumed.text
    );
}

/// An organization has at most 100 webhooks, also when several are created at once: the count
/// is checked under the org's lock. (It was read before the insert, so creations at the same
/// moment all passed it.)
async fn the_webhook_limit_holds_under_concurrent_creations(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let admin = app.user("admin@example.com").await;
    let org = app.org(&admin, "Hooks").await;
    for n in 0..98 {
        app.state
            .store
            .create_webhook(
                chatboard_store::NewWebhook {
                    org_id: org,
                    url: format!("http://127.0.0.1:9/hook/{n}"),
                    events: vec!["*".into()],
                    secret: "whsec_test".into(),
                    is_active: true,
                    managed: false,
                    max_attempts: None,
                    created_by: None,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    let create = |n: usize| {
        app.post(
            "/api/webhooks/",
            Some(&admin.access),
            json!({"org": org, "url": format!("http://127.0.0.1:9/more/{n}"), "events": ["*"]}),
        )
    };
    let answers = futures::future::join_all((0..5).map(create)).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        2,
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
        assert_eq!(refused.body["code"], "too_many_webhooks");
    }
    let stored = app.state.store.webhooks_of_org(org).await.unwrap();
    assert_eq!(stored.len(), 100);
}

/// A webhook hears every conversation of its organization, DMs included: once the ADMIN who
/// made it (or last switched it on) is demoted, removed or leaves, it is switched off, as their
/// invitations are revoked, and says why. An ADMIN who switches it on again makes it theirs.
async fn a_webhook_goes_off_when_its_admin_stops_being_one(engine: Engine) {
    let Some(app) = app_allowing_private(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let hook_of = |who: &common::TestUser| {
        let token = who.access.clone();
        let app = &app;
        async move {
            let r = app
                .post(
                    "/api/webhooks/",
                    Some(&token),
                    json!({"org": org, "url": "http://127.0.0.1:9/hook", "events": ["*"]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            r.body["id"].as_i64().unwrap()
        }
    };
    let state = |id: i64| {
        let token = alice.access.clone();
        let app = &app;
        async move {
            let r = app.get(&format!("/api/webhooks/{id}/"), &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            (
                r.body["is_active"].as_bool().unwrap(),
                r.body["created_by"].as_i64(),
                r.body["disabled_reason"].as_str().map(str::to_owned),
            )
        }
    };
    let mine = hook_of(&alice).await;
    let mut departures = Vec::new();
    for (email, how) in [
        ("demoted@example.com", "demoted"),
        ("removed@example.com", "removed"),
        ("leaving@example.com", "leaves"),
    ] {
        let admin = app.user(email).await;
        app.join(org, &alice, &admin, "ADMIN").await;
        let hook = hook_of(&admin).await;
        assert_eq!(state(hook).await, (true, Some(admin.id), None));
        // One a resource owns now (an Organization took the org back after this ADMIN had
        // switched it on): its resource says whether it is on.
        let owned = app
            .state
            .store
            .create_webhook(
                NewWebhook {
                    org_id: org,
                    url: "http://127.0.0.1:9/owned".into(),
                    events: vec!["*".into()],
                    secret: "whsec_owned".into(),
                    is_active: true,
                    managed: true,
                    max_attempts: None,
                    created_by: Some(admin.id),
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        match how {
            "demoted" => app.set_role(org, &alice, &admin, "MANAGER").await,
            "removed" => {
                let path = format!("/api/orgs/{org}/members/{}/", admin.id);
                let r = app.delete(&path, &alice.access).await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
            }
            _ => {
                let path = format!("/api/orgs/{org}/members/{}/", admin.id);
                let r = app.delete(&path, &admin.access).await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
            }
        }
        let (active, by, why) = state(hook).await;
        assert!(!active, "{how}: still on");
        assert_eq!(by, Some(admin.id));
        assert!(why.is_some_and(|w| w.contains("no longer")), "{how}");
        assert!(state(owned.id).await.0, "{how}: the resource's webhook");
        departures.push(hook);
    }
    // Nobody else's webhook moved.
    assert_eq!(state(mine).await, (true, Some(alice.id), None));
    // Switched on again by an ADMIN: theirs from then on.
    let path = format!("/api/webhooks/{}/", departures[0]);
    let r = app
        .patch(&path, &alice.access, json!({"is_active": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(state(departures[0]).await, (true, Some(alice.id), None));

    // The store checks the role again under the organization's lock: a demotion that
    // committed after the use case's own check still refuses the webhook, or the change.
    let demoted = app.user("late@example.com").await;
    app.join(org, &alice, &demoted, "MEMBER").await;
    let late = NewWebhook {
        org_id: org,
        url: "http://127.0.0.1:9/late".into(),
        events: vec!["*".into()],
        secret: "whsec_late".into(),
        is_active: true,
        managed: false,
        max_attempts: None,
        created_by: Some(demoted.id),
    };
    let now = chrono::Utc::now();
    assert!(matches!(
        app.state.store.create_webhook(late, now).await,
        Err(chatboard_store::StoreError::Forbidden(_))
    ));
    let patch = chatboard_store::WebhookPatch {
        url: Some("http://127.0.0.1:9/elsewhere".into()),
        by: Some(demoted.id),
        ..Default::default()
    };
    assert!(matches!(
        app.state.store.update_webhook(mine, patch, now).await,
        Err(chatboard_store::StoreError::Forbidden(_))
    ));
}
