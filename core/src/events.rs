//! Domain events: what the outbox records next to each change, for webhooks, notifications and
//! (later) the worker's relay. An event's id is fixed when it is written, so every consumer can
//! de-duplicate on it however often it is delivered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
    /// A room (or direct-message room) was created.
    RoomCreated,
    /// Someone was invited to an organization.
    MemberInvited,
    /// Someone joined an organization or a room.
    MemberJoined,
    /// An organization member's role changed.
    MemberRoleChanged,
    /// A test delivery asked for through `POST /api/webhooks/{id}/test/`.
    WebhookTest,
}

impl EventType {
    /// Every type, in a stable order.
    pub const ALL: [EventType; 8] = [
        EventType::MessageCreated,
        EventType::MessageUpdated,
        EventType::MessageDeleted,
        EventType::RoomCreated,
        EventType::MemberInvited,
        EventType::MemberJoined,
        EventType::MemberRoleChanged,
        EventType::WebhookTest,
    ];

    /// The wire name, e.g. `message.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageUpdated => "message.updated",
            EventType::MessageDeleted => "message.deleted",
            EventType::RoomCreated => "room.created",
            EventType::MemberInvited => "member.invited",
            EventType::MemberJoined => "member.joined",
            EventType::MemberRoleChanged => "member.role_changed",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event about to be written to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// The tenant it belongs to.
    pub org_id: i64,
    /// The room, for room-scoped events.
    pub room_id: Option<i64>,
    /// The event's `data` object.
    pub data: Value,
}

impl NewEvent {
    /// `message.created`, `message.updated` or `message.deleted` carrying the message as stored.
    pub fn message(event_type: EventType, message: &Message) -> Self {
        Self {
            event_type,
            org_id: message.org,
            room_id: Some(message.room),
            data: json!(message),
        }
    }

    /// `room.created` carrying the room and its first members.
    pub fn room_created(room: &Room, member_ids: &[i64]) -> Self {
        Self {
            event_type: EventType::RoomCreated,
            org_id: room.org,
            room_id: Some(room.id),
            data: json!({ "room": room, "member_ids": member_ids }),
        }
    }

    /// `member.invited`: an invitation to an organization (never its token); `by` is `None`
    /// when the operator invited.
    pub fn org_invited(
        org_id: i64,
        invite_id: i64,
        email: &str,
        role: Role,
        by: Option<i64>,
    ) -> Self {
        Self {
            event_type: EventType::MemberInvited,
            org_id,
            room_id: None,
            data: json!({
                "org_id": org_id, "invite_id": invite_id, "email": email,
                "role": role, "invited_by": by,
            }),
        }
    }

    /// `member.joined` for an organization (`room_id` None) or a room.
    pub fn joined(org_id: i64, room_id: Option<i64>, user_id: i64, via: &str) -> Self {
        Self {
            event_type: EventType::MemberJoined,
            org_id,
            room_id,
            data: json!({ "org_id": org_id, "room_id": room_id, "user_id": user_id, "via": via }),
        }
    }

    /// `member.role_changed` in an organization.
    pub fn role_changed(org_id: i64, user_id: i64, previous: Role, role: Role) -> Self {
        Self {
            event_type: EventType::MemberRoleChanged,
            org_id,
            room_id: None,
            data: json!({
                "org_id": org_id, "user_id": user_id,
                "previous_role": previous, "role": role,
            }),
        }
    }

    /// `webhook.test` for one webhook of an organization.
    pub fn webhook_test(org_id: i64, webhook_id: i64) -> Self {
        Self {
            event_type: EventType::WebhookTest,
            org_id,
            room_id: None,
            data: json!({ "webhook_id": webhook_id, "message": "This is a test delivery from ChatBoard." }),
        }
    }
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Position in the outbox (increasing in insertion order).
    pub position: i64,
    /// The event's stable id (a UUID), the de-duplication key for consumers.
    pub id: String,
    /// Wire name of the type.
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
