//! Posts as group-committed writes (see `write_queue`): queued by room, stored together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::write_queue::Batched;
use super::{insert_batch, insert_message, queue_of, WritePool};
use crate::{NewMessage, StoreResult};
use chatboard_core::model::Message;

/// One post waiting for its room's writer.
pub(super) struct PendingPost {
    pub(super) msg: NewMessage,
    pub(super) now: DateTime<Utc>,
}

#[async_trait]
impl Batched for PendingPost {
    /// The stored message, or `None` when the sender has no seat or already used the
    /// `client_msg_id`.
    type Output = Option<Message>;

    fn queue(&self) -> i64 {
        queue_of(self.msg.room_id)
    }

    async fn write_one(write: &WritePool, post: &Self) -> StoreResult<Option<Message>> {
        insert_message(write, &post.msg, post.now).await
    }

    async fn write_batch(write: &WritePool, posts: &[Self]) -> Vec<StoreResult<Option<Message>>> {
        insert_batch(write, posts).await
    }
}
