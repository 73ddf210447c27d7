//! Threads: finding a thread's root, following and unfollowing, the read pointer, and the
//! `thread.updated` announcement after a reply. Replies are posted as messages with a
//! `parent_id` ([`crate::MessageDraft`]).

use chatboard_core::bus::BusEvent;
use chatboard_core::events::ThreadUpdated;
use chatboard_core::model::Message;
use chatboard_store::OpenedThread;
use tracing::instrument;

use crate::error::{ChatError, ChatResult};
use crate::Chat;

impl Chat {
    /// The thread `msg_id` belongs to (its own, or its root's for a reply), for a reader with
    /// a seat in the room; 404 otherwise.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn open_thread(
        &self,
        reader: i64,
        room_id: i64,
        msg_id: i64,
    ) -> ChatResult<OpenedThread> {
        self.store()
            .open_thread(room_id, msg_id, reader)
            .await?
            .ok_or_else(ChatError::not_found)
    }

    /// Follows or unfollows the thread of `msg_id` for `user_id` (a seat in the room needed);
    /// returns its root's id. An unfollow holds until the user follows again or replies.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn set_following(
        &self,
        user_id: i64,
        room_id: i64,
        msg_id: i64,
        following: bool,
    ) -> ChatResult<i64> {
        self.member_access(room_id, user_id).await?;
        let root = self.thread_root(room_id, msg_id).await?;
        self.store()
            .set_following(room_id, root.id, user_id, following)
            .await?;
        Ok(root.id)
    }

    /// Moves the reader's pointer in the thread of `root_msg` (its root or any reply) forward to
    /// `msg_id` (the root or one of its replies); returns the root's id and where the pointer
    /// stands. 404 when `msg_id` is not in the thread.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn mark_thread_read(
        &self,
        reader: i64,
        room_id: i64,
        root_msg: i64,
        msg_id: i64,
    ) -> ChatResult<(i64, i64)> {
        self.member_access(room_id, reader).await?;
        let root = self.thread_root(room_id, root_msg).await?;
        let at = self
            .store()
            .mark_thread_read(room_id, root.id, reader, msg_id)
            .await?;
        Ok((root.id, at))
    }

    /// The id of the thread root `msg_id` belongs to in the room, if the message (and its
    /// root) is there.
    pub(crate) async fn thread_root_of(
        &self,
        room_id: i64,
        msg_id: i64,
    ) -> ChatResult<Option<i64>> {
        let Some(message) = self.store().message(room_id, msg_id).await? else {
            return Ok(None);
        };
        match message.parent_id {
            None => Ok(Some(message.id)),
            // A reply whose root is gone (purged by retention before roots were kept with
            // their threads): there is no thread left to reply in.
            Some(root) => Ok(self.store().message(room_id, root).await?.map(|r| r.id)),
        }
    }

    /// The root message of the thread `msg_id` belongs to; 404 when it is not in the room.
    async fn thread_root(&self, room_id: i64, msg_id: i64) -> ChatResult<Message> {
        let message = self
            .store()
            .message(room_id, msg_id)
            .await?
            .ok_or_else(ChatError::not_found)?;
        match message.parent_id {
            None => Ok(message),
            Some(root) => self
                .store()
                .message(room_id, root)
                .await?
                .ok_or_else(ChatError::not_found),
        }
    }

    /// Announces the counters of a thread a reply just moved. Read back after the commit: a
    /// later reply's counters may already be there, which is what the sockets should show.
    pub(crate) async fn announce_thread(&self, room_id: i64, root_id: i64) {
        match self.store().message(room_id, root_id).await {
            Ok(Some(root)) => {
                self.announcer()
                    .publish(BusEvent::ThreadUpdated(ThreadUpdated::of(&root)))
                    .await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, room_id, root_id, "reading a thread's root failed; its counters reach sockets with the next reply");
            }
        }
    }
}
