//! A bounded pool for password hashing. Each argon2id hash holds 19 MiB for tens of
//! milliseconds; run on an unbounded blocking pool, a storm of sign-ins takes gigabytes and
//! every core. Here at most `concurrency` hashes run at once (about the core count); the
//! others wait their turn, and one that cannot start within `wait` is refused as busy, which the
//! API answers 503 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::password::{hash_password, verify_password, PasswordError};

/// Why a hash or a check did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every slot stayed taken for the whole wait: try again shortly.
    #[error("password hashing is busy")]
    Busy,
    /// The hash itself failed (practically only on invalid parameters).
    #[error(transparent)]
    Failed(#[from] PasswordError),
    /// The blocking task died (a panic in the hasher).
    #[error("password hashing task failed: {0}")]
    Aborted(String),
}

/// Password hashing and checking, at most `concurrency` at a time.
#[derive(Clone)]
pub struct PasswordHashing {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// Callers waiting for a slot now.
    waiting: Arc<AtomicUsize>,
}

impl PasswordHashing {
    /// A pool of `concurrency` slots (0: one per core); a caller waits up to `wait` for one.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            concurrency
        };
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            wait,
            waiting: Arc::default(),
        }
    }

    /// Hashes `password` (argon2id, random salt) into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(move || hash_password(&password))
            .await?
            .map_err(Into::into)
    }

    /// Checks `password` against `stored` (see [`verify_password`]: `None` costs as much).
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        self.run(move || verify_password(&password, stored.as_deref()))
            .await
    }

    /// How many callers are waiting for a slot at this moment.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `work` on a blocking thread once a slot is free, holding the slot until it ends.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let waiting = Waiting::begin(&self.waiting);
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await;
        drop(waiting);
        let slot = slot
            .map_err(|_| HashingError::Busy)?
            .map_err(|_| HashingError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| HashingError::Aborted(e.to_string()))
    }
}

/// One caller counted as waiting until dropped (also when its request is dropped meanwhile).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn begin(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_waits_for_a_slot_and_is_refused_past_its_wait() {
        let pool = PasswordHashing::new(1, Duration::from_millis(50));
        // The only slot is held until the test lets go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    let _ = held.recv();
                    "first"
                })
                .await
            }
        });
        started.await.unwrap();
        assert!(matches!(
            pool.run(|| "second").await,
            Err(HashingError::Busy)
        ));
        // A caller that starts waiting while the slot is held gets it once it is let go.
        let third = tokio::spawn({
            let pool = PasswordHashing {
                wait: Duration::from_secs(30),
                ..pool.clone()
            };
            async move { pool.run(|| "third").await }
        });
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), "first");
        assert_eq!(third.await.unwrap().unwrap(), "third");
    }

    #[tokio::test]
    async fn hashes_and_checks_go_through_the_pool() {
        let pool = PasswordHashing::new(0, Duration::from_secs(30));
        let phc = pool.hash("correct horse".into()).await.unwrap();
        assert!(pool
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!pool.verify("wrong horse".into(), Some(phc)).await.unwrap());
    }
}
