//! Whether the account a token names still exists. Tokens outlive nothing on their own: an
//! account removed from the database (by an operator, or a restore that lost it) would keep
//! acting until its token expired, and its writes would fail on foreign keys. Each process
//! remembers the accounts it has seen for [`SEEN_FOR`], so the check costs a lookup in memory
//! on almost every request and a query once a minute per active user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatboard_store::{StoreResult, UserStore};
use quick_cache::sync::Cache;

/// How long an account seen to exist is trusted without asking the database again: a removed
/// account's token stops working within this time.
pub const SEEN_FOR: Duration = Duration::from_secs(60);
/// Accounts remembered per process (the least recently used go first).
const REMEMBERED: usize = 100_000;

/// Accounts recently seen to exist.
pub struct KnownAccounts {
    users: Arc<dyn UserStore>,
    seen: Cache<i64, Instant>,
}

impl KnownAccounts {
    /// Looks accounts up in `users`.
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Self {
            users,
            seen: Cache::new(REMEMBERED),
        }
    }

    /// Whether `user_id` names an existing account.
    pub async fn exists(&self, user_id: i64) -> StoreResult<bool> {
        if let Some(at) = self.seen.get(&user_id) {
            if at.elapsed() < SEEN_FOR {
                return Ok(true);
            }
        }
        let exists = self.users.user_by_id(user_id).await?.is_some();
        if exists {
            self.seen.insert(user_id, Instant::now());
        } else {
            self.seen.remove(&user_id);
        }
        Ok(exists)
    }
}
