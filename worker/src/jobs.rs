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

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chatboard_core::events::{DomainEvent, EventType, OutboxEvent};
use chatboard_core::model::Message;
use chatboard_core::presence::Presence;
use chatboard_store::{EmailStore, SearchStore, StoreError, WebhookStore};
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
        // Mentions of one message (an `@room` makes many) are looked at together.
        let mut mentions: Vec<(Message, Vec<i64>)> = Vec::new();
        let mut created: Vec<Message> = Vec::new();
        for event in events {
            if event.event_type != EventType::MessageCreated.as_str()
                && event.event_type != EventType::MessageMentioned.as_str()
            {
                continue;
            }
            match event.event() {
                Ok(DomainEvent::MessageCreated(message)) => created.push(message),
                Ok(DomainEvent::MessageMentioned(mentioned)) => {
                    match mentions
                        .iter_mut()
                        .find(|(m, _)| m.id == mentioned.message.id)
                    {
                        Some((_, users)) => users.push(mentioned.user_id),
                        None => mentions.push((mentioned.message, vec![mentioned.user_id])),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "unreadable message event; no digest")
                }
            }
        }
        // Indexed together, in one statement, before the digests' lookups.
        let keys: Vec<(i64, i64)> = created.iter().map(|m| (m.room, m.id)).collect();
        self.search.index_new_messages(&keys).await?;
        for message in &created {
            self.remember_for_digests(message).await?;
        }
        for (message, users) in mentions {
            self.remember_mentions(&message, &users).await?;
        }
        Ok(queued)
    }

    /// Puts a new message into the digests of the room's members who are offline now.
    async fn remember_for_digests(&self, message: &Message) -> Result<(), StoreError> {
        let recipients = self
            .email
            .digest_recipients(message.room, message.sender)
            .await?;
        if recipients.is_empty() {
            return Ok(());
        }
        let online: HashSet<i64> = self.presence.online(&recipients).into_iter().collect();
        let offline: Vec<i64> = recipients
            .into_iter()
            .filter(|u| !online.contains(u))
            .collect();
        self.email
            .add_digest_items(
                &offline,
                message.id,
                message.room,
                message.created_at,
                false,
            )
            .await
    }

    /// Puts a message into the digests of the members it mentions who are offline and take
    /// emails, marked so that their digests go out after the mention delay.
    async fn remember_mentions(&self, message: &Message, users: &[i64]) -> Result<(), StoreError> {
        let recipients: HashSet<i64> = self
            .email
            .digest_recipients(message.room, message.sender)
            .await?
            .into_iter()
            .collect();
        let wanted: Vec<i64> = users
            .iter()
            .copied()
            .filter(|u| recipients.contains(u))
            .collect();
        let online: HashSet<i64> = self.presence.online(&wanted).into_iter().collect();
        let offline: Vec<i64> = wanted.into_iter().filter(|u| !online.contains(u)).collect();
        self.email
            .add_digest_items(&offline, message.id, message.room, message.created_at, true)
            .await
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
