//! The job queue: where the relay puts outbox events for the job runners.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, PublishError, PublishErrorKind};
use async_nats::jetstream::{self, stream, AckKind, ErrorCode};
use async_trait::async_trait;
use chatboard_core::bus::StreamReplicas;
use chatboard_core::events::OutboxEvent;
use chatboard_store::{OutboxStore, StoreError};
use futures::StreamExt;

/// How long JetStream remembers event ids: a relay that crashed after publishing and before
/// recording it re-publishes within this window without creating a second job.
const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// How long a publish waits for JetStream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// The durable consumer every worker replica pulls from.
const CONSUMER: &str = "workers";
/// A job not acknowledged within this time (its worker died) is delivered again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Jobs handled together at most.
const FETCH_BATCH: usize = 256;
/// On a job too large for NATS, the header naming its event's outbox position: the runner reads
/// the event from the database.
const OUTBOX_POSITION: &str = "Chatboard-Outbox-Position";
/// Room kept in a message for its headers and subject when telling whether it fits.
const HEADERS_ROOM: usize = 512;

/// What a queue call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the job.
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    /// The event could not be encoded.
    #[error("job encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// NATS holds another deployment's job stream under the name this one's prefix gives.
    #[error("{0}")]
    Conflict(String),
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// Accepts jobs; enqueuing the same event twice yields one job.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues the jobs for `events`; once this returns `Ok`, none of them will be lost. On an
    /// error some may have been enqueued; enqueuing them again is harmless.
    async fn enqueue(&self, events: &[OutboxEvent]) -> Result<(), QueueError>;
}

/// Runs the jobs of events taken from a queue.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs the jobs of `events`; on an error none of them counts as done (they come again).
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError>;
}

/// A JetStream work-queue stream `<PREFIX>_JOBS` on subjects `<prefix>.jobs.<event type>`,
/// de-duplicated on the event id.
pub struct NatsJobQueue {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    stream_name: String,
    /// The copies of the stream a cluster keeps.
    replicas: StreamReplicas,
    ack_wait: Duration,
    /// Where the runners read the events of jobs too large for NATS.
    outbox: Option<Arc<dyn OutboxStore>>,
}

impl NatsJobQueue {
    /// Creates the stream if needed.
    pub async fn start(client: async_nats::Client, prefix: &str) -> Result<Self, QueueError> {
        Self::start_replicated(client, prefix, StreamReplicas::default()).await
    }

    /// As [`NatsJobQueue::start`], the stream kept in `replicas` copies.
    pub async fn start_replicated(
        client: async_nats::Client,
        prefix: &str,
        replicas: StreamReplicas,
    ) -> Result<Self, QueueError> {
        let jetstream = jetstream::new(client.clone());
        let stream_name = format!("{}_JOBS", prefix.to_uppercase().replace(['.', '-'], "_"));
        let queue = Self {
            client,
            jetstream,
            prefix: prefix.to_owned(),
            stream_name,
            replicas,
            ack_wait: ACK_WAIT,
            outbox: None,
        };
        queue.ensure_stream().await?;
        Ok(queue)
    }

    /// The same queue whose runners read from `outbox` the events of jobs too large for NATS
    /// (without it such a job is dropped, with an error logged).
    pub fn with_outbox(mut self, outbox: Arc<dyn OutboxStore>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The same queue whose jobs are delivered again when not acknowledged within `ack_wait`
    /// ([`ACK_WAIT`] otherwise; tests shorten it). It applies to a consumer made from then on.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The stream, made if it is missing: at start-up, and whenever it went away under a
    /// running process (deleted by hand, or a NATS that came back without its storage; the
    /// events it held are still in the outbox, see the README's backup notes).
    async fn ensure_stream(&self) -> Result<stream::Stream, QueueError> {
        let subjects = vec![format!("{}.jobs.>", self.prefix)];
        let stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.stream_name.clone(),
                subjects: subjects.clone(),
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: DEDUP_WINDOW,
                storage: stream::StorageType::File,
                num_replicas: self.replicas.for_new(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(self.replicas.creation_failed(&self.stream_name, e)))?;
        // Another deployment's, under the same name: its workers would take our jobs.
        if let Some(conflict) = chatboard_core::bus::foreign_stream(&stream, &subjects) {
            return Err(QueueError::Conflict(conflict));
        }
        self.replicas
            .settle(&self.jetstream, stream)
            .await
            .map_err(QueueError::Unavailable)
    }

    /// Jobs waiting in the stream.
    pub async fn pending(&self) -> Result<u64, QueueError> {
        let mut stream = self
            .jetstream
            .get_stream(&self.stream_name)
            .await
            .map_err(unavailable)?;
        Ok(stream.info().await.map_err(unavailable)?.state.messages)
    }

    /// Deletes the stream (tests clean up after themselves with it).
    pub async fn delete(&self) -> Result<(), QueueError> {
        self.jetstream
            .delete_stream(&self.stream_name)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for NatsJobQueue {
    async fn enqueue(&self, events: &[OutboxEvent]) -> Result<(), QueueError> {
        // Publish them all, then wait for the acknowledgements together: one round trip's
        // latency per batch instead of per event.
        let max_payload = self.client.server_info().max_payload;
        let published = async {
            let mut acks = Vec::with_capacity(events.len());
            for event in events {
                let subject = format!("{}.jobs.{}", self.prefix, event.event_type);
                let mut payload = serde_json::to_vec(event)?;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
                if payload.len() + HEADERS_ROOM > max_payload {
                    // Too large for the server (a room made with the members of a very large
                    // organization): refused, it would stop every event after it. The job
                    // carries the event without its data, and its position.
                    headers.insert(OUTBOX_POSITION, event.position.to_string().as_str());
                    let mut stub = event.clone();
                    stub.data = serde_json::Value::Null;
                    payload = serde_json::to_vec(&stub)?;
                }
                acks.push(
                    self.jetstream
                        .publish_with_headers(subject, headers, payload.into())
                        .await?,
                );
            }
            for ack in acks {
                ack.await?;
            }
            Ok::<(), EnqueueError>(())
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, published).await {
            Err(_) => Err(unavailable("no acknowledgement from JetStream in time")),
            Ok(Ok(())) => Ok(()),
            Ok(Err(EnqueueError::Encode(e))) => Err(QueueError::Encode(e)),
            Ok(Err(EnqueueError::Publish(e))) => {
                if e.kind() == PublishErrorKind::StreamNotFound {
                    // Made again now; the relay hands the events over again next round.
                    tracing::warn!(stream = %self.stream_name, "the job stream is gone; making it again");
                    self.ensure_stream().await?;
                }
                Err(unavailable(e))
            }
        }
    }
}

/// Why publishing a batch failed, typed so that a missing stream can be told apart.
#[derive(Debug, thiserror::Error)]
enum EnqueueError {
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Runs the jobs in the queue: a durable pull consumer shared by every worker replica, so each
/// job goes to one of them; a job whose handling fails, or whose worker dies, is delivered
/// again (after [`ACK_WAIT`] at the latest).
pub async fn consume(
    queue: &NatsJobQueue,
    jobs: &dyn JobHandler,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), QueueError> {
    let stream = queue.ensure_stream().await?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: queue.ack_wait,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(unavailable)?;
    // The server's: a consumer made earlier (another release, a test) keeps its own, and
    // progress told by ours would come too late for it.
    let ack_wait = Some(consumer.cached_info().config.ack_wait)
        .filter(|wait| !wait.is_zero())
        .unwrap_or(queue.ack_wait);
    // A continuous pull: jobs are handled as soon as they arrive, together with whatever else
    // is already waiting (up to a batch), instead of waiting for a batch to fill.
    let mut incoming = consumer
        .messages()
        .await
        .map_err(unavailable)?
        .ready_chunks(FETCH_BATCH);
    tokio::pin!(stop);
    loop {
        let chunk = tokio::select! {
            () = &mut stop => return Ok(()),
            chunk = incoming.next() => chunk,
        };
        let Some(chunk) = chunk else {
            return Err(unavailable("the job stream ended"));
        };
        let mut messages = Vec::with_capacity(chunk.len());
        let mut hiccups = false;
        for item in chunk {
            match item {
                Ok(message) => messages.push(message),
                // Missed heartbeats and the like: the stream carries on by itself.
                Err(e) => {
                    tracing::warn!(error = %e, "job consumer hiccup");
                    hiccups = true;
                }
            }
        }
        // Unless the consumer is gone with its stream: then this round ends (after running what
        // did arrive: the outbox counts it handed over), and the next one makes both again.
        let gone = hiccups && consumer_gone(&consumer).await;
        let ran = run_batch(jobs, messages, queue, ack_wait).await;
        if gone {
            return Err(unavailable("the job consumer is gone"));
        }
        if let Err(e) = ran {
            tracing::warn!(error = %e, "running jobs failed; they will be redelivered");
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Whether the server no longer has the consumer (or its stream); not for a connection lost.
async fn consumer_gone(consumer: &consumer::Consumer<pull::Config>) -> bool {
    match consumer.get_info().await {
        Ok(_) => false,
        Err(e) => match e.kind() {
            ConsumerInfoErrorKind::StreamNotFound | ConsumerInfoErrorKind::NotFound => true,
            ConsumerInfoErrorKind::JetStream(js) => matches!(
                js.error_code(),
                ErrorCode::CONSUMER_NOT_FOUND | ErrorCode::STREAM_NOT_FOUND
            ),
            _ => false,
        },
    }
}

/// The outbox position a job too large for NATS names, if this is one.
fn stored_at(message: &jetstream::Message) -> Option<i64> {
    message
        .headers
        .as_ref()?
        .get(OUTBOX_POSITION)?
        .as_str()
        .parse()
        .ok()
}

/// The event `stub` stands for, read from the outbox at `position`; `Ok(Err(why))` when it
/// cannot be (no outbox given, or the event pruned meanwhile), `Err` when the database fails
/// (the job is then run again later).
async fn whole_event(
    queue: &NatsJobQueue,
    stub: OutboxEvent,
    position: i64,
) -> Result<Result<OutboxEvent, String>, QueueError> {
    let Some(outbox) = &queue.outbox else {
        return Ok(Err(
            "a job too large for NATS, and no outbox to read it from".into(),
        ));
    };
    let found = outbox
        .outbox_after(position - 1, 1)
        .await
        .map_err(unavailable)?;
    Ok(found
        .into_iter()
        .find(|event| event.id == stub.id)
        .ok_or_else(|| format!("event {} is no longer in the outbox", stub.id)))
}

/// Handles fetched jobs together and acknowledges them; on failure they are handed back for
/// redelivery after a pause. While they run they are said to be in progress every third of
/// `ack_wait` (the consumer's, on the server): a batch that takes longer (mentions of everyone in large rooms) would otherwise
/// be handed to another replica while this one still runs it.
#[tracing::instrument(skip_all, fields(jobs = messages.len()))]
async fn run_batch(
    jobs: &dyn JobHandler,
    messages: Vec<jetstream::Message>,
    queue: &NatsJobQueue,
    ack_wait: Duration,
) -> Result<(), QueueError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut events = Vec::with_capacity(messages.len());
    let mut kept = Vec::with_capacity(messages.len());
    let mut pending = messages.into_iter();
    while let Some(message) = pending.next() {
        let decoded = match serde_json::from_slice::<OutboxEvent>(&message.payload) {
            Ok(event) => match stored_at(&message) {
                Some(position) => match whole_event(queue, event, position).await {
                    Ok(found) => found,
                    Err(e) => {
                        // The database failed: the whole batch comes again shortly, as when its
                        // jobs fail, rather than after the acknowledgement deadline.
                        let batch = kept
                            .iter()
                            .chain(std::iter::once(&message))
                            .chain(pending.as_slice());
                        for message in batch {
                            let _ = message
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await;
                        }
                        return Err(e);
                    }
                },
                None => Ok(event),
            },
            Err(e) => Err(e.to_string()),
        };
        match decoded {
            Ok(event) => {
                events.push(event);
                kept.push(message);
            }
            Err(e) => {
                // Redelivering it would not help; drop it and say so.
                tracing::error!(error = %e, subject = %message.subject, "dropping a job that cannot be read");
                message.ack_with(AckKind::Term).await.map_err(unavailable)?;
            }
        }
    }
    match run_in_progress(jobs, &events, &kept, ack_wait).await {
        Ok(()) => {
            for message in kept {
                message.ack().await.map_err(unavailable)?;
            }
            Ok(())
        }
        Err(e) if kept.len() > 1 => {
            // One of them may always fail (a defect, data the handler cannot take): each is run
            // alone, so the others are done rather than failing with it at every redelivery.
            tracing::warn!(error = %e, jobs = kept.len(), "a batch of jobs failed; running them one by one");
            let mut failed = None;
            for (at, event) in events.iter().enumerate() {
                // Those still to run are in progress too: their deadline must not pass while
                // the ones before them run.
                let waiting = &kept[at..];
                match run_in_progress(jobs, std::slice::from_ref(event), waiting, ack_wait).await {
                    Ok(()) => {
                        if let Err(e) = kept[at].ack().await {
                            // Lost, the job comes again once its deadline passes; it is done.
                            tracing::warn!(error = %e, event_id = %event.id, "acknowledging a job failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, event_id = %event.id, event_type = %event.event_type, "a job failed; it comes again later");
                        hand_back(&kept[at]).await;
                        failed = Some(e);
                    }
                }
            }
            failed.map_or(Ok(()), |e| Err(unavailable(e)))
        }
        Err(e) => {
            for message in &kept {
                hand_back(message).await;
            }
            Err(unavailable(e))
        }
    }
}

/// Runs the jobs of `events`, telling the server every third of `ack_wait` that their
/// `messages` are in progress.
async fn run_in_progress(
    jobs: &dyn JobHandler,
    events: &[OutboxEvent],
    messages: &[jetstream::Message],
    ack_wait: Duration,
) -> Result<(), StoreError> {
    let handled = jobs.handle(events);
    tokio::pin!(handled);
    let every = ack_wait / 3;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            outcome = &mut handled => return outcome,
            _ = progress.tick() => {
                for message in messages {
                    // Lost, it costs at worst the redelivery this is meant to avoid.
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}

/// Hands a failed job back for redelivery: after 1 s, doubling with each delivery up to
/// 5 minutes, so a job that keeps failing costs little while one that met an outage is soon
/// run again.
async fn hand_back(message: &jetstream::Message) {
    let deliveries = message.info().map_or(1, |info| info.delivered).max(1);
    let exponent = u32::try_from(deliveries - 1).unwrap_or(u32::MAX).min(9);
    let delay = Duration::from_secs(1 << exponent).min(Duration::from_secs(300));
    // Lost, the job still comes back once its acknowledgement deadline passes.
    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
}
