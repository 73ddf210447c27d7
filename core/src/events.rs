//! Domain events: what the outbox records next to each change, for webhooks, digests and the
//! worker's relay. Each event is a [`DomainEvent`], built in Rust from what was stored and
//! serialized once (its `data` object is both the outbox payload and the webhook's `data`).
//! An event's id is fixed when it is written, so every consumer can de-duplicate on it however
//! often it is delivered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Message, Role, Room};

/// The kinds of event (the webhook `type` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A message was posted.
    MessageCreated,
    /// A message was edited.
    MessageUpdated,
    /// A message was deleted.
    MessageDeleted,
    /// A thread's counters changed (a reply was posted).
    ThreadUpdated,
    /// Someone added a reaction to a message.
    ReactionAdded,
    /// Someone removed their reaction from a message.
    ReactionRemoved,
    /// A message mentions someone (one event per person mentioned).
    MessageMentioned,
    /// A room (or direct-message room) was created.
    RoomCreated,
    /// Someone was invited to an organization.
    MemberInvited,
    /// Someone joined an organization or a room.
    MemberJoined,
    /// Someone left an organization or a room, or lost their seats in it.
    MemberLeft,
    /// An organization member's role changed.
    MemberRoleChanged,
    /// A test delivery asked for through `POST /api/webhooks/{id}/test/`.
    WebhookTest,
}

impl EventType {
    /// Every type, in a stable order.
    pub const ALL: [EventType; 13] = [
        EventType::MessageCreated,
        EventType::MessageUpdated,
        EventType::MessageDeleted,
        EventType::ThreadUpdated,
        EventType::ReactionAdded,
        EventType::ReactionRemoved,
        EventType::MessageMentioned,
        EventType::RoomCreated,
        EventType::MemberInvited,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::MemberRoleChanged,
        EventType::WebhookTest,
    ];

    /// The wire name, e.g. `message.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageUpdated => "message.updated",
            EventType::MessageDeleted => "message.deleted",
            EventType::ThreadUpdated => "thread.updated",
            EventType::ReactionAdded => "reaction.added",
            EventType::ReactionRemoved => "reaction.removed",
            EventType::MessageMentioned => "message.mentioned",
            EventType::RoomCreated => "room.created",
            EventType::MemberInvited => "member.invited",
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
            EventType::MemberRoleChanged => "member.role_changed",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `thread.updated`: where a thread stands after a reply, as its root now shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreadUpdated {
    /// Room id.
    pub room: i64,
    /// The thread's root message.
    pub root_id: i64,
    /// Replies so far.
    pub reply_count: i64,
    /// When the newest reply was posted.
    pub last_reply_at: Option<DateTime<Utc>>,
    /// The latest distinct repliers, newest first (at most three).
    pub repliers: Vec<i64>,
}

impl ThreadUpdated {
    /// The counters a root message carries.
    pub fn of(root: &Message) -> Self {
        Self {
            room: root.room,
            root_id: root.id,
            reply_count: root.reply_count,
            last_reply_at: root.last_reply_at,
            repliers: root.repliers.clone(),
        }
    }
}

/// `reaction.added` / `reaction.removed`: one person's reaction to a message, and the count of
/// that emoji on the message after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReactionChanged {
    /// Room id.
    pub room: i64,
    /// The message reacted to.
    pub message_id: i64,
    /// The emoji (Unicode).
    pub emoji: String,
    /// Who added or removed it.
    pub user_id: i64,
    /// How many people have this emoji on the message now.
    pub count: i64,
    /// The message's `reactions_version` after this change: frames of one message may arrive
    /// in another order than their changes were made, and the higher version is the newer.
    #[serde(default)]
    pub version: i64,
    /// When it changed.
    pub at: DateTime<Utc>,
}

/// `message.mentioned`: a message that mentions `user_id` (by address, `@room` or `@here`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageMentioned {
    /// Who is mentioned.
    pub user_id: i64,
    /// The message as stored.
    pub message: Message,
}

/// `room.created`: the room and who was seated with its creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomCreated {
    /// The room as created.
    pub room: Room,
    /// Its first members, by id.
    pub member_ids: Vec<i64>,
}

/// `member.invited`: an invitation to an organization (never its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInvited {
    /// The organization.
    pub org_id: i64,
    /// The invitation.
    pub invite_id: i64,
    /// The invited address.
    pub email: String,
    /// The role it grants.
    pub role: Role,
    /// Who invited; `None` when the operator did (an Organization's admins).
    pub invited_by: Option<i64>,
}

/// `member.joined`: someone joined an organization (`room_id` null) or a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberJoined {
    /// The organization.
    pub org_id: i64,
    /// The room, for a room seat.
    pub room_id: Option<i64>,
    /// Who joined.
    pub user_id: i64,
    /// How: `join`, `room_invite`, `org_invite` or `operator`.
    pub via: String,
}

/// `member.left`: someone left an organization (`room_id` null) or a room, or was taken out of
/// it; `rooms` lists every seat that went with it, so that the sockets following those rooms for
/// them stop, even when the change's first announcement was lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLeft {
    /// The organization.
    pub org_id: i64,
    /// The room, for a room seat; null when they left the organization.
    pub room_id: Option<i64>,
    /// Who left.
    pub user_id: i64,
    /// The rooms whose seats went, in increasing order.
    pub rooms: Vec<i64>,
    /// How: `left` (by themself), `removed` (by an ADMIN) or `role_changed` (a MANAGER_ONLY
    /// room, with the role that admitted them).
    pub via: String,
}

/// How someone lost a seat, as `member.left` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftVia {
    /// They left.
    Left,
    /// An ADMIN took them out.
    Removed,
    /// A new role no longer admits them to a MANAGER_ONLY room.
    RoleChanged,
}

impl LeftVia {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftVia::Left => "left",
            LeftVia::Removed => "removed",
            LeftVia::RoleChanged => "role_changed",
        }
    }
}

/// `member.role_changed`: an organization member's role changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    /// The organization.
    pub org_id: i64,
    /// Whose role.
    pub user_id: i64,
    /// The role before.
    pub previous_role: Role,
    /// The role now.
    pub role: Role,
}

/// `webhook.test`: a test delivery for one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTest {
    /// The webhook it is for.
    pub webhook_id: i64,
    /// A sentence for whoever reads the delivery.
    pub message: String,
}

/// Something that happened in a tenant. Serialized as `{"type": ..., "data": ...}`, the shape
/// of the webhook body's `type` and `data` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    /// A message was posted (the message as stored).
    #[serde(rename = "message.created")]
    MessageCreated(Message),
    /// A message was edited (the message after the edit).
    #[serde(rename = "message.updated")]
    MessageUpdated(Message),
    /// A message was deleted (the message as it stays: empty body, `is_deleted`).
    #[serde(rename = "message.deleted")]
    MessageDeleted(Message),
    /// A reply moved a thread's counters.
    #[serde(rename = "thread.updated")]
    ThreadUpdated(ThreadUpdated),
    /// A reaction was added.
    #[serde(rename = "reaction.added")]
    ReactionAdded(ReactionChanged),
    /// A reaction was removed.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved(ReactionChanged),
    /// A message mentions someone.
    #[serde(rename = "message.mentioned")]
    MessageMentioned(MessageMentioned),
    /// A room was created.
    #[serde(rename = "room.created")]
    RoomCreated(RoomCreated),
    /// Someone was invited to an organization.
    #[serde(rename = "member.invited")]
    MemberInvited(MemberInvited),
    /// Someone joined an organization or a room.
    #[serde(rename = "member.joined")]
    MemberJoined(MemberJoined),
    /// Someone left an organization or a room.
    #[serde(rename = "member.left")]
    MemberLeft(MemberLeft),
    /// An organization member's role changed.
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged(MemberRoleChanged),
    /// A test delivery for one webhook.
    #[serde(rename = "webhook.test")]
    WebhookTest(WebhookTest),
}

/// The sentence every test delivery carries.
const TEST_DELIVERY_TEXT: &str = "This is a test delivery from ChatBoard.";

impl DomainEvent {
    /// `room.created` with the room's first members.
    pub fn room_created(room: Room, member_ids: Vec<i64>) -> Self {
        DomainEvent::RoomCreated(RoomCreated { room, member_ids })
    }

    /// `member.joined` for an organization (`room_id` None) or a room.
    pub fn joined(org_id: i64, room_id: Option<i64>, user_id: i64, via: &str) -> Self {
        DomainEvent::MemberJoined(MemberJoined {
            org_id,
            room_id,
            user_id,
            via: via.to_owned(),
        })
    }

    /// `member.left` for an organization (`room_id` None, `rooms` the seats that went with it)
    /// or one room.
    pub fn left(
        org_id: i64,
        room_id: Option<i64>,
        user_id: i64,
        rooms: Vec<i64>,
        via: LeftVia,
    ) -> Self {
        DomainEvent::MemberLeft(MemberLeft {
            org_id,
            room_id,
            user_id,
            rooms,
            via: via.as_str().to_owned(),
        })
    }

    /// `member.role_changed` in an organization.
    pub fn role_changed(org_id: i64, user_id: i64, previous_role: Role, role: Role) -> Self {
        DomainEvent::MemberRoleChanged(MemberRoleChanged {
            org_id,
            user_id,
            previous_role,
            role,
        })
    }

    /// `webhook.test` for one webhook.
    pub fn webhook_test(webhook_id: i64) -> Self {
        DomainEvent::WebhookTest(WebhookTest {
            webhook_id,
            message: TEST_DELIVERY_TEXT.to_owned(),
        })
    }

    /// Its type.
    pub fn event_type(&self) -> EventType {
        match self {
            DomainEvent::MessageCreated(_) => EventType::MessageCreated,
            DomainEvent::MessageUpdated(_) => EventType::MessageUpdated,
            DomainEvent::MessageDeleted(_) => EventType::MessageDeleted,
            DomainEvent::ThreadUpdated(_) => EventType::ThreadUpdated,
            DomainEvent::ReactionAdded(_) => EventType::ReactionAdded,
            DomainEvent::ReactionRemoved(_) => EventType::ReactionRemoved,
            DomainEvent::MessageMentioned(_) => EventType::MessageMentioned,
            DomainEvent::RoomCreated(_) => EventType::RoomCreated,
            DomainEvent::MemberInvited(_) => EventType::MemberInvited,
            DomainEvent::MemberJoined(_) => EventType::MemberJoined,
            DomainEvent::MemberLeft(_) => EventType::MemberLeft,
            DomainEvent::MemberRoleChanged(_) => EventType::MemberRoleChanged,
            DomainEvent::WebhookTest(_) => EventType::WebhookTest,
        }
    }

    /// The room it concerns, for room-scoped events.
    pub fn room_id(&self) -> Option<i64> {
        match self {
            DomainEvent::MessageCreated(m)
            | DomainEvent::MessageUpdated(m)
            | DomainEvent::MessageDeleted(m) => Some(m.room),
            DomainEvent::ThreadUpdated(e) => Some(e.room),
            DomainEvent::ReactionAdded(e) | DomainEvent::ReactionRemoved(e) => Some(e.room),
            DomainEvent::MessageMentioned(e) => Some(e.message.room),
            DomainEvent::RoomCreated(e) => Some(e.room.id),
            DomainEvent::MemberJoined(e) => e.room_id,
            DomainEvent::MemberLeft(e) => e.room_id,
            DomainEvent::MemberInvited(_)
            | DomainEvent::MemberRoleChanged(_)
            | DomainEvent::WebhookTest(_) => None,
        }
    }

    /// The event's `data` object, serialized: what the outbox stores.
    pub fn payload(&self) -> Result<String, serde_json::Error> {
        match self {
            DomainEvent::MessageCreated(m)
            | DomainEvent::MessageUpdated(m)
            | DomainEvent::MessageDeleted(m) => serde_json::to_string(m),
            DomainEvent::ThreadUpdated(e) => serde_json::to_string(e),
            DomainEvent::ReactionAdded(e) | DomainEvent::ReactionRemoved(e) => {
                serde_json::to_string(e)
            }
            DomainEvent::MessageMentioned(e) => serde_json::to_string(e),
            DomainEvent::RoomCreated(e) => serde_json::to_string(e),
            DomainEvent::MemberInvited(e) => serde_json::to_string(e),
            DomainEvent::MemberJoined(e) => serde_json::to_string(e),
            DomainEvent::MemberLeft(e) => serde_json::to_string(e),
            DomainEvent::MemberRoleChanged(e) => serde_json::to_string(e),
            DomainEvent::WebhookTest(e) => serde_json::to_string(e),
        }
    }

    /// The event of type `event_type` whose `data` is `data` (what the outbox holds).
    pub fn decode(event_type: &str, data: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": event_type, "data": data }))
    }
}

/// An event as stored in the outbox: the envelope (id, type, tenant, room, time) and its
/// `data` as serialized when it was written; [`OutboxEvent::event`] reads it back typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Position in the outbox (increasing in insertion order).
    pub position: i64,
    /// The event's stable id (a UUID), the de-duplication key for consumers.
    pub id: String,
    /// Wire name of the type. Kept as written: an event of a type this release does not know
    /// (written by a newer one during an upgrade) still reaches the webhooks that asked for it.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Tenant.
    pub org_id: i64,
    /// Room, for room-scoped events.
    pub room_id: Option<i64>,
    /// The event's `data`.
    pub data: Value,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
}

impl OutboxEvent {
    /// The event, typed; an error for a type or shape this release does not know.
    pub fn event(&self) -> Result<DomainEvent, serde_json::Error> {
        DomainEvent::decode(&self.event_type, self.data.clone())
    }

    /// The webhook request body: `{"id", "type", "created_at", "org_id", "data"}`.
    pub fn webhook_body(&self) -> Result<String, serde_json::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            event_type: &'a str,
            created_at: DateTime<Utc>,
            org_id: i64,
            data: &'a Value,
        }
        serde_json::to_string(&Body {
            id: &self.id,
            event_type: &self.event_type,
            created_at: self.created_at,
            org_id: self.org_id,
            data: &self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reads_back_as_the_event_it_was_written_from() {
        let event = DomainEvent::role_changed(3, 7, Role::Admin, Role::Member);
        let data: Value = serde_json::from_str(&event.payload().unwrap()).unwrap();
        assert_eq!(data["previous_role"], "ADMIN");
        let back = DomainEvent::decode(event.event_type().as_str(), data).unwrap();
        assert_eq!(back, event);
        assert!(DomainEvent::decode("room.exploded", Value::Null).is_err());
    }
}
