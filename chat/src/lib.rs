//! ChatBoard's application layer: each action a person (or the operator) can take, written
//! once, in the order every action follows:
//!
//! 1. **validate** the input ([`validate::Validator`]; every problem at once),
//! 2. **authorize** the actor (a room seat, an organization role; 404 for what they may not
//!    see, 403 for what they may see but not do),
//! 3. **limits** (posting rates, quotas the store checks under its locks),
//! 4. **store** the change (its outbox event in the same transaction),
//! 5. **announce** it on the bus for the WebSocket gateways ([`announce::Announcer`]).
//!
//! The REST handlers, the gateway's client frames and the operator's reconcilers call these
//! functions and only translate: request in, action, response out. [`Chat`] is cheap to clone.

mod access;
pub mod announce;
mod erasure;
pub mod error;
pub mod limits;
pub mod mentions;
mod messages;
mod orgs;
pub mod reactions;
mod rooms;
pub mod search;
mod tenants;
mod threads;
mod uploads;
pub mod validate;
mod webhooks;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatboard_core::bus::Bus;
use chatboard_core::config::settings::InviteSettings;
use chatboard_core::config::UploadQuotaSettings;
use chatboard_core::events::EventType;
use chatboard_core::metrics::MetricRegistry;
use chatboard_core::presence::Presence;
use chatboard_store::Store;

use crate::announce::Announcer;
use crate::limits::PostLimits;

pub use crate::error::{ChatError, ChatResult, FieldErrors};
pub use crate::messages::{MessageDraft, Posted, QueuedPost};
pub use crate::orgs::{CheckedInvite, InviteCreated, InviteDraft, ORG_NAME_MAX};
pub use crate::rooms::{Joined, RoomDraft};
pub use crate::tenants::AdminsApplied;
pub use crate::webhooks::{WebhookCreated, WebhookDraft, MAX_WEBHOOKS_PER_ORG};
pub use chatboard_store::OpenedThread;

/// What the actions need to know of the deployment.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Messages one user may post per minute on this process; 0 = no limit
    /// (`CHATBOARD_RATE_LIMIT_PER_USER`).
    pub posts_per_minute: u32,
    /// Lifetime of organization invitations and how many one user may send an hour
    /// (`CHATBOARD_INVITE_TTL`, `CHATBOARD_INVITES_PER_HOUR`).
    pub invites: InviteSettings,
    /// The platform's public base URL, for links in invitation emails (`CHATBOARD_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Webhook targets may be private addresses (`CHATBOARD_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private_webhooks: bool,
    /// Bytes of uploads per user and per organization (`CHATBOARD_UPLOAD_*_BYTES`).
    pub upload_quotas: UploadQuotaSettings,
    /// `@room` and `@here` reach nobody in a room of more members than this; 0 = no limit
    /// (`CHATBOARD_ROOM_MENTIONS_MAX_MEMBERS`).
    pub room_mentions_max_members: u32,
}

/// [`ChatSettings::room_mentions_max_members`] unless configured: a mention of a whole room
/// writes a row and an event (carrying the message) per member.
pub const ROOM_MENTIONS_MAX_MEMBERS: u32 = 1_000;

/// The most changes [`Chat::reannounce_recent`] announces again, seat losses aside.
pub const REANNOUNCE_MAX: u32 = 1000;
/// The most changes [`Chat::reannounce_recent`] reads looking for seat losses: a window busier
/// than this is not read further back (and a warning says so).
const REANNOUNCE_READ_MAX: usize = 100_000;

/// The application layer of one process: every action, over the store and the bus.
#[derive(Clone)]
pub struct Chat(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    announcer: Announcer,
    limits: PostLimits,
    settings: ChatSettings,
    /// Who is online, for `@here`; set once by a process that knows (see [`Chat::use_presence`]).
    presence: OnceLock<Arc<dyn Presence>>,
    /// Turns to search (see [`search::SearchSlots`]).
    search_slots: search::SearchSlots,
    /// The task purging deleted rooms' messages (see [`erasure`]).
    erasing: Arc<erasure::Erasing>,
}

impl Chat {
    /// The actions over `store`, announcing on `bus`; the announcement failure counter is
    /// registered in `registry` (the process's `/metrics`).
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        settings: ChatSettings,
        registry: &MetricRegistry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self(Arc::new(Inner {
            announcer: Announcer::new(bus, store.clone(), registry)?,
            limits: PostLimits::new(store.clone(), settings.posts_per_minute),
            store,
            settings,
            presence: OnceLock::new(),
            search_slots: search::SearchSlots::new(),
            erasing: Arc::default(),
        })))
    }

    /// Lets `@here` reach the members `presence` says are online. Without it (a process that
    /// follows nobody's connections) `@here` mentions nobody. Only the first call counts.
    pub fn use_presence(&self, presence: Arc<dyn Presence>) {
        let _ = self.0.presence.set(presence);
    }

    /// The store the actions write to (for reads that need no rule of their own).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The bus the actions announce on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        self.0.announcer.bus()
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &ChatSettings {
        &self.0.settings
    }

    /// Forgets rate-limit state of users idle long enough to be back at a full allowance (and
    /// of organizations with no such user left). Call it every minute or so.
    pub fn forget_idle(&self) {
        self.0.limits.forget_idle();
    }

    /// How many organizations' posting limiters this process holds (memory follows the
    /// organizations whose members posted lately).
    pub fn org_limiters(&self) -> usize {
        self.0.limits.org_limiters()
    }

    /// Announces again what was committed in the last `window`: a process that died between
    /// a commit and its announcement left those changes unannounced, and no socket would see
    /// them until the next one. Run at start-up. Already announced ones cost little: the bus
    /// drops repeats it saw within its de-duplication window (keep `window` inside it),
    /// gateways skip what they delivered, and a seat loss (never de-duplicated) costs each
    /// socket of its user one seat lookup. At most the newest [`REANNOUNCE_MAX`] changes, and
    /// every seat loss of the window besides: a missed one leaves a removed member's sockets
    /// following the room, and nothing else tells them (an `@room` in a large room alone
    /// writes a thousand changes in the meantime).
    #[tracing::instrument(skip(self))]
    pub async fn reannounce_recent(&self, window: Duration) -> ChatResult<usize> {
        let since = chrono::Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
        let newest = self.store().outbox_latest(REANNOUNCE_MAX).await?;
        let mut read = newest.len();
        // Further back, only the seat losses: the older changes are listed by kind and time
        // (no payloads read), and the losses among them read whole.
        let mut losses = Vec::new();
        let mut next = newest
            .first()
            .filter(|e| read >= REANNOUNCE_MAX as usize && e.created_at >= since)
            .map(|e| e.position);
        while let Some(before) = next {
            if read >= REANNOUNCE_READ_MAX {
                tracing::warn!(read, "the re-announcement window holds more changes than are read; older seat losses are not announced again");
                break;
            }
            let kinds = self
                .store()
                .outbox_kinds_before(before, REANNOUNCE_MAX)
                .await?;
            read += kinds.len();
            losses.extend(
                kinds
                    .iter()
                    .filter(|(_, kind, at)| {
                        *at >= since && kind.as_str() == EventType::MemberLeft.as_str()
                    })
                    .map(|(position, _, _)| *position),
            );
            next = kinds
                .last()
                .filter(|(_, _, at)| kinds.len() >= REANNOUNCE_MAX as usize && *at >= since)
                .map(|(position, _, _)| *position);
        }
        let mut again = Vec::with_capacity(losses.len() + newest.len());
        for position in losses.into_iter().rev() {
            let event = self.store().outbox_after(position - 1, 1).await?;
            again.extend(event.into_iter().filter(|e| e.position == position));
        }
        again.extend(newest.into_iter().filter(|e| e.created_at >= since));
        let mut announced = 0;
        for event in again {
            match event.event() {
                Ok(domain) => {
                    self.announcer().again(&domain).await;
                    announced += 1;
                }
                Err(e) => tracing::debug!(error = %e, kind = %event.event_type, "not re-announced"),
            }
        }
        Ok(announced)
    }

    fn announcer(&self) -> &Announcer {
        &self.0.announcer
    }

    /// Has the messages of deleted rooms purged in the background (see [`erasure`]).
    fn purge_erased_soon(&self) {
        self.0.erasing.start(&self.0.store);
    }
}
