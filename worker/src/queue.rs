//! The job queue: where the relay puts outbox events for the job runners.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use chatboard_core::events::OutboxEvent;

/// How long JetStream remembers event ids: a relay that crashed after publishing and before
/// recording it re-publishes within this window without creating a second job.
const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// How long a publish waits for JetStream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// What a queue call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the job.
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    /// The event could not be encoded.
    #[error("job encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// Accepts jobs; enqueuing the same event twice yields one job.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues the job for `event`; once this returns, the job will not be lost.
    async fn enqueue(&self, event: &OutboxEvent) -> Result<(), QueueError>;
}

/// A JetStream work-queue stream `<PREFIX>_JOBS` on subjects `<prefix>.jobs.<event type>`,
/// de-duplicated on the event id.
pub struct NatsJobQueue {
    jetstream: jetstream::Context,
    prefix: String,
    stream_name: String,
}

impl NatsJobQueue {
    /// Creates the stream if needed.
    pub async fn start(client: async_nats::Client, prefix: &str) -> Result<Self, QueueError> {
        let jetstream = jetstream::new(client);
        let stream_name = format!("{}_JOBS", prefix.to_uppercase().replace(['.', '-'], "_"));
        jetstream
            .get_or_create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{prefix}.jobs.>")],
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: DEDUP_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(Self {
            jetstream,
            prefix: prefix.to_owned(),
            stream_name,
        })
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
    async fn enqueue(&self, event: &OutboxEvent) -> Result<(), QueueError> {
        let subject = format!("{}.jobs.{}", self.prefix, event.event_type);
        let payload = serde_json::to_vec(event)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
        let published = async {
            self.jetstream
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, published)
            .await
            .map_err(|_| unavailable("no acknowledgement from JetStream in time"))??;
        Ok(())
    }
}
