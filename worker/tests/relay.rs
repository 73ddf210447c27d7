//! The outbox relay against a real store (SQLite and PostgreSQL) and a real JetStream; and a
//! batch too heavy for the queue to take in time split until it goes.

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

/// Refuses (as a timeout would) any batch of more than `most` events; takes the others.
struct SmallBatchesOnly {
    most: usize,
    taken: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl JobQueue for SmallBatchesOnly {
    async fn enqueue(
        &self,
        events: &[chatboard_core::events::OutboxEvent],
    ) -> Result<(), worker::queue::QueueError> {
        if events.len() > self.most {
            return Err(worker::queue::QueueError::Unavailable(
                "no acknowledgement in time".into(),
            ));
        }
        *self.taken.lock().unwrap() += events.len();
        Ok(())
    }
}

/// A batch too heavy to hand over in time (large events) does not hold the outbox back: the
/// relay tries smaller ones. It tried the same whole batch again, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_heavy_to_hand_over_is_split() {
    let Some((_db, db_url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let (store, room, author) = store_with_room(&db_url).await;
    post(&store, room, author, 20).await;
    let queue = Arc::new(SmallBatchesOnly {
        most: 3,
        taken: std::sync::Mutex::new(0),
    });
    let relay = Relay::new(store.clone(), queue.clone(), 16);
    let metrics = Arc::new(worker::service::WorkerMetrics::new().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        relay.run(metrics, std::time::Duration::from_millis(10), async {
            let _ = stopped.await;
        }),
    );
    for _ in 0..600 {
        if store.outbox_backlog().await.unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.outbox_backlog().await.unwrap().0,
        0,
        "the outbox held back"
    );
    assert!(*queue.taken.lock().unwrap() >= 21);
    let _ = stop.send(());
    running.await.unwrap();
    store.close().await;
}
