//! Email: the send queue and the digests of messages members missed.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// What an email is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// An organization invitation.
    Invitation,
    /// A digest of messages that arrived while the recipient was offline.
    Digest,
}

impl EmailKind {
    /// The name stored in the database and used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::Invitation => "invitation",
            EmailKind::Digest => "digest",
        }
    }
}

/// An email to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    /// What it is for.
    pub kind: EmailKind,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// A queued email claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEmail {
    /// Email id.
    pub id: i64,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The email.
    pub email: OutgoingEmail,
}

/// How sending one email went.
#[derive(Debug, Clone, PartialEq)]
pub enum EmailResult {
    /// Handed to the mail server (or written out).
    Sent,
    /// Failed; try again at the given time.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for the last time.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// One message waiting for a member's digest, with what the email shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestLine {
    /// Message id.
    pub message_id: i64,
    /// Room name.
    pub room_name: String,
    /// Organization name.
    pub org_name: String,
    /// Who sent it (name, or email when the profile has none).
    pub sender: String,
    /// Its text (empty when deleted since).
    pub body: String,
    /// The name of its attached file, if any.
    pub file_name: Option<String>,
    /// Deleted since it was noted.
    pub deleted: bool,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// A queued digest email as it stands when the mailer comes to send it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuedDigest {
    /// Queued without its lines (before they were kept, or by an older worker): send it as
    /// written.
    AsWritten,
    /// Its recipient turned emails off or is gone, or it was settled meanwhile: not to be
    /// sent.
    Withdrawn,
    /// The recipient now, and the email's messages as they stand now, oldest first.
    Lines(DigestRecipient, Vec<DigestLine>),
}

/// Who a digest goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRecipient {
    /// Their address.
    pub address: String,
    /// The token of their unsubscribe link ([`crate::UserStore::unsubscribe`]); `None` for a
    /// digest queued before the user had one.
    pub unsubscribe_token: Option<String>,
}

/// A user whose next digest is to hold a message, and the event (`message.created` or
/// `message.mentioned`) that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestNote {
    /// The event's id ([`chatboard_core::events::OutboxEvent::id`]).
    pub event_id: String,
    /// The user.
    pub user_id: i64,
}

impl DigestNote {
    /// `user_id`, for event `event_id`.
    pub fn new(event_id: &str, user_id: i64) -> Self {
        Self {
            event_id: event_id.to_owned(),
            user_id,
        }
    }
}

/// Email: the queue the mailer sends from, and the digests of messages members missed.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Members of each of these rooms who should hear of its new messages by email while
    /// offline (digest emails on), in id order; a room with none is absent. One call for many
    /// rooms: the worker asks once per batch of events, not once per message.
    async fn digest_recipients(&self, rooms: &[i64]) -> StoreResult<HashMap<i64, Vec<i64>>>;
    /// Puts a message into the next digests of the users of `notes`, each for the event that
    /// brought it: once per event (an event handed over again notes nothing, even after its
    /// digest went out), and a message noted already by another event stays one line.
    async fn add_digest_items(
        &self,
        notes: &[DigestNote],
        message_id: i64,
        room_id: i64,
        created_at: DateTime<Utc>,
        mentioned: bool,
    ) -> StoreResult<()>;
    /// Users whose oldest waiting message was noted at `cutoff` or before, or whose oldest
    /// waiting mention at `mention_cutoff` or before. Waiting messages of rooms their user no
    /// longer sits in, and of users who turned emails off, are dropped first: they are never
    /// sent.
    async fn due_digests(
        &self,
        cutoff: DateTime<Utc>,
        mention_cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<i64>>;
    /// The user as a digest's recipient (given an unsubscribe token if they had none) and up
    /// to `limit` of their waiting messages, oldest first; `None` when the user is gone or has
    /// emails off.
    async fn digest_of(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Option<(DigestRecipient, Vec<DigestLine>)>>;
    /// Queues the digest email and moves the messages it covers from the waiting ones to the
    /// email's lines, in one transaction; `false` (and nothing done) when some of them were
    /// already taken by another digest.
    async fn queue_digest(
        &self,
        user_id: i64,
        message_ids: &[i64],
        email: OutgoingEmail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The digest email `email_id` as it stands now, for the mailer to write again before it
    /// sends: a message deleted since it was queued is shown as deleted.
    async fn queued_digest(&self, email_id: i64) -> StoreResult<QueuedDigest>;
    /// Deletes the lines of digest emails settled without them going along (a mailer of an
    /// older release, a process stopped between the two); returns how many went.
    async fn prune_digest_lines(&self) -> StoreResult<u64>;
    /// Deletes emails sent or given up on that were queued before `before`, `batch` per
    /// statement, oldest first; returns how many went. Emails still to be sent stay.
    async fn prune_settled_emails(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64>;
    /// Queues an email.
    async fn queue_email(&self, email: OutgoingEmail, now: DateTime<Utc>) -> StoreResult<i64>;
    /// Claims up to `limit` emails due at `now` until `lease_until` (as for webhook deliveries).
    async fn claim_due_emails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueEmail>>;
    /// Records how sending went (only while the claim `claimed_until` is still this one); a
    /// settled email's body and digest lines are dropped.
    async fn record_email(
        &self,
        id: i64,
        claimed_until: DateTime<Utc>,
        result: EmailResult,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Hands claimed emails back unsent, due at `at` (only while the claim `claimed_until` is
    /// still this one): a mailer stopping does not keep them for its lease.
    async fn release_emails(
        &self,
        ids: &[i64],
        claimed_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Whether the email claimed until `claimed_until` is still to be sent under that claim:
    /// not settled meanwhile (an invitation revoked or used), nor deleted (its organization).
    async fn email_still_claimed(&self, id: i64, claimed_until: DateTime<Utc>)
        -> StoreResult<bool>;
    /// Emails waiting to be sent.
    async fn email_backlog(&self) -> StoreResult<i64>;
}
