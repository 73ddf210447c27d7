//! The event outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::events::OutboxEvent;

/// The event outbox, read by the relay.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Events after `position`, oldest first, at most `limit`.
    async fn outbox_after(&self, position: i64, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// The newest `limit` events, oldest first.
    async fn outbox_latest(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// The position, type and time of the newest `limit` events before `position`, newest
    /// first: what a look further back needs, without the events' payloads.
    async fn outbox_kinds_before(
        &self,
        position: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, DateTime<Utc>)>>;
    /// Events not yet handed to the job queue, oldest first, at most `limit`.
    async fn outbox_unpublished(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Records that these events (by position) were handed to the job queue.
    async fn mark_published(&self, positions: &[i64], now: DateTime<Utc>) -> StoreResult<()>;
    /// How many events wait to be handed over, and when the oldest of them happened.
    async fn outbox_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
    /// Deletes the events that happened before `before` once handed over and with no webhook
    /// delivery still to attempt (their delivery log entries go with them), `batch` per
    /// statement, oldest first; returns how many went. The record of which events were noted
    /// for digests before `before` goes too: no such event is left to be handed over again.
    async fn prune_outbox(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64>;
}
