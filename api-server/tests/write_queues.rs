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

/// Posts queued while the writer waits go to the database together: plain posts of several
/// rooms in one statement, or, with a reply among them, in one transaction. Each is stored in
/// the order it was queued, with the next seq of its room and an event of its own; a post
/// without a seat is refused, and a `client_msg_id` repeated within the batch is answered with
/// the first post.
async fn posts_queued_together_are_stored_in_order(with_reply: bool) {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (org, general, alice, bob) = app.room_for_two().await;
    let private = app.room(&alice, org, "private", "PRIVATE").await;
    let store = app.state.store.clone();
    let post = |room: i64, sender: &testing::http::TestUser, body: &str, client: Option<&str>| {
        chatboard_store::NewMessage {
            room_id: room,
            sender_id: sender.id,
            body: body.into(),
            client_msg_id: client.map(str::to_owned),
            file: None,
            parent_id: None,
            mentions: Default::default(),
        }
    };
    let queue = |msg| store.queue_message(msg, chrono::Utc::now());
    let (root, _) = store
        .post_message(post(general, &alice, "root", None), chrono::Utc::now())
        .await
        .unwrap();
    // The writer takes the first post and waits for its room; the rest queue behind it and go
    // as one batch once the room is free. The batch then waits for the other room, which
    // another writer moves on meanwhile (as a post through another replica would).
    let row = format!("SELECT id FROM rooms WHERE id = {general} FOR NO KEY UPDATE");
    let held = HeldLocks::take(&app.db_url, &row).await;
    let moved_on = format!("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = {private}");
    let other_writer = HeldLocks::take(&app.db_url, &moved_on).await;
    let first = queue(post(general, &alice, "first", None));
    while waiting_for_locks(&app.db_url).await < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut queued = vec![
        queue(post(general, &bob, "one", Some("k"))),
        queue(post(private, &alice, "two", None)),
        queue(post(general, &bob, "one again", Some("k"))),
        queue(post(private, &bob, "no seat", None)),
        queue(post(general, &alice, "three", None)),
    ];
    if with_reply {
        let reply = chatboard_store::NewMessage {
            parent_id: Some(root.id),
            ..post(general, &bob, "a reply", None)
        };
        queued.push(queue(reply));
    }
    held.release().await;
    let (first, created) = store.queued_message(first).await.unwrap();
    assert!(created);
    while waiting_for_locks(&app.db_url).await < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other_writer.commit().await;
    let mut answers = Vec::new();
    for queued in queued {
        answers.push(store.queued_message(queued).await);
    }
    let reply = with_reply.then(|| answers.pop().unwrap().unwrap().0);
    let [one, two, again, no_seat, three] = <[_; 5]>::try_from(answers).unwrap();
    let (one, two, three) = (one.unwrap(), two.unwrap(), three.unwrap());
    assert!(one.1 && two.1 && three.1, "each stored anew");
    let (again, again_created) = again.unwrap();
    assert!(!again_created);
    assert_eq!(again.id, one.0.id, "the repeat answers the first");
    assert!(no_seat.is_err(), "{no_seat:?}");

    let mut ids = vec![root.id, first.id, one.0.id, two.0.id, three.0.id];
    let mut general_last = (three.0.seq, three.0.id);
    if let Some(reply) = &reply {
        ids.push(reply.id);
        assert_eq!(reply.seq, three.0.seq + 1);
        assert_eq!(reply.parent_id, Some(root.id));
        general_last = (reply.seq, reply.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "queued order: {ids:?}");
    assert_eq!([root.seq, first.seq, one.0.seq, three.0.seq], [1, 2, 3, 4]);
    assert_eq!(two.0.seq, 2, "after the other writer's");
    assert_eq!((one.0.body.as_str(), one.0.org), ("one", org));

    // One `message.created` event per stored post, holding the message as stored.
    let db = sqlx::PgPool::connect(&app.db_url).await.unwrap();
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'message.created' \
         AND room_id = ANY($1) ORDER BY id",
    )
    .bind(vec![general, private])
    .fetch_all(&db)
    .await
    .unwrap();
    let events: Vec<serde_json::Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let event_ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(event_ids, ids);
    let two_event = &events[3];
    assert_eq!(two_event["room"], private);
    assert_eq!(two_event["org"], org);
    assert_eq!(two_event["body"], "two");
    let rooms: Vec<(i64, i64)> =
        sqlx::query_as("SELECT last_seq, last_msg_id FROM rooms WHERE id = ANY($1) ORDER BY id")
            .bind(vec![general, private])
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rooms, [general_last, (2, two.0.id)]);
    // Stored together: one transaction (a batch that failed goes post by post, each in its own).
    let batch: Vec<i64> = ids[2..].to_vec();
    let transactions: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM messages WHERE id = ANY($1)")
            .bind(&batch)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(transactions, 1, "the batch {batch:?} in one transaction");
}

/// Plain posts: one statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_posts_queued_together_are_stored_in_order() {
    posts_queued_together_are_stored_in_order(false).await;
}

/// A reply among them: one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_queued_together_with_a_reply_are_stored_in_order() {
    posts_queued_together_are_stored_in_order(true).await;
}
