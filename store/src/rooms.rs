//! Rooms, their seats and read state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{AccessLevel, Role, Room, RoomMember, UnreadCount};

/// A user's seat in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seat {
    /// The room.
    pub room_id: i64,
    /// Who sits there.
    pub user_id: i64,
}

/// A new room (not a direct message).
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Organization.
    pub org_id: i64,
    /// Display name.
    pub name: String,
    /// Who may join.
    pub access_level: AccessLevel,
    /// Creator; becomes a member.
    pub created_by: i64,
}

/// Room fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RoomPatch {
    /// New name.
    pub name: Option<String>,
    /// New access level (members stay; it governs who may join from now on).
    pub access_level: Option<AccessLevel>,
}

/// A room as one user may act on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomAccess {
    /// The room.
    pub room: Room,
    /// The user's role in the room's organization.
    pub org_role: Role,
    /// Whether the user is a member of the room.
    pub is_member: bool,
    /// Why its organization takes no changes (`org_suspended`, `org_archived`), if it does not.
    pub org_read_only: Option<ErrorCode>,
}

impl RoomAccess {
    /// Whether the room is one this user may not know of: a PRIVATE room or a direct message
    /// they do not sit in, unless they are an ADMIN of its organization. Whoever asks about it
    /// is answered as for a room that does not exist.
    pub fn hidden(&self) -> bool {
        !self.is_member
            && (self.room.is_dm || self.room.access_level == AccessLevel::Private)
            && self.org_role != Role::Admin
    }
}

/// How a user came into a room, recorded in the `member.joined` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinVia {
    /// They joined themselves.
    Join,
    /// The creator or an org ADMIN added them.
    Invite,
}

impl JoinVia {
    /// Name in the event data.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinVia::Join => "join",
            JoinVia::Invite => "room_invite",
        }
    }
}

/// Where a member's read pointer stands after [`RoomStore::mark_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// The newest message the member has read.
    pub last_read_msg_id: i64,
    /// Whether this call moved the pointer.
    pub moved: bool,
    /// How many members the room has (whom a receipt would reach).
    pub room_members: i64,
}

/// Where a room stands, for a connection that starts following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPosition {
    /// Room id.
    pub room_id: i64,
    /// Newest message id, if any.
    pub last_msg_id: Option<i64>,
    /// Its seq (0 in an empty room).
    pub last_seq: i64,
}

/// Where a room stood when a member took their seat (see [`RoomStore::seat_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatStart {
    /// The room's position then.
    pub position: RoomPosition,
    /// How many members the room has now.
    pub room_members: i64,
}

/// Rooms, their members and read state. Callers check permissions; the store keeps the
/// invariants (DM uniqueness, seat rules that need a transaction) and writes the events.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room, seats its first members by access level and records `room.created`.
    async fn create_room(&self, room: NewRoom, now: DateTime<Utc>) -> StoreResult<Room>;
    /// The direct-message room of two org members, created if needed (`true` when created).
    async fn open_dm(
        &self,
        org_id: i64,
        user_id: i64,
        other_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)>;
    /// The rooms `user_id` is a member of, optionally of one org, by id.
    async fn rooms_for_user(&self, user_id: i64, org_id: Option<i64>) -> StoreResult<Vec<Room>>;
    /// The room as `user_id` may see it; `None` when it does not exist or they are not in its org.
    async fn room_access(&self, room_id: i64, user_id: i64) -> StoreResult<Option<RoomAccess>>;
    /// Changes name or access level (`Conflict(dm_immutable)` for direct messages), as
    /// `actor`, who must still manage the room (see [`RoomStore::delete_room`]).
    async fn update_room(&self, room_id: i64, actor: i64, patch: RoomPatch) -> StoreResult<Room>;
    /// Deletes a room with its seats and read state, as `actor`, and leaves its messages to
    /// [`crate::TenantStore::purge_erased_messages`] (nothing reads them meanwhile); `Forbidden` when its
    /// organization is suspended or archived, or when `actor` no longer manages the room (an
    /// org ADMIN, or its creator with a seat) under the organization's lock: a demotion, a
    /// removal or a seat given up since the caller's check refuses it.
    async fn delete_room(&self, room_id: i64, actor: i64) -> StoreResult<()>;
    /// Seats an org member in a room; `false` when they already were. Records `member.joined`.
    /// `by`, when someone seats another, must still manage the room (as for
    /// [`RoomStore::delete_room`]); `None` for a join or the platform's own seating.
    async fn add_room_member(
        &self,
        room_id: i64,
        user_id: i64,
        via: JoinVia,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Removes a member; `false` when they were not one.
    async fn remove_room_member(&self, room_id: i64, user_id: i64) -> StoreResult<bool>;
    /// The members, in joining order.
    async fn room_members(&self, room_id: i64) -> StoreResult<Vec<RoomMember>>;
    /// Every room the user sits in, with its newest message (what a live connection starts from).
    async fn room_positions(&self, user_id: i64) -> StoreResult<Vec<RoomPosition>>;
    /// Where the room stood when `user_id` took their seat in it (every message after it came
    /// later); `None` without a seat. For a seat older than this record, where it stands now.
    async fn seat_start(&self, room_id: i64, user_id: i64) -> StoreResult<Option<SeatStart>>;
    /// `(user id, room id)` for every seat of the given users in a room that carries presence
    /// (of up to [`chatboard_core::model::SMALL_ROOM_MEMBERS`] members).
    async fn seats_of(&self, user_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>>;
    /// `(room id, seats)` for each of the given rooms that exists.
    async fn room_sizes(&self, room_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>>;
    /// Ids of the other users who share a room that carries presence (of up to
    /// [`chatboard_core::model::SMALL_ROOM_MEMBERS`] members) with the user (only `room`, when given).
    async fn room_mates(&self, user_id: i64, room: Option<i64>) -> StoreResult<Vec<i64>>;
    /// Moves a member's read pointer forward to `msg_id` (never back) and returns where it
    /// stands, whether it moved and the room's size; `NotFound` when the message is not in the
    /// room or the user is not a member.
    async fn mark_read(&self, room_id: i64, user_id: i64, msg_id: i64) -> StoreResult<ReadMark>;
    /// Unread counts of every room of the user, in one query whatever their number.
    async fn unread_counts(&self, user_id: i64) -> StoreResult<Vec<UnreadCount>>;
}
