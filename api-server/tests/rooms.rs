//! `/api/rooms/`: access levels, seating rules, direct messages, room invitations, update and
//! delete, and what leaving an organization does to room seats. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    creation_seats_members_by_access_level,
    room_input_is_validated,
    new_org_members_join_public_rooms,
    join_follows_the_access_level,
    private_rooms_take_invitations_from_creator_or_admin,
    direct_messages_are_idempotent_pairs,
    update_and_delete_need_creator_or_admin,
    leaving_an_org_or_a_role_leaves_rooms,
    other_tenants_rooms_are_not_found,
    a_deleted_rooms_messages_go_a_batch_at_a_time,
);

/// An org with an ADMIN (alice), a MANAGER (mia) and a MEMBER (bob).
async fn team(app: &TestApp) -> (i64, TestUser, TestUser, TestUser) {
    let alice = app.user("alice@example.com").await;
    let mia = app.user("mia@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &mia, "MANAGER").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    (org, alice, mia, bob)
}

async fn member_ids(app: &TestApp, room: i64, as_user: &TestUser) -> Vec<i64> {
    let r = app
        .get(&format!("/api/rooms/{room}/members/"), &as_user.access)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut ids = TestApp::ids(&r.body, "user_id");
    ids.sort();
    ids
}

async fn creation_seats_members_by_access_level(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;

    let r = app
        .post(
            "/api/rooms/",
            Some(&mia.access),
            json!({"org": org, "name": " general "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let general = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["org"], org);
    assert_eq!(r.body["name"], "general");
    assert_eq!(r.body["is_dm"], false);
    assert_eq!(r.body["access_level"], "PUBLIC");
    assert_eq!(r.body["created_by"], mia.id);
    assert_eq!(r.body["members_count"], 3);
    assert_eq!(r.body["last_msg_id"], serde_json::Value::Null);
    assert!(r.body["created_at"].is_string());

    let managers = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let secret = app.room(&mia, org, "secret", "PRIVATE").await;
    assert_eq!(
        member_ids(&app, managers, &alice).await,
        vec![alice.id, mia.id]
    );
    assert_eq!(member_ids(&app, secret, &mia).await, vec![mia.id]);

    // A MEMBER cannot create rooms.
    let r = app
        .post(
            "/api/rooms/",
            Some(&bob.access),
            json!({"org": org, "name": "mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Each user lists exactly the rooms they sit in.
    let list = app.get("/api/rooms/", &bob.access).await;
    assert_eq!(TestApp::ids(&list.body, "id"), vec![general]);
    let list = app.get("/api/rooms/", &mia.access).await;
    assert_eq!(
        TestApp::ids(&list.body, "id"),
        vec![general, managers, secret]
    );
    let filtered = app
        .get(&format!("/api/rooms/?org={org}"), &alice.access)
        .await;
    assert_eq!(TestApp::ids(&filtered.body, "id"), vec![general, managers]);
    let other = app
        .get(&format!("/api/rooms/?org={}", org + 1000), &alice.access)
        .await;
    assert_eq!(other.body, json!([]));
    let bad = app.get("/api/rooms/?org=abc", &alice.access).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["errors"]["org"].is_array(), "{}", bad.text);

    // Members list carries the org role and read pointer.
    let r = app
        .get(&format!("/api/rooms/{general}/members/"), &bob.access)
        .await;
    let me = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == bob.id)
        .unwrap();
    assert_eq!(me["email"], "bob@example.com");
    assert_eq!(me["org_role"], "MEMBER");
    assert_eq!(me["last_read_msg_id"], serde_json::Value::Null);
    assert!(me["joined_at"].is_string());
}

async fn room_input_is_validated(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let org = app.org(&alice, "Acme").await;
    let cases = [
        (json!({"org": org, "name": ""}), "name"),
        (json!({"org": org, "name": "   "}), "name"),
        (json!({"org": org, "name": "x".repeat(121)}), "name"),
        (json!({"org": org, "name": 5}), "name"),
        (json!({"org": org}), "name"),
        (json!({"org": "one", "name": "a"}), "org"),
        (json!({"name": "a"}), "org"),
        (
            json!({"org": org, "name": "a", "access_level": "SECRET"}),
            "access_level",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .post("/api/rooms/", Some(&alice.access), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(
            r.body["errors"][field].is_array(),
            "{body} should name {field}: {}",
            r.text
        );
    }
    // 120 characters, counted as characters not bytes, is fine.
    let r = app
        .post(
            "/api/rooms/",
            Some(&alice.access),
            json!({"org": org, "name": "é".repeat(120)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let room = r.body["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/rooms/{room}/"),
            &alice.access,
            json!({"name": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Ids that are not numbers name no room.
    let r = app.get("/api/rooms/abc/", &alice.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn new_org_members_join_public_rooms(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, _bob) = team(&app).await;
    let general = app.room(&alice, org, "general", "PUBLIC").await;
    let random = app.room(&mia, org, "random", "PUBLIC").await;
    let leads = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;

    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MANAGER").await;
    let list = app.get("/api/rooms/", &carol.access).await;
    assert_eq!(TestApp::ids(&list.body, "id"), vec![general, random]);
    assert_eq!(
        app.get(&format!("/api/rooms/{leads}/"), &carol.access)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "MANAGER_ONLY rooms are joined, not given"
    );
    assert_eq!(
        app.get(&format!("/api/rooms/{secret}/"), &carol.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn join_follows_the_access_level(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let general = app.room(&alice, org, "general", "PUBLIC").await;
    let leads = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;

    // Already a member: 200.
    let r = app
        .post(
            &format!("/api/rooms/{general}/join/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Leave, then the room is invisible until joined again (201).
    let r = app
        .post(
            &format!("/api/rooms/{general}/leave/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"room_id": general, "left": true}));
    assert_eq!(
        app.get(&format!("/api/rooms/{general}/"), &bob.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/api/rooms/{general}/leave/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "leaving twice");
    let r = app.joined(&bob, general).await;
    assert_eq!(r.body["members_count"], 3);

    // MANAGER_ONLY: a MEMBER may not, a MANAGER who left may come back.
    let r = app
        .post(
            &format!("/api/rooms/{leads}/join/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.post(
        &format!("/api/rooms/{leads}/leave/"),
        Some(&mia.access),
        json!({}),
    )
    .await;
    app.joined(&mia, leads).await;

    // PRIVATE: invitation only, whatever the role; to those who may not see it, as if it did
    // not exist (a refusal naming why told them it does).
    for outside in [&mia, &bob] {
        let r = app
            .post(
                &format!("/api/rooms/{secret}/join/"),
                Some(&outside.access),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(
            r.body,
            app.post("/api/rooms/999999/join/", Some(&outside.access), json!({}))
                .await
                .body
        );
    }

    // No such room.
    let r = app
        .post("/api/rooms/999999/join/", Some(&bob.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn private_rooms_take_invitations_from_creator_or_admin(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let outsider = app.user("olga@example.com").await;
    let secret = app.room(&mia, org, "secret", "PRIVATE").await;
    let path = format!("/api/rooms/{secret}/invite/");

    // The creator invites: 201, then 200 for the same person.
    let r = app
        .post(&path, Some(&mia.access), json!({"user_id": bob.id}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["members_count"], 2);
    let r = app
        .post(&path, Some(&mia.access), json!({"user_id": bob.id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A member who is not the creator may not invite; an org member outside the room sees nothing.
    let r = app
        .post(&path, Some(&bob.access), json!({"user_id": carol.id}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(&path, Some(&carol.access), json!({"user_id": carol.id}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // An org ADMIN may, without sitting in the room.
    let r = app
        .post(&path, Some(&alice.access), json!({"user_id": carol.id}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Only org members can be seated.
    let r = app
        .post(&path, Some(&mia.access), json!({"user_id": outsider.id}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["errors"]["user_id"].is_array());
    let r = app
        .post(&path, Some(&mia.access), json!({"user_id": "bob"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        member_ids(&app, secret, &bob).await,
        vec![mia.id, bob.id, carol.id]
    );

    // A MANAGER_ONLY room takes no MEMBERs, even by invitation.
    let leads = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let r = app
        .post(
            &format!("/api/rooms/{leads}/invite/"),
            Some(&alice.access),
            json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn direct_messages_are_idempotent_pairs(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let outsider = app.user("olga@example.com").await;

    let r = app
        .post(
            "/api/rooms/dm/",
            Some(&bob.access),
            json!({"org": org, "user_id": alice.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dm = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["is_dm"], true);
    assert_eq!(r.body["members_count"], 2);
    // From the other side: the same room, 200.
    let r = app
        .post(
            "/api/rooms/dm/",
            Some(&alice.access),
            json!({"org": org, "user_id": bob.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], dm);
    assert_eq!(member_ids(&app, dm, &bob).await, vec![alice.id, bob.id]);

    // Nobody else gets in, and its two seats are fixed.
    let r = app
        .post(
            &format!("/api/rooms/{dm}/join/"),
            Some(&mia.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/rooms/{dm}/"), &mia.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/api/rooms/{dm}/invite/"),
            Some(&alice.access),
            json!({"user_id": mia.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .post(
            &format!("/api/rooms/{dm}/leave/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .patch(
            &format!("/api/rooms/{dm}/"),
            &bob.access,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Bad partners.
    for (body, status) in [
        (
            json!({"org": org, "user_id": bob.id}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"org": org, "user_id": outsider.id}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"org": org, "user_id": "x"}), StatusCode::BAD_REQUEST),
        (json!({"org": org}), StatusCode::BAD_REQUEST),
    ] {
        let r = app
            .post("/api/rooms/dm/", Some(&bob.access), body.clone())
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // An outsider cannot open a DM in an org they are not in.
    let r = app
        .post(
            "/api/rooms/dm/",
            Some(&outsider.access),
            json!({"org": org, "user_id": bob.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Opened by both at once: still one room.
    let (a, b) = tokio::join!(
        app.post(
            "/api/rooms/dm/",
            Some(&mia.access),
            json!({"org": org, "user_id": bob.id})
        ),
        app.post(
            "/api/rooms/dm/",
            Some(&bob.access),
            json!({"org": org, "user_id": mia.id})
        ),
    );
    assert_eq!(a.body["id"], b.body["id"], "{} / {}", a.text, b.text);
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 201]);
}

async fn update_and_delete_need_creator_or_admin(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let room = app.room(&mia, org, "general", "PUBLIC").await;
    let path = format!("/api/rooms/{room}/");

    let r = app.patch(&path, &bob.access, json!({"name": "mine"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .patch(
            &path,
            &mia.access,
            json!({"name": "town square", "access_level": "PRIVATE"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "town square");
    assert_eq!(r.body["access_level"], "PRIVATE");
    assert_eq!(r.body["members_count"], 3, "members keep their seats");
    let r = app
        .patch(&path, &mia.access, json!({"access_level": "OPEN"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // An org ADMIN who left the room may still manage it.
    app.post(
        &format!("/api/rooms/{room}/leave/"),
        Some(&alice.access),
        json!({}),
    )
    .await;
    let r = app
        .patch(&path, &alice.access, json!({"name": "renamed"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    app.send(&bob, room, "hello").await;
    let r = app.delete(&path, &bob.access).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.delete(&path, &alice.access).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.get(&path, &mia.access).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .get(&format!("/api/rooms/{room}/messages/"), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, &alice.access).await.status,
        StatusCode::NOT_FOUND
    );
}

/// How many messages of `room` the database still holds.
async fn stored_messages(app: &TestApp, room: i64) -> usize {
    let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE room_id = {room}");
    testing::query_texts(&app.db_url, &sql).await[0]
        .parse()
        .unwrap()
}

/// How many reactions, mentions and thread follows of `room` the database still holds.
async fn stored_dependents(app: &TestApp, room: i64) -> [usize; 3] {
    let mut counts = [0; 3];
    for (count, table) in counts
        .iter_mut()
        .zip(["reactions", "mentions", "thread_follows"])
    {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE room_id = {room}");
        *count = testing::query_texts(&app.db_url, &sql).await[0]
            .parse()
            .unwrap();
    }
    counts
}

/// A room's deletion takes its row and seats in one short transaction and leaves its messages,
/// with their reactions, mentions and thread follows, to go a batch per transaction (one
/// transaction for a room of a million messages held SQLite's only writer, and every post, for
/// seconds; so did its mentions, while they went with the room's row); nothing reads them
/// meanwhile. Deleted through the API, they are purged in the background; other rooms keep
/// theirs.
async fn a_deleted_rooms_messages_go_a_batch_at_a_time(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let room = app.room(&mia, org, "general", "PUBLIC").await;
    let other = app.room(&mia, org, "random", "PUBLIC").await;
    let kept = app.room(&mia, org, "kept", "PUBLIC").await;
    let first = app.send(&bob, room, "m0").await;
    for i in 1..5 {
        app.send(&bob, room, &format!("m{i}")).await;
    }
    app.send(&bob, other, "gone too").await;
    app.send(&bob, kept, "stays").await;
    // A reaction, an `@room` (a mention of each other member) and a reply (its thread
    // followed by the root's author and the replier).
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/{first}/reactions/"),
            Some(&mia.access),
            json!({"emoji": "👍"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    app.send(&mia, room, "@room all of you").await;
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&mia.access),
            json!({"body": "a reply", "parent_id": first}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dependents = stored_dependents(&app, room).await;
    assert!(dependents.iter().all(|n| *n > 0), "{dependents:?}");

    let store = &app.state.store;
    store.delete_room(room, alice.id).await.unwrap();
    assert_eq!(stored_messages(&app, room).await, 7, "left for the purge");
    assert_eq!(
        stored_dependents(&app, room).await,
        dependents,
        "left for the purge with their messages"
    );
    assert_eq!(store.message(room, first).await.unwrap(), None);
    let mut batches = Vec::new();
    while let Some(n) = store.purge_erased_messages(2).await.unwrap() {
        batches.push(n);
    }
    assert_eq!(batches, [2, 2, 2, 1]);
    assert_eq!(stored_messages(&app, room).await, 0);
    assert_eq!(stored_dependents(&app, room).await, [0; 3]);

    let r = app
        .delete(&format!("/api/rooms/{other}/"), &alice.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stored_messages(&app, other).await > 0 {
        assert!(std::time::Instant::now() < deadline, "not purged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.purge_erased_messages(2).await.unwrap(), None);
    assert_eq!(stored_messages(&app, kept).await, 1);
}

async fn leaving_an_org_or_a_role_leaves_rooms(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, mia, bob) = team(&app).await;
    let general = app.room(&alice, org, "general", "PUBLIC").await;
    let leads = app.room(&alice, org, "leads", "MANAGER_ONLY").await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;
    app.post(
        &format!("/api/rooms/{secret}/invite/"),
        Some(&alice.access),
        json!({"user_id": mia.id}),
    )
    .await;

    // Demoted to MEMBER: out of the MANAGER_ONLY room, still in the others.
    let r = app
        .post(
            &format!("/api/orgs/{org}/members/{}/role/", mia.id),
            Some(&alice.access),
            json!({"role": "MEMBER"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = app.get("/api/rooms/", &mia.access).await;
    assert_eq!(TestApp::ids(&list.body, "id"), vec![general, secret]);
    let _ = leads;

    // Removed from the org: out of every room of it.
    let r = app
        .delete(
            &format!("/api/orgs/{org}/members/{}/", mia.id),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/rooms/", &mia.access).await.body, json!([]));
    // Leaving by themself works the same.
    let r = app
        .delete(&format!("/api/orgs/{org}/members/{}/", bob.id), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/rooms/", &bob.access).await.body, json!([]));
    assert_eq!(member_ids(&app, general, &alice).await, vec![alice.id]);
}

async fn other_tenants_rooms_are_not_found(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, alice, _mia, bob) = team(&app).await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    let msg = app.send(&bob, room, "hi").await;
    let eve = app.user("eve@example.com").await;
    app.org(&eve, "Evil").await;

    for path in [
        format!("/api/rooms/{room}/"),
        format!("/api/rooms/{room}/members/"),
        format!("/api/rooms/{room}/messages/"),
    ] {
        assert_eq!(
            app.get(&path, &eve.access).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        format!("/api/rooms/{room}/join/"),
        format!("/api/rooms/{room}/leave/"),
        format!("/api/rooms/{room}/read/{msg}/"),
    ] {
        let r = app.post(&path, Some(&eve.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = app
        .post(
            &format!("/api/rooms/{room}/invite/"),
            Some(&eve.access),
            json!({"user_id": eve.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&eve.access),
            json!({"body": "spam"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(
            &format!("/api/rooms/{room}/"),
            &eve.access,
            json!({"name": "x"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/rooms/{room}/messages/{msg}/"), &eve.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/rooms/{room}/"), &eve.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            "/api/rooms/",
            Some(&eve.access),
            json!({"org": org, "name": "takeover"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/rooms/", &eve.access).await.body, json!([]));
}
