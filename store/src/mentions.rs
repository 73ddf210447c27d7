//! Mentions: resolving addresses to a room's members, the member lookup, and the messages that
//! mention a reader. The rows themselves are written with their message
//! ([`crate::NewMessage::mentions`]).

use async_trait::async_trait;
use chatboard_core::model::{Message, RoomMember};

use super::StoreResult;

/// Mentions and the member lookup behind them.
#[async_trait]
pub trait MentionStore: Send + Sync {
    /// The user ids of everyone seated in the room.
    async fn member_ids(&self, room_id: i64) -> StoreResult<Vec<i64>>;
    /// Who the message's current version mentions (its mention rows), ascending.
    async fn mentioned_by(&self, message_id: i64) -> StoreResult<Vec<i64>>;
    /// Which of these (lowercase) addresses belong to members of the room: (address, user id).
    async fn members_by_email(
        &self,
        room_id: i64,
        emails: &[String],
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Up to `limit` members of the room whose address, first or last name starts with
    /// `prefix` (any case), by address.
    async fn search_members(
        &self,
        room_id: i64,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<RoomMember>>;
    /// Up to `limit` messages mentioning `user_id` in rooms they sit in (of organization `org`
    /// when given), newest first, older than `before` when given.
    async fn mentions_of(
        &self,
        user_id: i64,
        org: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
}
