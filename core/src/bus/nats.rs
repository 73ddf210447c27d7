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
//!
//! A stream deleted under running processes is made again by the next publish, and each
//! subscription, which looks for its stream every few seconds, ends once it is gone or
//! replaced: its subscriber subscribes again and catches up from the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, PublishError, PublishErrorKind};
use async_nats::jetstream::{self, consumer, stream, ErrorCode};
use async_trait::async_trait;
use futures::StreamExt;

use super::{Bus, BusError, BusEvent, BusStream, Delivery, StreamReplicas};
use crate::config::NatsSettings;

/// How long the stream keeps events: long enough to ride out a restart; the database has the rest.
const RETENTION: Duration = Duration::from_secs(3600);
/// How long a publish waits for JetStream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// After a publish ran out of [`PUBLISH_TIMEOUT`], how long publishes fail at once rather than
/// wait it again: a request announcing many changes would otherwise wait it for each. Shorter
/// than the api-server's second re-announcement after a reconnection (3 s), which is there for
/// a JetStream still recovering from a restart.
const STALL_PAUSE: Duration = Duration::from_secs(2);
/// How long JetStream remembers de-duplication keys.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// After a reconnection, when subscribers check the database a second time: other processes
/// reconnect within about this long of us, and what they committed until then was not
/// announced either.
const SECOND_LOOK: Duration = Duration::from_secs(2);

/// How often a subscription checks that its stream is still the one it reads, and that what
/// the stream holds reaches it.
const STREAM_LOOK: Duration = Duration::from_secs(5);

/// A connection to NATS with the room stream in place.
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    stream_name: String,
    /// The copies of the stream a cluster keeps.
    replicas: StreamReplicas,
    /// Counts the times the connection to NATS came back.
    reconnections: tokio::sync::watch::Receiver<u64>,
    /// Until when publishes fail at once: set when one got no acknowledgement in time (on the
    /// connection still in use), cleared when the connection comes back (what is announced
    /// again then must not be refused).
    stalled_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// How often a NATS client of ours pings the server when nothing else goes by.
pub const NATS_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The options every NATS client of ours connects to `url` with: the user and password
/// (`nats://user:password@host:4222`) or the token (`nats://token@host:4222`) the URL carries,
/// percent-decoded (the client library reads only the URL's host, and a server requiring them
/// refused the connection), and pings every [`NATS_PING_INTERVAL`].
pub fn connect_options(url: &str) -> async_nats::ConnectOptions {
    // A link that stops answering without closing (a partition) is found within about three
    // intervals rather than the client's default of a few minutes: presence keeps everyone
    // only while it knows NATS is out of reach, and its entries live 60 s.
    let options = async_nats::ConnectOptions::new().ping_interval(NATS_PING_INTERVAL);
    // Several servers are written `nats://a:4222,nats://b:4222`; the first one's are used.
    let first = url.split(',').next().unwrap_or_default().trim();
    let Ok(parsed) = url::Url::parse(first) else {
        return options;
    };
    let decoded = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    match (parsed.username(), parsed.password()) {
        ("", _) => options,
        (user, Some(password)) => options.user_and_password(decoded(user), decoded(password)),
        (token, None) => options.token(decoded(token)),
    }
}

/// The servers `url` names: one URL, or several separated by commas
/// (`nats://a:4222,nats://b:4222`), for the client to try in turn at start and move between
/// later (it also learns a cluster's other servers from the one it reaches).
pub fn server_list(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect()
}

impl NatsBus {
    /// Connects to `url` and creates the stream if needed. `prefix` namespaces the subjects and
    /// the stream (`chat` in production; tests use their own).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        Self::connect_replicated(url, prefix, StreamReplicas::default()).await
    }

    /// As [`NatsBus::connect`], with the services' NATS settings (prefix and replicas).
    pub async fn connect_with(url: &str, settings: &NatsSettings) -> Result<Self, BusError> {
        Self::connect_replicated(url, &settings.nats_prefix, settings.stream_replicas()).await
    }

    /// As [`NatsBus::connect`], the stream kept in `replicas` copies.
    pub async fn connect_replicated(
        url: &str,
        prefix: &str,
        replicas: StreamReplicas,
    ) -> Result<Self, BusError> {
        let (reconnected, reconnections) = tokio::sync::watch::channel(0u64);
        let reconnected = std::sync::Arc::new(reconnected);
        let first_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stalled_until = Arc::new(std::sync::Mutex::new(None));
        let stall_to_clear = Arc::clone(&stalled_until);
        let client = connect_options(url)
            .name("chatboard")
            .event_callback(move |event| {
                let reconnected = reconnected.clone();
                let first_seen = first_seen.clone();
                let stall_to_clear = stall_to_clear.clone();
                async move {
                    // The first connection is not a reconnection: nothing was missed yet.
                    if matches!(event, async_nats::Event::Connected)
                        && first_seen.swap(true, std::sync::atomic::Ordering::SeqCst)
                    {
                        *lock_stall(&stall_to_clear) = None;
                        reconnected.send_modify(|n| *n += 1);
                    }
                }
            })
            .connect(server_list(url).as_slice())
            .await
            .map_err(unavailable)?;
        let jetstream = jetstream::new(client.clone());
        let stream_name = format!("{}_ROOMS", prefix.to_uppercase().replace(['.', '-'], "_"));
        let bus = Self {
            client,
            jetstream,
            prefix: prefix.to_owned(),
            stream_name,
            replicas,
            reconnections,
            stalled_until,
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    /// The room stream, made if it is missing: at start-up, and whenever it went away under a
    /// running process (deleted by hand, or a NATS that came back without its storage).
    async fn ensure_stream(&self) -> Result<stream::Stream, BusError> {
        let subjects = vec![format!("{}.room.>", self.prefix)];
        let stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.stream_name.clone(),
                subjects: subjects.clone(),
                max_age: RETENTION,
                duplicate_window: DEDUP_WINDOW,
                storage: stream::StorageType::File,
                num_replicas: self.replicas.for_new(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(self.replicas.creation_failed(&self.stream_name, e)))?;
        if let Some(conflict) = foreign_stream(&stream, &subjects) {
            return Err(BusError::Conflict(conflict));
        }
        self.replicas
            .settle(&self.jetstream, stream)
            .await
            .map_err(BusError::Unavailable)
    }

    /// Publishes one stored event and waits for the stream's acknowledgement.
    async fn publish_stored(
        &self,
        subject: &str,
        event: &BusEvent,
        payload: bytes::Bytes,
    ) -> Result<(), PublishError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(key) = event.dedup_key() {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, key.as_str());
        }
        self.jetstream
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await?
            .await?;
        Ok(())
    }

    /// Whether a recent publish ran out of its budget, so this one should not wait it again.
    fn stalled(&self) -> bool {
        let until = *self.stall_mark();
        until.is_some_and(|until| tokio::time::Instant::now() < until)
    }

    fn stall_mark(&self) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
        lock_stall(&self.stalled_until)
    }

    /// Publishes `event` (its JSON in `payload`): a typing notice as it is, a stored event
    /// with JetStream's acknowledgement. Unbounded: the caller bounds it.
    async fn publish_now(&self, event: &BusEvent, payload: Vec<u8>) -> Result<(), BusError> {
        if event.is_ephemeral() {
            let subject = format!("{}.typing.{}", self.prefix, event.room());
            return self
                .client
                .publish(subject, payload.into())
                .await
                .map_err(unavailable);
        }
        let subject = format!("{}.room.{}", self.prefix, event.room());
        let payload = bytes::Bytes::from(payload);
        // Waiting for the stream's acknowledgement: once this returns, every subscriber will get
        // the event, even across a NATS restart. No stream to take it: it is made again, and
        // the event published once more.
        match self.publish_stored(&subject, event, payload.clone()).await {
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                tracing::warn!(stream = %self.stream_name, "the room stream is gone; making it again");
                self.ensure_stream().await?;
                self.publish_stored(&subject, event, payload)
                    .await
                    .map_err(unavailable)
            }
            other => other.map_err(unavailable),
        }
    }

    /// The underlying connection (presence shares it).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// Changes each time the connection to NATS comes back (not at the first connection).
    pub fn reconnections(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reconnections.clone()
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
        // While NATS is away, fail at once rather than hold the request that made the change:
        // the change is stored, and subscribers catch up from the database. A typing notice is
        // dropped: the client's queue of commands is not drained meanwhile, and once it is full
        // a publish waited for the whole outage, holding the socket that sent the notice.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        if self.stalled() {
            return Err(BusError::Unavailable(
                "NATS acknowledged nothing in time a moment ago".into(),
            ));
        }
        // Connected a moment ago is no promise: bounded all the same, a typing notice too.
        let connection = *self.reconnections.borrow();
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.publish_now(event, payload)).await {
            Ok(published) => published,
            Err(_) => {
                // Not when the connection came back meanwhile: this publish went out on the
                // one that was lost, and the new one is not known to stall.
                if *self.reconnections.borrow() == connection {
                    *self.stall_mark() = Some(tokio::time::Instant::now() + STALL_PAUSE);
                }
                Err(BusError::Unavailable(
                    "no acknowledgement from NATS in time".into(),
                ))
            }
        }
    }

    async fn subscribe(&self) -> Result<BusStream, BusError> {
        let stream = self.ensure_stream().await?;
        let read = Arc::new(StreamRead {
            jetstream: self.jetstream.clone(),
            name: self.stream_name.clone(),
            created: stream.cached_info().created,
            before: stream.cached_info().state.last_sequence,
            seen: AtomicU64::new(stream.cached_info().state.last_sequence),
            looked: Mutex::new(Looks {
                at: tokio::time::Instant::now(),
                newest: [stream.cached_info().state.last_sequence; 2],
            }),
        });
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: format!("{}.room.>", self.prefix),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let looks = read.clone();
        let rooms = consumer
            .messages()
            .await
            .map_err(unavailable)?
            .then(move |item| read_room_event(item, read.clone()));
        // The consumer does not always notice its stream going (NATS 2.9 sends it nothing):
        // the subscription also looks for itself every few seconds.
        let first_look = tokio::time::Instant::now() + STREAM_LOOK;
        let mut looking = tokio::time::interval_at(first_look, STREAM_LOOK);
        // After a pause in the reading, one look at once and the next a full period later.
        looking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watchdog = tokio_stream::wrappers::IntervalStream::new(looking)
            .then(move |_| look_for_stream(looks.clone()));
        // The consumer's own end ends the subscription too.
        let rooms = rooms.chain(futures::stream::once(futures::future::ready(None)));
        let typing = self
            .client
            .subscribe(format!("{}.typing.>", self.prefix))
            .await
            .map_err(unavailable)?
            .filter_map(|message| async move { decode(&message.payload) })
            .map(|delivery| Some(Some(delivery)));
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
                .flatten()
                .map(|delivery| Some(Some(delivery)));
        // Steps: `Some(Some(delivery))`, `Some(None)` (nothing to deliver), `None` (the end: the
        // room events stopped, so the whole subscription does and the subscriber makes another).
        Ok(Box::pin(
            futures::stream::select(
                futures::stream::select(rooms, watchdog),
                futures::stream::select(typing, reconnected),
            )
            .take_while(|step| futures::future::ready(step.is_some()))
            .filter_map(|step| futures::future::ready(step.flatten())),
        ))
    }

    async fn ping(&self) -> Result<(), BusError> {
        round_trip(&self.client).await
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

/// The stall mark, whatever a panic left in it (an instant or none is valid either way).
fn lock_stall(
    mark: &std::sync::Mutex<Option<tokio::time::Instant>>,
) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
    mark.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether NATS and its JetStream answer: a request for JetStream's account information and
/// its reply, within 2 s. A flush would pass while a frozen or partitioned server leaves the
/// connection open, since it only writes into the socket's buffer.
pub async fn round_trip(client: &async_nats::Client) -> Result<(), BusError> {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request("$JS.API.INFO", bytes::Bytes::new()),
    )
    .await
    .map_err(|_| BusError::Unavailable("NATS did not answer within 2 s".into()))?
    .map_err(unavailable)?;
    // JetStream's API answers an error as a body with an `error` member.
    match serde_json::from_slice::<serde_json::Value>(&reply.payload) {
        Ok(body) if body.get("error").is_none() => Ok(()),
        Ok(body) => Err(unavailable(format!("JetStream: {}", body["error"]))),
        Err(e) => Err(unavailable(format!("JetStream's answer: {e}"))),
    }
}

/// Why `stream`, found under the name our prefix gives, is another deployment's (it carries
/// other subjects than `ours`), or `None` when it is ours. Prefixes that differ only in case,
/// or in `-` against `_`, name the same streams: reading another's would have us deliver its
/// events (and its workers take our jobs).
pub fn foreign_stream(stream: &stream::Stream, ours: &[String]) -> Option<String> {
    let info = stream.cached_info();
    let theirs = &info.config.subjects;
    (theirs.as_slice() != ours).then(|| {
        format!(
            "NATS stream {} carries {theirs:?}, not {ours:?}: another deployment's prefix names \
             the same streams; choose a CHATBOARD_NATS_PREFIX that differs from it by more than \
             letter case or '-' against '_'",
            info.config.name
        )
    })
}

/// The stream a subscription reads, as it was when the subscription began.
struct StreamRead {
    jetstream: jetstream::Context,
    name: String,
    created: async_nats::datetime::DateTime,
    /// The stream's last event when the subscription began: none up to it is news. The ordered
    /// consumer, made again after a reconnection before it saw an event, starts from the
    /// stream's first (it resumes after the last it saw, and had seen none), which would replay
    /// the stream's whole hour: `mention` frames, edits, reactions, told again.
    before: u64,
    /// The stream's newest event the subscription has had (delivered or skipped).
    seen: AtomicU64,
    /// The watchdog's last two looks.
    looked: Mutex<Looks>,
}

/// When the watchdog last looked at the stream, and its newest event then and the time before.
struct Looks {
    at: tokio::time::Instant,
    /// The older first.
    newest: [u64; 2],
}

impl StreamRead {
    /// Whether the stream is gone, or is another one of the same name.
    async fn replaced(&self) -> bool {
        let replaced = stream_replaced(&self.jetstream, &self.name, self.created).await;
        if replaced {
            tracing::warn!(stream = %self.name, "the room stream was replaced; subscription ended");
        }
        replaced
    }
}

/// Whether the JetStream stream `name` is gone, or is another one than the one made at
/// `created` (deleted and made again); not when the server cannot be asked.
pub(crate) async fn stream_replaced(
    jetstream: &jetstream::Context,
    name: &str,
    created: async_nats::datetime::DateTime,
) -> bool {
    matches!(
        stream_now(jetstream, name, created).await,
        StreamNow::Replaced
    )
}

/// What a look at a stream found.
enum StreamNow {
    /// Gone, or another one than the one made at `created`.
    Replaced,
    /// The same stream, whose newest event is `newest`.
    Same { newest: u64 },
    /// The server could not be asked.
    Unknown,
}

/// The JetStream stream `name` now, against the one made at `created`.
async fn stream_now(
    jetstream: &jetstream::Context,
    name: &str,
    created: async_nats::datetime::DateTime,
) -> StreamNow {
    match jetstream.get_stream(name).await {
        Ok(stream) if stream.cached_info().created != created => StreamNow::Replaced,
        Ok(stream) => StreamNow::Same {
            newest: stream.cached_info().state.last_sequence,
        },
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                StreamNow::Replaced
            }
            _ => StreamNow::Unknown,
        },
    }
}

/// What the subscription makes of the room consumer's next item: `Some` delivery (if any), or
/// `None` to end the subscription.
async fn read_room_event(
    item: Result<jetstream::Message, consumer::push::OrderedError>,
    read: Arc<StreamRead>,
) -> Option<Option<Delivery>> {
    match item {
        Ok(message) => match message.info() {
            Ok(info) => {
                read.seen.fetch_max(info.stream_sequence, Ordering::Relaxed);
                if info.stream_sequence <= read.before {
                    Some(None)
                } else {
                    Some(decode(&message.message.payload))
                }
            }
            Err(_) => Some(decode(&message.message.payload)),
        },
        Err(e) => {
            tracing::warn!(error = %e, "bus subscription interrupted");
            // A stream deleted (and perhaps made again) numbers its events anew, and the
            // consumer, resuming after the last number it saw, would skip what the new one
            // holds: the subscription ends, and the subscriber subscribes again.
            if read.replaced().await {
                return None;
            }
            // The ordered consumer recreates itself, but whether anything fell through the gap
            // is unknown: have the subscriber check the database.
            Some(Some(Delivery::Missed))
        }
    }
}

/// The watchdog's step: `None` ends the subscription, when its stream was replaced or its
/// consumer is stuck. The ordered consumer makes itself again when its server goes (a stream's
/// leader lost in a cluster), but notices only after two missed heartbeats and then retries
/// every 10 s: 25 s to a minute without live events. An event the stream held two looks ago
/// (5 to 10 s) that has not come yet says as much sooner; the subscriber subscribes again and
/// catches up from the database.
async fn look_for_stream(read: Arc<StreamRead>) -> Option<Option<Delivery>> {
    let newest = match stream_now(&read.jetstream, &read.name, read.created).await {
        StreamNow::Replaced => {
            tracing::warn!(stream = %read.name, "the room stream was replaced; subscription ended");
            return None;
        }
        StreamNow::Same { newest } => newest,
        StreamNow::Unknown => return Some(None), // the next look will tell
    };
    let seen = read.seen.load(Ordering::Relaxed);
    let mut looked = read
        .looked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = tokio::time::Instant::now();
    // A look that comes late says the subscriber was not reading (the watchdog is polled with
    // the events): what waits unread in the subscription is no sign of a stuck consumer.
    let on_time = now.duration_since(looked.at) < STREAM_LOOK * 3 / 2;
    let stuck = on_time && seen < looked.newest[0];
    *looked = Looks {
        at: now,
        newest: [looked.newest[1], newest],
    };
    if stuck {
        tracing::warn!(
            stream = %read.name,
            seen,
            held = newest,
            "the room stream's events stopped reaching this subscription; subscription ended"
        );
        return None;
    }
    Some(None)
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
