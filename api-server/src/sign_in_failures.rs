//! Failed password checks per account: past a budget an hour, the account's password is not
//! checked again until its hour is over. The per-address limits slow one client down; this
//! slows down guessing one account's password from many addresses at once.
//!
//! Accounts are counted by the email address a sign-in names, whether or not an account has
//! it, so that the refusal says nothing about which addresses have accounts. An attempt counts
//! from the moment it starts (concurrent guesses cannot all slip in before the first failure
//! is written down); a success forgets the account's failures, and an attempt that ends
//! without an answer on the password (no hashing slot, the client gone) is not counted.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Accounts followed at most; beyond it new ones go uncounted until hours end (the per-address
/// limits still hold), so that a spray of made-up addresses cannot grow memory without bound.
const ACCOUNTS_MAX: usize = 100_000;

/// While the map is full, the hours that ended are looked for at most this often (a look
/// scans every account under the lock).
const FULL_LOOK_EVERY: Duration = Duration::from_secs(1);

/// The hour over which failures count.
const WINDOW: Duration = Duration::from_secs(3600);

/// Failures of one account in its current hour.
#[derive(Debug, Clone, Copy)]
struct Hour {
    /// When the first attempt of the hour started.
    started: Instant,
    /// Attempts of the hour that failed.
    failed: u32,
    /// Attempts under way: they hold a place in the budget until they end.
    running: u32,
}

/// The failed sign-ins of one process's accounts.
pub struct SignInFailures {
    /// Failures an account may have in an hour.
    limit: u32,
    /// Keys accounts by a hash of their address: a fixed few bytes each, whatever is sent.
    hasher: RandomState,
    hours: Mutex<Hours>,
}

/// The accounts' hours, and when the ended ones were last looked for.
#[derive(Default)]
struct Hours {
    by_account: HashMap<u64, Hour>,
    looked: Option<Instant>,
}

/// One password check under way; dropped without an outcome, it is not counted.
#[must_use = "an attempt that is dropped is not counted"]
pub struct Attempt<'a> {
    failures: &'a SignInFailures,
    /// `None` when the account was not followed (the map was full).
    key: Option<u64>,
    settled: bool,
}

impl SignInFailures {
    /// Allows `per_hour` failures per account an hour; `None` (no limit) for 0.
    pub fn new(per_hour: u32) -> Option<Self> {
        (per_hour > 0).then(|| Self {
            limit: per_hour,
            hasher: RandomState::new(),
            hours: Mutex::new(Hours::default()),
        })
    }

    /// Starts a password check on the account of `email` (already normalized), or says how
    /// long until its hour of failures is over.
    pub fn begin(&self, email: &str) -> Result<Attempt<'_>, Duration> {
        let key = self.hasher.hash_one(email);
        let now = Instant::now();
        let mut guard = self.lock();
        let Hours { by_account, looked } = &mut *guard;
        if !by_account.contains_key(&key) && by_account.len() >= ACCOUNTS_MAX {
            if looked.is_none_or(|at| now.duration_since(at) >= FULL_LOOK_EVERY) {
                *looked = Some(now);
                by_account.retain(|_, hour| now.duration_since(hour.started) < WINDOW);
            }
            if by_account.len() >= ACCOUNTS_MAX {
                return Ok(self.attempt(None));
            }
        }
        let hour = by_account.entry(key).or_insert(Hour {
            started: now,
            failed: 0,
            running: 0,
        });
        let elapsed = now.duration_since(hour.started);
        if elapsed >= WINDOW {
            hour.started = now;
            hour.failed = 0;
        } else if hour.failed >= self.limit {
            return Err(WINDOW - elapsed);
        } else if hour.failed + hour.running >= self.limit {
            // Held by attempts under way, which may yet succeed or be given back: a moment.
            return Err(Duration::from_secs(1));
        }
        hour.running += 1;
        Ok(self.attempt(Some(key)))
    }

    /// Drops the hours that are over, so memory follows the accounts being tried.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.lock()
            .by_account
            .retain(|_, hour| now.duration_since(hour.started) < WINDOW);
    }

    fn attempt(&self, key: Option<u64>) -> Attempt<'_> {
        Attempt {
            failures: self,
            key,
            settled: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hours> {
        // The map holds counts only; one left half-updated by a panic is still usable.
        self.hours.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Attempt<'_> {
    /// The password was wrong (or the account unknown): the attempt counts as a failure.
    pub fn failed(mut self) {
        self.settled = true;
        if let Some(key) = self.key {
            if let Some(hour) = self.failures.lock().by_account.get_mut(&key) {
                hour.running = hour.running.saturating_sub(1);
                hour.failed += 1;
            }
        }
    }

    /// The password was right: the account's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        if let Some(key) = self.key {
            self.failures.lock().by_account.remove(&key);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(key) = self.key {
            if let Some(hour) = self.failures.lock().by_account.get_mut(&key) {
                hour.running = hour.running.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SignInFailures;

    #[test]
    fn failures_past_the_budget_are_refused_until_a_success_forgets_them() {
        let Some(failures) = SignInFailures::new(2) else {
            panic!("a budget of 2 is a limit");
        };
        failures.begin("a@x.io").map(|a| a.failed()).ok();
        failures.begin("a@x.io").map(|a| a.failed()).ok();
        assert!(failures.begin("a@x.io").is_err(), "third failure refused");
        assert!(
            failures.begin("b@x.io").is_ok(),
            "other accounts unaffected"
        );
        assert!(SignInFailures::new(0).is_none());
    }

    #[test]
    fn attempts_under_way_ask_for_a_moment_failures_for_the_hour() {
        let Some(failures) = SignInFailures::new(2) else {
            panic!("a budget of 2 is a limit");
        };
        let (Ok(first), Ok(second)) = (failures.begin("a@x.io"), failures.begin("a@x.io")) else {
            panic!("two attempts fit");
        };
        assert_eq!(failures.begin("a@x.io").err(), Some(Duration::from_secs(1)));
        first.failed();
        second.failed();
        let wait = failures.begin("a@x.io").err().unwrap_or_default();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
    }

    #[test]
    fn an_attempt_without_an_outcome_is_not_counted() {
        let Some(failures) = SignInFailures::new(1) else {
            panic!("a budget of 1 is a limit");
        };
        let running = failures.begin("a@x.io");
        assert!(running.is_ok());
        assert!(
            failures.begin("a@x.io").is_err(),
            "a running attempt holds the budget"
        );
        drop(running);
        let Ok(attempt) = failures.begin("a@x.io") else {
            panic!("the dropped attempt was given back");
        };
        attempt.succeeded();
        assert!(failures.begin("a@x.io").is_ok());
    }
}
