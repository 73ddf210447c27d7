//! Failed password checks: past a budget an hour, a password is not checked again until the
//! hour is over. The per-address request limits slow one client down; these slow down guessing
//! one account's password, from one address or from many at once.
//!
//! Failures are counted twice: per account and client address (the budget), and per account
//! from every address (five budgets). Past the first, that address is refused for the account;
//! past the second, every address is, save those that signed in to the account in the last 30
//! days: so one annoyed client cannot keep the owner out, and a flood from many addresses keeps
//! out only addresses the owner has not used.
//!
//! Accounts are counted by the email address a sign-in names, whether or not an account has
//! it, so that the refusal says nothing about which addresses have accounts. An attempt counts
//! from the moment it starts (concurrent guesses cannot all slip in before the first failure
//! is written down); a success forgets its own address's failures (the account's hour stands),
//! and an attempt that ends without an answer on the password (no hashing slot, the client
//! gone) is not counted.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Accounts (and as many account and address pairs) followed at most, so that a spray of
/// made-up addresses cannot grow memory without bound. Once full, a new one takes the place of
/// the one with the fewest failures among [`EVICTION_SAMPLE`] followed ones: a spray fills the
/// maps with one failure each, and went on to leave every account it had not reached
/// uncounted (guessed without limit from addresses enough); now an account being guessed
/// takes places from it, and keeps them while it has more failures than the spray's entries.
/// Accounts with known addresses are kept to as many too, the one whose last sign-in is oldest
/// making room for a new one.
const ACCOUNTS_MAX: usize = 100_000;

/// How many followed hours a full map looks at for the one to drop: a small cost per new
/// entry, and an entry with more failures than the spray's is kept.
const EVICTION_SAMPLE: usize = 32;

/// While a map is full, the hours that ended are looked for at most this often (a look scans
/// every entry under the lock).
const FULL_LOOK_EVERY: Duration = Duration::from_secs(1);

/// The hour over which failures count.
const WINDOW: Duration = Duration::from_secs(3600);

/// Failures an account may have from all addresses together, in budgets of one address.
const ACCOUNT_BUDGETS: u32 = 5;

/// How long an address that signed in to an account stays known to it.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Addresses known to one account at most: the latest to sign in.
const KNOWN_PER_ACCOUNT: usize = 8;

/// An account, by a hash of its address: a fixed few bytes each, whatever is sent.
type Account = u64;

/// An account tried from one client address.
type Pair = (Account, IpAddr);

/// Failures of one account (or pair) in its current hour.
#[derive(Debug, Clone, Copy)]
struct Hour {
    /// When the first attempt of the hour started.
    started: Instant,
    /// Attempts of the hour that failed.
    failed: u32,
    /// Attempts under way: they hold a place in the budget until they end.
    running: u32,
}

impl Hour {
    /// Starts a new hour if this one is over; then refuses, with how long to wait, when
    /// `limit` failures (or failures and attempts under way) are reached.
    fn check(&mut self, limit: u32, now: Instant) -> Result<(), Duration> {
        let elapsed = now.duration_since(self.started);
        if elapsed >= WINDOW {
            self.started = now;
            self.failed = 0;
        } else if self.failed >= limit {
            return Err(WINDOW - elapsed);
        } else if self.failed + self.running >= limit {
            // Held by attempts under way, which may yet succeed or be given back: a moment.
            return Err(Duration::from_secs(1));
        }
        Ok(())
    }

    fn is_over(&self, now: Instant) -> bool {
        now.duration_since(self.started) >= WINDOW
    }
}

/// The failed password checks of one process, for one kind of check.
pub struct SignInFailures {
    /// Failures an account may have from one address in an hour.
    limit: u32,
    hasher: RandomState,
    hours: Mutex<Hours>,
}

/// The hours, the known addresses, and when the ended ones were last looked for.
#[derive(Default)]
struct Hours {
    by_account: HashMap<Account, Hour>,
    by_pair: HashMap<Pair, Hour>,
    /// The addresses that last signed in to each account, and when, oldest first.
    known: HashMap<Account, Vec<(IpAddr, Instant)>>,
    looked: Option<Instant>,
}

impl Hours {
    /// Drops what is over (hours, addresses no longer known).
    fn forget_over(&mut self, now: Instant) {
        self.by_account.retain(|_, hour| !hour.is_over(now));
        self.by_pair.retain(|_, hour| !hour.is_over(now));
        self.known.retain(|_, addresses| {
            addresses.retain(|(_, at)| now.duration_since(*at) < KNOWN_FOR);
            !addresses.is_empty()
        });
    }

    /// Drops what is over, at most every [`FULL_LOOK_EVERY`]: called while a map is full.
    fn look_while_full(&mut self, now: Instant) {
        if self
            .looked
            .is_none_or(|at| now.duration_since(at) >= FULL_LOOK_EVERY)
        {
            self.looked = Some(now);
            self.forget_over(now);
        }
    }

    /// Notes that the pair's address signed in to its account at `now`: the account's latest
    /// [`KNOWN_PER_ACCOUNT`] are kept, and the accounts whose last sign-in is oldest give way
    /// once [`ACCOUNTS_MAX`] have some.
    fn remember(&mut self, (account, client): Pair, now: Instant) {
        if !self.known.contains_key(&account) && self.known.len() >= ACCOUNTS_MAX {
            self.look_while_full(now);
            if self.known.len() >= ACCOUNTS_MAX {
                let oldest = self
                    .known
                    .iter()
                    .min_by_key(|(_, addresses)| addresses.last().map(|(_, at)| *at))
                    .map(|(account, _)| *account);
                if let Some(oldest) = oldest {
                    self.known.remove(&oldest);
                }
            }
        }
        let addresses = self.known.entry(account).or_default();
        addresses.retain(|(ip, _)| *ip != client);
        addresses.push((client, now));
        if addresses.len() > KNOWN_PER_ACCOUNT {
            addresses.remove(0);
        }
    }

    /// Whether the pair's address signed in to its account within [`KNOWN_FOR`] of `now`.
    fn knows(&self, (account, client): Pair, now: Instant) -> bool {
        self.known.get(&account).is_some_and(|addresses| {
            addresses
                .iter()
                .any(|(ip, at)| *ip == client && now.duration_since(*at) < KNOWN_FOR)
        })
    }

    /// Makes room for the pair's (and its account's) hours where they are new and a map is
    /// full: the hours that ended go first, then the least spent hour of a few.
    fn make_room(&mut self, pair: &Pair, now: Instant) {
        if is_full(&self.by_pair, pair) || is_full(&self.by_account, &pair.0) {
            self.look_while_full(now);
        }
        if is_full(&self.by_pair, pair) {
            drop_least_spent(&mut self.by_pair);
        }
        if is_full(&self.by_account, &pair.0) {
            drop_least_spent(&mut self.by_account);
        }
    }
}

/// Whether `key` is new to `map` and the map has no room for it.
fn is_full<K: Hash + Eq, V>(map: &HashMap<K, V>, key: &K) -> bool {
    !map.contains_key(key) && map.len() >= ACCOUNTS_MAX
}

/// Drops, of the first [`EVICTION_SAMPLE`] hours `map` iterates (the front of its table, not a
/// random sample: cheap, and a spray's entries land there as any other's), the one with the
/// fewest failures, the oldest among equals; never one with attempts under way, whose end
/// settles on it. With every one of those busy, nothing is dropped and the map grows by one:
/// attempts under way are bounded by the hashing slots.
fn drop_least_spent<K: Hash + Eq + Copy>(map: &mut HashMap<K, Hour>) {
    let least = map
        .iter()
        .take(EVICTION_SAMPLE)
        .filter(|(_, hour)| hour.running == 0)
        .min_by_key(|(_, hour)| (hour.failed, hour.started))
        .map(|(key, _)| *key);
    if let Some(key) = least {
        map.remove(&key);
    }
}

/// One password check under way; dropped without an outcome, it is not counted.
#[must_use = "an attempt that is dropped is not counted"]
pub struct Attempt<'a> {
    failures: &'a SignInFailures,
    /// The account and the client's address.
    pair: Pair,
    /// Whether the account's hour holds a place for it.
    counted_on_account: bool,
    settled: bool,
}

impl SignInFailures {
    /// Allows `per_hour` failures per account and address an hour (five times that per
    /// account); `None` (no limit) for 0.
    pub fn new(per_hour: u32) -> Option<Self> {
        (per_hour > 0).then(|| Self {
            limit: per_hour,
            hasher: RandomState::new(),
            hours: Mutex::new(Hours::default()),
        })
    }

    /// Whether `client` signed in to the account `account` names in the last 30 days (as far
    /// as this process saw).
    pub fn knows(&self, account: &str, client: IpAddr) -> bool {
        let account = self.hasher.hash_one(account);
        self.lock().knows((account, client), Instant::now())
    }

    /// Starts a password check on the account `account` names (an email already normalized,
    /// or another key of one account) from the client address `client` (as the per-address
    /// limits count it), or says how long until the hour of failures in the way is over.
    /// `vouched`: the address is known to the account elsewhere (password changes count the
    /// addresses it signs in from), and is checked past the account's hour as its own are.
    pub fn begin(
        &self,
        account: &str,
        client: IpAddr,
        vouched: bool,
    ) -> Result<Attempt<'_>, Duration> {
        let account = self.hasher.hash_one(account);
        let pair = (account, client);
        let now = Instant::now();
        let mut guard = self.lock();
        let hours = &mut *guard;
        hours.make_room(&pair, now);
        let fresh = Hour {
            started: now,
            failed: 0,
            running: 0,
        };
        let known = vouched || hours.knows(pair, now);
        let pair_hour = hours.by_pair.entry(pair).or_insert(fresh);
        pair_hour.check(self.limit, now)?;
        let account_hour = hours.by_account.entry(account).or_insert(fresh);
        let account_limit = self.limit.saturating_mul(ACCOUNT_BUDGETS);
        let counted_on_account = match account_hour.check(account_limit, now) {
            Ok(()) => {
                account_hour.running += 1;
                true
            }
            // The owner's own addresses are still checked (each within its own budget).
            Err(_) if known => false,
            Err(wait) => return Err(wait),
        };
        if let Some(hour) = hours.by_pair.get_mut(&pair) {
            hour.running += 1;
        }
        Ok(self.attempt(pair, counted_on_account))
    }

    /// Drops the hours that are over and the addresses no longer known, so memory follows the
    /// accounts being tried.
    pub fn forget_idle(&self) {
        self.lock().forget_over(Instant::now());
    }

    fn attempt(&self, pair: Pair, counted_on_account: bool) -> Attempt<'_> {
        Attempt {
            failures: self,
            pair,
            counted_on_account,
            settled: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hours> {
        // The maps hold counts only; one left half-updated by a panic is still usable.
        self.hours.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Attempt<'_> {
    /// The password was wrong (or the account unknown): the attempt counts as a failure.
    pub fn failed(mut self) {
        self.settled = true;
        self.end(|hour| hour.failed += 1);
    }

    /// The password was right: the address's failures on the account are forgotten, and the
    /// address is known to the account from now on. The account's hour stands: forgetting it
    /// would tell whoever spent it, from addresses the account does not know, that the account
    /// exists and its owner just signed in (their next guess answered), with a new budget.
    pub fn succeeded(mut self) {
        self.settled = true;
        let pair = self.pair;
        // Its places given back, as any attempt's, and no failure counted.
        self.end(|_| {});
        let mut hours = self.failures.lock();
        hours.by_pair.remove(&pair);
        hours.remember(pair, Instant::now());
    }

    /// Gives back the places the attempt held, after `outcome` on each of its hours.
    fn end(&self, outcome: impl Fn(&mut Hour)) {
        let pair = self.pair;
        let mut hours = self.failures.lock();
        let settle = |hour: &mut Hour| {
            hour.running = hour.running.saturating_sub(1);
            outcome(hour);
        };
        if let Some(hour) = hours.by_pair.get_mut(&pair) {
            settle(hour);
        }
        if let Some(hour) = hours.by_account.get_mut(&pair.0) {
            if self.counted_on_account {
                settle(hour);
            } else {
                outcome(hour);
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.end(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::SignInFailures;

    fn from(n: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, n])
    }

    fn fail(failures: &SignInFailures, account: &str, n: u8) {
        if let Ok(attempt) = failures.begin(account, from(n), false) {
            attempt.failed();
        }
    }

    #[test]
    fn failures_past_the_budget_refuse_that_address_only() {
        let Some(failures) = SignInFailures::new(2) else {
            panic!("a budget of 2 is a limit");
        };
        fail(&failures, "a@x.io", 1);
        fail(&failures, "a@x.io", 1);
        assert!(
            failures.begin("a@x.io", from(1), false).is_err(),
            "third failure refused"
        );
        assert!(
            failures.begin("b@x.io", from(1), false).is_ok(),
            "other accounts unaffected"
        );
        let Ok(owner) = failures.begin("a@x.io", from(2), false) else {
            panic!("another address is still checked");
        };
        owner.succeeded();
        assert!(
            failures.begin("a@x.io", from(1), false).is_err(),
            "its failures stand"
        );
        let Ok(owner) = failures.begin("a@x.io", from(2), false) else {
            panic!("the owner's address is checked");
        };
        owner.succeeded();
        fail(&failures, "a@x.io", 2);
        fail(&failures, "a@x.io", 2);
        let Ok(owner) = failures.begin("a@x.io", from(3), false) else {
            panic!("an address of no failures is checked");
        };
        owner.succeeded();
        assert!(SignInFailures::new(0).is_none());
    }

    #[test]
    fn many_addresses_spend_the_accounts_hour_save_for_addresses_it_knows() {
        let Some(failures) = SignInFailures::new(1) else {
            panic!("a budget of 1 is a limit");
        };
        let Ok(owner) = failures.begin("a@x.io", from(100), false) else {
            panic!("a first attempt is checked");
        };
        owner.succeeded();
        for n in 1..=5 {
            fail(&failures, "a@x.io", n);
        }
        let wait = failures
            .begin("a@x.io", from(6), false)
            .err()
            .unwrap_or_default();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        // The owner's address is still checked, within its own budget.
        assert!(failures.begin("a@x.io", from(100), false).is_ok());
        fail(&failures, "a@x.io", 100);
        assert!(failures.begin("a@x.io", from(100), false).is_err());
        assert!(failures.begin("a@x.io", from(7), false).is_err());
    }

    /// The maps full of a spray of made-up addresses (one failure each, from many networks):
    /// an account guessed next is still counted, and the spray that goes on does not push it
    /// out. It used to go uncounted until the spray's hours ended.
    #[test]
    fn a_spray_that_fills_the_maps_neither_hides_nor_pushes_out_an_account() {
        let Some(failures) = SignInFailures::new(2) else {
            panic!("a budget of 2 is a limit");
        };
        let spray = |from_n: usize| {
            for n in from_n..from_n + super::ACCOUNTS_MAX {
                let client = IpAddr::from([203, 0, (n >> 8) as u8, n as u8]);
                if let Ok(attempt) = failures.begin(&format!("{n}@spray.io"), client, false) {
                    attempt.failed();
                }
            }
        };
        spray(0);
        // Two failures from each of five addresses spend the account's hour.
        for n in 1..=5 {
            fail(&failures, "a@x.io", n);
            fail(&failures, "a@x.io", n);
            assert!(
                failures.begin("a@x.io", from(n), false).is_err(),
                "address {n} refused after its budget"
            );
        }
        assert!(
            failures.begin("a@x.io", from(6), false).is_err(),
            "the account's hour spent"
        );
        spray(super::ACCOUNTS_MAX);
        assert!(
            failures.begin("a@x.io", from(7), false).is_err(),
            "still spent after another spray"
        );
        assert!(failures.begin("a@x.io", from(1), false).is_err());
    }

    /// A full map drops the least spent hour it looks at, the oldest among equals, and never
    /// one with an attempt under way (whose end settles on it): here the attempt's fresh hour
    /// has the fewest failures of all.
    #[test]
    fn the_hour_dropped_is_the_least_spent_idle_one() {
        use super::{drop_least_spent, Hour};
        let now = std::time::Instant::now();
        let hour = |failed, running, age| Hour {
            started: now - Duration::from_secs(age),
            failed,
            running,
        };
        let mut map = std::collections::HashMap::new();
        map.insert(0u64, hour(0, 1, 0));
        for key in 1..10u64 {
            map.insert(key, hour(2, 0, key));
        }
        map.insert(10, hour(1, 0, 5));
        map.insert(11, hour(1, 0, 50));
        drop_least_spent(&mut map);
        assert!(
            map.contains_key(&0),
            "the hour of the attempt under way stays"
        );
        assert!(!map.contains_key(&11), "the oldest of the least spent goes");
        assert_eq!(map.len(), 11);
    }

    #[test]
    fn attempts_under_way_ask_for_a_moment_failures_for_the_hour() {
        let Some(failures) = SignInFailures::new(2) else {
            panic!("a budget of 2 is a limit");
        };
        let (Ok(first), Ok(second)) = (
            failures.begin("a@x.io", from(1), false),
            failures.begin("a@x.io", from(1), false),
        ) else {
            panic!("two attempts fit");
        };
        let moment = Some(Duration::from_secs(1));
        assert_eq!(failures.begin("a@x.io", from(1), false).err(), moment);
        first.failed();
        second.failed();
        let wait = failures
            .begin("a@x.io", from(1), false)
            .err()
            .unwrap_or_default();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
    }

    #[test]
    fn an_attempt_without_an_outcome_is_not_counted() {
        let Some(failures) = SignInFailures::new(1) else {
            panic!("a budget of 1 is a limit");
        };
        let running = failures.begin("a@x.io", from(1), false);
        assert!(running.is_ok());
        assert!(
            failures.begin("a@x.io", from(1), false).is_err(),
            "a running attempt holds the budget"
        );
        drop(running);
        let Ok(attempt) = failures.begin("a@x.io", from(1), false) else {
            panic!("the dropped attempt was given back");
        };
        attempt.succeeded();
        assert!(failures.begin("a@x.io", from(1), false).is_ok());
    }
}
