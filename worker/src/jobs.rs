//! The jobs an outbox event causes: queueing its webhook deliveries (the dispatcher sends them)
//! and, for a new message, adding it to the search index (PostgreSQL indexes messages after
//! their commit, many at once, to keep that work out of the posting transaction) and putting it
//! into the digests of room members who are offline (the digest writer emails them). Handling
//! an event again is harmless: a (webhook, event) pair is queued once, a message is indexed
//! once, and a message enters a member's digest once.
//!
//! The same handler runs behind the JetStream consumer (scale-out) and directly behind the
//! relay (single node, where it stands in for the queue: events are marked handed over only
//! after their jobs are done).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chatboard_core::events::{DomainEvent, EventType, OutboxEvent};
use chatboard_core::model::Message;
use chatboard_core::presence::Presence;
use chatboard_store::{DigestNote, EmailStore, SearchStore, StoreError, WebhookStore};
use chrono::Utc;
use tokio::sync::Notify;

use crate::queue::{JobHandler, JobQueue, QueueError};
use crate::service::WorkerMetrics;

/// Runs the jobs of outbox events.
pub struct EventJobs {
    webhooks: Arc<dyn WebhookStore>,
    email: Arc<dyn EmailStore>,
    search: Arc<dyn SearchStore>,
    presence: Arc<dyn Presence>,
    metrics: Arc<WorkerMetrics>,
    deliveries_queued: Arc<Notify>,
}

impl EventJobs {
    /// A handler queueing deliveries in `webhooks` and digest lines in `email` and indexing new
    /// messages in `search`; `presence` tells who is online; `deliveries_queued` is notified
    /// when webhook deliveries were added.
    pub fn new(
        webhooks: Arc<dyn WebhookStore>,
        email: Arc<dyn EmailStore>,
        search: Arc<dyn SearchStore>,
        presence: Arc<dyn Presence>,
        metrics: Arc<WorkerMetrics>,
        deliveries_queued: Arc<Notify>,
    ) -> Self {
        Self {
            webhooks,
            email,
            search,
            presence,
            metrics,
            deliveries_queued,
        }
    }

    /// Runs the jobs of these events; on an error none of them counts as done.
    #[tracing::instrument(skip_all, fields(events = events.len()), err(level = "warn"))]
    async fn run_and_count(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        let result = self.run(events).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        for event in events {
            self.metrics
                .jobs
                .with_label_values(&[event.event_type.as_str(), label])
                .inc();
        }
        if result? > 0 {
            self.deliveries_queued.notify_one();
        }
        Ok(())
    }

    /// Returns how many webhook deliveries were queued.
    async fn run(&self, events: &[OutboxEvent]) -> Result<u64, StoreError> {
        let queued = self.webhooks.fan_out_deliveries(events, Utc::now()).await?;
        // Mentions of one message (an `@room` makes many) are looked at together. Each user
        // and message keeps the id of the event that brought it: a digest notes an event once.
        let mut mentions: Vec<(Message, Vec<(i64, String)>)> = Vec::new();
        let mut created: Vec<(Message, String)> = Vec::new();
        for event in events {
            if event.event_type != EventType::MessageCreated.as_str()
                && event.event_type != EventType::MessageMentioned.as_str()
            {
                continue;
            }
            match event.event() {
                Ok(DomainEvent::MessageCreated(message)) => {
                    created.push((message, event.id.clone()))
                }
                Ok(DomainEvent::MessageMentioned(mentioned)) => {
                    let user = (mentioned.user_id, event.id.clone());
                    match mentions
                        .iter_mut()
                        .find(|(m, _)| m.id == mentioned.message.id)
                    {
                        Some((_, users)) => users.push(user),
                        None => mentions.push((mentioned.message, vec![user])),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "unreadable message event; no digest")
                }
            }
        }
        // Indexed together, in one statement, before the digests' lookups.
        let keys: Vec<(i64, i64)> = created.iter().map(|(m, _)| (m.room, m.id)).collect();
        self.search.index_new_messages(&keys).await?;
        let offline = self
            .offline_recipients(
                created
                    .iter()
                    .map(|(m, _)| m)
                    .chain(mentions.iter().map(|(m, _)| m)),
            )
            .await?;
        for (message, event) in &created {
            let notes: Vec<DigestNote> = offline
                .of(message, |_| true)
                .into_iter()
                .map(|user_id| DigestNote::new(event, user_id))
                .collect();
            self.email
                .add_digest_items(&notes, message.id, message.room, message.created_at, false)
                .await?;
        }
        for (message, mentioned) in &mentions {
            let offline = offline.of(message, |user| mentioned.iter().any(|(u, _)| *u == user));
            let notes: Vec<DigestNote> = mentioned
                .iter()
                .filter(|(user_id, _)| offline.contains(user_id))
                .map(|(user_id, event)| DigestNote::new(event, *user_id))
                .collect();
            self.email
                .add_digest_items(&notes, message.id, message.room, message.created_at, true)
                .await?;
        }
        Ok(queued)
    }

    /// The members of these messages' rooms who take digest emails and are offline now: one
    /// query and one presence lookup per room for the whole batch, however many messages each
    /// room has in it (a busy room's members would otherwise be read once per message).
    async fn offline_recipients(
        &self,
        messages: impl Iterator<Item = &Message>,
    ) -> Result<OfflineRecipients, StoreError> {
        let rooms: Vec<i64> = messages
            .map(|m| m.room)
            .collect::<HashSet<i64>>()
            .into_iter()
            .collect();
        if rooms.is_empty() {
            return Ok(OfflineRecipients::default());
        }
        let mut by_room = self.email.digest_recipients(&rooms).await?;
        for users in by_room.values_mut() {
            let online: HashSet<i64> = self.presence.online(users).into_iter().collect();
            users.retain(|u| !online.contains(u));
        }
        Ok(OfflineRecipients(by_room))
    }
}

/// Offline digest recipients by room, for one batch of events.
#[derive(Default)]
struct OfflineRecipients(HashMap<i64, Vec<i64>>);

impl OfflineRecipients {
    /// Those of `message`'s room that `wanted` accepts, its sender excepted.
    fn of(&self, message: &Message, wanted: impl Fn(i64) -> bool) -> Vec<i64> {
        self.0.get(&message.room).map_or_else(Vec::new, |users| {
            users
                .iter()
                .copied()
                .filter(|&u| Some(u) != message.sender && wanted(u))
                .collect()
        })
    }
}

#[async_trait]
impl JobHandler for EventJobs {
    async fn handle(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        self.run_and_count(events).await
    }
}

/// In-process "queue": enqueuing runs the jobs at once.
#[async_trait]
impl JobQueue for EventJobs {
    async fn enqueue(&self, events: &[OutboxEvent]) -> Result<(), QueueError> {
        self.run_and_count(events)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}
