//! The outbox relay against a real store (SQLite and PostgreSQL) and a real JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::{post, store_with_room};
use testing::{nats_url, unique_prefix, TestDb, TestEngine};
use worker::queue::{JobQueue, NatsJobQueue};
use worker::relay::Relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_becomes_exactly_one_job_on_sqlite() {
    every_event_becomes_exactly_one_job(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_becomes_exactly_one_job_on_postgres() {
    every_event_becomes_exactly_one_job(TestEngine::Postgres).await;
}

/// Every outbox event becomes one job; the backlog empties; crashes between enqueueing and
/// marking, and relays racing each other, create no second job.
async fn every_event_becomes_exactly_one_job(engine: TestEngine) {
    let Some(url) = nats_url() else { return };
    let Some((_db, db_url)) = TestDb::create(engine).await else {
        return;
    };
    let (store, room, author) = store_with_room(&db_url).await;
    post(&store, room, author, 25).await;
    let client = async_nats::connect(&url).await.unwrap();
    let queue = Arc::new(NatsJobQueue::start(client, &unique_prefix()).await.unwrap());

    let (waiting, oldest) = store.outbox_backlog().await.unwrap();
    assert!(
        waiting >= 26 && oldest.is_some(),
        "room.created and 25 messages wait"
    );
    let relay = Relay::new(store.clone(), queue.clone(), 10);
    let mut handed = 0;
    loop {
        let n = relay.relay_once().await.unwrap();
        if n == 0 {
            break;
        }
        handed += n;
    }
    assert_eq!(handed as i64, waiting);
    assert_eq!(queue.pending().await.unwrap(), waiting as u64);
    assert_eq!(store.outbox_backlog().await.unwrap(), (0, None));

    // A relay that enqueued and died before marking: the next round enqueues again, one job each.
    post(&store, room, author, 5).await;
    for event in store.outbox_unpublished(100).await.unwrap() {
        queue.enqueue(std::slice::from_ref(&event)).await.unwrap();
    }
    assert_eq!(
        Relay::new(store.clone(), queue.clone(), 100)
            .relay_once()
            .await
            .unwrap(),
        5
    );
    assert_eq!(queue.pending().await.unwrap(), waiting as u64 + 5);

    // Three relays racing over the same rows.
    post(&store, room, author, 30).await;
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let relay = Relay::new(store.clone(), queue.clone(), 7);
            tokio::spawn(async move { while relay.relay_once().await.unwrap() > 0 {} })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    assert_eq!(queue.pending().await.unwrap(), waiting as u64 + 35);
    assert_eq!(store.outbox_backlog().await.unwrap().0, 0);
    queue.delete().await.unwrap();
    store.close().await;
}
