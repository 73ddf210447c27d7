//! Messages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::StoreResult;
use chatboard_core::model::Message;

/// A ready upload attached to a message.
#[derive(Debug, Clone, PartialEq)]
pub struct FileAttachment {
    /// Upload id.
    pub id: String,
    /// Its file name.
    pub filename: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: i64,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Room.
    pub room_id: i64,
    /// Sender, who must be a room member.
    pub sender_id: i64,
    /// Validated text.
    pub body: String,
    /// Idempotency key.
    pub client_msg_id: Option<String>,
    /// An attached upload (the caller checked it is the sender's and ready).
    pub file: Option<FileAttachment>,
    /// The root of the thread it answers (the caller resolved a reply to a reply to its root);
    /// `None` for a message of the timeline.
    pub parent_id: Option<i64>,
    /// Who it mentions.
    pub mentions: Mentioned,
}

impl NewMessage {
    /// Whether it is a plain post: no thread to count, no one mentioned to record. The engines
    /// store those in a single statement.
    pub(crate) fn is_plain(&self) -> bool {
        self.parent_id.is_none() && self.mentions.everyone.is_empty()
    }
}

/// A message queued for storing by [`MessageStore::queue_message`]; its answer comes from
/// [`MessageStore::queued_message`].
#[derive(Debug)]
pub struct QueuedMessage {
    pub(crate) msg: NewMessage,
    /// The stored message, or `None` when nothing new was stored (no seat, a repeated send).
    pub(crate) answer: oneshot::Receiver<StoreResult<Option<Message>>>,
}

/// Who a message mentions, as the caller resolved its text against the room's members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentioned {
    /// Members named by address, in the order they appear.
    pub named: Vec<i64>,
    /// Everyone mentioned: the named and whoever `@room` or `@here` reached, sorted, without
    /// the sender.
    pub everyone: Vec<i64>,
}

/// Which of a room's messages a page walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeline {
    /// Every message, replies included (the order sockets deliver them in).
    All,
    /// The messages that are not replies (`?threads=roots`).
    Roots,
    /// The replies of one thread, by its root's id.
    Thread(i64),
}

/// Which page of a room's messages to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageCursor {
    /// The newest messages, newest first.
    Newest,
    /// Messages older than the id, newest first.
    Before(i64),
    /// Messages newer than the id, oldest first.
    After(i64),
}

/// Where a room's messages stand, for telling whether a cached page is still current: new
/// messages move `last_msg_id`, edits and deletes move `edit_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageVersion {
    /// Newest message id, if any.
    pub last_msg_id: Option<i64>,
    /// Count of edits and deletes so far.
    pub edit_version: i64,
    /// Seq of the newest message (0 in an empty room).
    pub last_seq: i64,
}

/// Messages. Every call is scoped to a room; callers check membership for reads, and
/// `post_message` checks it again inside its transaction.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message with its `message.created` event; `false` with the original when the
    /// sender already sent this `client_msg_id` to the room. `NotFound` if not a member.
    async fn post_message(
        &self,
        msg: NewMessage,
        now: DateTime<Utc>,
    ) -> StoreResult<(Message, bool)> {
        let queued = self.queue_message(msg, now);
        self.queued_message(queued).await
    }
    /// [`MessageStore::post_message`] in two steps: this one queues the message, at once, and
    /// [`MessageStore::queued_message`] waits for its answer. Messages queued one after another
    /// are stored in that order, so a connection can send its next message before the last
    /// one's commit without reordering them.
    fn queue_message(&self, msg: NewMessage, now: DateTime<Utc>) -> QueuedMessage;
    /// The answer to a queued message, as [`MessageStore::post_message`] gives it.
    async fn queued_message(&self, queued: QueuedMessage) -> StoreResult<(Message, bool)>;
    /// The message `sender`, still seated in the room, already posted there with this
    /// `client_msg_id`, if any.
    async fn sent_before(
        &self,
        room_id: i64,
        sender: i64,
        client_msg_id: &str,
    ) -> StoreResult<Option<Message>>;
    /// Up to `limit` messages of a page of `timeline`, as `reader` sees them; `None` when the
    /// reader has no seat in the room (or there is no such room). One query on the common path.
    async fn list_messages(
        &self,
        room_id: i64,
        reader: i64,
        timeline: Timeline,
        cursor: PageCursor,
        limit: u32,
    ) -> StoreResult<Option<Vec<Message>>>;
    /// The room's [`PageVersion`] as `reader` may see it; `None` without a seat in the room.
    async fn page_version(&self, room_id: i64, reader: i64) -> StoreResult<Option<PageVersion>>;
    /// One message of a room.
    async fn message(&self, room_id: i64, msg_id: i64) -> StoreResult<Option<Message>>;
    /// Replaces the body and who it mentions, and records `message.updated` and a
    /// `message.mentioned` for each person it newly mentions, who are returned with the message
    /// (`Conflict(message_deleted)` once deleted).
    async fn edit_message(
        &self,
        room_id: i64,
        msg_id: i64,
        body: &str,
        mentions: &Mentioned,
        now: DateTime<Utc>,
    ) -> StoreResult<(Message, Vec<i64>)>;
    /// Soft-deletes (empty body, `is_deleted`) and records `message.deleted`; deleting again
    /// changes nothing and records nothing. `actor` is checked again under the room's lock: an
    /// ADMIN of the org, or the sender still seated in the room (`NotFound` otherwise).
    async fn delete_message(
        &self,
        room_id: i64,
        msg_id: i64,
        actor: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Message>;
}
