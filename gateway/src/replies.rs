//! A connection's answers to its client frames, in the order the frames came.
//!
//! A message's `ack` waits for its commit, but the connection does not: it goes on reading
//! frames and delivering events meanwhile, so one socket's messages are stored in a pipeline
//! rather than one commit at a time (a connection waiting for each commit before reading its
//! next frame falls behind as soon as a commit takes longer than the gap between its
//! messages). Messages are queued for storing in the order they were read, so they are stored
//! in that order too (within a room), and announced in that order by tasks of their own;
//! answers that are ready at once (`pong`, `error`) wait behind the
//! commits before them, so the client reads every answer in the order of its frames.

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;

use chat::{ChatError, ChatResult, Posted};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

/// Client frames answered but not yet answered back, beyond which the connection stops
/// reading until the oldest is (its messages then wait in the socket, as TCP intends).
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// What a client frame is answered with.
pub(crate) enum Reply {
    /// A frame to send as it is (`pong`, `error`).
    Frame(serde_json::Value),
    /// How a message sent on the socket fared.
    Posted {
        /// Its room.
        room: i64,
        /// The sender's id for it, echoed in the `ack`.
        client_msg_id: Option<String>,
        /// The stored message, or why not (boxed: a message is much larger than a frame).
        result: Box<ChatResult<Posted>>,
    },
}

/// The answers due, oldest first.
#[derive(Default)]
pub(crate) struct Replies {
    queue: VecDeque<BoxFuture<'static, Reply>>,
    /// Resolves once the connection's latest message is announced.
    last_announced: Option<oneshot::Receiver<()>>,
}

impl Replies {
    /// Whether every frame read so far has been answered.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the connection may read another frame.
    pub(crate) fn has_room(&self) -> bool {
        self.queue.len() < MAX_IN_FLIGHT
    }

    /// Queues an answer that is ready now, behind those that are not.
    pub(crate) fn push_ready(&mut self, reply: Reply) {
        self.queue.push_back(std::future::ready(reply).boxed());
    }

    /// Queues the answer to a message whose commit (and announcement) `posted` awaits.
    ///
    /// `posted` runs as a task of its own, so a message is announced as soon as it is
    /// committed, not when its connection gets round to the answer (a client that stops
    /// reading would otherwise hold back its own messages from everyone). Each waits for the
    /// connection's previous message to be announced first, so they are announced in order.
    pub(crate) fn push_post(
        &mut self,
        room: i64,
        client_msg_id: Option<String>,
        posted: impl Future<Output = ChatResult<Posted>> + Send + 'static,
    ) {
        let previous = self.last_announced.take();
        let (announced, next) = oneshot::channel::<()>();
        self.last_announced = Some(next);
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                // An error means the previous task ended without saying so: go on all the same.
                let _ = previous.await;
            }
            let result = posted.await;
            let _ = announced.send(());
            result
        });
        self.queue.push_back(
            task.map(move |joined| Reply::Posted {
                room,
                client_msg_id,
                result: Box::new(joined.unwrap_or_else(|e| {
                    Err(ChatError::Internal(format!("posting task failed: {e}")))
                })),
            })
            .boxed(),
        );
    }

    /// The oldest answer, once it is ready; never resolves while there is none. Cancel-safe:
    /// dropped before it resolves, it leaves the answer queued.
    pub(crate) async fn next(&mut self) -> Reply {
        std::future::poll_fn(|cx| match self.queue.front_mut() {
            Some(oldest) => match oldest.as_mut().poll(cx) {
                Poll::Ready(reply) => {
                    self.queue.pop_front();
                    Poll::Ready(reply)
                }
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Pending,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// What a posting future does once "committed": it announces `label` in `announced`.
    fn post(
        label: u8,
        announced: &Arc<Mutex<Vec<u8>>>,
        committed: oneshot::Receiver<()>,
        told: Option<oneshot::Sender<()>>,
    ) -> impl Future<Output = ChatResult<Posted>> + Send + 'static {
        let announced = announced.clone();
        async move {
            let _ = committed.await;
            announced.lock().unwrap().push(label);
            if let Some(told) = told {
                let _ = told.send(());
            }
            Err(ChatError::Internal("not stored in this test".into()))
        }
    }

    /// A message is announced once committed even if its connection never takes the answer (a
    /// client that stops reading must not hold its messages back from everyone else).
    #[tokio::test]
    async fn a_message_is_announced_without_its_answer_being_taken() {
        let announced = Arc::new(Mutex::new(Vec::new()));
        let (commit, committed) = oneshot::channel();
        let (told, heard) = oneshot::channel();
        let mut replies = Replies::default();
        replies.push_post(1, None, post(1, &announced, committed, Some(told)));
        let _ = commit.send(());
        // Nobody calls `replies.next()`; the limit only ends the test should it never come.
        tokio::time::timeout(Duration::from_secs(20), heard)
            .await
            .expect("announced without the answer being taken")
            .expect("the posting task ran");
        assert_eq!(*announced.lock().unwrap(), [1]);
        assert!(!replies.is_empty(), "the answer still waits to be sent");
    }

    /// A connection's messages are announced in the order they were sent, even when a later
    /// one is committed first.
    #[tokio::test]
    async fn messages_are_announced_in_the_order_sent() {
        let announced = Arc::new(Mutex::new(Vec::new()));
        let (commit_first, first_committed) = oneshot::channel();
        let (commit_second, second_committed) = oneshot::channel();
        let (told, heard) = oneshot::channel();
        let mut replies = Replies::default();
        replies.push_post(1, None, post(1, &announced, first_committed, None));
        replies.push_post(1, None, post(2, &announced, second_committed, Some(told)));
        let _ = commit_second.send(());
        // The second is committed; it must wait for the first. Nothing may be announced
        // meanwhile, so this wait ends by its limit (a second announced now fails the test).
        let mut heard = heard;
        let early = tokio::time::timeout(Duration::from_millis(200), &mut heard).await;
        assert!(early.is_err(), "the second was announced before the first");
        let _ = commit_first.send(());
        tokio::time::timeout(Duration::from_secs(20), heard)
            .await
            .expect("the second is announced after the first")
            .expect("the posting task ran");
        assert_eq!(*announced.lock().unwrap(), [1, 2]);
        for _ in 0..2 {
            assert!(matches!(replies.next().await, Reply::Posted { .. }));
        }
    }
}
