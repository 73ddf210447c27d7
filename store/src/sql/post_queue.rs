//! Group commit of posts.
//!
//! A post takes its room's row lock until its commit (that is what keeps ids in commit order
//! within a room), so one room's posts are serial in the database, and each one waiting for its
//! own WAL flush caps a busy room at one flush per message. Instead, each process queues posts
//! and a writer task per busy queue takes everything queued so far and stores it in one
//! transaction: one lock, one flush for the lot. An idle queue's post goes alone, through the
//! single-post path, so nothing waits for company.
//!
//! Which posts share a queue is the engine's choice (`queue_of`): PostgreSQL writes rooms in
//! parallel, so a few queues with a room always in the same one (a transaction may hold posts to
//! several rooms: over many quiet rooms that is what fills a batch); SQLite has one writer for
//! the whole database, so one queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{insert_batch, insert_message, queue_of, Pool};
use crate::{NewMessage, StoreError, StoreResult};
use chatboard_core::model::Message;

/// One post waiting for its room's writer.
pub(super) struct PendingPost {
    pub(super) msg: NewMessage,
    pub(super) now: DateTime<Utc>,
    reply: oneshot::Sender<StoreResult<Option<Message>>>,
}

/// Most posts one transaction takes; the rest wait for the next round.
const MAX_BATCH: usize = 64;

/// Posts waiting, by queue (see `queue_of`). A queue has an entry exactly while its writer task
/// runs.
#[derive(Default, Clone)]
pub(super) struct PostQueues(Arc<Mutex<HashMap<i64, Vec<PendingPost>>>>);

impl PostQueues {
    /// Queues a post and waits for the writer's answer: the stored message, or `None` when the
    /// sender has no seat or already used the `client_msg_id`.
    pub(super) async fn submit(
        &self,
        write: &Pool,
        msg: &NewMessage,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let (reply, answer) = oneshot::channel();
        let post = PendingPost {
            msg: msg.clone(),
            now,
            reply,
        };
        let queue = queue_of(msg.room_id);
        let start_writer = {
            let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.get_mut(&queue) {
                Some(waiting) => {
                    waiting.push(post);
                    false
                }
                None => {
                    queues.insert(queue, vec![post]);
                    true
                }
            }
        };
        if start_writer {
            // A task of its own, so no request's latency includes other requests' batches, and a
            // client that hangs up cannot strand the posts queued behind it.
            tokio::spawn(self.clone().write_queue(write.clone(), queue));
        }
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// Stores the queue's posts, round after round, until none are left.
    async fn write_queue(self, write: Pool, queue: i64) {
        let _guard = WriterGuard {
            queues: self.clone(),
            queue,
        };
        loop {
            let batch: Vec<PendingPost> = {
                let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(waiting) = queues.get_mut(&queue) else {
                    return;
                };
                if waiting.is_empty() {
                    queues.remove(&queue);
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            if let [post] = &batch[..] {
                let stored = insert_message(&write, &post.msg, post.now).await;
                if let Some(post) = batch.into_iter().next() {
                    let _ = post.reply.send(stored);
                }
                continue;
            }
            let answers = insert_batch(&write, &batch).await;
            for (post, answer) in batch.into_iter().zip(answers) {
                let _ = post.reply.send(answer);
            }
        }
    }
}

/// Stores a batch's posts one by one, each with its own answer.
pub(super) async fn insert_each(
    write: &Pool,
    batch: &[PendingPost],
) -> Vec<StoreResult<Option<Message>>> {
    let mut answers = Vec::with_capacity(batch.len());
    for post in batch {
        answers.push(insert_message(write, &post.msg, post.now).await);
    }
    answers
}

/// Should a writer task panic, its queue goes with it: the waiting posts get an error instead of
/// waiting for ever, and the next post starts a new writer.
struct WriterGuard {
    queues: PostQueues,
    queue: i64,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queues = self.queues.0.lock().unwrap_or_else(PoisonError::into_inner);
            queues.remove(&self.queue);
        }
    }
}
