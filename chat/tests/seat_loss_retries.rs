//! A seat loss or a new seat the bus refuses is announced again in the background: the loss's
//! announcement is the only thing that stops a removed member's open sockets, the seat's the
//! only thing that makes them follow a room. So is a new seat whose start could not be read.

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

/// A room of one member (its creator) in a new SQLite database: the database (kept while the
/// test runs), its URL, the store, the room and the member.
async fn room_of_one() -> Option<(
    testing::TestDb,
    String,
    Arc<dyn chatboard_store::Store>,
    i64,
    i64,
)> {
    use chatboard_core::model::AccessLevel;
    use chatboard_store::{NewRoom, NewUser};
    let (db, url) = testing::TestDb::create(testing::TestEngine::Sqlite).await?;
    let store = chatboard_store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let new_user = NewUser {
        email: "seated@example.com".into(),
        password_hash: "!".into(),
        first_name: String::new(),
        last_name: String::new(),
    };
    let user = store.create_user(new_user, now).await.unwrap().id;
    let org = store.create_org(user, "Work", now).await.unwrap().id;
    let new_room = NewRoom {
        org_id: org,
        name: "jobs".into(),
        access_level: AccessLevel::Public,
        created_by: user,
    };
    let room = store.create_room(new_room, now).await.unwrap().id;
    Some((db, url, store, room, user))
}

/// Runs `announce` while the seats' table is away (its first read fails, as a database that
/// failed a query), puts the table back, and expects `user`'s seat in `room` announced.
async fn announced_once_read_again<F: std::future::Future<Output = ()>>(
    url: &str,
    heard: &mut BusStream,
    (room, user): (i64, i64),
    announce: F,
) {
    testing::db::execute_sql(url, "ALTER TABLE room_members RENAME TO room_members_away").await;
    // The first read fails within the call; the next comes seconds later.
    announce.await;
    testing::db::execute_sql(url, "ALTER TABLE room_members_away RENAME TO room_members").await;
    let delivery = tokio::time::timeout(Duration::from_secs(60), heard.next())
        .await
        .expect("announced once read again")
        .unwrap();
    match delivery {
        Delivery::Event(BusEvent::MemberSeated {
            room: r, user_id, ..
        }) => {
            assert_eq!((r, user_id), (room, user));
        }
        other => panic!("{other:?}"),
    }
}

/// A new seat whose start could not be read (its table away for a moment, as a database that
/// failed a query) is read again shortly and announced. It used to be dropped: the member's
/// open sockets did not follow the room until they reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_whose_read_failed_is_read_again_and_announced() {
    let Some((_db, url, store, room, user)) = room_of_one().await else {
        return;
    };
    let bus = Arc::new(LocalBus::default());
    let mut heard = bus.subscribe().await.unwrap();
    let announcer = Announcer::new(bus, store, &MetricRegistry::new()).unwrap();
    let seated = announcer.seated(room, user);
    announced_once_read_again(&url, &mut heard, (room, user), seated).await;
}

/// A new room whose members could not be read is read again shortly and its seats announced,
/// as a new seat's start is: its creator's open sockets did not follow it until they
/// reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_room_whose_members_could_not_be_read_is_read_again() {
    let Some((_db, url, store, room, user)) = room_of_one().await else {
        return;
    };
    let bus = Arc::new(LocalBus::default());
    let mut heard = bus.subscribe().await.unwrap();
    let announcer = Announcer::new(bus, store, &MetricRegistry::new()).unwrap();
    let made = announcer.seated_in_room_made(room);
    announced_once_read_again(&url, &mut heard, (room, user), made).await;
}
