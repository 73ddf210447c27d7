//! PostgreSQL: writes that touch a message and its room take the room's row first, as posts do.
//! A reply locks its room, then updates its root's thread counters; a reaction or an edit of
//! that root used to lock the root first and its room second, so the two could wait on each
//! other until PostgreSQL's deadlock check aborted one of them (after a second).
//! Leaving or deleting a room takes its organization's lock before the room's seats, as every
//! change of seats does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Engine, TestApp};
use serde_json::json;
use testing::{waiting_for_locks, HeldLocks};

/// Until `sessions` sessions wait for a lock, polling `pending` meanwhile so its request is
/// sent (and failing if it is answered: it must wait for the held room).
async fn until_waiting<F: std::future::Future<Output = testing::http::Reply>>(
    app: &TestApp,
    sessions: i64,
    pending: std::pin::Pin<&mut F>,
) {
    let waiting = async {
        while waiting_for_locks(&app.db_url).await < sessions {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        reply = pending => panic!("answered while its room is locked: {}", reply.text),
        () = waiting => {}
    }
}

/// The room is held; a reply to `root` waits for it; then `other` (a write on `root`, or the
/// room's deletion) starts and waits too; the room is let go. Both must succeed.
async fn reply_and_then(kind: &str) {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (_org, room, alice, bob) = app.room_for_two().await;
    let messages = format!("/api/rooms/{room}/messages/");
    let root = app
        .post(&messages, Some(&alice.access), json!({"body": "root"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let held = HeldLocks::take(
        &app.db_url,
        &format!("SELECT id FROM rooms WHERE id = {room} FOR NO KEY UPDATE"),
    )
    .await;

    let reply = app.post(
        &messages,
        Some(&bob.access),
        json!({"body": "a reply", "parent_id": root}),
    );
    tokio::pin!(reply);
    until_waiting(&app, 1, reply.as_mut()).await;

    let root_path = format!("{messages}{root}/");
    let room_path = format!("/api/rooms/{room}/");
    let other = async {
        match kind {
            "room deletion" => app.delete(&room_path, &alice.access).await,
            "reaction" => {
                app.post(
                    &format!("{root_path}reactions/"),
                    Some(&bob.access),
                    json!({"emoji": "👍"}),
                )
                .await
            }
            _ => {
                app.patch(&root_path, &alice.access, json!({"body": "root, edited"}))
                    .await
            }
        }
    };
    tokio::pin!(other);
    let both_waiting = async {
        while waiting_for_locks(&app.db_url).await < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        reply = &mut reply => panic!("the reply was answered while its room is locked: {}", reply.text),
        answer = &mut other => panic!("the {kind} was answered while the room is locked: {}", answer.text),
        () = both_waiting => {}
    }
    held.release().await;
    let (reply, other) = tokio::join!(reply, other);
    assert!(
        reply.status.is_success(),
        "reply: {} {}",
        reply.status,
        reply.text
    );
    assert!(
        other.status.is_success(),
        "{kind}: {} {}",
        other.status,
        other.text
    );
    if kind == "room deletion" {
        let reply = reply.body["id"].as_i64().unwrap();
        assert_eq!(
            app.state.store.message(room, reply).await.unwrap(),
            None,
            "nothing of the room is left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_to_a_root_does_not_deadlock_with_a_reply_to_it() {
    reply_and_then("reaction").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_root_does_not_deadlock_with_a_reply_to_it() {
    reply_and_then("edit").await;
}

/// A room deleted while a reply in it waits for the room: the deletion used to delete the
/// room's messages before taking the room, so the reply (room, then its root) and the deletion
/// (the root, then the room) waited on each other until one was aborted, or a post that got in
/// between was left behind without its room. Now the deletion takes the room first: the reply
/// goes through, then the deletion, which takes the reply with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_deleted_while_a_reply_waits_leaves_nothing_behind() {
    reply_and_then("room deletion").await;
}

/// Holds the room's organization, starts `change` (a change of the room's seats), which must
/// wait for it, then lets the organization go; the change must succeed and leave Bob unseated.
async fn waits_for_the_organization(change: &str) {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let held = HeldLocks::take(
        &app.db_url,
        &format!("SELECT id FROM orgs WHERE id = {org} FOR UPDATE"),
    )
    .await;
    let room_path = format!("/api/rooms/{room}/");
    let pending = async {
        if change == "deletion" {
            app.delete(&room_path, &alice.access).await
        } else {
            app.post(&format!("{room_path}leave/"), Some(&bob.access), json!({}))
                .await
        }
    };
    tokio::pin!(pending);
    until_waiting(&app, 1, pending.as_mut()).await;
    held.release().await;
    let done = pending.await;
    assert!(done.status.is_success(), "{} {}", done.status, done.text);
    let seated = app.get(&room_path, &bob.access).await;
    assert_eq!(seated.status.as_u16(), 404, "{}", seated.text);
}

/// Leaving a room waits for its organization's lock before it touches its seat, as every other
/// change of seats does. The operator revoking two admins changes seats in two statements and
/// holds the first one's seat counts meanwhile; a leave that held its seat while it waited for
/// its room's count deadlocked with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_room_waits_for_its_organization_first() {
    waits_for_the_organization("leave").await;
}

/// A room's deletion removes its seats, so it too takes the organization before the room: it
/// took the room first, and deadlocked with the operator revoking two admins of a
/// MANAGER_ONLY room (the operator holds the org and the first admin's seat, the deletion the
/// room and the other seats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_room_waits_for_its_organization_first() {
    waits_for_the_organization("deletion").await;
}
