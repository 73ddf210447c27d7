//! A post and its `message.created` event are stored together or not at all, on both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use testing::both_engines;

use common::{Engine, TestApp};
use serde_json::json;

both_engines!(a_post_whose_event_cannot_be_written_is_not_stored);

/// A post whose event cannot be written is refused and leaves no message behind. On PostgreSQL a
/// plain post is one statement outside a transaction (its message and event inserted by
/// sibling CTEs); on SQLite its statements run in a transaction opened in SQL, which must be
/// rolled back.
async fn a_post_whose_event_cannot_be_written_is_not_stored(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (_org, room, _alice, bob) = app.room_for_two().await;
    let (refuse, allow) = match app.engine {
        Engine::Postgres => (
            "ALTER TABLE outbox ADD CONSTRAINT no_new_messages \
             CHECK (event_type <> 'message.created') NOT VALID",
            "ALTER TABLE outbox DROP CONSTRAINT no_new_messages",
        ),
        Engine::Sqlite => (
            "CREATE TRIGGER no_new_messages BEFORE INSERT ON outbox \
             WHEN new.event_type = 'message.created' BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER no_new_messages",
        ),
    };
    let path = format!("/api/rooms/{room}/messages/");
    testing::db::execute_sql(&app.db_url, refuse).await;
    let refused = app
        .post(&path, Some(&bob.access), json!({"body": "never stored"}))
        .await;
    assert!(
        refused.status.is_server_error(),
        "the post must fail with its event: {} {}",
        refused.status,
        refused.text
    );
    testing::db::execute_sql(&app.db_url, allow).await;
    app.send(&bob, room, "stored").await;
    let page = app.get(&path, &bob.access).await;
    let bodies: Vec<&str> = page.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["stored"]);
    let events = app.state.store.outbox_after(0, 100).await.unwrap();
    let created = events
        .iter()
        .filter(|e| e.event_type == "message.created")
        .count();
    assert_eq!(created, 1, "one event, for the stored message");
}
