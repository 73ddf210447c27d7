//! Mentions: resolving `@address`, `@room` and `@here` against the room, storing them with the
//! message and again on edits, unread mention counts, the reader's mentions page, events, the
//! member lookup, and tenant isolation. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    mentions_are_resolved_stored_and_counted,
    edits_move_mentions_and_notify_only_the_new,
    at_room_reaches_everyone_seated_and_here_those_online,
    the_member_lookup_completes_by_prefix,
    the_mentions_page_takes_one_organization,
    a_room_over_the_limit_takes_no_room_wide_mention,
    an_edit_keeps_whom_here_reached_in_a_room_grown_past_the_limit,
);

/// An org with alice (ADMIN), bob and carol (MEMBERs) in one PUBLIC room.
async fn room_for_three(app: &TestApp) -> (i64, TestUser, TestUser, TestUser) {
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    (room, alice, bob, carol)
}

async fn say(app: &TestApp, by: &TestUser, room: i64, body: &str) -> Value {
    let r = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&by.access),
            json!({"body": body}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

async fn mentions_of(app: &TestApp, user: &TestUser) -> Vec<i64> {
    let r = app.get("/auth/me/mentions/", &user.access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    TestApp::ids(&r.body["results"], "id")
}

async fn unread_mentions(app: &TestApp, user: &TestUser, room: i64) -> i64 {
    let r = app.get("/auth/me/unread-counts/", &user.access).await;
    r.body["unread_counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["room_id"] == room)
        .map(|c| c["mentions"].as_i64().unwrap())
        .unwrap()
}

async fn mentioned_events(app: &TestApp) -> Vec<(i64, i64)> {
    let events = app.state.store.outbox_after(0, 1000).await.unwrap();
    events
        .iter()
        .filter(|e| e.event_type == "message.mentioned")
        .map(|e| {
            (
                e.data["message"]["id"].as_i64().unwrap(),
                e.data["user_id"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn mentions_are_resolved_stored_and_counted(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let m = say(
        &app,
        &alice,
        room,
        "hi @Bob@Example.com, and @nobody@example.com; mail carol@example.com",
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["mentions"], json!([bob.id]), "{m}");
    assert_eq!(mentions_of(&app, &bob).await, vec![id]);
    assert!(
        mentions_of(&app, &carol).await.is_empty(),
        "an address alone is no mention"
    );
    assert_eq!(unread_mentions(&app, &bob, room).await, 1);
    assert_eq!(unread_mentions(&app, &carol, room).await, 0);
    assert_eq!(mentioned_events(&app).await, vec![(id, bob.id)]);
    // Mentioning oneself notifies nobody.
    let own = say(&app, &bob, room, "note to self @bob@example.com").await;
    assert_eq!(own["mentions"], json!([bob.id]));
    let event = app.state.store.outbox_latest(1).await.unwrap().remove(0);
    assert_eq!(
        (event.event_type.as_str(), &event.data),
        ("message.created", &own),
        "the event carries the message with its mention as the API shows it"
    );
    assert_eq!(mentions_of(&app, &bob).await, vec![id]);

    // Reading past it clears the count; the page keeps it.
    let r = app
        .post(
            &format!("/api/rooms/{room}/read/{id}/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(unread_mentions(&app, &bob, room).await, 0);
    assert_eq!(mentions_of(&app, &bob).await, vec![id]);

    // Paging, and deletion dropping it.
    let second = say(&app, &carol, room, "@bob@example.com again").await["id"]
        .as_i64()
        .unwrap();
    let r = app.get("/auth/me/mentions/?limit=1", &bob.access).await;
    assert_eq!(TestApp::ids(&r.body["results"], "id"), vec![second]);
    let next = r.body["next"].as_str().unwrap().to_owned();
    let r = app.get(&next, &bob.access).await;
    assert_eq!(TestApp::ids(&r.body["results"], "id"), vec![id]);
    assert_eq!(r.body["next"], Value::Null);
    let r = app.get("/auth/me/mentions/?limit=0", &bob.access).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .delete(
            &format!("/api/rooms/{room}/messages/{second}/"),
            &carol.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(mentions_of(&app, &bob).await, vec![id]);
    assert_eq!(unread_mentions(&app, &bob, room).await, 0);
    // The deleted message no longer says whom it named, in the room's pages either.
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &bob.access)
        .await;
    let gone = page.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == second)
        .expect("the deleted message is listed");
    assert_eq!(gone["is_deleted"], true);
    assert_eq!(gone["mentions"], json!([]), "{gone}");

    // Leaving the room takes its mentions off the page.
    app.post(
        &format!("/api/rooms/{room}/leave/"),
        Some(&bob.access),
        json!({}),
    )
    .await;
    assert!(mentions_of(&app, &bob).await.is_empty());
}

async fn edits_move_mentions_and_notify_only_the_new(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let id = say(&app, &alice, room, "@bob@example.com look").await["id"]
        .as_i64()
        .unwrap();
    let edited = app
        .patch(
            &format!("/api/rooms/{room}/messages/{id}/"),
            &alice.access,
            json!({"body": "@carol@example.com and @bob@example.com look"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.body["mentions"], json!([carol.id, bob.id]));
    assert_eq!(mentions_of(&app, &carol).await, vec![id]);
    assert_eq!(
        mentioned_events(&app).await,
        vec![(id, bob.id), (id, carol.id)],
        "bob is not told twice"
    );
    app.patch(
        &format!("/api/rooms/{room}/messages/{id}/"),
        &alice.access,
        json!({"body": "never mind"}),
    )
    .await;
    assert!(mentions_of(&app, &bob).await.is_empty());
    assert!(mentions_of(&app, &carol).await.is_empty());
    assert_eq!(unread_mentions(&app, &bob, room).await, 0);
}

/// In a room of more members than `CHATBOARD_ROOM_MENTIONS_MAX_MEMBERS` (2 here, 3 seated),
/// `@room` reaches nobody: each member reached is a mention row and an event carrying the
/// message, in the post's transaction. A member named by address still is mentioned.
async fn a_room_over_the_limit_takes_no_room_wide_mention(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.room_mentions_max_members = 2).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    say(&app, &alice, room, "@room standup in 5").await;
    let named = say(&app, &alice, room, "@room @bob@example.com deploy?").await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(mentions_of(&app, &bob).await, vec![named]);
    assert!(mentions_of(&app, &carol).await.is_empty());
    assert_eq!(mentioned_events(&app).await, vec![(named, bob.id)]);
}

/// An edit that keeps `@here` keeps everyone it reached who is still seated, though the room
/// has grown past the limit meanwhile: it adds nobody. The size was checked first, and the
/// edit took the mention from everyone it had reached.
async fn an_edit_keeps_whom_here_reached_in_a_room_grown_past_the_limit(engine: Engine) {
    let Some(app) = TestApp::spawn_with(engine, |c| c.room_mentions_max_members = 3).await else {
        return;
    };
    let online = std::sync::Arc::new(chatboard_core::presence::LocalPresence::new());
    app.state.chat.use_presence(online.clone());
    let (room, alice, bob, carol) = room_for_three(&app).await;
    use chatboard_core::presence::Presence;
    online.connected(bob.id).await;
    online.connected(carol.id).await;
    let here = say(&app, &alice, room, "@here deploy?").await["id"]
        .as_i64()
        .unwrap();
    for user in [&bob, &carol] {
        assert_eq!(mentions_of(&app, user).await, vec![here]);
    }
    let org = app
        .get(&format!("/api/rooms/{room}/"), &alice.access)
        .await
        .body["org"]
        .as_i64()
        .unwrap();
    let dan = app.user("dan@example.com").await;
    app.join(org, &alice, &dan, "MEMBER").await;
    let r = app
        .post(
            &format!("/api/rooms/{room}/join/"),
            Some(&dan.access),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = app
        .patch(
            &format!("/api/rooms/{room}/messages/{here}/"),
            &alice.access,
            json!({"body": "@here deploy now?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for user in [&bob, &carol] {
        assert_eq!(mentions_of(&app, user).await, vec![here], "{}", user.email);
    }
    assert!(mentions_of(&app, &dan).await.is_empty());
}

async fn at_room_reaches_everyone_seated_and_here_those_online(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, carol) = room_for_three(&app).await;
    let id = say(&app, &alice, room, "@room standup in 5").await["id"]
        .as_i64()
        .unwrap();
    for user in [&bob, &carol] {
        assert_eq!(mentions_of(&app, user).await, vec![id]);
        assert_eq!(unread_mentions(&app, user, room).await, 1);
    }
    assert!(
        mentions_of(&app, &alice).await.is_empty(),
        "never the sender"
    );
    let mut events = mentioned_events(&app).await;
    events.sort_unstable();
    assert_eq!(events, vec![(id, bob.id), (id, carol.id)], "one per person");
    // This API process follows no connections, so nobody is online for `@here` (the gateway
    // tests cover it with sockets).
    let here = say(&app, &alice, room, "@here anyone?").await["id"]
        .as_i64()
        .unwrap();
    assert!(!mentions_of(&app, &bob).await.contains(&here));
    // An edit that keeps `@here` and drops a name drops that mention: `@here` keeps only
    // whom it reached, not whom the message named.
    let named = say(&app, &alice, room, "@here @bob@example.com deploy?").await["id"]
        .as_i64()
        .unwrap();
    assert!(mentions_of(&app, &bob).await.contains(&named));
    let r = app
        .patch(
            &format!("/api/rooms/{room}/messages/{named}/"),
            &alice.access,
            json!({"body": "@here deploy?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        !mentions_of(&app, &bob).await.contains(&named),
        "kept the name dropped"
    );
    // A member of another organization is never resolved.
    let mallory = app.user("mallory@example.com").await;
    app.org(&mallory, "Elsewhere").await;
    let m = say(&app, &alice, room, "@mallory@example.com hello?").await;
    assert_eq!(m["mentions"], json!([]));
    assert!(mentions_of(&app, &mallory).await.is_empty());
}

async fn the_member_lookup_completes_by_prefix(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, alice, bob, _carol) = room_for_three(&app).await;
    let emails = |r: &common::Reply| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let path = |q: &str| format!("/api/rooms/{room}/members/?q={q}");
    let r = app.get(&path("BO"), &alice.access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(emails(&r), ["bob@example.com"]);
    let r = app.get(&path(""), &alice.access).await;
    assert_eq!(emails(&r).len(), 3);
    let r = app
        .get(&format!("{}&limit=2", path("")), &alice.access)
        .await;
    assert_eq!(emails(&r), ["alice@example.com", "bob@example.com"]);
    // Wildcards are plain characters.
    let r = app.get(&path("%25"), &alice.access).await;
    assert!(emails(&r).is_empty(), "{}", r.text);
    let r = app.get(&path("_"), &alice.access).await;
    assert!(emails(&r).is_empty(), "{}", r.text);
    let r = app
        .get(&format!("{}&limit=99", path("a")), &alice.access)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Without q, every member as before.
    let r = app
        .get(&format!("/api/rooms/{room}/members/"), &bob.access)
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    let mallory = app.user("mallory@example.com").await;
    app.org(&mallory, "Elsewhere").await;
    let r = app.get(&path("b"), &mallory.access).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// `?org=` keeps the page to one organization's rooms, its `next` link too: a client showing
/// one organization read a page of all of them and kept what was its own, so a busy other
/// organization hid every mention of this one.
async fn the_mentions_page_takes_one_organization(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (mut orgs, mut rooms) = (Vec::new(), Vec::new());
    for name in ["Acme", "Globex"] {
        let org = app.org(&alice, name).await;
        app.join(org, &alice, &bob, "MEMBER").await;
        orgs.push(org);
        rooms.push(app.room(&alice, org, "general", "PUBLIC").await);
    }
    say(&app, &alice, rooms[0], "@bob@example.com one").await;
    say(&app, &alice, rooms[0], "@bob@example.com two").await;
    say(&app, &alice, rooms[1], "@bob@example.com elsewhere").await;

    let page = app
        .get(
            &format!("/auth/me/mentions/?limit=1&org={}", orgs[0]),
            &bob.access,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["results"][0]["body"], "@bob@example.com two");
    let next = page.body["next"].as_str().unwrap().to_owned();
    assert!(next.contains(&format!("org={}", orgs[0])), "{next}");
    let older = app.get(&next, &bob.access).await;
    let bodies: Vec<&str> = older.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["@bob@example.com one"]);
    assert!(older.body["next"].is_null(), "{}", older.text);

    let other = app
        .get(&format!("/auth/me/mentions/?org={}", orgs[1]), &bob.access)
        .await;
    assert_eq!(TestApp::ids(&other.body["results"], "room"), vec![rooms[1]]);
    let all = app.get("/auth/me/mentions/", &bob.access).await;
    assert_eq!(all.body["results"].as_array().map(Vec::len), Some(3));
    let bad = app.get("/auth/me/mentions/?org=acme", &bob.access).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}
