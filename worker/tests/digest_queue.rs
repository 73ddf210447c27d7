//! When a digest is due (its wait counts from when its messages were noted for the member, not
//! from when they were posted), and what it shows of a room the member left. Through the
//! email store and the digest writer; both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chatboard_store::DigestNote;
use chrono::Utc;
use common::{digest_writer as writer, member, post, setup, Setup};
use testing::{TestDb, TestEngine};

testing::both_engines!(
    the_wait_counts_from_when_messages_are_noted,
    a_room_left_shows_nothing_of_its_messages,
    a_backlog_goes_out_round_after_round,
    a_member_mentioned_twice_in_one_job_is_noted_once,
);

/// Notes for `user` a message of the setup's room posted an hour ago, as a job catching up
/// on old events would (the room's newest, posted first if there is none: a digest leaves
/// out messages that are not there).
async fn note_an_hour_old_message(s: &Setup, user: i64, event: &str) {
    if common::newest(s, 1).await.is_empty() {
        post(&s.store, s.room, s.author, 1).await;
    }
    let message = common::newest(s, 1).await[0].id;
    let posted = Utc::now() - chrono::Duration::hours(1);
    let note = DigestNote {
        event_id: event.into(),
        user_id: user,
    };
    s.store
        .add_digest_items(&[note], message, s.room, posted, false)
        .await
        .unwrap();
}

async fn the_wait_counts_from_when_messages_are_noted(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    note_an_hour_old_message(&s, bob, "e1").await;
    // Posted an hour ago, noted just now: a ten-minute window has not passed (a backlog of
    // old events used to be mailed at once, a digest each round as it was noted).
    assert_eq!(
        writer(&s.store, Duration::from_secs(600))
            .write_due()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        writer(&s.store, Duration::ZERO).write_due().await.unwrap(),
        1
    );
}

/// A message noted for a member who then left its room: the digest line shows neither its text
/// nor who sent it (it named the sender).
async fn a_room_left_shows_nothing_of_its_messages(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    post(&s.store, s.room, s.author, 1).await;
    let newest = common::newest(&s, 1).await;
    let note = DigestNote {
        event_id: "e1".into(),
        user_id: bob,
    };
    s.store
        .add_digest_items(&[note], newest[0].id, s.room, newest[0].created_at, false)
        .await
        .unwrap();
    assert!(s.store.remove_room_member(s.room, bob).await.unwrap());
    let (_, lines) = s.store.digest_of(bob, 10).await.unwrap().unwrap();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert!(line.deleted && line.body.is_empty(), "{line:?}");
    assert_eq!(line.sender, "someone", "{line:?}");
    assert_eq!(line.room_name, "a deleted room", "{line:?}");
}

/// More members due than a round takes (100): the next round follows at once rather than an
/// interval later (the writer capped digests at a hundred per interval, however many waited).
async fn a_backlog_goes_out_round_after_round(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    for n in 0..150 {
        let user = member(&s, &format!("m{n}@example.com"), "M").await;
        note_an_hour_old_message(&s, user, &format!("e{n}")).await;
    }
    // Noted an hour ago, as after a long outage of the writer.
    testing::execute_sql(&url, "UPDATE digest_items SET noted_at = created_at").await;
    // A 20 s window: the writer looks every 5 s.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(writer(&s.store, Duration::from_secs(20)).run(async move {
        let _ = stopped.await;
    }));
    let started = tokio::time::Instant::now();
    let queued = "SELECT to_address FROM emails WHERE kind = 'digest'";
    while testing::query_texts(&url, queued).await.len() < 150 {
        // The first round comes after 5 s, the second straight after it; an interval later
        // would be 10 s.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{} digests after {:?}",
            testing::query_texts(&url, queued).await.len(),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.unwrap();
}

/// A mention taken out by an edit and put back by the next one makes two `message.mentioned`
/// events of one message for one member, which a job notes together. That is one item: on
/// PostgreSQL the two rows in one upsert were refused, and the job failed at every attempt.
async fn a_member_mentioned_twice_in_one_job_is_noted_once(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    post(&s.store, s.room, s.author, 1).await;
    let message = common::newest(&s, 1).await[0].clone();
    let notes = [DigestNote::new("m1", bob), DigestNote::new("m2", bob)];
    s.store
        .add_digest_items(&notes, message.id, s.room, message.created_at, true)
        .await
        .expect("both mentions noted");
    let far = Utc::now() + chrono::Duration::days(1);
    assert_eq!(s.store.due_digests(far, far, 10).await.unwrap(), vec![bob]);
    // Noted: the same events again change nothing.
    s.store
        .add_digest_items(&notes, message.id, s.room, message.created_at, true)
        .await
        .unwrap();
    assert_eq!(
        writer(&s.store, Duration::ZERO).write_due().await.unwrap(),
        1
    );
}
