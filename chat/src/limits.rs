//! Posting limits, counted per process like the other limits and applied to every post
//! whatever its entry point (REST or WebSocket):
//! - per user: `CHATBOARD_RATE_LIMIT_PER_USER` messages a minute (the same number as the REST
//!   request limit, which over REST trips first, so only the socket path meets this one);
//! - per organization (`rateLimitPerMinute` of an Organization resource): messages one member
//!   may post per minute in that organization.
//!
//! Posting is the hot path, so an organization's limit is looked up once per room and kept for
//! [`CACHE_TTL`]: a changed quota applies within that time.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use chatboard_store::{Store, StoreResult};

use crate::error::{ChatError, ChatResult};

/// How long a room's organization limit is trusted before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Rooms remembered before stale entries are dropped.
const ROOMS_KEPT: usize = 10_000;

/// A room's organization and its limit (`None`: no limit).
type RoomLimit = Option<(i64, u32)>;
/// An organization's limit and the limiter counting its members' posts.
type OrgLimiter = (u32, Arc<DefaultKeyedRateLimiter<i64>>);

/// Per-organization posting limits of one process.
struct OrgRateLimits {
    store: Arc<dyn Store>,
    rooms: Mutex<HashMap<i64, (Instant, RoomLimit)>>,
    // One limiter per organization, keyed by member; rebuilt when the quota changes.
    orgs: Mutex<HashMap<i64, OrgLimiter>>,
}

impl OrgRateLimits {
    /// Limits read from `store`.
    fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            rooms: Mutex::default(),
            orgs: Mutex::default(),
        }
    }

    /// Counts one post by `user_id` in `room_id`: `Ok(None)` when allowed, `Ok(Some(wait))`
    /// when the member is over their organization's limit and may post again after `wait`.
    async fn check_post(&self, room_id: i64, user_id: i64) -> StoreResult<Option<Duration>> {
        let Some((org_id, per_minute)) = self.room_limit(room_id).await? else {
            return Ok(None);
        };
        let limiter = {
            let mut orgs = self.lock_orgs();
            match orgs.get(&org_id) {
                Some((quota, limiter)) if *quota == per_minute => limiter.clone(),
                _ => {
                    let Some(n) = NonZeroU32::new(per_minute) else {
                        return Ok(None);
                    };
                    let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(n)));
                    orgs.insert(org_id, (per_minute, limiter.clone()));
                    limiter
                }
            }
        };
        Ok(limiter
            .check_key(&user_id)
            .err()
            .map(|not_until| not_until.wait_time_from(limiter.clock().now())))
    }

    fn lock_orgs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, OrgLimiter>> {
        self.orgs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops members back at a full allowance, then organizations with none left.
    fn forget_idle(&self) {
        self.lock_orgs().retain(|_, (_, limiter)| {
            limiter.retain_recent();
            !limiter.is_empty()
        });
    }

    async fn room_limit(&self, room_id: i64) -> StoreResult<RoomLimit> {
        let now = Instant::now();
        {
            let rooms = self
                .rooms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, limit)) = rooms.get(&room_id) {
                if now.duration_since(*at) < CACHE_TTL {
                    return Ok(*limit);
                }
            }
        }
        let limit = self
            .store
            .room_rate_limit(room_id)
            .await?
            .and_then(|(org, per_minute)| Some((org, u32::try_from(per_minute?).ok()?)));
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if rooms.len() >= ROOMS_KEPT {
            rooms.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
        }
        rooms.insert(room_id, (now, limit));
        Ok(limit)
    }
}

/// How often one user's typing state in one room is passed on: one "started" per interval
/// while typing on, a few more each after a "stopped" (see [`TypingThrottle`]). Typing frames are advice to other clients; a client sending them
/// twenty times a second over sixteen sockets into a large room would fan out unbounded.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// Both posting limits of one process, and the typing throttle.
pub struct PostLimits {
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    orgs: OrgRateLimits,
    typing: TypingThrottle,
}

impl PostLimits {
    /// `per_user_per_minute` posts a minute per user (0: no limit), and the organizations'
    /// limits as `store` has them.
    pub fn new(store: Arc<dyn Store>, per_user_per_minute: u32) -> Self {
        Self {
            per_user: NonZeroU32::new(per_user_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            orgs: OrgRateLimits::new(store),
            typing: TypingThrottle::default(),
        }
    }

    /// Whether a typing change of `user_id` in `room_id` is passed on now (see
    /// [`TypingThrottle`]).
    pub fn typing_allowed(&self, user_id: i64, room_id: i64, is_typing: bool) -> bool {
        self.typing.allowed(user_id, room_id, is_typing)
    }

    /// Counts one post by `user_id` in `room_id`; `RateLimited` when over either limit.
    pub async fn check(&self, room_id: i64, user_id: i64) -> ChatResult<()> {
        if let Some(limiter) = &self.per_user {
            if let Err(not_until) = limiter.check_key(&user_id) {
                return Err(ChatError::RateLimited {
                    retry_after: not_until.wait_time_from(limiter.clock().now()),
                    detail: "You are posting faster than this server allows.",
                });
            }
        }
        if let Some(wait) = self.orgs.check_post(room_id, user_id).await? {
            return Err(ChatError::RateLimited {
                retry_after: wait,
                detail: "Your organization allows fewer messages a minute.",
            });
        }
        Ok(())
    }

    /// Forgets users whose buckets are full again, and organizations none of whose members
    /// posted lately, so memory follows active posters only.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
        }
        self.typing.forget_idle();
        self.orgs.forget_idle();
    }

    /// Organization limiters held now (for tests of the pruning).
    pub fn org_limiters(&self) -> usize {
        self.orgs.lock_orgs().len()
    }
}

/// Which typing changes are passed on: a "started" once per [`TYPING_INTERVAL`] while the user
/// is typing, and again after a "stopped" up to [`TYPING_STARTS_PER_INTERVAL`] times in an
/// interval (someone sending a message and typing the next one at once is typing again); a
/// "stopped" only after a "started" that was passed on. So a "stopped" is never dropped while
/// others were last told the user is typing (they would see it for good), and a client flipping
/// between the two cannot fan out more than twice that many events per interval.
#[derive(Default)]
pub struct TypingThrottle {
    /// Per (user, room): what was passed on lately.
    last: Mutex<HashMap<(i64, i64), Typist>>,
}

/// "started" passed on per user and room in one [`TYPING_INTERVAL`], each after a "stopped".
pub const TYPING_STARTS_PER_INTERVAL: u8 = 3;

/// What a user's typing in a room last passed on.
#[derive(Clone, Copy)]
struct Typist {
    /// When the interval began: at a "started" passed on after the previous interval ended.
    since: Instant,
    /// The "started" passed on since then.
    starts: u8,
    /// Whether the last change passed on was "started".
    typing: bool,
}

impl TypingThrottle {
    /// Whether this change of `user_id` in `room_id` is passed on now; counts it if so.
    pub fn allowed(&self, user_id: i64, room_id: i64, is_typing: bool) -> bool {
        let now = Instant::now();
        let mut last = self.lock();
        let entry = last.get(&(user_id, room_id)).copied();
        let next = match (is_typing, entry) {
            (true, Some(t)) if now.duration_since(t.since) < TYPING_INTERVAL => {
                (!t.typing && t.starts < TYPING_STARTS_PER_INTERVAL).then_some(Typist {
                    starts: t.starts + 1,
                    typing: true,
                    ..t
                })
            }
            (true, _) => Some(Typist {
                since: now,
                starts: 1,
                typing: true,
            }),
            (false, Some(t)) => t.typing.then_some(Typist { typing: false, ..t }),
            // A "stopped" first: no "started" to keep apart from.
            (false, None) => Some(Typist {
                since: now.checked_sub(TYPING_INTERVAL).unwrap_or(now),
                starts: 0,
                typing: false,
            }),
        };
        match next {
            Some(typist) => {
                last.insert((user_id, room_id), typist);
                true
            }
            None => false,
        }
    }

    /// Forgets users who stopped typing, or started longer than an interval ago (a "stopped"
    /// from them is then passed on once more, which is harmless).
    fn forget_idle(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|_, t| t.typing && now.duration_since(t.since) < TYPING_INTERVAL);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, i64), Typist>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
