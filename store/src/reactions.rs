//! Reactions: one per person and emoji on a message, with the counts kept on the message.

use async_trait::async_trait;
use chatboard_core::model::Message;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// What adding or removing a reaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionOutcome {
    /// The message after the call, with its counts, as the reacting person sees it (`me` set
    /// on their own emoji).
    pub message: Message,
    /// False when nothing changed (added twice, or removed what was not there).
    pub changed: bool,
    /// How many people have the emoji on the message now.
    pub count: i64,
}

/// Reactions to messages.
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// Adds `user_id`'s `emoji` to a message of the room, with its `reaction.added` event;
    /// adding it again changes nothing. `NotFound` without such a message,
    /// `Conflict(message_deleted)` once it is deleted, `Conflict(too_many_reactions)` when the
    /// emoji is new to a message that already has `max_distinct` different ones.
    async fn add_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        max_distinct: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome>;
    /// Removes `user_id`'s `emoji` from the message, with its `reaction.removed` event;
    /// removing what is not there changes nothing. `NotFound` without such a message.
    async fn remove_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome>;
    /// The reactions `user_id` added to any of `message_ids`: (message id, emoji) pairs.
    async fn reactions_by(
        &self,
        user_id: i64,
        message_ids: &[i64],
    ) -> StoreResult<Vec<(i64, String)>>;
}
