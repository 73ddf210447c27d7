//! Threads: who follows which, how far each follower has read, and the list of followed threads.
//! Replies themselves are messages (`NewMessage::parent_id`); posting one moves its root's
//! counters and follows the thread for its sender, in the post's transaction.

use async_trait::async_trait;
use chatboard_core::model::Message;

use super::StoreResult;

/// A reader's standing in one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadFollow {
    /// Whether they follow it.
    pub following: bool,
    /// The newest message of the thread they have read, if any.
    pub last_read_id: Option<i64>,
}

/// A thread as its reader opens it: the root and where the reader stands in it.
#[derive(Debug, Clone)]
pub struct OpenedThread {
    /// The root message, with its counters.
    pub root: Message,
    /// The reader's standing in it.
    pub follow: ThreadFollow,
}

/// A followed thread, as the reader's list of threads shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowedThread {
    /// The thread's root message, with its counters.
    pub root: Message,
    /// Replies from others after the reader's pointer, not counting deleted ones.
    pub unread_replies: i64,
    /// The reader's pointer in the thread.
    pub last_read_id: Option<i64>,
    /// The list's order and cursor: the newest reply's id (the root's own for a thread
    /// without replies yet).
    pub activity: i64,
}

/// Following threads and reading them.
#[async_trait]
pub trait ThreadStore: Send + Sync {
    /// Follows (`true`) or unfollows the thread of `root_id` for `user_id`. An unfollow sticks:
    /// only following again or replying undoes it, never an automatic follow. `NotFound` when
    /// the room has no such root.
    async fn set_following(
        &self,
        room_id: i64,
        root_id: i64,
        user_id: i64,
        following: bool,
    ) -> StoreResult<()>;
    /// Moves the user's pointer in the thread forward to `msg_id` (the root or one of its
    /// replies), never back, and returns where it stands. `NotFound` when `msg_id` is not part
    /// of the thread.
    async fn mark_thread_read(
        &self,
        room_id: i64,
        root_id: i64,
        user_id: i64,
        msg_id: i64,
    ) -> StoreResult<i64>;
    /// The thread `msg_id` belongs to in `room_id` (its own, or its root's for a reply) and
    /// `reader`'s standing in it, in one read; `None` when the reader has no seat in the room
    /// or the message is not there.
    async fn open_thread(
        &self,
        room_id: i64,
        msg_id: i64,
        reader: i64,
    ) -> StoreResult<Option<OpenedThread>>;
    /// Up to `limit` threads `user_id` follows in rooms they sit in (of organization `org` when
    /// given), the latest activity first, starting below `before` (an
    /// [`FollowedThread::activity`]) when given.
    async fn followed_threads(
        &self,
        user_id: i64,
        org: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<FollowedThread>>;
}
