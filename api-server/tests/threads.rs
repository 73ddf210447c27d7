//! Threads: replies and their roots' counters, the thread page, the timeline with and without
//! replies, following, read pointers and the followed-threads list, deleted roots, tenant
//! isolation, and cached pages. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    replies_join_the_root_thread_and_move_its_counters,
    the_timeline_leaves_replies_out_on_request,
    reply_input_is_checked,
    repliers_and_root_authors_follow_and_count_unread_replies,
    an_unfollow_holds_until_the_user_follows_or_replies,
    a_deleted_root_keeps_its_replies_reachable,
    other_organizations_see_no_thread,
    cached_pages_show_a_root_s_new_counters,
    a_thread_opens_only_for_a_seat_in_its_room,
    followed_threads_take_one_organization,
);

/// An org with alice (ADMIN), bob and carol (MEMBERs) in one PUBLIC room.
async fn room_for_three(app: &TestApp) -> (i64, TestUser, TestUser, TestUser) {
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    // A PUBLIC room seats the organization's members.
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    (room, alice, bob, carol)
}

async fn reply(app: &TestApp, by: &TestUser, room: i64, parent: i64, body: &str) -> Value {
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&by.access),
            json!({"body": body, "parent_id": parent}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

fn thread_path(room: i64, msg: i64) -> String {
    format!("/api/rooms/{room}/messages/{msg}/thread/")
}

async fn my_threads(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let r = app.get("/auth/me/threads/", &user.access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["results"].as_array().unwrap().clone()
}

async fn replies_join_the_root_thread_and_move_its_counters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "lunch?").await;
    let first = reply(&app, &bob, room, root, "yes").await;
    assert_eq!(first["parent_id"], root);
    assert_eq!(first["reply_count"], 0);
    // Answering a reply joins the root's thread.
    let second = reply(&app, &carol, room, first["id"].as_i64().unwrap(), "me too").await;
    assert_eq!(second["parent_id"], root, "{second}");

    let page = app.get(&thread_path(room, root), &alice.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let r = &page.body["root"];
    assert_eq!(r["id"], root);
    assert_eq!(r["parent_id"], Value::Null);
    assert_eq!(r["reply_count"], 2);
    assert_eq!(r["last_reply_at"], second["created_at"]);
    assert_eq!(r["repliers"], json!([carol.id, bob.id]));
    assert_eq!(
        TestApp::ids(&page.body["results"], "id"),
        vec![
            second["id"].as_i64().unwrap(),
            first["id"].as_i64().unwrap()
        ],
        "newest first"
    );
    assert_eq!(page.body["following"], true, "the root's author follows");
    // The same thread by one of its replies, and paged with the room's cursors.
    let by_reply = app
        .get(
            &format!(
                "{}?limit=1",
                thread_path(room, first["id"].as_i64().unwrap())
            ),
            &alice.access,
        )
        .await;
    assert_eq!(by_reply.body["root"]["id"], root);
    assert_eq!(
        TestApp::ids(&by_reply.body["results"], "id"),
        vec![second["id"].as_i64().unwrap()]
    );
    let next = by_reply.body["next"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&thread_path(room, root)), "{next}");
    let older = app.get(&next, &alice.access).await;
    assert_eq!(
        TestApp::ids(&older.body["results"], "id"),
        vec![first["id"].as_i64().unwrap()]
    );
    assert_eq!(older.body["next"], Value::Null);
    let after = app
        .get(
            &format!("{}?after={}", thread_path(room, root), first["id"]),
            &alice.access,
        )
        .await;
    assert_eq!(
        TestApp::ids(&after.body["results"], "id"),
        vec![second["id"].as_i64().unwrap()]
    );

    // Bob answering again moves him to the front of the repliers, once.
    reply(&app, &bob, room, root, "at noon").await;
    let page = app.get(&thread_path(room, root), &carol.access).await;
    assert_eq!(page.body["root"]["reply_count"], 3);
    assert_eq!(page.body["root"]["repliers"], json!([bob.id, carol.id]));

    // Each reply records `thread.updated` with the root's counters, next to `message.created`.
    let events = app.state.store.outbox_after(0, 100).await.unwrap();
    let threads: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == "thread.updated")
        .map(|e| &e.data)
        .collect();
    assert_eq!(threads.len(), 3);
    assert_eq!(threads[2]["root_id"], root);
    assert_eq!(threads[2]["room"], room);
    assert_eq!(threads[2]["reply_count"], 3);
    assert_eq!(threads[2]["repliers"], json!([bob.id, carol.id]));
}

async fn the_timeline_leaves_replies_out_on_request(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let first = app.send(&alice, room, "one").await;
    let answer = reply(&app, &bob, room, first, "re: one").await["id"]
        .as_i64()
        .unwrap();
    let second = app.send(&alice, room, "two").await;
    reply(&app, &bob, room, second, "re: two").await;
    let third = app.send(&alice, room, "three").await;

    let all = app
        .get(&format!("/api/rooms/{room}/messages/"), &alice.access)
        .await;
    assert_eq!(
        TestApp::ids(&all.body["results"], "id").len(),
        5,
        "replies by default"
    );
    let roots = app
        .get(
            &format!("/api/rooms/{room}/messages/?threads=roots&limit=2"),
            &alice.access,
        )
        .await;
    assert_eq!(roots.status, StatusCode::OK, "{}", roots.text);
    assert_eq!(
        TestApp::ids(&roots.body["results"], "id"),
        vec![third, second]
    );
    let next = roots.body["next"].as_str().unwrap().to_owned();
    assert!(next.contains("threads=roots"), "{next}");
    let rest = app.get(&next, &alice.access).await;
    assert_eq!(TestApp::ids(&rest.body["results"], "id"), vec![first]);
    assert_eq!(rest.body["results"][0]["reply_count"], 1);
    let forward = app
        .get(
            &format!("/api/rooms/{room}/messages/?threads=roots&after={answer}"),
            &alice.access,
        )
        .await;
    assert_eq!(
        TestApp::ids(&forward.body["results"], "id"),
        vec![second, third]
    );
    let explicit = app
        .get(
            &format!("/api/rooms/{room}/messages/?threads=all"),
            &alice.access,
        )
        .await;
    assert_eq!(explicit.body, all.body);
    let bad = app
        .get(
            &format!("/api/rooms/{room}/messages/?threads=some"),
            &alice.access,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["errors"]["threads"].is_array(), "{}", bad.text);
}

async fn reply_input_is_checked(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let other_room = app
        .room(&alice, app.org(&alice, "Other").await, "x", "PUBLIC")
        .await;
    let elsewhere = app.send(&alice, other_room, "not here").await;
    let path = format!("/api/rooms/{room}/messages/");
    // A message of another room is no parent here.
    let r = app
        .post(
            &path,
            Some(&bob.access),
            json!({"body": "hi", "parent_id": elsewhere}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["errors"]["parent_id"].is_array(), "{}", r.text);
    let r = app
        .post(
            &path,
            Some(&bob.access),
            json!({"body": "hi", "parent_id": 999_999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .post(
            &path,
            Some(&bob.access),
            json!({"body": "hi", "parent_id": "seven"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Someone without a seat learns nothing about the room's messages.
    let outsider = app.user("olga@example.com").await;
    let r = app
        .post(
            &path,
            Some(&outsider.access),
            json!({"body": "hi", "parent_id": 999_999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // A repeated client_msg_id of a reply answers with the original.
    let root = app.send(&alice, room, "root").await;
    let body = json!({"body": "once", "parent_id": root, "client_msg_id": "r-1"});
    let first = app.post(&path, Some(&bob.access), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app.post(&path, Some(&bob.access), body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    let page = app.get(&thread_path(room, root), &bob.access).await;
    assert_eq!(page.body["root"]["reply_count"], 1, "counted once");
    // Thread pages check their cursors like the room's.
    let r = app
        .get(&format!("{}?limit=0", thread_path(room, root)), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get(&thread_path(room, 999_999), &bob.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn repliers_and_root_authors_follow_and_count_unread_replies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "plans").await;
    let quiet = app.send(&alice, room, "nobody answers this").await;
    assert!(
        my_threads(&app, &alice).await.is_empty(),
        "no thread before a reply"
    );

    let b1 = reply(&app, &bob, room, root, "b1").await["id"]
        .as_i64()
        .unwrap();
    let b2 = reply(&app, &bob, room, root, "b2").await["id"]
        .as_i64()
        .unwrap();
    let threads = my_threads(&app, &alice).await;
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["room"], room);
    assert_eq!(threads[0]["root"]["id"], root);
    assert_eq!(threads[0]["unread_replies"], 2);
    assert_eq!(threads[0]["last_read_id"], Value::Null);
    let bobs = my_threads(&app, &bob).await;
    assert_eq!(bobs[0]["unread_replies"], 0, "one's own replies are read");
    assert_eq!(bobs[0]["last_read_id"], b2);
    assert!(my_threads(&app, &carol).await.is_empty());

    // Reading moves the pointer forward only.
    let read = |msg: i64| format!("{}read/{msg}/", thread_path(room, root));
    let r = app.post(&read(b1), Some(&alice.access), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"root_id": root, "last_read_id": b1}));
    assert_eq!(my_threads(&app, &alice).await[0]["unread_replies"], 1);
    app.post(&read(b2), Some(&alice.access), json!({})).await;
    let r = app.post(&read(b1), Some(&alice.access), json!({})).await;
    assert_eq!(r.body["last_read_id"], b2, "never back");
    assert_eq!(my_threads(&app, &alice).await[0]["unread_replies"], 0);
    // A message outside the thread is not a place in it.
    let r = app.post(&read(quiet), Some(&alice.access), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Carol follows explicitly; the newest activity comes first.
    let other = app.send(&carol, room, "other topic").await;
    reply(&app, &alice, room, other, "sure").await;
    let follow = format!("{}follow/", thread_path(room, root));
    let r = app
        .call(Method::PUT, &follow, Some(&carol.access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let carols = my_threads(&app, &carol).await;
    let roots: Vec<&Value> = carols.iter().map(|t| &t["root"]["id"]).collect();
    assert_eq!(roots, [&json!(other), &json!(root)]);
    assert_eq!(carols[1]["unread_replies"], 2);
    // Paging the list.
    let r = app.get("/auth/me/threads/?limit=1", &carol.access).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    let next = r.body["next"].as_str().unwrap().to_owned();
    let rest = app.get(&next, &carol.access).await;
    assert_eq!(rest.body["results"][0]["root"]["id"], root, "{}", rest.text);
    assert_eq!(rest.body["next"], Value::Null);
    let r = app.get("/auth/me/threads/?limit=500", &carol.access).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Leaving the room drops its threads from the list.
    let r = app
        .post(
            &format!("/api/rooms/{room}/leave/"),
            Some(&carol.access),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert!(my_threads(&app, &carol).await.is_empty());
}

async fn an_unfollow_holds_until_the_user_follows_or_replies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "thread").await;
    reply(&app, &bob, room, root, "one").await;
    let follow = format!("{}follow/", thread_path(room, root));
    let r = app
        .call(Method::DELETE, &follow, Some(&alice.access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(my_threads(&app, &alice).await.is_empty());
    let page = app.get(&thread_path(room, root), &alice.access).await;
    assert_eq!(page.body["following"], false);
    // More answers do not follow it again for its author.
    reply(&app, &carol, room, root, "two").await;
    assert!(my_threads(&app, &alice).await.is_empty());
    // Following again does, with the replies since counted.
    app.call(Method::PUT, &follow, Some(&alice.access), None)
        .await;
    let threads = my_threads(&app, &alice).await;
    assert_eq!(threads[0]["unread_replies"], 2);
    // Bob unfollows, then replies: replying follows again.
    app.call(Method::DELETE, &follow, Some(&bob.access), None)
        .await;
    assert!(my_threads(&app, &bob).await.is_empty());
    reply(&app, &bob, room, root, "three").await;
    assert_eq!(my_threads(&app, &bob).await.len(), 1);
    // Unfollowing twice, or a thread that is not there.
    let r = app
        .call(Method::DELETE, &follow, Some(&bob.access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::PUT,
            &format!("{}follow/", thread_path(room, 999_999)),
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn a_deleted_root_keeps_its_replies_reachable(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "soon gone").await;
    let answer = reply(&app, &bob, room, root, "still here").await["id"]
        .as_i64()
        .unwrap();
    let r = app
        .delete(
            &format!("/api/rooms/{room}/messages/{root}/"),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let page = app.get(&thread_path(room, root), &bob.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["root"]["is_deleted"], true);
    assert_eq!(page.body["root"]["body"], "");
    assert_eq!(page.body["root"]["reply_count"], 1);
    assert_eq!(TestApp::ids(&page.body["results"], "id"), vec![answer]);
    // The conversation may go on under the deleted root.
    let more = reply(&app, &bob, room, answer, "and on").await;
    assert_eq!(more["parent_id"], root);
    // A deleted reply stays in its place, empty, and counted.
    let r = app
        .delete(
            &format!("/api/rooms/{room}/messages/{answer}/"),
            &bob.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let page = app.get(&thread_path(room, root), &alice.access).await;
    assert_eq!(page.body["root"]["reply_count"], 2);
    assert_eq!(page.body["results"][1]["is_deleted"], true);
    let alices = my_threads(&app, &alice).await;
    assert_eq!(
        alices[0]["unread_replies"], 1,
        "deleted replies are not unread"
    );
}

async fn other_organizations_see_no_thread(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "internal").await;
    let answer = reply(&app, &bob, room, root, "ok").await["id"]
        .as_i64()
        .unwrap();
    let mallory = app.user("mallory@example.com").await;
    app.org(&mallory, "Elsewhere").await;
    let page = app.get(&thread_path(room, root), &mallory.access).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let follow = format!("{}follow/", thread_path(room, root));
    let r = app
        .call(Method::PUT, &follow, Some(&mallory.access), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("{}read/{answer}/", thread_path(room, root)),
            Some(&mallory.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&mallory.access),
            json!({"body": "hi", "parent_id": root}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A body refused beside a parent that is there must not tell it apart from one that is
    // not (it answered 400 for the one, 404 for the other).
    for parent in [root, root + 1000] {
        let r = app
            .post(
                &format!("/api/rooms/{room}/messages/"),
                Some(&mallory.access),
                json!({"body": " ", "parent_id": parent}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "parent {parent}: {}",
            r.text
        );
    }
    assert!(my_threads(&app, &mallory).await.is_empty());
    let page = app.get(&thread_path(room, root), &bob.access).await;
    assert_eq!(
        page.body["root"]["reply_count"], 1,
        "nothing of mallory's counted"
    );
}

async fn cached_pages_show_a_root_s_new_counters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let root = app.send(&alice, room, "old root").await;
    let later = app.send(&alice, room, "later").await;
    // A page of older messages is cached while no edit touches it...
    let older = format!("/api/rooms/{room}/messages/?before={later}");
    let first = app.get(&older, &bob.access).await;
    assert_eq!(first.body["results"][0]["reply_count"], 0);
    app.get(&older, &bob.access).await;
    // ...but a reply changes its root, wherever the root's page is.
    reply(&app, &alice, room, root, "answer").await;
    let again = app.get(&older, &bob.access).await;
    assert_eq!(again.body["results"][0]["id"], root);
    assert_eq!(again.body["results"][0]["reply_count"], 1, "{}", again.text);
}

async fn a_thread_opens_only_for_a_seat_in_its_room(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    let general = app.room(&alice, org, "general", "PUBLIC").await;
    let secret = app.room(&alice, org, "secret", "PRIVATE").await;
    let hidden = app.send(&alice, secret, "between us").await;
    // In the organization but without a seat: as if the thread were not there. The store's
    // own answer too, since the page's reading of the replies checks the seat again.
    let r = app.get(&thread_path(secret, hidden), &bob.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let opened = app.state.store.open_thread(secret, hidden, bob.id).await;
    assert!(opened.unwrap().is_none(), "no seat, no thread");
    // Seated in both rooms, but the message is not in the room of the path.
    let root = app.send(&alice, general, "open to all").await;
    let r = app.get(&thread_path(secret, root), &alice.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Through a reply: the root, and the reader's standing read with it.
    let answer = reply(&app, &bob, general, root, "seen").await["id"]
        .as_i64()
        .unwrap();
    let page = app.get(&thread_path(general, answer), &bob.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["root"]["id"], root);
    assert_eq!(page.body["following"], true);
    assert_eq!(page.body["last_read_id"], answer);
    // Someone who never took part: not following, nothing read.
    let carol = app.user("carol@example.com").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let r = app
        .post(
            &format!("/api/rooms/{general}/join/"),
            Some(&carol.access),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let page = app.get(&thread_path(general, root), &carol.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["following"], false);
    assert_eq!(page.body["last_read_id"], Value::Null);
}

/// `?org=` keeps the followed threads to one organization's rooms, its `next` link too.
async fn followed_threads_take_one_organization(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (acme, globex) = (
        app.org(&alice, "Acme").await,
        app.org(&alice, "Globex").await,
    );
    let mut roots = Vec::new();
    for (n, org) in [acme, acme, globex].into_iter().enumerate() {
        if n != 1 {
            app.join(org, &alice, &bob, "MEMBER").await;
        }
        let room = app.room(&alice, org, &format!("room-{n}"), "PUBLIC").await;
        let root = app.send(&alice, room, "a question").await;
        reply(&app, &bob, room, root, "an answer").await;
        roots.push(root);
    }
    let page = app
        .get(
            &format!("/auth/me/threads/?limit=1&org={acme}"),
            &bob.access,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["results"][0]["root"]["id"], roots[1]);
    let next = page.body["next"].as_str().unwrap().to_owned();
    assert!(next.contains(&format!("org={acme}")), "{next}");
    let older = app.get(&next, &bob.access).await;
    assert_eq!(older.body["results"][0]["root"]["id"], roots[0]);
    assert_eq!(older.body["results"].as_array().map(Vec::len), Some(1));
    assert!(older.body["next"].is_null(), "{}", older.text);
    let other = app
        .get(&format!("/auth/me/threads/?org={globex}"), &bob.access)
        .await;
    assert_eq!(other.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(other.body["results"][0]["root"]["id"], roots[2]);
}
