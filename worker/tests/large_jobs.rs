//! An event too large for NATS (its `max_payload`): handed over as its outbox position, its job
//! runs with the whole event read from the database. (The relay used to fail on it round after
//! round, and no event after it was ever handed over.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatboard_core::events::OutboxEvent;
use chatboard_store::{NewMessage, OutboxStore, StoreError};
use chrono::Utc;
use common::setup;
use testing::{unique_prefix, OwnNats, TestDb, TestEngine};
use worker::queue::{consume, JobHandler, JobQueue, NatsJobQueue};
use worker::relay::Relay;

/// Keeps the events it ran.
#[derive(Default)]
struct Ran(Mutex<Vec<OutboxEvent>>);

#[async_trait]
impl JobHandler for Ran {
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        self.0.lock().unwrap().extend(events.iter().cloned());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_nats_still_runs_its_jobs() {
    let Some(nats) = OwnNats::start_configured("max_payload: 8192\n") else {
        return;
    };
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    let outbox: Arc<dyn OutboxStore> = s.store.clone();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let queue = Arc::new(
        NatsJobQueue::start(client, &unique_prefix())
            .await
            .unwrap()
            .with_outbox(outbox.clone()),
    );
    // 2,000 four-byte characters: 8 KB of text, more than the server takes in one message.
    let body = "😀".repeat(2000);
    let large = s
        .store
        .post_message(
            NewMessage {
                file: None,
                room_id: s.room,
                sender_id: s.author,
                body: body.clone(),
                client_msg_id: None,
                parent_id: None,
                mentions: Default::default(),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    common::post(&s.store, s.room, s.author, 1).await;
    let relay = Relay::new(outbox, queue.clone() as Arc<dyn JobQueue>, 500);
    while relay.relay_once().await.unwrap() > 0 {}

    let ran = Arc::new(Ran::default());
    let runner = {
        let (queue, ran) = (queue.clone(), ran.clone());
        tokio::spawn(async move { consume(&queue, &*ran, std::future::pending::<()>()).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let created = loop {
        let created: Vec<OutboxEvent> = ran
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.event_type == "message.created")
            .cloned()
            .collect();
        if created.len() >= 2 {
            break created;
        }
        assert!(tokio::time::Instant::now() < deadline, "ran {created:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let whole = created
        .iter()
        .find(|e| e.data["id"].as_i64() == Some(large.0.id))
        .expect("the large message's job ran");
    assert_eq!(whole.data["body"].as_str(), Some(body.as_str()));
    assert!(
        created.iter().any(|e| e.data["body"] == "m0"),
        "the event after it ran"
    );
    runner.abort();
    queue.delete().await.unwrap();
}
