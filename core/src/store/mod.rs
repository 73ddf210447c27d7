//! The storage interface every service uses, with PostgreSQL and SQLite implementations.
//!
//! The traits speak in domain terms; rules that must hold under concurrency (unique emails, one
//! open invitation per address, never losing the last admin, single-use refresh tokens) are
//! enforced inside the store's transactions, not by callers.

mod connect;
mod sql;
mod tenant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error_code::ErrorCode;
use crate::events::OutboxEvent;
use crate::model::{
    AccessLevel, Invite, Message, OrgMember, OrgView, Role, Room, RoomMember, UnreadCount, Upload,
    User, Webhook, WebhookDelivery,
};

pub use connect::{connect, Engine};
pub use tenant::{
    AppliedAdmins, AppliedOrg, AppliedWebhook, ManagedOrg, ManagedOrgRef, ManagedWebhook,
    SpecAdmin, TenantStore,
};

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule that needs the database to check refused the change: a unique value taken
    /// (`email_taken`, `invite_pending`), an object owned by the operator, a quota reached,
    /// the last ADMIN, ...
    #[error("conflict: {0}")]
    Conflict(ErrorCode),
    /// The object does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// The organization takes no changes now (`org_suspended`, `org_archived`).
    #[error("forbidden: {0}")]
    Forbidden(ErrorCode),
    /// The invitation was issued to another address.
    #[error("this invitation was issued to another email address")]
    InviteEmailMismatch,
    /// The database is unreachable or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::RowNotFound => StoreError::NotFound,
            other => StoreError::Database(other),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A new account; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalised email.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New avatar: `Some(None)` clears it.
    pub avatar_url: Option<Option<String>>,
    /// Digest emails on or off.
    pub email_notifications: Option<bool>,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account; `Conflict(email_taken)` if the email is in use.
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User>;
    /// Looks an account up by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// The account and its password hash, by normalised email.
    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>>;
    /// Changes profile fields and returns the updated account.
    async fn update_profile(&self, id: i64, patch: ProfilePatch) -> StoreResult<User>;
}

/// How presenting a refresh token went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now used; a successor was recorded in the same family.
    Rotated {
        /// Whose session it is.
        user_id: i64,
    },
    /// The token had been used before: its whole family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Refresh-token families (one per login) with rotation and reuse detection.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new login family and its first refresh token.
    async fn start_session(
        &self,
        user_id: i64,
        family_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Uses refresh token `jti` of `family_id` and records `next_jti` as its successor.
    async fn rotate_refresh(
        &self,
        family_id: &str,
        jti: &str,
        next_jti: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes a family (logout); false if it is not the user's or already revoked.
    async fn revoke_session(
        &self,
        user_id: i64,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// A new invitation; the token is already hashed.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// Organization.
    pub org_id: i64,
    /// Normalised address.
    pub email: String,
    /// Role granted.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Who invited (`None`: the operator, for an Organization's admins).
    pub invited_by: Option<i64>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// The invitation email, queued in the same transaction (it carries the token).
    pub email_message: Option<OutgoingEmail>,
}

/// Organizations, members and invitations. Every read is scoped by the caller's membership.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an organization with `creator` as its ADMIN.
    async fn create_org(
        &self,
        creator: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<OrgView>;
    /// The organizations `user_id` belongs to, oldest first.
    async fn orgs_for_user(&self, user_id: i64) -> StoreResult<Vec<OrgView>>;
    /// The organization as `user_id` sees it; `None` if it does not exist or they are not in it.
    async fn org_for_member(&self, org_id: i64, user_id: i64) -> StoreResult<Option<OrgView>>;
    /// The caller's role in an organization, `None` when not a member.
    async fn member_role(&self, org_id: i64, user_id: i64) -> StoreResult<Option<Role>>;
    /// Renames an organization (`Conflict(managed_by_operator)` for managed ones).
    async fn rename_org(&self, org_id: i64, name: &str) -> StoreResult<()>;
    /// Deletes an organization and everything in it (`Conflict(managed_by_operator)` for
    /// managed ones); returns the seats that went with it.
    async fn delete_org(&self, org_id: i64) -> StoreResult<Vec<Seat>>;
    /// The members, in joining order.
    async fn org_members(&self, org_id: i64) -> StoreResult<Vec<OrgMember>>;
    /// Creates an invitation: `Conflict(already_member)` or `Conflict(invite_pending)`.
    async fn create_invite(&self, invite: NewInvite, now: DateTime<Utc>) -> StoreResult<Invite>;
    /// Accepts an open, unexpired invitation for a user whose email must match; joining is
    /// idempotent for someone who is already a member. `NotFound` for unknown, used, revoked or
    /// expired tokens.
    async fn accept_invite(
        &self,
        token_hash: &str,
        user_id: i64,
        user_email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JoinedOrg>;
    /// Changes a member's role (`NotFound`, `Conflict(last_admin)`); returns the rooms whose
    /// seats went with the old role (MANAGER_ONLY rooms, on a demotion below MANAGER).
    async fn set_member_role(&self, org_id: i64, user_id: i64, role: Role)
        -> StoreResult<Vec<i64>>;
    /// Removes a member (`NotFound`, `Conflict(last_admin)`); returns the rooms they sat in.
    async fn remove_member(&self, org_id: i64, user_id: i64) -> StoreResult<Vec<i64>>;
}

/// A user's seat in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seat {
    /// The room.
    pub room_id: i64,
    /// Who sits there.
    pub user_id: i64,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedOrg {
    /// The organization.
    pub org_id: i64,
    /// The role held in it (the one they had, when they were already a member).
    pub role: Role,
    /// The rooms they were seated in by joining (its PUBLIC rooms).
    pub seated: Vec<i64>,
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
    /// Changes name or access level (`Conflict(dm_immutable)` for direct messages).
    async fn update_room(&self, room_id: i64, patch: RoomPatch) -> StoreResult<Room>;
    /// Deletes a room with its messages and read state.
    async fn delete_room(&self, room_id: i64) -> StoreResult<()>;
    /// Seats an org member in a room; `false` when they already were. Records `member.joined`.
    async fn add_room_member(
        &self,
        room_id: i64,
        user_id: i64,
        via: JoinVia,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Removes a member; `false` when they were not one.
    async fn remove_room_member(&self, room_id: i64, user_id: i64) -> StoreResult<bool>;
    /// The members, in joining order.
    async fn room_members(&self, room_id: i64) -> StoreResult<Vec<RoomMember>>;
    /// Every room the user sits in, with its newest message (what a live connection starts from).
    async fn room_positions(&self, user_id: i64) -> StoreResult<Vec<RoomPosition>>;
    /// `(user id, room id)` for every seat of the given users.
    async fn seats_of(&self, user_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>>;
    /// Ids of the other users who share a room with the user (only `room`, when given).
    async fn room_mates(&self, user_id: i64, room: Option<i64>) -> StoreResult<Vec<i64>>;
    /// Moves a member's read pointer forward to `msg_id` (never back) and returns where it
    /// stands; `NotFound` when the message is not in the room or the user is not a member.
    async fn mark_read(&self, room_id: i64, user_id: i64, msg_id: i64) -> StoreResult<i64>;
    /// Unread counts of every room of the user, in one query whatever their number.
    async fn unread_counts(&self, user_id: i64) -> StoreResult<Vec<UnreadCount>>;
}

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
    ) -> StoreResult<(Message, bool)>;
    /// Up to `limit` messages of a page, as `reader` sees them; `None` when the reader has no
    /// seat in the room (or there is no such room). One query on the common path.
    async fn list_messages(
        &self,
        room_id: i64,
        reader: i64,
        cursor: PageCursor,
        limit: u32,
    ) -> StoreResult<Option<Vec<Message>>>;
    /// The room's [`PageVersion`] as `reader` may see it; `None` without a seat in the room.
    async fn page_version(&self, room_id: i64, reader: i64) -> StoreResult<Option<PageVersion>>;
    /// One message of a room.
    async fn message(&self, room_id: i64, msg_id: i64) -> StoreResult<Option<Message>>;
    /// Replaces the body and records `message.updated` (`Conflict(message_deleted)` once
    /// deleted).
    async fn edit_message(
        &self,
        room_id: i64,
        msg_id: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Message>;
    /// Soft-deletes (empty body, `is_deleted`) and records `message.deleted`; deleting again
    /// changes nothing and records nothing.
    async fn delete_message(
        &self,
        room_id: i64,
        msg_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Message>;
}

/// The event outbox, read by the relay.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Events after `position`, oldest first, at most `limit`.
    async fn outbox_after(&self, position: i64, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Events not yet handed to the job queue, oldest first, at most `limit`.
    async fn outbox_unpublished(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Records that these events (by position) were handed to the job queue.
    async fn mark_published(&self, positions: &[i64], now: DateTime<Utc>) -> StoreResult<()>;
    /// How many events wait to be handed over, and when the oldest of them happened.
    async fn outbox_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
}

/// A new webhook; events are already validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Organization.
    pub org_id: i64,
    /// Target URL, already checked.
    pub url: String,
    /// Event type names, or `["*"]`.
    pub events: Vec<String>,
    /// The HMAC key.
    pub secret: String,
    /// Deliver from the start?
    pub is_active: bool,
    /// Owned by a custom resource.
    pub managed: bool,
    /// Attempts per delivery (`None`: the deployment's default).
    pub max_attempts: Option<i32>,
}

/// Webhook fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New target URL, already checked.
    pub url: Option<String>,
    /// New event filter.
    pub events: Option<Vec<String>>,
    /// Switch delivery on or off (switching on clears `disabled_reason`).
    pub is_active: Option<bool>,
}

/// A delivery claimed for an attempt, with what the request needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Webhook id.
    pub webhook_id: i64,
    /// Target URL.
    pub url: String,
    /// HMAC key.
    pub secret: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The webhook's own attempt limit, if it has one.
    pub max_attempts: Option<i32>,
    /// The event to deliver.
    pub event: OutboxEvent,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// The target answered 2xx.
    Delivered {
        /// Its status code.
        status_code: i32,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// The target's status code, if it answered.
        status_code: Option<i32>,
        /// What went wrong.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for the last time.
    Failed {
        /// The target's status code, if it answered.
        status_code: Option<i32>,
        /// What went wrong.
        error: String,
    },
    /// The target answered 410: the delivery fails and the webhook is switched off.
    Gone,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// Delivery id.
    pub delivery_id: i64,
    /// Its webhook.
    pub webhook_id: i64,
    /// The claim it was attempted under (the `lease_until` it was claimed with): an outcome
    /// whose claim lapsed and was taken over is not recorded.
    pub claimed_until: DateTime<Utc>,
    /// What happened.
    pub result: AttemptResult,
}

/// Webhooks and their deliveries. Callers check permissions and validate URLs and filters.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates a webhook.
    async fn create_webhook(&self, hook: NewWebhook, now: DateTime<Utc>) -> StoreResult<Webhook>;
    /// The organization's webhooks, oldest first.
    async fn webhooks_of_org(&self, org_id: i64) -> StoreResult<Vec<Webhook>>;
    /// One webhook.
    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>>;
    /// Changes a webhook (`NotFound`, `Conflict(managed_by_operator)`).
    async fn update_webhook(
        &self,
        id: i64,
        patch: WebhookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Webhook>;
    /// Deletes a webhook and its delivery log (`NotFound`, `Conflict(managed_by_operator)`).
    async fn delete_webhook(&self, id: i64) -> StoreResult<()>;
    /// The delivery log, newest first, optionally before a delivery id.
    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records a `webhook.test` event for one webhook and its delivery; returns the delivery id.
    async fn create_test_delivery(&self, webhook_id: i64, now: DateTime<Utc>) -> StoreResult<i64>;
    /// Queues a delivery of each event to every active webhook of its org that wants it; an
    /// event seen again adds nothing. Returns how many deliveries were added.
    async fn fan_out_deliveries(
        &self,
        events: &[OutboxEvent],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Claims up to `limit` deliveries due at `now` (of active webhooks other than `skip`,
    /// oldest due first) until `lease_until`: no one else claims them before then, and if no
    /// outcome is recorded by then they are due again. A delivery whose event cannot be read is
    /// marked failed instead of returned.
    async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[i64],
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Hands claimed deliveries back, due at `at` (only while the claim is still this one).
    async fn release_deliveries(
        &self,
        ids: &[i64],
        claimed_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records attempt outcomes (a 410 also switches its webhook off).
    async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Deliveries waiting for an attempt, and when the oldest of them was queued.
    async fn delivery_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
}

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

/// Email: the queue the mailer sends from, and the digests of messages members missed.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Room members who should hear of a new message by email if offline: everyone seated
    /// except the sender, with digest emails on.
    async fn digest_recipients(&self, room_id: i64, sender: Option<i64>) -> StoreResult<Vec<i64>>;
    /// Puts a message into these users' next digests (again: no change).
    async fn add_digest_items(
        &self,
        user_ids: &[i64],
        message_id: i64,
        room_id: i64,
        created_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Users whose oldest waiting message is from `cutoff` or before.
    async fn due_digests(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<Vec<i64>>;
    /// The user's address and up to `limit` of their waiting messages, oldest first; `None`
    /// when the user is gone.
    async fn digest_of(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Option<(String, Vec<DigestLine>)>>;
    /// Queues the digest email and removes the messages it covers, in one transaction; `false`
    /// (and nothing done) when some of them were already taken by another digest.
    async fn queue_digest(
        &self,
        user_id: i64,
        message_ids: &[i64],
        email: OutgoingEmail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Queues an email.
    async fn queue_email(&self, email: OutgoingEmail, now: DateTime<Utc>) -> StoreResult<i64>;
    /// Claims up to `limit` emails due at `now` until `lease_until` (as for webhook deliveries).
    async fn claim_due_emails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueEmail>>;
    /// Records how sending went (only while the claim `claimed_until` is still this one); a sent
    /// email's body is emptied.
    async fn record_email(
        &self,
        id: i64,
        claimed_until: DateTime<Utc>,
        result: EmailResult,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Emails waiting to be sent.
    async fn email_backlog(&self) -> StoreResult<i64>;
}

/// A presigned upload to record.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Its id (a UUIDv7).
    pub id: String,
    /// Who uploads it.
    pub owner_id: i64,
    /// Sanitised file name.
    pub filename: String,
    /// Declared MIME type.
    pub content_type: String,
    /// Declared size in bytes.
    pub size: i64,
    /// Where the bytes will be in object storage.
    pub object_key: String,
}

/// Uploads: what the API knows of the files clients put into object storage.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a presigned (pending) upload.
    async fn create_upload(&self, upload: NewUpload, now: DateTime<Utc>) -> StoreResult<Upload>;
    /// One upload.
    async fn upload(&self, id: &str) -> StoreResult<Option<Upload>>;
    /// Marks a pending upload ready until `expires_at` (a ready one stays as it is);
    /// `Conflict(upload_expired)` once expired.
    async fn complete_upload(
        &self,
        id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Upload>;
    /// The owner's uploads, newest first, optionally older than the upload `before`.
    async fn uploads_of(
        &self,
        owner_id: i64,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Upload>>;
    /// Whether the upload was posted in a room where the user has a seat.
    async fn upload_visible_to(&self, id: &str, user_id: i64) -> StoreResult<bool>;
    /// Ready uploads whose time is up at `now`.
    async fn expired_uploads(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>>;
    /// Pending uploads presigned before `cutoff` and never completed.
    async fn stale_uploads(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Upload>>;
    /// Marks ready uploads expired (their objects are gone).
    async fn mark_expired(&self, ids: &[String]) -> StoreResult<()>;
    /// Forgets pending uploads (their objects, if any, are gone).
    async fn delete_pending_uploads(&self, ids: &[String]) -> StoreResult<()>;
}

/// The whole storage interface, as services hold it (`Arc<dyn Store>`).
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + OrgStore
    + RoomStore
    + MessageStore
    + OutboxStore
    + WebhookStore
    + EmailStore
    + UploadStore
    + TenantStore
{
    /// Which engine is behind it.
    fn engine(&self) -> Engine;
    /// Applies the schema migrations that have not run yet.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the pools, waiting for connections in use.
    async fn close(&self);
}
