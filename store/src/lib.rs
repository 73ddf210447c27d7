//! The storage interface every service uses, with PostgreSQL and SQLite implementations.
//!
//! The traits speak in domain terms, one per area (a file each, mirroring `sql/`); rules that
//! must hold under concurrency (unique emails, one open invitation per address, never losing the
//! last admin, single-use refresh tokens) are enforced inside the store's transactions, not by
//! callers. A service holds the narrow trait it needs (`Arc<dyn WebhookStore>`, ...), upcast from
//! the whole [`Store`].

mod connect;
mod email;
mod error;
mod mentions;
mod messages;
mod orgs;
mod outbox;
mod reactions;
mod rooms;
mod search;
mod sessions;
mod sql;
mod sqlite_connections;
mod sqlite_direct_writer;
mod tenants;
mod threads;
mod uploads;
mod users;
mod wal_checkpoint;
mod webhooks;

use async_trait::async_trait;

pub use connect::{
    connect, connect_with, connect_with_timeout, open, search_concurrency, Engine, OpenError,
};
pub use email::{
    DigestLine, DigestNote, DigestRecipient, DueEmail, EmailKind, EmailResult, EmailStore,
    OutgoingEmail, QueuedDigest,
};
pub use error::{StoreError, StoreResult};
pub use mentions::MentionStore;
pub use messages::{
    FileAttachment, Mentioned, MessageStore, NewMessage, PageCursor, PageVersion, QueuedMessage,
    Timeline,
};
pub use orgs::{Departure, JoinedOrg, NewInvite, OrgStore};
pub use outbox::OutboxStore;
pub use reactions::{ReactionOutcome, ReactionStore};
pub use rooms::{
    JoinVia, NewRoom, ReadMark, RoomAccess, RoomPatch, RoomPosition, RoomStore, Seat, SeatStart,
};
pub use search::{
    search_fold, MessageSearch, RoomLookup, SearchHit, SearchStore, SearchTerm, SearchTerms,
    SEARCH_CANDIDATES, SEARCH_PER_ROOM,
};
pub use sessions::{RefreshOutcome, SessionStore};
pub use tenants::{
    AppliedAdmins, AppliedOrg, AppliedWebhook, ManagedOrg, ManagedOrgRef, ManagedWebhook,
    SpecAdmin, TenantStore,
};
pub use threads::{FollowedThread, OpenedThread, ThreadFollow, ThreadStore};
pub use uploads::{
    pending_since, NewUpload, OrgCharge, QuotaExceeded, UploadCursor, UploadQuota, UploadStore,
    PENDING_UPLOAD_LIFETIME,
};
pub use users::{NewUser, ProfilePatch, UserStore};
pub use webhooks::{
    AttemptOutcome, AttemptResult, DueDelivery, NewWebhook, WebhookPatch, WebhookStore,
    MAX_WEBHOOKS_PER_ORG,
};

/// The whole storage interface, as services hold it (`Arc<dyn Store>`).
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + OrgStore
    + RoomStore
    + MessageStore
    + ThreadStore
    + ReactionStore
    + MentionStore
    + SearchStore
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
