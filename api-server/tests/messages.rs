//! Messages, cursor paging, idempotent sends, edit and delete, read receipts, unread counts and
//! the event outbox. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use std::collections::HashSet;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    posting_returns_the_message_object,
    message_input_is_validated,
    cursor_paging_walks_both_ways,
    paging_parameters_are_validated,
    client_msg_id_makes_sending_idempotent,
    edit_and_delete_rules,
    membership_is_enforced_on_every_call,
    read_pointer_is_monotonic_and_room_checked,
    unread_counts_skip_own_and_deleted_messages,
    every_change_writes_its_event,
    repeated_page_reads_never_go_stale,
    concurrent_posts_keep_order_and_counts_exact,
    concurrent_posts_over_many_rooms_keep_every_room_gapless,
    pages_without_the_cache,
);

fn messages_path(room: i64) -> String {
    format!("/api/rooms/{room}/messages/")
}

async fn posting_returns_the_message_object(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, _alice, bob) = app.room_for_two().await;
    let r = app
        .post(
            &messages_path(room),
            Some(&bob.access),
            json!({"body": "  hello\nworld "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let m = &r.body;
    assert!(m["id"].is_i64());
    assert_eq!(m["room"], room);
    assert_eq!(m["org"], org);
    assert_eq!(m["sender"], bob.id);
    assert_eq!(m["body"], "  hello\nworld ", "text is kept as written");
    assert_eq!(m["file"], Value::Null);
    assert_eq!(m["client_msg_id"], Value::Null);
    assert_eq!(m["is_deleted"], false);
    assert!(m["created_at"].is_string());
    assert_eq!(m["edited_at"], Value::Null);

    let view = app.get(&format!("/api/rooms/{room}/"), &bob.access).await;
    assert_eq!(view.body["last_msg_id"], m["id"]);
    // Exactly 4,000 characters (multi-byte ones count once) is accepted.
    let r = app
        .post(
            &messages_path(room),
            Some(&bob.access),
            json!({"body": "ü".repeat(4000)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn message_input_is_validated(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (_org, room, alice, _bob) = app.room_for_two().await;
    let cases = [
        (json!({"body": ""}), "body"),
        (json!({"body": " \n\t "}), "body"),
        (json!({}), "body"),
        (json!({"body": null}), "body"),
        (json!({"body": "x".repeat(4001)}), "body"),
        (json!({"body": 42}), "body"),
        (json!({"body": ["a"]}), "body"),
        (
            json!({"body": "hi", "client_msg_id": "c".repeat(65)}),
            "client_msg_id",
        ),
        (json!({"body": "hi", "client_msg_id": ""}), "client_msg_id"),
        (json!({"body": "hi", "client_msg_id": 7}), "client_msg_id"),
        (
            json!({"body": "hi", "file_id": "3f1c1b7e-0000-4000-8000-000000000000"}),
            "file_id",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .post(&messages_path(room), Some(&alice.access), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(
            r.body["errors"][field].is_array(),
            "{body} should name {field}: {}",
            r.text
        );
    }
    let r = app
        .post_raw(
            &messages_path(room),
            Some("application/json"),
            b"{\"body\": \"unterminated".to_vec(),
        )
        .await;
    assert!(r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNAUTHORIZED);
    // Nothing was stored by any of them.
    let page = app.get(&messages_path(room), &alice.access).await;
    assert_eq!(page.body["results"], json!([]));
}

async fn cursor_paging_walks_both_ways(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    // Another room's messages interleave with ours and must never show up.
    let other = app.room(&alice, org, "random", "PUBLIC").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.send(&bob, room, &format!("m{i}")).await);
        app.send(&alice, other, "noise").await;
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // Default page: everything, newest first, no next.
    let page = app.get(&messages_path(room), &alice.access).await;
    assert_eq!(page.status, StatusCode::OK);
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(TestApp::ids(&page.body["results"], "id"), newest_first);
    assert_eq!(page.body["next"], Value::Null);

    // Backwards in pages of 3 by following next.
    let mut seen = Vec::new();
    let mut path = format!("{}?limit=3", messages_path(room));
    let mut pages = 0;
    loop {
        let page = app.get(&path, &alice.access).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        seen.extend(TestApp::ids(&page.body["results"], "id"));
        pages += 1;
        match page.body["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3);

    // Forwards from the first message, oldest first.
    let mut seen = Vec::new();
    let mut path = format!("{}?after={}&limit=4", messages_path(room), ids[0]);
    loop {
        let page = app.get(&path, &alice.access).await;
        seen.extend(TestApp::ids(&page.body["results"], "id"));
        match page.body["next"].as_str() {
            Some(next) => {
                assert!(next.contains("after="), "{next}");
                path = next.to_owned()
            }
            None => break,
        }
    }
    assert_eq!(seen, ids[1..].to_vec());

    // A page before a middle id.
    let page = app
        .get(
            &format!("{}?before={}&limit=2", messages_path(room), ids[4]),
            &alice.access,
        )
        .await;
    assert_eq!(
        TestApp::ids(&page.body["results"], "id"),
        vec![ids[3], ids[2]]
    );
    assert!(page.body["next"].is_string());
    // Past the newest: empty, no next.
    let page = app
        .get(
            &format!("{}?after={}", messages_path(room), ids[6]),
            &alice.access,
        )
        .await;
    assert_eq!(page.body, json!({"results": [], "next": null}));
}

async fn paging_parameters_are_validated(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (_org, room, alice, _bob) = app.room_for_two().await;
    app.send(&alice, room, "one").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("limit=", "limit"),
        ("before=abc", "before"),
        ("before=-1", "before"),
        ("before=0", "before"),
        ("after=1.5", "after"),
        ("after=99999999999999999999999", "after"),
        ("before=5&after=3", "after"),
    ] {
        let r = app
            .get(&format!("{}?{query}", messages_path(room)), &alice.access)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert!(r.body["errors"][field].is_array(), "{query}: {}", r.text);
    }
    for query in [
        "limit=1",
        "limit=100",
        "before=99999",
        "after=1",
        "unknown=1",
    ] {
        let r = app
            .get(&format!("{}?{query}", messages_path(room)), &alice.access)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    }
}

async fn client_msg_id_makes_sending_idempotent(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let send = |user: &TestUser, room: i64, body: &str, cid: &str| {
        let (token, path) = (user.access.clone(), messages_path(room));
        let body = json!({"body": body, "client_msg_id": cid});
        let app = &app;
        async move { app.post(&path, Some(&token), body).await }
    };
    let first = send(&bob, room, "hello", "c-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["client_msg_id"], "c-1");
    let again = send(&bob, room, "hello (retry)", "c-1").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, first.body, "the original, unchanged");
    // The key is per sender and per room.
    assert_eq!(
        send(&alice, room, "hi", "c-1").await.status,
        StatusCode::CREATED
    );
    let other = app.room(&alice, org, "random", "PUBLIC").await;
    assert_eq!(
        send(&bob, other, "hi", "c-1").await.status,
        StatusCode::CREATED
    );

    // Eight concurrent retries of one send store it once.
    let attempts =
        futures::future::join_all((0..8).map(|_| send(&bob, room, "burst", "c-burst"))).await;
    let created = attempts
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let ids: HashSet<i64> = attempts
        .iter()
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(created, 1, "{attempts:?}");
    assert_eq!(ids.len(), 1);
    assert!(attempts.iter().all(|r| r.status.is_success()));
    let page = app.get(&messages_path(room), &bob.access).await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 3);
}

async fn edit_and_delete_rules(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MANAGER").await;
    let msg = app.send(&bob, room, "draft").await;
    let path = format!("/api/rooms/{room}/messages/{msg}/");

    let r = app
        .patch(&path, &bob.access, json!({"body": "final"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["body"], "final");
    assert!(r.body["edited_at"].is_string());
    for bad in [
        json!({"body": ""}),
        json!({"body": "x".repeat(4001)}),
        json!({}),
        json!({"body": 1}),
    ] {
        let r = app.patch(&path, &bob.access, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Only the sender edits, even an ADMIN may not.
    assert_eq!(
        app.patch(&path, &alice.access, json!({"body": "mine"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A MANAGER who is not the sender may not delete; the sender or an ADMIN may.
    assert_eq!(
        app.delete(&path, &carol.access).await.status,
        StatusCode::FORBIDDEN
    );
    let r = app.delete(&path, &alice.access).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.delete(&path, &bob.access).await.status,
        StatusCode::NO_CONTENT,
        "again"
    );

    let page = app.get(&messages_path(room), &bob.access).await;
    let shown = &page.body["results"][0];
    assert_eq!(shown["id"], msg);
    assert_eq!(shown["is_deleted"], true);
    assert_eq!(shown["body"], "");
    let r = app
        .patch(&path, &bob.access, json!({"body": "resurrect"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "message_deleted");

    let own = app.send(&carol, room, "mine").await;
    let r = app
        .delete(&format!("/api/rooms/{room}/messages/{own}/"), &carol.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .delete(&format!("/api/rooms/{room}/messages/999999/"), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn membership_is_enforced_on_every_call(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;
    let secret_msg = app.send(&alice, secret, "for alice only").await;
    let msg = app.send(&alice, room, "public").await;

    // Bob is in the org but not in the private room.
    let sp = messages_path(secret);
    assert_eq!(
        app.get(&sp, &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&sp, Some(&bob.access), json!({"body": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let one = format!("/api/rooms/{secret}/messages/{secret_msg}/");
    assert_eq!(
        app.patch(&one, &bob.access, json!({"body": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&one, &bob.access).await.status,
        StatusCode::NOT_FOUND
    );

    // Another room's message id through this room's path is not found.
    let crossed = format!("/api/rooms/{room}/messages/{secret_msg}/");
    assert_eq!(
        app.patch(&crossed, &alice.access, json!({"body": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&crossed, &alice.access).await.status,
        StatusCode::NOT_FOUND
    );

    // Leaving ends access at once.
    app.post(
        &format!("/api/rooms/{room}/leave/"),
        Some(&bob.access),
        json!({}),
    )
    .await;
    assert_eq!(
        app.get(&messages_path(room), &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &messages_path(room),
            Some(&bob.access),
            json!({"body": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("/api/rooms/{room}/read/{msg}/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Without a token: 401.
    let r = app
        .call(reqwest::Method::GET, &messages_path(room), None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn read_pointer_is_monotonic_and_room_checked(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let other = app.room(&alice, org, "random", "PUBLIC").await;
    let m1 = app.send(&alice, room, "1").await;
    let m2 = app.send(&alice, room, "2").await;
    let elsewhere = app.send(&alice, other, "x").await;
    let read = |id: i64| format!("/api/rooms/{room}/read/{id}/");

    let r = app.post(&read(m2), Some(&bob.access), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"room_id": room, "last_read_msg_id": m2}));
    // Backwards is ignored: the pointer stays.
    let r = app.post(&read(m1), Some(&bob.access), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["last_read_msg_id"], m2);
    // A message of another room, or none at all.
    assert_eq!(
        app.post(&read(elsewhere), Some(&bob.access), json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&read(999999), Some(&bob.access), json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            &format!("/api/rooms/{room}/read/abc/"),
            Some(&bob.access),
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let members = app
        .get(&format!("/api/rooms/{room}/members/"), &alice.access)
        .await;
    let bob_row = members
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == bob.id)
        .unwrap();
    assert_eq!(bob_row["last_read_msg_id"], m2);
}

async fn unread_counts_skip_own_and_deleted_messages(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let quiet = app.room(&alice, org, "quiet", "PUBLIC").await;
    let counts = |user: &TestUser| {
        let token = user.access.clone();
        let app = &app;
        async move {
            let r = app.get("/auth/me/unread-counts/", &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body
        }
    };
    let empty = counts(&bob).await;
    assert_eq!(empty["total"], 0);
    assert_eq!(
        empty["unread_counts"],
        json!([
            {"room_id": room, "room_name": "general", "unread_count": 0, "mentions": 0, "last_read_msg_id": null, "last_msg_id": null},
            {"room_id": quiet, "room_name": "quiet", "unread_count": 0, "mentions": 0, "last_read_msg_id": null, "last_msg_id": null},
        ])
    );

    let a1 = app.send(&alice, room, "a1").await;
    app.send(&bob, room, "own messages never count").await;
    let a2 = app.send(&alice, room, "a2").await;
    let a3 = app.send(&alice, room, "a3").await;
    let c = counts(&bob).await;
    assert_eq!(c["unread_counts"][0]["unread_count"], 3);
    assert_eq!(c["unread_counts"][0]["last_msg_id"], a3);
    assert_eq!(c["total"], 3);
    assert_eq!(
        counts(&alice).await["total"],
        1,
        "alice sees bob's one message"
    );

    // Reading to a2 leaves a3; deleting a3 leaves nothing.
    app.post(
        &format!("/api/rooms/{room}/read/{a2}/"),
        Some(&bob.access),
        json!({}),
    )
    .await;
    let c = counts(&bob).await;
    assert_eq!(c["unread_counts"][0]["unread_count"], 1);
    assert_eq!(c["unread_counts"][0]["last_read_msg_id"], a2);
    app.delete(&format!("/api/rooms/{room}/messages/{a3}/"), &alice.access)
        .await;
    assert_eq!(counts(&bob).await["total"], 0);
    // A deleted message before the pointer changes nothing.
    app.delete(&format!("/api/rooms/{room}/messages/{a1}/"), &alice.access)
        .await;
    assert_eq!(counts(&bob).await["total"], 0);

    // Bob's own message after his pointer, then others': only theirs count.
    app.send(&bob, room, "mine").await;
    app.send(&alice, room, "yours 1").await;
    app.send(&alice, quiet, "elsewhere").await;
    let c = counts(&bob).await;
    assert_eq!(c["unread_counts"][0]["unread_count"], 1);
    assert_eq!(c["unread_counts"][1]["unread_count"], 1);
    assert_eq!(c["total"], 2);
    // Without a token: 401.
    let r = app
        .call(reqwest::Method::GET, "/auth/me/unread-counts/", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn every_change_writes_its_event(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let store = app.state.store.clone();
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    let msg = app.send(&bob, room, "hello").await;
    let path = format!("/api/rooms/{room}/messages/{msg}/");
    app.patch(&path, &bob.access, json!({"body": "hello!"}))
        .await;
    app.delete(&path, &bob.access).await;
    app.post(
        &format!("/api/orgs/{org}/members/{}/role/", bob.id),
        Some(&alice.access),
        json!({"role": "MANAGER"}),
    )
    .await;
    let private = app.room(&alice, org, "secret", "PRIVATE").await;
    app.post(
        &format!("/api/rooms/{private}/invite/"),
        Some(&alice.access),
        json!({"user_id": bob.id}),
    )
    .await;

    let events = store.outbox_after(0, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "member.invited",
            "member.joined",
            "room.created",
            "message.created",
            "message.updated",
            "message.deleted",
            "member.role_changed",
            "room.created",
            "member.joined",
        ]
    );
    let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    assert!(events.iter().all(|e| e.org_id == org));
    let created = &events[3];
    assert_eq!(created.room_id, Some(room));
    assert_eq!(created.data["id"], msg);
    assert_eq!(created.data["body"], "hello");
    assert_eq!(events[4].data["body"], "hello!");
    assert_eq!(events[5].data["is_deleted"], true);
    assert_eq!(events[6].data["role"], "MANAGER");
    assert_eq!(events[8].data["user_id"], bob.id);
    assert!(
        !events[0].data.to_string().contains("token"),
        "never the invite token"
    );
    // Reading the outbox twice gives the same ids: they are stored, not made up on reading.
    let again = store.outbox_after(0, 100).await.unwrap();
    assert_eq!(again, events);

    // Refused or repeated changes write nothing.
    let before = events.len();
    let outsider = app.user("olga@example.com").await;
    app.post(
        &messages_path(room),
        Some(&outsider.access),
        json!({"body": "x"}),
    )
    .await;
    app.post(&messages_path(room), Some(&bob.access), json!({"body": ""}))
        .await;
    app.delete(&path, &bob.access).await; // already deleted
    let r = app
        .post(
            &messages_path(room),
            Some(&bob.access),
            json!({"body": "once", "client_msg_id": "k"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let first_once = r.body.clone();
    let r = app
        .post(
            &messages_path(room),
            Some(&bob.access),
            json!({"body": "once", "client_msg_id": "k"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = store
        .outbox_after(events.last().unwrap().position, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "only the one new message: {after:?}");
    assert_eq!(after[0].event_type, "message.created");
    assert_eq!(
        after[0].data, first_once,
        "the event carries the message exactly as the API shows it"
    );
    assert!(store.outbox_after(0, 100).await.unwrap().len() == before + 1);
}

async fn repeated_page_reads_never_go_stale(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (_org, room, alice, bob) = app.room_for_two().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(app.send(&alice, room, &format!("m{i}")).await);
    }
    let newest = messages_path(room);
    let deep = format!("{}?before={}&limit=2", messages_path(room), ids[3]);
    let bodies = |reply: &common::Reply| -> Vec<String> {
        reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect()
    };
    // Read twice (the second may come from the cache): identical.
    let first = app.get(&newest, &bob.access).await;
    assert_eq!(app.get(&newest, &bob.access).await.body, first.body);
    assert_eq!(bodies(&app.get(&deep, &bob.access).await), ["m2", "m1"]);

    // A new message shows on the newest page; the deep page is unaffected.
    let m6 = app.send(&bob, room, "m6").await;
    assert_eq!(bodies(&app.get(&newest, &alice.access).await)[0], "m6");
    assert_eq!(bodies(&app.get(&deep, &alice.access).await), ["m2", "m1"]);
    // An edit deep down shows on the deep page.
    let r = app
        .patch(
            &format!("{}{}/", messages_path(room), ids[1]),
            &alice.access,
            json!({"body": "m1 edited"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        bodies(&app.get(&deep, &bob.access).await),
        ["m2", "m1 edited"]
    );
    // A delete shows on every page that holds it.
    app.delete(&format!("{}{}/", messages_path(room), m6), &bob.access)
        .await;
    let page = app.get(&newest, &alice.access).await;
    assert_eq!(page.body["results"][0]["is_deleted"], true);
    // Losing the seat ends access even to a page read a moment ago.
    app.post(
        &format!("/api/rooms/{room}/leave/"),
        Some(&bob.access),
        json!({}),
    )
    .await;
    assert_eq!(
        app.get(&deep, &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&newest, &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    // The metrics saw both kinds of read.
    let metrics = app
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await
        .text;
    assert!(
        metrics.contains("chatboard_message_page_cache_total{result=\"hit\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("chatboard_message_page_cache_total{result=\"miss\"}"));
}

async fn concurrent_posts_keep_order_and_counts_exact(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (_org, room, alice, bob) = app.room_for_two().await;
    let carol = app.user("carol@example.com").await;
    let org = app
        .get(&format!("/api/rooms/{room}/"), &alice.access)
        .await
        .body["org"]
        .as_i64()
        .unwrap();
    app.join(org, &alice, &carol, "MEMBER").await;
    // Three senders at once, 30 messages each.
    let app_ref = &app;
    let mut posts = Vec::new();
    for user in [&alice, &bob, &carol] {
        for i in 0..30 {
            let token = user.access.clone();
            posts.push(async move {
                app_ref
                    .post(
                        &messages_path(room),
                        Some(&token),
                        json!({"body": format!("{i}")}),
                    )
                    .await
            });
        }
    }
    let replies = futures::future::join_all(posts).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED));
    let mut posted: Vec<i64> = replies
        .iter()
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    posted.sort();
    posted.dedup();
    assert_eq!(posted.len(), 90);

    // Paging back from the newest returns every message once, in id order.
    let mut seen = Vec::new();
    let mut path = format!("{}?limit=7", messages_path(room));
    loop {
        let page = app.get(&path, &bob.access).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        seen.extend(TestApp::ids(&page.body["results"], "id"));
        match page.body["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    seen.reverse();
    assert_eq!(seen, posted);
    // Everyone else's messages count, exactly: 60 for each reader.
    for user in [&alice, &bob, &carol] {
        let counts = app.get("/auth/me/unread-counts/", &user.access).await;
        assert_eq!(counts.body["total"], 60, "{}", counts.text);
    }
    let view = app.get(&format!("/api/rooms/{room}/"), &bob.access).await;
    assert_eq!(view.body["last_msg_id"], *posted.last().unwrap());
}

/// Posts to many rooms of two organizations at once, retries among them: each room's messages
/// get seqs 1, 2, 3, ... in id order, the retries their originals, the rooms their counters.
/// (PostgreSQL writers store several rooms' posts in one transaction.)
async fn concurrent_posts_over_many_rooms_keep_every_room_gapless(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, first, alice, bob) = app.room_for_two().await;
    let mut rooms = vec![first];
    for n in 0..5 {
        rooms.push(app.room(&alice, org, &format!("room {n}"), "PUBLIC").await);
    }
    for &room in &rooms[1..] {
        app.post(
            &format!("/api/rooms/{room}/join/"),
            Some(&bob.access),
            Value::Null,
        )
        .await;
    }
    let dave = app.user("dave@example.com").await;
    let other_org = app.org(&dave, "Other").await;
    let theirs = app.room(&dave, other_org, "theirs", "PUBLIC").await;
    let mut senders: Vec<(i64, &TestUser)> = Vec::new();
    for &room in &rooms {
        senders.push((room, &alice));
        senders.push((room, &bob));
    }
    senders.push((theirs, &dave));
    let app_ref = &app;
    let mut posts = Vec::new();
    for &(room, user) in &senders {
        for i in 0..6 {
            // Every third post is sent twice at once, as a client retrying would.
            let copies = if i % 3 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let body =
                    json!({"body": format!("{i}"), "client_msg_id": format!("{}-{i}", user.id)});
                let token = user.access.clone();
                posts.push(async move {
                    let reply = app_ref.post(&messages_path(room), Some(&token), body).await;
                    (room, user.id, i, reply)
                });
            }
        }
    }
    let replies = futures::future::join_all(posts).await;
    let mut ids: std::collections::HashMap<(i64, i64, i32), i64> = Default::default();
    for (room, sender, i, reply) in &replies {
        assert!(reply.status.is_success(), "{}", reply.text);
        let id = reply.body["id"].as_i64().unwrap();
        let first = *ids.entry((*room, *sender, *i)).or_insert(id);
        assert_eq!(first, id, "a retry answers with its original");
    }
    // Each stored message has one `message.created` event, carrying it as the API answered.
    let events = app.state.store.outbox_after(0, 1000).await.unwrap();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == "message.created")
        .map(|e| &e.data)
        .collect();
    assert_eq!(created.len(), ids.len(), "one event per stored message");
    let created: std::collections::HashMap<i64, &Value> = created
        .into_iter()
        .map(|data| (data["id"].as_i64().unwrap(), data))
        .collect();
    assert_eq!(created.len(), ids.len(), "each for another message");
    for (_, _, _, reply) in &replies {
        let id = reply.body["id"].as_i64().unwrap();
        assert_eq!(created.get(&id), Some(&&reply.body), "message {id}");
    }
    for &room in rooms.iter().chain([&theirs]) {
        let reader = if room == theirs { dave.id } else { bob.id };
        let stored = app
            .state
            .store
            .list_messages(
                room,
                reader,
                chatboard_store::Timeline::All,
                chatboard_store::PageCursor::After(0),
                100,
            )
            .await
            .unwrap()
            .unwrap();
        let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
        let expected = ids.keys().filter(|(r, _, _)| *r == room).count() as i64;
        assert_eq!(seqs, (1..=expected).collect::<Vec<_>>(), "room {room}");
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
        let version = app
            .state
            .store
            .page_version(room, reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version.last_seq, expected);
        assert_eq!(version.last_msg_id, stored.last().map(|m| m.id));
    }
}

async fn pages_without_the_cache(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.page_cache_mb = 0).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;
    let a = app.send(&alice, room, "a").await;
    let b = app.send(&bob, room, "b").await;
    let page = app
        .get(&format!("{}?limit=1", messages_path(room)), &bob.access)
        .await;
    assert_eq!(TestApp::ids(&page.body["results"], "id"), vec![b]);
    let next = page.body["next"].as_str().unwrap().to_owned();
    let older = app.get(&next, &bob.access).await;
    assert_eq!(TestApp::ids(&older.body["results"], "id"), vec![a]);
    assert_eq!(older.body["next"], Value::Null);
    // An empty room is an empty page for a member and 404 for anyone else.
    let empty = app.get(&messages_path(secret), &alice.access).await;
    assert_eq!(empty.body, json!({"results": [], "next": null}));
    assert_eq!(
        app.get(&messages_path(secret), &bob.access).await.status,
        StatusCode::NOT_FOUND
    );
    let metrics = app
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await
        .text;
    assert!(
        metrics.contains("chatboard_message_page_cache_total{result=\"hit\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("chatboard_message_page_cache_total{result=\"miss\"} 0"));
}
