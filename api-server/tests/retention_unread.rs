//! Messages retention purged are not unread: the counts of readers who had not got that far,
//! and of members who joined since, start after them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{Engine, TestApp};
use testing::both_engines;

both_engines!(purged_messages_are_not_unread);

async fn purged_messages_are_not_unread(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org(&alice, "Acme").await;
    app.join(org, &alice, &bob, "MEMBER").await;
    let room = app.room(&alice, org, "general", "PUBLIC").await;
    app.room_action(&bob, room, "join").await;
    let old: Vec<i64> = vec![
        app.send(&alice, room, "old 1").await,
        app.send(&bob, room, "old, bob's own").await,
        app.send(&alice, room, "old 2").await,
    ];
    app.send(&alice, room, "new").await;
    assert_eq!(app.unread_in(&bob, room).await, Some(3));

    // The organization keeps 30 days; the three old ones are older than that.
    let purged = app.expire(org, &old).await;
    assert_eq!(purged, 3);
    assert_eq!(
        app.unread_in(&bob, room).await,
        Some(1),
        "only the one still there"
    );

    // Someone who joins now has one message to read, not four.
    app.join(org, &alice, &carol, "MEMBER").await;
    app.room_action(&carol, room, "join").await;
    assert_eq!(app.unread_in(&carol, room).await, Some(1));
    // Reading on moves from there as before.
    app.send(&alice, room, "newer").await;
    assert_eq!(app.unread_in(&bob, room).await, Some(2));
}
