//! Messages retention purged are not unread: the counts of readers who had not got that far,
//! and of members who joined since, start after them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::Utc;
use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;
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
    let r = app
        .post(
            &format!("/api/rooms/{room}/join/"),
            Some(&bob.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let old: Vec<i64> = vec![
        app.send(&alice, room, "old 1").await,
        app.send(&bob, room, "old, bob's own").await,
        app.send(&alice, room, "old 2").await,
    ];
    app.send(&alice, room, "new").await;
    let unread = |token: String| {
        let app = &app;
        async move {
            let r = app.get("/auth/me/unread-counts/", &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let counts = r.body["unread_counts"].as_array().unwrap().clone();
            counts
                .iter()
                .find(|c| c["room_id"] == room)
                .map(|c| c["unread_count"].as_i64().unwrap())
        }
    };
    assert_eq!(unread(bob.access.clone()).await, Some(3));

    // The organization keeps 30 days; the three old ones are older than that.
    let ids = old
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE orgs SET retention_days = 30 WHERE id = {org}"),
    )
    .await;
    testing::execute_sql(
        &app.db_url,
        &format!("UPDATE messages SET created_at = '2020-01-01T00:00:00Z' WHERE id IN ({ids})"),
    )
    .await;
    let purged = app
        .state
        .store
        .purge_expired_messages(Utc::now(), 100)
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(
        unread(bob.access.clone()).await,
        Some(1),
        "only the one still there"
    );

    // Someone who joins now has one message to read, not four.
    app.join(org, &alice, &carol, "MEMBER").await;
    let r = app
        .post(
            &format!("/api/rooms/{room}/join/"),
            Some(&carol.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(unread(carol.access.clone()).await, Some(1));
    // Reading on moves from there as before.
    app.send(&alice, room, "newer").await;
    assert_eq!(unread(bob.access.clone()).await, Some(2));
}
