//! The in-process bus of the single-node shape: a broadcast channel.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::{Bus, BusError, BusEvent, BusStream, Delivery};

/// Events a subscriber may fall behind by before it is told it missed some.
const CAPACITY: usize = 16 * 1024;

/// De-duplication keys remembered, as JetStream remembers them for its window.
const DEDUP_MEMORY: usize = 4096;

/// Every subscriber sees every event, in publish order.
pub struct LocalBus {
    sender: broadcast::Sender<BusEvent>,
    recent: Mutex<RecentKeys>,
}

/// The last [`DEDUP_MEMORY`] de-duplication keys, oldest first.
#[derive(Default)]
struct RecentKeys {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl RecentKeys {
    /// Remembers `key`; false if it was already known.
    fn admit(&mut self, key: String) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > DEDUP_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        true
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl LocalBus {
    /// A bus whose subscribers may fall `capacity` events behind before missing some.
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            recent: Mutex::new(RecentKeys::default()),
        }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        // The same change published twice is delivered once, as on NATS.
        if let Some(key) = event.dedup_key() {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if !recent.admit(key) {
                return Ok(());
            }
        }
        // No subscriber (no socket open) is not an error: nobody is listening.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<BusStream, BusError> {
        let stream = BroadcastStream::new(self.sender.subscribe()).map(|item| match item {
            Ok(event) => Delivery::Event(event),
            Err(BroadcastStreamRecvError::Lagged(_)) => Delivery::Missed,
        });
        Ok(Box::pin(stream))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
