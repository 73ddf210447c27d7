//! Announcing committed changes on the bus, for the WebSocket gateways: the last step of every
//! action that changes what sockets show or follow.
//!
//! A change is stored before it is announced, so a failed announcement only delays live
//! delivery (sockets catch up from the database when they resume): it is logged and counted
//! (`chatboard_bus_publish_failures_total`), never turned into an error for the action.

use std::sync::Arc;

use chatboard_core::bus::{Bus, BusEvent};
use chatboard_core::events::DomainEvent;
use chatboard_core::metrics::MetricRegistry;
use chatboard_store::{Seat, Store};
use prometheus::IntCounter;

/// Publishes bus events and counts the ones that could not be published.
#[derive(Clone)]
pub struct Announcer {
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    failures: IntCounter,
}

impl Announcer {
    /// An announcer on `bus`; its failure counter is registered in `registry`.
    pub fn new(
        bus: Arc<dyn Bus>,
        store: Arc<dyn Store>,
        registry: &MetricRegistry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            bus,
            store,
            failures: publish_failures(registry)?,
        })
    }

    /// The bus it publishes on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Publishes one event.
    #[tracing::instrument(level = "debug", skip_all, fields(room_id = event.room()))]
    pub async fn publish(&self, event: BusEvent) {
        if let Err(e) = self.bus.publish(&event).await {
            self.failures.inc();
            tracing::warn!(error = %e, room_id = event.room(), "bus publish failed");
        }
    }

    /// Publishes the live event a domain event makes, if it makes one.
    pub async fn domain(&self, event: &DomainEvent) {
        if let Some(live) = BusEvent::of(event) {
            self.publish(live).await;
        }
    }

    /// Announces that `user_id` now sits in `room`, with where the room stood when the seat
    /// was taken, so their multiplexed sockets follow it from there: messages posted between
    /// the seat's commit and this announcement reached no socket of theirs live, and the
    /// sockets read them from the database.
    pub async fn seated(&self, room: i64, user_id: i64) {
        let start = match self.store.seat_start(room, user_id).await {
            Ok(Some(start)) => start,
            Ok(None) => return, // no seat after all
            Err(e) => {
                tracing::warn!(error = %e, room, "reading the room's position failed; sockets pick the room up on reconnect");
                return;
            }
        };
        self.publish(BusEvent::MemberSeated {
            room,
            user_id,
            after: start.last_msg_id.unwrap_or(0),
            after_seq: Some(start.last_seq),
        })
        .await;
    }

    /// Announces new seats.
    pub async fn seats_gained(&self, seats: &[Seat]) {
        for seat in seats {
            self.seated(seat.room_id, seat.user_id).await;
        }
    }

    /// Announces that these seats are gone, so open sockets stop following those rooms.
    pub async fn seats_lost(&self, seats: &[Seat]) {
        for seat in seats {
            self.publish(BusEvent::MemberLeft {
                room: seat.room_id,
                user_id: seat.user_id,
            })
            .await;
        }
    }
}

/// Registers `chatboard_bus_publish_failures_total` (every process that runs actions exports
/// it) and returns it.
pub fn publish_failures(registry: &MetricRegistry) -> Result<IntCounter, prometheus::Error> {
    let failures = IntCounter::new(
        "chatboard_bus_publish_failures_total",
        "Committed changes whose announcement on the bus failed (live delivery delayed).",
    )?;
    registry.register(&failures)?;
    Ok(failures)
}

/// The seats of one user in these rooms.
pub fn seats_of(user_id: i64, rooms: &[i64]) -> Vec<Seat> {
    rooms
        .iter()
        .map(|&room_id| Seat { room_id, user_id })
        .collect()
}
