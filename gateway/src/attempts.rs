//! How often one user may open WebSockets on this gateway. Each handshake reads the account,
//! every room's position and the user's room-mates, and each time a user's connections go from
//! none to one and back, their room-mates are told they came and went: opening and closing in a
//! loop, 16 at a time, kept the gateway's cores and the database busy and every room-mate's
//! socket full of presence frames. Attempts are counted per user, as REST requests are.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts between two sweeps of the users not seen for a while.
const SWEEP_EVERY: u64 = 1024;

/// Connection attempts per user: a minute's worth at once, then one at a time as the minute
/// refills.
pub(crate) struct ConnectAttempts {
    /// None: no limit.
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
    seen: AtomicU64,
}

impl ConnectAttempts {
    /// `per_minute` attempts per user (0: no limit).
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            seen: AtomicU64::new(0),
        }
    }

    /// Whether `user_id` may open another connection now (the attempt is counted).
    pub(crate) fn admit(&self, user_id: i64) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        // Users whose allowance is whole again take no memory.
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&user_id).is_ok()
    }
}
