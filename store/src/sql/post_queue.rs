//! Posts as group-committed writes (see `write_queue`): queued by room, stored together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::write_queue::Batched;
use super::{insert_batch, insert_message, Db, WritePool};
use crate::sql::rows::encode_ids;
use crate::{NewMessage, StoreResult};
use chatboard_core::model::Message;

/// One post waiting for its room's writer.
pub(super) struct PendingPost {
    pub(super) msg: NewMessage,
    pub(super) now: DateTime<Utc>,
    /// Its room's write queue.
    pub(super) queue: i64,
}

/// A query taking a post's values.
type PostQuery<'q, O> = sqlx::query::QueryAs<'q, Db, O, <Db as sqlx::Database>::Arguments<'q>>;

/// Binds a post's values to its engine's insert statement, as `$1` to `$11`: room, sender,
/// `client_msg_id`, body, time, the attachment's id, name, type and size, the thread's root and
/// the ids mentioned by address.
pub(super) fn bind_insert<'q, O>(
    query: PostQuery<'q, O>,
    msg: &'q NewMessage,
    now: DateTime<Utc>,
) -> PostQuery<'q, O> {
    query
        .bind(msg.room_id)
        .bind(msg.sender_id)
        .bind(&msg.client_msg_id)
        .bind(&msg.body)
        .bind(now)
        .bind(msg.file.as_ref().map(|f| f.id.as_str()))
        .bind(msg.file.as_ref().map(|f| f.filename.as_str()))
        .bind(msg.file.as_ref().map(|f| f.content_type.as_str()))
        .bind(msg.file.as_ref().map(|f| f.size))
        .bind(msg.parent_id)
        .bind(encode_ids(&msg.mentions.named))
}

#[async_trait]
impl Batched for PendingPost {
    /// The stored message, or `None` when the sender has no seat or already used the
    /// `client_msg_id`.
    type Output = Option<Message>;

    fn queue(&self) -> i64 {
        self.queue
    }

    async fn write_one(write: &WritePool, post: &Self) -> StoreResult<Option<Message>> {
        insert_message(write, &post.msg, post.now).await
    }

    async fn write_batch(write: &WritePool, posts: &[Self]) -> Vec<StoreResult<Option<Message>>> {
        insert_batch(write, posts).await
    }
}
