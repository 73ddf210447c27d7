//! Failing fast while the database is down. A request that finds the store unavailable has
//! waited for a pooled connection (up to `CHATBOARD_DB_ACQUIRE_TIMEOUT_MS`); for the next
//! `CHATBOARD_DB_OUTAGE_HOLD` seconds every other request answers `503` at once, with
//! `Retry-After`, instead of queueing behind the same wait. The first request after the hold
//! tries the database again and, if it is still down, starts another hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

/// Put on a response whose request found the store unavailable.
#[derive(Debug, Clone, Copy)]
pub struct StoreUnavailable;

/// The database outage this process knows of, if any.
pub struct DatabaseOutage {
    hold: Duration,
    /// Every request reads this, so it is an atomic: the end of the hold, in milliseconds
    /// since `epoch` (0: none).
    until_ms: AtomicU64,
    epoch: Instant,
    refused: IntCounter,
}

impl DatabaseOutage {
    /// After an unavailable store, requests are refused for `hold` (zero: never), each refusal
    /// counted in `refused`.
    pub fn new(hold: Duration, refused: IntCounter) -> Self {
        Self {
            hold,
            until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            refused,
        }
    }

    /// How long to tell a client to wait when the database is known to be down now; `None`
    /// lets the request through.
    pub fn refusal(&self) -> Option<Duration> {
        let until = self.until_ms.load(Ordering::Relaxed);
        let left = until.checked_sub(self.now_ms()).filter(|&ms| ms > 0)?;
        self.refused.inc();
        Some(Duration::from_millis(left))
    }

    /// A request found the store unavailable: hold the others off.
    pub fn noticed(&self) {
        if self.hold.is_zero() {
            return;
        }
        let hold_ms = u64::try_from(self.hold.as_millis()).unwrap_or(u64::MAX);
        let until = self.now_ms().saturating_add(hold_ms);
        self.until_ms.store(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
