//! Group commit: writes that queue and go to the database together.
//!
//! Some writes come in bursts and each would otherwise pay for a transaction of its own: its
//! round trips, its locks and its WAL flush (a post takes its room's row lock until it commits,
//! so one room's posts are serial in the database and each waiting for its own flush caps a busy
//! room at one flush per message). Instead, each process queues them, and a writer task per busy
//! queue takes everything queued so far and stores it in one transaction. An idle queue's write
//! goes alone, through the single-write path, so nothing waits for company.
//!
//! Which writes share a queue is the job's choice ([`Batched::queue`]; for posts and reactions,
//! the store's `queue_of` their room, a room always in the same queue). A transaction may hold
//! writes to several rooms: over many quiet rooms that is what fills a batch. SQLite has one
//! writer for the whole database, so one queue. PostgreSQL could write rooms in parallel, and
//! takes `CHATBOARD_DB_WRITE_QUEUES` queues (one by default: on the project's two cores, four
//! queues committed nearly every post alone, and PostgreSQL spent a quarter to a third more CPU
//! per post than with one; BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::WritePool;
use crate::{StoreError, StoreResult};

/// Most writes one transaction takes; the rest wait for the next round.
pub(super) const MAX_BATCH: usize = 64;

/// A write that may be stored together with others of its queue.
#[async_trait]
pub(super) trait Batched: Sized + Send + Sync + 'static {
    /// What the writer answers for one job.
    type Output: Send + 'static;
    /// The queue the job waits in.
    fn queue(&self) -> i64;
    /// Stores one job alone.
    async fn write_one(write: &WritePool, job: &Self) -> StoreResult<Self::Output>;
    /// Stores several jobs, together where possible: one answer per job, in order.
    async fn write_batch(write: &WritePool, jobs: &[Self]) -> Vec<StoreResult<Self::Output>>;
}

/// Where a queued job's answer arrives.
pub(super) type Answer<T> = oneshot::Receiver<StoreResult<T>>;

/// Waits for a queued job's answer.
pub(super) async fn answer_of<T>(answer: Answer<T>) -> StoreResult<T> {
    answer
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
}

/// A job and where its answer goes.
struct Waiting<J: Batched> {
    job: J,
    reply: oneshot::Sender<StoreResult<J::Output>>,
}

/// Jobs waiting, by queue. A queue has an entry exactly while its writer task runs.
pub(super) struct WriteQueues<J: Batched>(Arc<Mutex<HashMap<i64, Vec<Waiting<J>>>>>);

impl<J: Batched> Default for WriteQueues<J> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<J: Batched> Clone for WriteQueues<J> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<J: Batched> WriteQueues<J> {
    /// Queues a job and waits for the writer's answer.
    pub(super) async fn submit(&self, write: &WritePool, job: J) -> StoreResult<J::Output> {
        answer_of(self.queue(write, job)).await
    }

    /// Queues a job, now, and returns where its answer will arrive ([`answer_of`] waits for
    /// it). A queue's jobs are written in the order they were queued.
    pub(super) fn queue(&self, write: &WritePool, job: J) -> Answer<J::Output> {
        let (reply, answer) = oneshot::channel();
        let queue = job.queue();
        let waiting = Waiting { job, reply };
        let start_writer = {
            let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.get_mut(&queue) {
                Some(jobs) => {
                    jobs.push(waiting);
                    false
                }
                None => {
                    queues.insert(queue, vec![waiting]);
                    true
                }
            }
        };
        if start_writer {
            // A task of its own, so no request's latency includes other requests' batches, and a
            // client that hangs up cannot strand the jobs queued behind it.
            tokio::spawn(self.clone().write_queue(write.clone(), queue));
        }
        answer
    }

    /// Stores the queue's jobs, round after round, until none are left.
    async fn write_queue(self, write: WritePool, queue: i64) {
        let _guard = WriterGuard {
            queues: self.clone(),
            queue,
        };
        loop {
            let batch: Vec<Waiting<J>> = {
                let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(jobs) = queues.get_mut(&queue) else {
                    return;
                };
                if jobs.is_empty() {
                    queues.remove(&queue);
                    return;
                }
                let take = jobs.len().min(MAX_BATCH);
                jobs.drain(..take).collect()
            };
            let (jobs, replies): (Vec<J>, Vec<_>) =
                batch.into_iter().map(|w| (w.job, w.reply)).unzip();
            let answers = match &jobs[..] {
                [job] => vec![J::write_one(&write, job).await],
                _ => J::write_batch(&write, &jobs).await,
            };
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
    }
}

/// Stores a batch's jobs one by one, each with its own answer: what a batch falls back to when
/// its transaction fails as a whole.
pub(super) async fn write_each<J: Batched>(
    write: &WritePool,
    jobs: &[J],
) -> Vec<StoreResult<J::Output>> {
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        answers.push(J::write_one(write, job).await);
    }
    answers
}

/// Should a writer task panic, its queue goes with it: the waiting jobs get an error instead of
/// waiting for ever, and the next job starts a new writer.
struct WriterGuard<J: Batched> {
    queues: WriteQueues<J>,
    queue: i64,
}

impl<J: Batched> Drop for WriterGuard<J> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queues = self.queues.0.lock().unwrap_or_else(PoisonError::into_inner);
            queues.remove(&self.queue);
        }
    }
}
