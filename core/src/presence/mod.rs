//! Presence: who has at least one open WebSocket, anywhere.
//!
//! Each gateway process counts its own connections per user. On a single node that count is
//! the whole truth ([`LocalPresence`]). In the scale-out shape each process also keeps one key
//! per (user, process) in a NATS KV bucket whose entries expire unless refreshed
//! ([`NatsPresence`]), and mirrors the bucket, so any process can say who is online and notices
//! when someone comes or goes, even through another pod or because a pod died.

mod local;
mod nats;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use local::LocalPresence;
pub use nats::{NatsPresence, PresenceSettings};

/// A user came online (first connection anywhere) or went offline (last one closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    /// Who.
    pub user_id: i64,
    /// Online now (true) or offline.
    pub online: bool,
}

/// Changes waiting for a slow listener before it starts missing them.
const CHANGES_QUEUE: usize = 65_536;

/// Counts this process's connections and answers for everyone's.
#[async_trait]
pub trait Presence: Send + Sync {
    /// A connection of `user_id` opened in this process.
    async fn connected(&self, user_id: i64);
    /// One of its connections closed.
    async fn disconnected(&self, user_id: i64);
    /// Which of `user_ids` are online anywhere.
    fn online(&self, user_ids: &[i64]) -> Vec<i64>;
    /// Users coming and going from now on (a listener that lags skips ahead).
    fn changes(&self) -> broadcast::Receiver<PresenceChange>;
    /// Closes this process's connections' entries (graceful shutdown) so others see them go at
    /// once instead of when the entries expire.
    async fn withdraw(&self);
}
