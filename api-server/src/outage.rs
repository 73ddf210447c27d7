//! Failing fast while the database is down. A request that finds the store unavailable has
//! waited for a pooled connection (up to `CHATBOARD_DB_ACQUIRE_TIMEOUT_MS`); for the next
//! `CHATBOARD_DB_OUTAGE_HOLD` seconds every other request answers `503` at once, with
//! `Retry-After`, instead of queueing behind the same wait. The first request after the hold
//! tries the database again and, if it is still down, starts another hold.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

/// Put on a response whose request found the store unavailable.
#[derive(Debug, Clone, Copy)]
pub struct StoreUnavailable;

/// The database outage this process knows of, if any.
pub struct DatabaseOutage {
    hold: Duration,
    until: Mutex<Option<Instant>>,
    refused: IntCounter,
}

impl DatabaseOutage {
    /// After an unavailable store, requests are refused for `hold` (zero: never), each refusal
    /// counted in `refused`.
    pub fn new(hold: Duration, refused: IntCounter) -> Self {
        Self {
            hold,
            until: Mutex::new(None),
            refused,
        }
    }

    /// How long to tell a client to wait when the database is known to be down now; `None`
    /// lets the request through.
    pub fn refusal(&self) -> Option<Duration> {
        let until = (*self.until.lock().unwrap_or_else(PoisonError::into_inner))?;
        let left = until.checked_duration_since(Instant::now())?;
        self.refused.inc();
        Some(left)
    }

    /// A request found the store unavailable: hold the others off.
    pub fn noticed(&self) {
        if self.hold.is_zero() {
            return;
        }
        *self.until.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + self.hold);
    }
}
