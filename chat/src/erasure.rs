//! The messages of deleted rooms. Deleting a room or an organization takes its rows, seats,
//! reactions and mentions in one short transaction and notes its rooms as erased; their
//! messages go afterwards, a batch per transaction, in a task of this process (and, should the
//! process stop first, in the worker's retention sweeps). A room of a million messages deleted
//! in one transaction held SQLite's only writer, and with it every post, for seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatboard_store::Store;

/// Messages deleted per transaction.
const ERASE_BATCH: u32 = 1_000;
/// The pause between two batches: other writers (SQLite has one connection for them) take
/// their turns.
const ERASE_PAUSE: Duration = Duration::from_millis(20);

/// Whether this process's purge task runs, and how often one was asked for.
#[derive(Default)]
pub(crate) struct Erasing {
    running: AtomicBool,
    asked: AtomicU64,
}

impl Erasing {
    /// Purges the erased rooms' messages in a task of its own; one task per process, which
    /// looks again if it was asked while it finished.
    pub(crate) fn start(self: &Arc<Self>, store: &Arc<dyn Store>) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let (erasing, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                let asked = erasing.asked.load(Ordering::SeqCst);
                let purged = purge_all(&store).await;
                if purged > 0 {
                    tracing::info!(messages = purged, "deleted rooms' messages purged");
                }
                erasing.running.store(false, Ordering::SeqCst);
                // Asked again after the last look: look once more, unless a new task does.
                if erasing.asked.load(Ordering::SeqCst) == asked
                    || erasing.running.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        });
    }
}

/// Deletes erased rooms' messages a batch at a time until none are left (or the database
/// fails: the worker's sweeps finish the job); returns how many went.
#[tracing::instrument(skip_all)]
async fn purge_all(store: &Arc<dyn Store>) -> u64 {
    let mut total = 0;
    loop {
        match store.purge_erased_messages(ERASE_BATCH).await {
            Ok(Some(n)) => total += n,
            Ok(None) => return total,
            Err(e) => {
                tracing::warn!(error = %e, "purging deleted rooms' messages failed; the worker's retention sweep retries");
                return total;
            }
        }
        tokio::time::sleep(ERASE_PAUSE).await;
    }
}
