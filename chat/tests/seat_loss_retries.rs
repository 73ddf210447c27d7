//! A seat loss or a new seat the bus refuses is announced again in the background: the loss's
//! announcement is the only thing that stops a removed member's open sockets, the seat's the
//! only thing that makes them follow a room.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat::announce::Announcer;
use chatboard_core::bus::{Bus, BusError, BusEvent, BusStream, Delivery, LocalBus};
use chatboard_core::metrics::MetricRegistry;
use chatboard_store::Seat;
use futures::StreamExt;

/// The in-process bus, refusing its first `refusals` publishes.
struct Flaky {
    inner: LocalBus,
    refusals: AtomicUsize,
}

#[async_trait]
impl Bus for Flaky {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            return Err(BusError::Unavailable("refused by the test".into()));
        }
        self.inner.publish(event).await
    }
    async fn subscribe(&self) -> Result<BusStream, BusError> {
        self.inner.subscribe().await
    }
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
}

/// An announcer on a bus that refuses its first two publishes, and what the bus carries.
async fn refusing_twice() -> (Arc<Flaky>, BusStream, Announcer) {
    let store = chatboard_store::connect("sqlite::memory:", 1)
        .await
        .unwrap();
    let bus = Arc::new(Flaky {
        inner: LocalBus::default(),
        refusals: AtomicUsize::new(2),
    });
    let heard = bus.subscribe().await.unwrap();
    let registry = MetricRegistry::new();
    let announcer = Announcer::new(bus.clone(), store, &registry).unwrap();
    (bus, heard, announcer)
}

#[tokio::test]
async fn a_refused_seat_loss_is_announced_again() {
    let (bus, mut heard, announcer) = refusing_twice().await;
    // The retries' waits pass at once on the test's clock.
    tokio::time::pause();
    announcer
        .seats_lost(&[Seat {
            room_id: 7,
            user_id: 3,
        }])
        .await;
    let delivery = tokio::time::timeout(Duration::from_secs(120), heard.next())
        .await
        .expect("announced within the retries")
        .unwrap();
    match delivery {
        Delivery::Event(BusEvent::MemberLeft { room, user_id, .. }) => {
            assert_eq!((room, user_id), (7, 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bus.refusals.load(Ordering::SeqCst),
        0,
        "refused twice first"
    );
}

/// A room's first seats announced while the bus refused: the member's open sockets never
/// followed the room until they reconnected.
#[tokio::test]
async fn a_refused_seat_is_announced_again() {
    let (bus, mut heard, announcer) = refusing_twice().await;
    tokio::time::pause();
    announcer.seated_in_new_room(7, &[3]).await;
    let delivery = tokio::time::timeout(Duration::from_secs(120), heard.next())
        .await
        .expect("announced within the retries")
        .unwrap();
    match delivery {
        Delivery::Event(BusEvent::MemberSeated { room, user_id, .. }) => {
            assert_eq!((room, user_id), (7, 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(bus.refusals.load(Ordering::SeqCst), 0);
}
