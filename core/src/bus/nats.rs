//! The bus of the scale-out shape: NATS JetStream.
//!
//! Room events are published to `<prefix>.room.<room id>` and kept for an hour in one stream, with
//! JetStream's de-duplication keyed on [`BusEvent::dedup_key`]: a publish retried after a lost
//! acknowledgement is delivered once. Each subscriber reads the stream through an ordered
//! consumer, which survives a NATS restart by resuming after the last event it saw. Typing
//! notices are plain NATS messages on `<prefix>.typing.<room id>`: best effort, never stored.
//!
//! Whatever was committed while NATS was away was never announced, and the consumer resumes
//! without an error, so every subscription also yields [`Delivery::Missed`] each time the
//! connection comes back (and once more a moment later, for the changes other processes
//! committed before their own connections came back): subscribers then catch up from the
//! database without waiting for new traffic.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;

use super::{Bus, BusError, BusEvent, BusStream, Delivery};

/// How long the stream keeps events: long enough to ride out a restart; the database has the rest.
const RETENTION: Duration = Duration::from_secs(3600);
/// How long a publish waits for JetStream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long JetStream remembers de-duplication keys.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// After a reconnection, when subscribers check the database a second time: other processes
/// reconnect within about this long of us, and what they committed until then was not
/// announced either.
const SECOND_LOOK: Duration = Duration::from_secs(2);

/// A connection to NATS with the room stream in place.
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    stream_name: String,
    /// Counts the times the connection to NATS came back.
    reconnections: tokio::sync::watch::Receiver<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl NatsBus {
    /// Connects to `url` and creates the stream if needed. `prefix` namespaces the subjects and
    /// the stream (`chat` in production; tests use their own).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let (reconnected, reconnections) = tokio::sync::watch::channel(0u64);
        let reconnected = std::sync::Arc::new(reconnected);
        let first_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = async_nats::ConnectOptions::new()
            .name("chatboard")
            .event_callback(move |event| {
                let reconnected = reconnected.clone();
                let first_seen = first_seen.clone();
                async move {
                    // The first connection is not a reconnection: nothing was missed yet.
                    if matches!(event, async_nats::Event::Connected)
                        && first_seen.swap(true, std::sync::atomic::Ordering::SeqCst)
                    {
                        reconnected.send_modify(|n| *n += 1);
                    }
                }
            })
            .connect(url)
            .await
            .map_err(unavailable)?;
        let jetstream = jetstream::new(client.clone());
        let stream_name = format!("{}_ROOMS", prefix.to_uppercase().replace(['.', '-'], "_"));
        jetstream
            .get_or_create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{prefix}.room.>")],
                max_age: RETENTION,
                duplicate_window: DEDUP_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            jetstream,
            prefix: prefix.to_owned(),
            stream_name,
            reconnections,
        })
    }

    /// The underlying connection (presence shares it).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// Deletes the stream (tests clean up after themselves with it).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.jetstream
            .delete_stream(&self.stream_name)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        let payload = serde_json::to_vec(event)?;
        if event.is_ephemeral() {
            let subject = format!("{}.typing.{}", self.prefix, event.room());
            return self
                .client
                .publish(subject, payload.into())
                .await
                .map_err(unavailable);
        }
        // While NATS is away, fail at once rather than hold the request that made the change:
        // the change is stored, and subscribers catch up from the database.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        let subject = format!("{}.room.{}", self.prefix, event.room());
        let mut headers = async_nats::HeaderMap::new();
        if let Some(key) = event.dedup_key() {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, key.as_str());
        }
        // Waiting for the stream's acknowledgement: once this returns, every subscriber will get
        // the event, even across a NATS restart.
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
            .map_err(|_| {
                BusError::Unavailable("no acknowledgement from JetStream in time".into())
            })??;
        Ok(())
    }

    async fn subscribe(&self) -> Result<BusStream, BusError> {
        let stream = self
            .jetstream
            .get_stream(&self.stream_name)
            .await
            .map_err(unavailable)?;
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: format!("{}.room.>", self.prefix),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let rooms = consumer
            .messages()
            .await
            .map_err(unavailable)?
            .filter_map(|item| async move {
                match item {
                    Ok(message) => decode(&message.message.payload),
                    // The ordered consumer recreates itself after errors, but whether anything
                    // fell through the gap is unknown: have the subscriber check the database.
                    Err(e) => {
                        tracing::warn!(error = %e, "bus subscription interrupted");
                        Some(Delivery::Missed)
                    }
                }
            });
        let typing = self
            .client
            .subscribe(format!("{}.typing.>", self.prefix))
            .await
            .map_err(unavailable)?
            .filter_map(|message| async move { decode(&message.payload) });
        // Each reconnection from now on: look at the database now and again a moment later.
        let reconnected =
            tokio_stream::wrappers::WatchStream::from_changes(self.reconnections.clone())
                .map(|_| {
                    tracing::info!("reconnected to NATS; subscribers catch up from the database");
                    futures::stream::once(async { Delivery::Missed }).chain(futures::stream::once(
                        async {
                            tokio::time::sleep(SECOND_LOOK).await;
                            Delivery::Missed
                        },
                    ))
                })
                .flatten();
        Ok(Box::pin(futures::stream::select(
            futures::stream::select(rooms, typing),
            reconnected,
        )))
    }

    async fn ping(&self) -> Result<(), BusError> {
        tokio::time::timeout(Duration::from_secs(2), self.client.flush())
            .await
            .map_err(|_| BusError::Unavailable("timeout".into()))?
            .map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

/// An event from its JSON; anything else is logged and skipped (it cannot be ours).
fn decode(payload: &[u8]) -> Option<Delivery> {
    match BusEvent::from_json(payload) {
        Ok(event) => Some(Delivery::Event(event)),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable bus event skipped");
            None
        }
    }
}
