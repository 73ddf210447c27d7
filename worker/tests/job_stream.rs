//! The job stream deleted under running workers (by hand, or a NATS that came back without its
//! storage): the relay's next hand-over makes it again, and the job runners make their consumer
//! again, so jobs flow on without a restart. Another deployment's stream under our name is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatboard_core::events::OutboxEvent;
use chatboard_store::StoreError;
use testing::{nats_url, unique_prefix};
use worker::queue::{consume, JobHandler, JobQueue, NatsJobQueue, QueueError};

/// Remembers the ids of the events it ran.
#[derive(Default)]
struct Ran(Mutex<Vec<String>>);

#[async_trait]
impl JobHandler for Ran {
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        let mut ran = self.0.lock().unwrap();
        ran.extend(events.iter().map(|e| e.id.clone()));
        Ok(())
    }
}

fn event(id: &str) -> OutboxEvent {
    OutboxEvent {
        position: 1,
        id: id.to_owned(),
        event_type: "message.created".to_owned(),
        org_id: 1,
        room_id: Some(1),
        data: serde_json::json!({}),
        created_at: chrono::Utc::now(),
    }
}

async fn ran(handler: &Ran, id: &str) -> bool {
    for _ in 0..1200 {
        if handler.0.lock().unwrap().iter().any(|ran| ran == id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_stream_is_made_again() {
    let Some(url) = nats_url() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let queue = Arc::new(NatsJobQueue::start(client, &unique_prefix()).await.unwrap());
    let handler = Arc::new(Ran::default());
    // Job runners as the worker runs them: a round ends on an error, the next starts a second on.
    let runner = {
        let (queue, handler) = (queue.clone(), handler.clone());
        tokio::spawn(async move {
            loop {
                if consume(&queue, &*handler, std::future::pending::<()>())
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    queue.enqueue(&[event("before")]).await.unwrap();
    assert!(ran(&handler, "before").await);

    queue.delete().await.unwrap();
    // The relay hands the next event over until it is taken, as it does every round.
    let mut refused = 0;
    while queue.enqueue(&[event("after")]).await.is_err() {
        refused += 1;
        assert!(refused < 5, "the stream is never made again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ran(&handler, "after").await,
        "the runners never got the job"
    );
    runner.abort();
    queue.delete().await.unwrap();
}

/// Runs each event's job slowly the first time, and counts how often each ran.
struct Slow {
    first: Duration,
    ran: Mutex<Vec<String>>,
}

#[async_trait]
impl JobHandler for Slow {
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        let first_time = self.ran.lock().unwrap().is_empty();
        if first_time {
            tokio::time::sleep(self.first).await;
        }
        let mut ran = self.ran.lock().unwrap();
        ran.extend(events.iter().map(|e| e.id.clone()));
        Ok(())
    }
}

/// A batch that takes longer than the acknowledgement deadline is not handed out again while
/// it runs: it says it is in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_is_not_delivered_again_while_it_runs() {
    a_long_job_runs_once(Duration::from_secs(2), Duration::from_secs(2)).await;
}

/// The same when the consumer was made with a shorter acknowledgement wait than the worker's
/// own (by an earlier release): the consumer keeps its wait, and progress told at a third of
/// the worker's came too late, so the job was handed to another replica while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_runs_once_under_a_consumer_made_with_a_shorter_wait() {
    a_long_job_runs_once(Duration::from_secs(2), Duration::from_secs(60)).await;
}

/// A job taking 5 s runs once, on a consumer made by a worker waiting `made_with` for
/// acknowledgements and run by one waiting `run_with`.
async fn a_long_job_runs_once(made_with: Duration, run_with: Duration) {
    let Some(url) = nats_url() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let prefix = unique_prefix();
    let maker = NatsJobQueue::start(client.clone(), &prefix)
        .await
        .unwrap()
        .with_ack_wait(made_with);
    // Made, and at once stopped.
    consume(&maker, &Ran::default(), async {}).await.unwrap();
    let queue = Arc::new(
        NatsJobQueue::start(client, &prefix)
            .await
            .unwrap()
            .with_ack_wait(run_with),
    );
    let handler = Arc::new(Slow {
        first: Duration::from_secs(5),
        ran: Mutex::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (queue, handler) = (queue.clone(), handler.clone());
        tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            consume(&queue, handler.as_ref(), stop).await
        })
    };
    queue.enqueue(&[event("long")]).await.unwrap();
    let ran_once = || handler.ran.lock().unwrap().iter().any(|id| id == "long");
    for _ in 0..400 {
        if ran_once() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ran_once(), "the long job never ran");
    // Anything delivered again while it ran comes before a job queued after it.
    queue.enqueue(&[event("after")]).await.unwrap();
    for _ in 0..400 {
        if handler.ran.lock().unwrap().iter().any(|id| id == "after") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ran = handler.ran.lock().unwrap().clone();
    assert_eq!(ran, ["long", "after"]);
    let _ = stop_tx.send(());
    runner.await.unwrap().unwrap();
    queue.delete().await.unwrap();
}

/// In the scale-out shape jobs wait in the queue, not in the outbox: the worker's gauge shows
/// how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_backlog_gauge_counts_the_queue() {
    let Some(url) = nats_url() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let queue = Arc::new(NatsJobQueue::start(client, &unique_prefix()).await.unwrap());
    queue
        .enqueue(&[event("one"), event("two"), event("three")])
        .await
        .unwrap();
    let metrics = Arc::new(worker::service::WorkerMetrics::new().unwrap());
    let watching = tokio::spawn(worker::service::watch_job_backlog(
        queue.clone(),
        metrics.clone(),
        Duration::from_millis(20),
    ));
    for _ in 0..400 {
        if metrics.job_backlog.get() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(metrics.job_backlog.get(), 3);
    watching.abort();
    queue.delete().await.unwrap();
}

/// Two deployments whose prefixes differ only in `-` against `_` (or letter case) would share
/// one job stream, each one's workers taking the other's jobs: the second is refused, saying
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_naming_another_deployments_stream_is_refused() {
    let Some(url) = nats_url() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let unique = unique_prefix();
    let first = NatsJobQueue::start(client.clone(), &format!("{unique}-a"))
        .await
        .unwrap();
    let refused = NatsJobQueue::start(client, &format!("{unique}_a")).await;
    let Err(QueueError::Conflict(why)) = refused else {
        panic!("the second deployment was let in");
    };
    assert!(why.contains("CHATBOARD_NATS_PREFIX"), "{why}");
    first.delete().await.unwrap();
}

/// Fails every batch that holds the event `bad`; remembers the events of the batches it ran.
#[derive(Default)]
struct FailsOnBad {
    ran: Mutex<Vec<String>>,
    refused: Mutex<usize>,
}

#[async_trait]
impl JobHandler for FailsOnBad {
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        if events.iter().any(|e| e.id == "bad") {
            *self.refused.lock().unwrap() += 1;
            return Err(StoreError::NotFound);
        }
        let mut ran = self.ran.lock().unwrap();
        ran.extend(events.iter().map(|e| e.id.clone()));
        Ok(())
    }
}

/// A job that always fails (a defect, or data the handler cannot take) does not hold back
/// the jobs fetched with it: a failed batch is run again job by job, what succeeds is done,
/// and only the failing job comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_does_not_hold_back_the_others() {
    let Some(url) = nats_url() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let queue = Arc::new(NatsJobQueue::start(client, &unique_prefix()).await.unwrap());
    // Queued before anything consumes them, so that they are fetched together.
    queue
        .enqueue(&[event("first"), event("bad"), event("last")])
        .await
        .unwrap();
    let handler = Arc::new(FailsOnBad::default());
    let runner = {
        let (queue, handler) = (queue.clone(), handler.clone());
        tokio::spawn(async move {
            loop {
                let _ = consume(&queue, &*handler, std::future::pending::<()>()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut done = false;
    for _ in 0..600 {
        let ran = handler.ran.lock().unwrap().clone();
        if ran.contains(&"first".to_owned()) && ran.contains(&"last".to_owned()) {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = *handler.refused.lock().unwrap();
    runner.abort();
    queue.delete().await.unwrap();
    assert!(done, "the good jobs never ran ({refused} failed batches)");
    assert!(refused >= 1, "the bad job never ran");
    // Their batch failed once, then the bad job alone (and once more, at most, while this
    // looked): not batch after batch until a redelivery happened to part them.
    assert!(
        refused <= 3,
        "the good jobs waited for {refused} failed batches"
    );
}

#[tokio::test]
async fn the_job_stream_is_kept_in_the_copies_asked_for() {
    let Some(cluster) = testing::NatsCluster::start() else {
        return;
    };
    let prefix = unique_prefix();
    let client = async_nats::connect(chatboard_core::bus::server_list(&cluster.urls()).as_slice())
        .await
        .unwrap();
    let replicas = chatboard_core::bus::StreamReplicas(Some(3));
    // JetStream answers once the three servers have elected a leader among them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let queue = loop {
        match NatsJobQueue::start_replicated(client.clone(), &prefix, replicas).await {
            Ok(queue) => break queue,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("the cluster does not take the stream yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("the cluster took no job stream: {e}"),
        }
    };
    queue.enqueue(&[event("e-replicated")]).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(format!("{}_JOBS", prefix.to_uppercase()))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.state.messages, 1);
}
