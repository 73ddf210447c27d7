//! Reactions: adding and removing (idempotent), counts with the reader's own marked, the emoji
//! rules and limits, deleted messages, tenant isolation, events and cached pages. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    reactions_are_counted_once_per_person_and_marked_for_the_reader,
    emoji_are_checked_and_limited,
    deleted_messages_and_outsiders_take_no_reactions,
    pages_show_each_reader_their_own_reactions,
    concurrent_reactions_keep_every_rule,
);

/// An org with alice (ADMIN), bob and carol (MEMBERs) in one PUBLIC room, and a message of
/// alice's there.
async fn message_for_three(app: &TestApp) -> (i64, i64, TestUser, TestUser, TestUser) {
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    app.join(org, &alice, &carol, "MEMBER").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    let msg = app.send(&alice, room, "ship it?").await;
    (room, msg, alice, bob, carol)
}

fn reactions_path(room: i64, msg: i64) -> String {
    format!("/api/rooms/{room}/messages/{msg}/reactions/")
}

async fn react(app: &TestApp, by: &TestUser, room: i64, msg: i64, emoji: &str) -> common::Reply {
    app.post(
        &reactions_path(room, msg),
        Some(&by.access),
        json!({"emoji": emoji}),
    )
    .await
}

async fn unreact(app: &TestApp, by: &TestUser, room: i64, msg: i64, emoji: &str) -> common::Reply {
    let encoded: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
    app.delete(
        &format!("{}{encoded}/", reactions_path(room, msg)),
        &by.access,
    )
    .await
}

/// The message as `reader` sees it on the newest page.
async fn seen_by(app: &TestApp, reader: &TestUser, room: i64, msg: i64) -> Value {
    let page = app
        .get(&format!("/api/rooms/{room}/messages/"), &reader.access)
        .await;
    page.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == msg)
        .cloned()
        .unwrap()
}

async fn reactions_are_counted_once_per_person_and_marked_for_the_reader(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, msg, alice, bob, carol) = message_for_three(&app).await;
    let r = react(&app, &bob, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["id"], msg);
    assert_eq!(
        r.body["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": true}])
    );
    let again = react(&app, &bob, room, msg, "👍").await;
    assert_eq!(again.status, StatusCode::OK, "adding twice changes nothing");
    assert_eq!(again.body["reactions"], r.body["reactions"]);
    // A shortcode is the same reaction as its emoji.
    let r = react(&app, &alice, room, msg, ":+1:").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}])
    );
    react(&app, &carol, room, msg, ":tada:").await;
    assert_eq!(
        seen_by(&app, &carol, room, msg).await["reactions"],
        json!([
            {"emoji": "👍", "count": 2, "me": false},
            {"emoji": "🎉", "count": 1, "me": true},
        ])
    );
    // The reactor's answer marks every emoji of theirs, not only the one just added.
    let r = react(&app, &alice, room, msg, "🎉").await;
    assert_eq!(
        r.body["reactions"],
        json!([
            {"emoji": "👍", "count": 2, "me": true},
            {"emoji": "🎉", "count": 2, "me": true},
        ])
    );
    let r = unreact(&app, &alice, room, msg, "🎉").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let r = unreact(&app, &bob, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = unreact(&app, &bob, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "removing twice is fine");
    let r = unreact(&app, &carol, room, msg, ":tada:").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        seen_by(&app, &bob, room, msg).await["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": false}]),
        "the last of an emoji takes its entry away"
    );

    // One event per change, none for the repeats.
    let events = app.state.store.outbox_after(0, 100).await.unwrap();
    let changes: Vec<(String, Value, Value)> = events
        .iter()
        .filter(|e| e.event_type.starts_with("reaction."))
        .map(|e| {
            (
                e.event_type.clone(),
                e.data["emoji"].clone(),
                e.data["count"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("reaction.added".into(), json!("👍"), json!(1)),
            ("reaction.added".into(), json!("👍"), json!(2)),
            ("reaction.added".into(), json!("🎉"), json!(1)),
            ("reaction.added".into(), json!("🎉"), json!(2)),
            ("reaction.removed".into(), json!("🎉"), json!(1)),
            ("reaction.removed".into(), json!("👍"), json!(1)),
            ("reaction.removed".into(), json!("🎉"), json!(0)),
        ]
    );
    // Each change numbers the message's reactions, in the order they were made.
    let versions: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type.starts_with("reaction."))
        .map(|e| e.data["version"].clone())
        .collect();
    assert_eq!(versions, (1..=7).map(|v| json!(v)).collect::<Vec<_>>());
    assert_eq!(seen_by(&app, &bob, room, msg).await["reactions_version"], 7);
    let first = events
        .iter()
        .find(|e| e.event_type == "reaction.added")
        .unwrap();
    assert_eq!(first.data["user_id"], bob.id);
    assert_eq!(first.data["message_id"], msg);
    assert_eq!(first.data["room"], room);
    assert_eq!(first.room_id, Some(room));
}

async fn emoji_are_checked_and_limited(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, msg, _alice, bob, _carol) = message_for_three(&app).await;
    for bad in ["", "x", ":not-a-shortcode:", "👍👍", "<script>"] {
        let r = react(&app, &bob, room, msg, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert!(r.body["errors"]["emoji"].is_array(), "{}", r.text);
    }
    let r = app
        .post(&reactions_path(room, msg), Some(&bob.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Twenty different emoji, then only those.
    let twenty = [
        "😀", "😂", "😍", "😎", "😭", "😡", "👍", "👎", "👏", "🙏", "🔥", "🎉", "❤️", "💯", "✅",
        "❌", "👀", "🚀", "🤔", "🙌",
    ];
    for emoji in twenty {
        let r = react(&app, &bob, room, msg, emoji).await;
        assert_eq!(r.status, StatusCode::CREATED, "{emoji}: {}", r.text);
    }
    let r = react(&app, &bob, room, msg, "🍕").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "too_many_reactions");
    let r = react(&app, &bob, room, msg, "❤").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "❤ is ❤️, already there: {}",
        r.text
    );
    let listed = seen_by(&app, &bob, room, msg).await;
    let emoji: Vec<&str> = listed["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["emoji"].as_str().unwrap())
        .collect();
    assert_eq!(emoji, twenty, "in the order first added");
}

async fn deleted_messages_and_outsiders_take_no_reactions(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, msg, alice, bob, _carol) = message_for_three(&app).await;
    react(&app, &bob, room, msg, "👍").await;
    let mallory = app.user("mallory@example.com").await;
    app.org(&mallory, "Elsewhere").await;
    let r = react(&app, &mallory, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = unreact(&app, &mallory, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = react(&app, &bob, room, 999_999, "👍").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A message of another room is not reachable through this one.
    let other_room = app
        .room(&alice, app.org(&alice, "Other").await, "x", "PUBLIC")
        .await;
    let elsewhere = app.send(&alice, other_room, "elsewhere").await;
    let r = react(&app, &bob, room, elsewhere, "👍").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .delete(&format!("/api/rooms/{room}/messages/{msg}/"), &alice.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(seen_by(&app, &bob, room, msg).await["reactions"], json!([]));
    let r = react(&app, &bob, room, msg, "👍").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "message_deleted");
}

async fn pages_show_each_reader_their_own_reactions(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, msg, alice, bob, carol) = message_for_three(&app).await;
    let later = app.send(&alice, room, "later").await;
    let older = format!("/api/rooms/{room}/messages/?before={later}");
    // Cached while nothing changes...
    app.get(&older, &carol.access).await;
    react(&app, &bob, room, msg, "🚀").await;
    // ...but a reaction is a change, and each reader sees their own marked.
    for _ in 0..2 {
        let bobs = app.get(&older, &bob.access).await;
        assert_eq!(
            bobs.body["results"][0]["reactions"][0]["me"], true,
            "{}",
            bobs.text
        );
        let carols = app.get(&older, &carol.access).await;
        assert_eq!(
            carols.body["results"][0]["reactions"][0]["me"], false,
            "{}",
            carols.text
        );
        assert_eq!(carols.body["results"][0]["reactions"][0]["count"], 1);
    }
    // The same in threads and in the edited message.
    let thread = app
        .get(
            &format!("/api/rooms/{room}/messages/{msg}/thread/"),
            &bob.access,
        )
        .await;
    assert_eq!(
        thread.body["root"]["reactions"][0]["me"], true,
        "{}",
        thread.text
    );
    react(&app, &alice, room, msg, "🚀").await;
    let edited = app
        .patch(
            &format!("/api/rooms/{room}/messages/{msg}/"),
            &alice.access,
            json!({"body": "shipped"}),
        )
        .await;
    assert_eq!(
        edited.body["reactions"],
        json!([{"emoji": "🚀", "count": 2, "me": true}]),
        "{}",
        edited.text
    );
}

/// Many reactions at once (they share transactions when they queue together): every rule holds
/// as if they came one by one. First each of three people adds the same 12 emoji, each twice,
/// all at the same time: one of each pair is new (201), the other finds it there (200), and the
/// counts are the people. Then 10 new emoji at once: only 8 fit under the limit of 20.
async fn concurrent_reactions_keep_every_rule(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (room, msg, alice, bob, carol) = message_for_three(&app).await;
    let emoji = [
        "😀", "😂", "😍", "😎", "😭", "😡", "👍", "👎", "👏", "🙏", "🔥", "🎉",
    ];
    let mut requests = Vec::new();
    for (n, who) in [&alice, &bob, &carol].into_iter().enumerate() {
        // Each person in a different order, so different emoji meet in the queue.
        for e in emoji.iter().cycle().skip(n * 4).take(emoji.len()) {
            requests.push((who, *e));
            requests.push((who, *e));
        }
    }
    let replies = futures::future::join_all(
        requests
            .iter()
            .map(|(who, e)| react(&app, who, room, msg, e)),
    )
    .await;
    let mut created = std::collections::HashMap::<(String, &str), usize>::new();
    for ((who, e), r) in requests.iter().zip(&replies) {
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "{} {e}: {} {}",
            who.email,
            r.status,
            r.text
        );
        if r.status == StatusCode::CREATED {
            *created.entry((who.email.clone(), *e)).or_default() += 1;
        }
    }
    assert_eq!(created.len(), 36, "each person got each emoji: {created:?}");
    assert!(created.values().all(|&n| n == 1), "once: {created:?}");

    let extra = ["🚀", "🤔", "🙌", "💯", "✅", "❌", "👀", "🍕", "🌮", "🎸"];
    let replies =
        futures::future::join_all(extra.iter().map(|e| react(&app, &bob, room, msg, e))).await;
    let added = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.code() == "too_many_reactions")
        .count();
    assert_eq!((added, refused), (8, 2), "20 different emoji at most");

    let seen = seen_by(&app, &carol, room, msg).await;
    let counts = seen["reactions"].as_array().unwrap();
    assert_eq!(counts.len(), 20, "{seen}");
    for c in counts {
        let expected = if emoji.contains(&c["emoji"].as_str().unwrap()) {
            3
        } else {
            1
        };
        assert_eq!(c["count"], expected, "{c}");
    }
    // One event per change that happened.
    let events = app.state.store.outbox_after(0, 500).await.unwrap();
    let added_events = events
        .iter()
        .filter(|e| e.event_type == "reaction.added")
        .count();
    assert_eq!(added_events, 36 + 8);

    // Bob takes his 👍 away and puts it back, over and over, all at once: whatever order they
    // land in, the count, his mark, the next answer and the events agree.
    let (app_ref, bob_ref) = (&app, &bob);
    let flips = futures::future::join_all((0..10).map(|n| async move {
        if n % 2 == 0 {
            unreact(app_ref, bob_ref, room, msg, "👍").await
        } else {
            react(app_ref, bob_ref, room, msg, "👍").await
        }
    }))
    .await;
    assert!(flips.iter().all(|r| r.status.is_success()), "{flips:?}");
    let seen = seen_by(&app, &bob, room, msg).await;
    let thumbs = seen["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["emoji"] == "👍")
        .cloned()
        .unwrap();
    let count = thumbs["count"].as_i64().unwrap();
    let mine = thumbs["me"].as_bool().unwrap();
    assert_eq!((count, mine), if mine { (3, true) } else { (2, false) });
    let events = app.state.store.outbox_after(0, 500).await.unwrap();
    let net: i64 = events
        .iter()
        .filter(|e| e.data["emoji"] == "👍")
        .map(|e| {
            if e.event_type == "reaction.added" {
                1
            } else {
                -1
            }
        })
        .sum();
    assert_eq!(net, count, "the events add up to the count");
    // However the changes were batched, each has a version of its own, and the newest 👍
    // event says what the message shows: a client keeping the newest is right.
    let mut versions: Vec<i64> = events
        .iter()
        .filter(|e| e.event_type.starts_with("reaction."))
        .map(|e| e.data["version"].as_i64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
    let newest = events
        .iter()
        .filter(|e| e.data["emoji"] == "👍")
        .max_by_key(|e| e.data["version"].as_i64())
        .unwrap();
    assert_eq!(newest.data["count"], count);
    assert_eq!(seen["reactions_version"], versions.len() as i64);
    let again = react(&app, &bob, room, msg, "👍").await;
    let expected = if mine {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    assert_eq!(again.status, expected, "{}", again.text);
}
