//! The hub: this process's one subscription to the bus, fanned out to the connections that
//! follow each room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chatboard_core::bus::{Bus, BusError, BusEvent, Delivery};
use futures::StreamExt;
use tokio::sync::mpsc;

/// What a connection receives from the hub.
#[derive(Debug, Clone)]
pub enum Live {
    /// An event of the room.
    Event(Arc<BusEvent>),
    /// Events may have been lost on the way: catch up from the database.
    Resync,
}

/// Events a connection may have waiting before it counts as too slow.
pub const QUEUE: usize = 1024;

type Followers = HashMap<i64, Vec<(u64, mpsc::Sender<Live>)>>;

/// Connections by room.
pub struct Hub {
    rooms: Mutex<Followers>,
    next_id: Mutex<u64>,
}

/// A connection's place in the hub; leaving the room when dropped.
pub struct Following {
    hub: Arc<Hub>,
    room_id: i64,
    id: u64,
    /// The room's events, in bus order.
    pub events: mpsc::Receiver<Live>,
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut rooms = self
            .hub
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = rooms.get_mut(&self.room_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                rooms.remove(&self.room_id);
            }
        }
    }
}

impl Hub {
    /// Subscribes to the bus and starts dispatching.
    pub async fn start(bus: Arc<dyn Bus>) -> Result<Arc<Self>, BusError> {
        let hub = Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
        });
        let mut stream = bus.subscribe().await?;
        let dispatcher = Arc::downgrade(&hub);
        tokio::spawn(async move {
            while let Some(delivery) = stream.next().await {
                let Some(hub) = dispatcher.upgrade() else {
                    return;
                };
                hub.dispatch(delivery);
            }
            tracing::error!("bus subscription ended");
        });
        Ok(hub)
    }

    /// Follows a room from now on.
    pub fn follow(self: &Arc<Self>, room_id: i64) -> Following {
        let (sender, events) = mpsc::channel(QUEUE);
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(room_id)
            .or_default()
            .push((id, sender));
        Following {
            hub: self.clone(),
            room_id,
            id,
            events,
        }
    }

    fn dispatch(&self, delivery: Delivery) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        match delivery {
            Delivery::Event(event) => {
                let event = Arc::new(event);
                if let Some(list) = rooms.get_mut(&event.room()) {
                    // A follower whose queue is full is dropped from the room: its receiver
                    // then ends, and the connection closes as too slow.
                    list.retain(|(_, sender)| sender.try_send(Live::Event(event.clone())).is_ok());
                }
            }
            Delivery::Missed => {
                for list in rooms.values_mut() {
                    list.retain(|(_, sender)| sender.try_send(Live::Resync).is_ok());
                }
            }
        }
    }
}
