//! The bus: how a change committed by one process reaches the WebSocket connections held by
//! every process. NATS JetStream in the scale-out shape, in-process channels on a single node,
//! one trait in front of both so the gateway is written once.
//!
//! The bus carries no state of record. A committed message is in the database before it is
//! published, so a subscriber that misses something (it lagged, NATS restarted) resynchronises
//! from the database; [`Delivery::Missed`] tells it when it must.

mod local;
mod nats;
mod replicas;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::events::{DomainEvent, ReactionChanged, ThreadUpdated};
use crate::model::Message;

pub use local::LocalBus;
pub(crate) use nats::stream_replaced;
pub use nats::{
    connect_options, foreign_stream, round_trip, server_list, NatsBus, NATS_PING_INTERVAL,
};
pub use replicas::StreamReplicas;

/// What travels on the bus: what gateways push to sockets, in the WebSocket frame shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BusEvent {
    /// A new message, with its position in the room: consecutive seqs mean nothing was missed.
    #[serde(rename = "message")]
    Message {
        /// The message object.
        #[serde(flatten)]
        message: Message,
        /// Its seq in the room.
        seq: i64,
    },
    /// An edited message.
    #[serde(rename = "message.updated")]
    MessageUpdated(Message),
    /// A deleted message.
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        /// Message id.
        id: i64,
        /// Room id.
        room: i64,
    },
    /// A thread's counters changed: its root's `reply_count`, `last_reply_at` and `repliers`.
    #[serde(rename = "thread.updated")]
    ThreadUpdated(ThreadUpdated),
    /// Someone reacted to a message.
    #[serde(rename = "reaction.added")]
    ReactionAdded(ReactionChanged),
    /// Someone took their reaction back.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved(ReactionChanged),
    /// A message mentions these users: their multiplexed sockets get a `mention` frame.
    #[serde(rename = "mention")]
    Mention {
        /// Room id.
        room: i64,
        /// The message.
        message: Message,
        /// Who is mentioned, sorted.
        user_ids: Vec<i64>,
    },
    /// A member's read pointer moved.
    #[serde(rename = "read")]
    Read {
        /// Room id.
        room: i64,
        /// Whose pointer.
        user_id: i64,
        /// Where it stands now.
        last_read_msg_id: i64,
        /// Only the reader's own connections hear of it (their other devices): in a room too
        /// large for receipts, telling every member of every member's reading would cost the
        /// square of its size. Absent (false) from older publishers, whose receipts go to all.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reader_only: bool,
    },
    /// A user no longer sits in a room (left, removed from the org, demoted out of a
    /// MANAGER_ONLY room): their open connections stop following it. Not sent to clients.
    #[serde(rename = "member.left")]
    MemberLeft {
        /// Room id.
        room: i64,
        /// Who lost the seat.
        user_id: i64,
        /// The room's number of seats, read after the loss: gateways tell the leaver's
        /// departure only through a room of up to the line (one that may have carried
        /// presence), and tell the room's followers who is online anew when it may have
        /// crossed the line. Absent from older publishers (the departure is told, no crossing
        /// is seen).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_members: Option<i64>,
    },
    /// A user was given a seat: their multiplexed connections start following the room. Not
    /// sent to clients.
    #[serde(rename = "member.seated")]
    MemberSeated {
        /// Room id.
        room: i64,
        /// Who got the seat.
        user_id: i64,
        /// The room's newest message id when the seat was taken (0 if none): the connection
        /// delivers everything after it.
        after: i64,
        /// That message's seq (0 if none), from which the connection tells a gap; absent from
        /// older publishers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_seq: Option<i64>,
        /// Whether the room carries presence ([`crate::model::SMALL_ROOM_MEMBERS`]): its other
        /// followers then learn that the newcomer is online. Absent (false) from older
        /// publishers, which do not say: told of someone in a large room, its followers would
        /// never hear them leave (their going is told through small rooms only), while one
        /// not told in a small room hears of them at their next change.
        #[serde(default)]
        shares_presence: bool,
        /// The room's number of seats, read after the seat was taken: a room that grew out of
        /// carrying presence has its followers told everything again (what they were told
        /// through it no longer changes). Absent from older publishers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_members: Option<i64>,
    },
    /// A room was deleted: every connection stops following it. Not sent to clients.
    #[serde(rename = "room.deleted")]
    RoomDeleted {
        /// Room id.
        room: i64,
    },
    /// Someone started or stopped typing (ephemeral: never stored).
    #[serde(rename = "typing")]
    Typing {
        /// Room id.
        room: i64,
        /// Who.
        user_id: i64,
        /// Their email, for display.
        user_email: String,
        /// Started (true) or stopped.
        is_typing: bool,
    },
}

impl BusEvent {
    /// The event for a newly stored message.
    pub fn new_message(message: Message) -> Self {
        let seq = message.seq;
        BusEvent::Message { message, seq }
    }

    /// The live event of a domain event, for the changes clients see as they happen (new,
    /// edited and deleted messages, thread counters, reactions); `None` for the others, which only the outbox carries.
    pub fn of(event: &DomainEvent) -> Option<Self> {
        match event {
            DomainEvent::MessageCreated(m) => Some(BusEvent::new_message(m.clone())),
            DomainEvent::MessageUpdated(m) => Some(BusEvent::MessageUpdated(m.clone())),
            DomainEvent::MessageDeleted(m) => Some(BusEvent::MessageDeleted {
                id: m.id,
                room: m.room,
            }),
            DomainEvent::ThreadUpdated(e) => Some(BusEvent::ThreadUpdated(e.clone())),
            DomainEvent::ReactionAdded(e) => Some(BusEvent::ReactionAdded(e.clone())),
            DomainEvent::ReactionRemoved(e) => Some(BusEvent::ReactionRemoved(e.clone())),
            // The poster's process announces one `mention` for all the people a message
            // mentions; the per-person events are for webhooks and emails, and announcing
            // them again at start-up would repeat the frame.
            DomainEvent::MessageMentioned(_) => None,
            // One per room whose seat went: the announcer publishes those (`seats_lost`).
            DomainEvent::MemberLeft(_) => None,
            DomainEvent::RoomCreated(_)
            | DomainEvent::MemberInvited(_)
            | DomainEvent::MemberJoined(_)
            | DomainEvent::MemberRoleChanged(_)
            | DomainEvent::WebhookTest(_) => None,
        }
    }

    /// Decodes an event from its JSON form, restoring the message's own `seq` (which the
    /// message object does not carry on the wire).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut event: BusEvent = serde_json::from_slice(bytes)?;
        if let BusEvent::Message { message, seq } = &mut event {
            message.seq = *seq;
        }
        Ok(event)
    }

    /// The room the event belongs to.
    pub fn room(&self) -> i64 {
        match self {
            BusEvent::Message { message: m, .. } | BusEvent::MessageUpdated(m) => m.room,
            BusEvent::ThreadUpdated(e) => e.room,
            BusEvent::ReactionAdded(e) | BusEvent::ReactionRemoved(e) => e.room,
            BusEvent::Mention { room, .. } => *room,
            BusEvent::MessageDeleted { room, .. }
            | BusEvent::Read { room, .. }
            | BusEvent::Typing { room, .. }
            | BusEvent::MemberLeft { room, .. }
            | BusEvent::MemberSeated { room, .. }
            | BusEvent::RoomDeleted { room } => *room,
        }
    }

    /// A key that names this change exactly once, so a publish repeated after a failure is
    /// delivered once; `None` for events that are not worth de-duplicating.
    pub fn dedup_key(&self) -> Option<String> {
        match self {
            // With the creation time: a database recreated or restored hands ids out again.
            BusEvent::Message { message: m, .. } => Some(format!(
                "msg-{}-created-{}",
                m.id,
                m.created_at.timestamp_micros()
            )),
            BusEvent::MessageUpdated(m) => Some(format!(
                "msg-{}-edited-{}",
                m.id,
                m.edited_at
                    .map(|t| t.timestamp_micros())
                    .unwrap_or_default()
            )),
            BusEvent::MessageDeleted { id, .. } => Some(format!("msg-{id}-deleted")),
            // With the newest reply's time: retention lowers a thread's count, and the next
            // reply brings it back to a count it had before.
            BusEvent::ThreadUpdated(e) => Some(format!(
                "thread-{}-{}-{}",
                e.root_id,
                e.reply_count,
                e.last_reply_at
                    .map(|t| t.timestamp_micros())
                    .unwrap_or_default()
            )),
            BusEvent::Mention {
                message, user_ids, ..
            } => Some(format!(
                "mention-{}-{}-{}",
                message.id,
                message
                    .edited_at
                    .map(|t| t.timestamp_micros())
                    .unwrap_or_default(),
                user_ids.len()
            )),
            // With the time: the same reaction may be added, removed and added again. The emoji
            // as code points, since the key travels as a (plain ASCII) header.
            BusEvent::ReactionAdded(e) | BusEvent::ReactionRemoved(e) => Some(format!(
                "reaction-{}-{}-{}-{}-{}",
                e.message_id,
                e.user_id,
                e.emoji
                    .chars()
                    .map(|c| format!("{:x}", u32::from(c)))
                    .collect::<Vec<_>>()
                    .join("."),
                if matches!(self, BusEvent::ReactionAdded(_)) {
                    "added"
                } else {
                    "removed"
                },
                e.at.timestamp_micros()
            )),
            BusEvent::Read {
                room,
                user_id,
                last_read_msg_id,
                ..
            } => Some(format!("read-{room}-{user_id}-{last_read_msg_id}")),
            // A seat can be lost, regained and lost again within the de-duplication window;
            // repeating one of these is harmless.
            BusEvent::Typing { .. }
            | BusEvent::MemberLeft { .. }
            | BusEvent::MemberSeated { .. }
            | BusEvent::RoomDeleted { .. } => None,
        }
    }

    /// Ephemeral events are best effort and never kept by the bus.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, BusEvent::Typing { .. })
    }
}

/// What a subscription yields.
// Deliveries pass one at a time through a stream; boxing the event would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The next event.
    Event(BusEvent),
    /// Events were lost on the way to this subscriber (it fell behind, or the bus restarted
    /// without its history): resynchronise from the database.
    Missed,
}

/// A subscription to every room's events, in publish order per room.
pub type BusStream = Pin<Box<dyn Stream<Item = Delivery> + Send>>;

/// What a bus call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus could not be reached or refused the operation.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// An event could not be encoded.
    #[error("bus event encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The bus holds another deployment's stream under the name this one's prefix gives.
    #[error("{0}")]
    Conflict(String),
}

/// Publish and subscribe, whatever carries the events.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes an event after the change it describes has been committed.
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError>;
    /// Every event published from now on, of every room.
    async fn subscribe(&self) -> Result<BusStream, BusError>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), BusError>;
    /// Which bus this is, for logs and health output.
    fn kind(&self) -> &'static str;
}
