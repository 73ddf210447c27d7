//! Presence on a single node: the process's own connection counts are everything.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Presence, PresenceChange, CHANGES_QUEUE};

/// Connection counts per user, in memory.
pub struct LocalPresence {
    counts: Mutex<HashMap<i64, usize>>,
    changes: broadcast::Sender<PresenceChange>,
}

impl Default for LocalPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalPresence {
    /// Nobody online yet.
    pub fn new() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            changes: broadcast::channel(CHANGES_QUEUE).0,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connected(&self, user_id: i64) {
        let first = {
            let mut counts = self.counts();
            let count = counts.entry(user_id).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            // Nobody listening is fine.
            let _ = self.changes.send(PresenceChange {
                user_id,
                online: true,
            });
        }
    }

    async fn disconnected(&self, user_id: i64) {
        let last = {
            let mut counts = self.counts();
            match counts.get_mut(&user_id) {
                Some(1) => {
                    counts.remove(&user_id);
                    true
                }
                Some(count) => {
                    *count -= 1;
                    false
                }
                None => false,
            }
        };
        if last {
            let _ = self.changes.send(PresenceChange {
                user_id,
                online: false,
            });
        }
    }

    fn online(&self, user_ids: &[i64]) -> Vec<i64> {
        let counts = self.counts();
        user_ids
            .iter()
            .copied()
            .filter(|id| counts.contains_key(id))
            .collect()
    }

    fn changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }

    async fn withdraw(&self) {}
}
