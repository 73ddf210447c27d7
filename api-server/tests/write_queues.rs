//! PostgreSQL's write queues (`CHATBOARD_DB_WRITE_QUEUES`): a room's posts always go through the
//! same writer. With one queue (the default) every room shares it, so posts of many rooms share
//! commits; with more, rooms of different queues are written in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Engine, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use testing::{waiting_for_locks, HeldLocks};

/// With the write queues `configured` (the default if none): a post waits for its room's row
/// (held by another transaction), then a post is made to a room of another queue (when there is
/// one). With one queue the second waits behind the first; with more it is answered while the
/// first still waits. Both are stored once the row is free.
async fn a_post_beside_one_that_waits(configured: Option<u32>) {
    let Some(app) = TestApp::spawn_with(Engine::Postgres, |config| {
        if let Some(queues) = configured {
            config.database.pool.db_write_queues = queues;
        }
    })
    .await
    else {
        return;
    };
    let queues = i64::from(app.state.config.database.pool.db_write_queues);
    let (org, first, alice, _bob) = app.room_for_two().await;
    let mut second = app.room(&alice, org, "second", "PUBLIC").await;
    while queues > 1 && second % queues == first % queues {
        second = app.room(&alice, org, "second", "PUBLIC").await;
    }
    let row = format!("SELECT id FROM rooms WHERE id = {first} FOR NO KEY UPDATE");
    let held = HeldLocks::take(&app.db_url, &row).await;

    let [first_path, second_path] =
        [first, second].map(|room| format!("/api/rooms/{room}/messages/"));
    let token = Some(alice.access.as_str());
    let waiting = app.post(&first_path, token, json!({"body": "waits for its room"}));
    tokio::pin!(waiting);
    let stuck = async {
        while waiting_for_locks(&app.db_url).await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        reply = &mut waiting => panic!("answered while its room is locked: {}", reply.text),
        () = stuck => {}
    }

    let beside = app.post(&second_path, token, json!({"body": "another room"}));
    tokio::pin!(beside);
    let mut later = None;
    if queues > 1 {
        // Answered while the first still waits (behind it, this would time out).
        let reply = tokio::time::timeout(Duration::from_secs(30), &mut beside)
            .await
            .expect("a room of another queue is written while the first waits");
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    } else {
        // A blocked post cannot be answered early, however busy the machine.
        tokio::select! {
            reply = &mut beside => panic!("answered while the writer waits: {}", reply.text),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        later = Some(beside);
    }
    held.release().await;
    let first_reply = waiting.await;
    assert_eq!(
        first_reply.status,
        StatusCode::CREATED,
        "{}",
        first_reply.text
    );
    if let Some(beside) = later {
        let reply = beside.await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        // Written after the first, by the same writer.
        let ids = [&first_reply, &reply].map(|r| r.body["id"].as_i64().unwrap());
        assert!(ids[0] < ids[1], "{ids:?}");
    }
}

/// The default: one writer for all rooms, so a post waits behind another room's.
#[tokio::test]
async fn by_default_every_room_shares_one_writer() {
    a_post_beside_one_that_waits(None).await;
}

/// Several queues: a room of another queue is written while the first waits.
#[tokio::test]
async fn with_more_queues_rooms_are_written_in_parallel() {
    a_post_beside_one_that_waits(Some(4)).await;
}
