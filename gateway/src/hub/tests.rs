//! The shard loop's promise about held messages: once a room's wait for a missing message is
//! over, what it held goes out, even while the shard never runs out of deliveries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::bus::{BusEvent, Delivery, LocalBus};
use chatboard_core::model::Message;
use chatboard_core::presence::LocalPresence;
use prometheus::{Histogram, HistogramOpts, IntCounter};

use super::{dispatch_shard, shard_index, Hub, Live};
use crate::outlet::Outlet;

/// Deliveries the feeder keeps queued: some milliseconds of the shard's work, so it never
/// finds its queue empty while the feeder runs.
const QUEUED: usize = 100_000;

/// Message `seq` of `room`.
fn message(room: i64, seq: i64) -> Delivery {
    Delivery::Event(BusEvent::new_message(Message {
        id: 100 + seq,
        room,
        org: 1,
        sender: Some(1),
        body: "x".into(),
        seq,
        created_at: chrono::Utc::now(),
        ..Message::default()
    }))
}

/// The seq of a message the connection was handed, if that is what it got.
fn seq_of(live: &Live) -> Option<i64> {
    match live {
        Live::Event(out) => match &out.event {
            BusEvent::Message { seq, .. } => Some(*seq),
            _ => None,
        },
        _ => None,
    }
}

/// A connection without a socket of its own: everything reaches it through its queue.
fn queue_only_outlet() -> Arc<Outlet> {
    let counter = |name: &str| IntCounter::new(name, "test").expect("a valid counter");
    let histogram =
        Histogram::with_opts(HistogramOpts::new("fanout", "test")).expect("a valid histogram");
    Arc::new(Outlet::new(
        None,
        counter("deliveries"),
        counter("queued"),
        counter("frames"),
        histogram,
    ))
}

/// flume's `recv_deadline` hands over a queued delivery even past its deadline, so a shard with
/// a backlog never times out: it must let overdue rooms out between deliveries, or a room
/// whose missing message never comes would stay silent for as long as the load lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_held_message_goes_out_while_deliveries_keep_coming() {
    let store = chatboard_store::connect("sqlite::memory:", 1)
        .await
        .expect("an in-memory store");
    let hub = Hub::start(
        Arc::new(LocalBus::default()),
        Arc::new(LocalPresence::new()),
        store,
        false,
    )
    .await
    .expect("the hub starts");
    let count = hub.shards.len();
    let room = 1;
    // A room of the same shard that nobody follows: each of its events costs the shard a
    // lookup, so a queue of them keeps it busy without filling any connection's queue.
    let nobody_follows = room + count as i64;
    let subscription = hub.subscribe(7, &[room], false, queue_only_outlet());

    // A shard loop of our own, fed by a queue of our own (the hub's loop for this shard stays
    // idle: nothing is published on its bus).
    let (inbox, deliveries) = flume::unbounded();
    inbox.send(message(room, 1)).expect("queued");
    inbox.send(message(room, 3)).expect("queued"); // seq 2 is missing: held back
    let shard = {
        let hub = Arc::downgrade(&hub);
        let index = shard_index(room, count);
        std::thread::spawn(move || dispatch_shard(hub, index, deliveries))
    };
    let first = subscription
        .events
        .recv_timeout(Duration::from_secs(10))
        .expect("the room's first message goes out");
    assert_eq!(seq_of(&first), Some(1));

    let done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (inbox, done) = (inbox.clone(), done.clone());
        let filler = Delivery::Event(BusEvent::RoomDeleted {
            room: nobody_follows,
        });
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if inbox.len() < QUEUED {
                    for _ in 0..QUEUED / 10 {
                        let _ = inbox.send(filler.clone());
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    // The wait is 100 ms; the limit here is only there to end the test should it never come.
    let released = subscription.events.recv_timeout(Duration::from_secs(20));
    let backlog = inbox.len();
    done.store(true, Ordering::Relaxed);
    feeder.join().expect("the feeder ends");
    drop(inbox);
    shard.join().expect("the shard loop ends with its queue");

    let released = released.expect("the held message went out while deliveries kept coming");
    assert_eq!(seq_of(&released), Some(3));
    eprintln!("released with {backlog} deliveries queued");
}

/// A hub of its own, on an in-memory store and bus.
async fn test_hub() -> Arc<Hub> {
    let store = chatboard_store::connect("sqlite::memory:", 1)
        .await
        .expect("an in-memory store");
    Hub::start(
        Arc::new(LocalBus::default()),
        Arc::new(LocalPresence::new()),
        store,
        false,
    )
    .await
    .expect("the hub starts")
}

/// A hub over a migrated SQLite database (kept while this lives).
struct Migrated {
    _db: testing::TestDb,
    url: String,
    store: Arc<dyn chatboard_store::Store>,
    presence: Arc<LocalPresence>,
    hub: Arc<Hub>,
}

/// A hub with its database, ready.
async fn migrated() -> Migrated {
    let (db, url) = testing::TestDb::create(testing::TestEngine::Sqlite)
        .await
        .expect("sqlite");
    let store = chatboard_store::connect(&url, 2).await.expect("a store");
    store.migrate().await.expect("migrated");
    let presence = Arc::new(LocalPresence::new());
    let hub = Hub::start(
        Arc::new(LocalBus::default()),
        presence.clone(),
        store.clone(),
        false,
    )
    .await
    .expect("the hub starts");
    Migrated {
        _db: db,
        url,
        store,
        presence,
        hub,
    }
}

/// The hub puts a user's multiplexed connections into a room when the user gets a seat there,
/// before the connection hears of it. A connection that ends with the news still queued must
/// leave that room all the same: it used to stay in the room's feed, its socket held open,
/// until the room's next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_ending_before_it_hears_of_a_seat_leaves_that_room() {
    let hub = test_hub().await;
    let room = 5;
    let subscription = hub.subscribe(7, &[], true, queue_only_outlet());
    let seated = Delivery::Event(BusEvent::MemberSeated {
        room,
        user_id: 7,
        after: 0,
        after_seq: None,
        shares_presence: true,
        room_members: None,
    });
    hub.dispatch(shard_index(room, hub.shards.len()), seated);
    assert!(!hub.is_idle(), "the seat put the connection in the room");
    drop(subscription);
    assert!(hub.is_idle(), "no room keeps the ended connection");
}

/// A connection closed for being too slow is taken out of its room by the fan-out; the room's
/// feed goes with its last follower (it stayed, empty, for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_room_whose_last_follower_was_too_slow_is_forgotten() {
    let hub = test_hub().await;
    let room = 5;
    let subscription = hub.subscribe(7, &[room], false, queue_only_outlet());
    let index = shard_index(room, hub.shards.len());
    for _ in 0..=super::QUEUE {
        hub.dispatch(index, Delivery::Event(BusEvent::RoomDeleted { room }));
    }
    assert!(subscription.too_slow());
    assert!(
        hub.is_idle(),
        "the room's feed is gone with its last follower"
    );
    drop(subscription);
}

/// Every shard hears of a loss on the bus. A connection with rooms in several shards is told
/// to catch up once, not once per shard (each `Resync` reads the database); a loss reported
/// after it began catching up is told again.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_loss_asks_each_connection_to_catch_up_once() {
    let hub = test_hub().await;
    let count = hub.shards.len();
    assert!(count > 1, "rooms in two shards");
    let rooms = [1, 2];
    let subscription = hub.subscribe(7, &rooms, true, queue_only_outlet());
    let resyncs = |subscription: &super::Subscription| {
        subscription
            .events
            .drain()
            .filter(|live| matches!(live, Live::Resync))
            .count()
    };
    for index in 0..count {
        hub.dispatch(index, Delivery::Missed);
    }
    assert_eq!(resyncs(&subscription), 1);
    subscription.resync_begins();
    for index in 0..count {
        hub.dispatch(index, Delivery::Missed);
    }
    assert_eq!(resyncs(&subscription), 1);
}

/// Presence changes whose batch is given up (the rooms lookup failing through its retries)
/// left their users shown online, or offline, to their room-mates until those reconnected.
/// Every connection is now told to send the whole state again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_presence_changes_bring_the_whole_state_again() {
    use chatboard_core::presence::Presence;

    let Migrated {
        _db,
        url,
        presence,
        hub,
        ..
    } = migrated().await;
    let subscription = hub.subscribe(7, &[1], true, queue_only_outlet());
    // Whom user 8's coming online concerns cannot be looked up, for longer than the retries.
    testing::execute_sql(&url, "ALTER TABLE room_members RENAME TO room_members_away").await;
    presence.connected(8).await;
    let told = tokio::task::spawn_blocking(move || {
        subscription.events.recv_timeout(Duration::from_secs(20))
    })
    .await
    .expect("the wait ends");
    assert!(
        matches!(told, Ok(Live::PresenceResync)),
        "told {:?}",
        told.map(|live| std::mem::discriminant(&live))
    );
}

/// An announcement that `user_id` took a seat in `room`, which then had `seats`.
fn seated(room: i64, user_id: i64, seats: i64) -> Delivery {
    Delivery::Event(BusEvent::MemberSeated {
        room,
        user_id,
        after: 0,
        after_seq: None,
        shares_presence: seats <= chatboard_core::model::SMALL_ROOM_MEMBERS,
        room_members: Some(seats),
    })
}

/// An announcement that `user_id` lost their seat in `room`, which then had `seats`.
fn left(room: i64, user_id: i64, seats: i64) -> Delivery {
    Delivery::Event(BusEvent::MemberLeft {
        room,
        user_id,
        room_members: Some(seats),
    })
}

/// How many times the connection was asked to tell who is online again, since last looked
/// (and it began doing so: the next ask is queued again).
fn presence_resyncs(subscription: &super::Subscription) -> usize {
    let asked = subscription
        .events
        .drain()
        .filter(|live| matches!(live, Live::PresenceResync))
        .count();
    subscription.presence_resync_begins();
    asked
}

/// A room that grows past fifty members stops carrying presence (what its followers were told
/// through it no longer changes) and one that shrinks back starts again (nobody told them who
/// was there): either way they are told who is online anew. Sizes are read after each change
/// commits and announced in any order, so two seats at once may both read one past the line,
/// and a size may arrive after a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_room_crossing_fifty_members_has_its_followers_told_who_is_online_again() {
    let hub = test_hub().await;
    let rooms = [5, 6, 7, 8];
    let subscription = hub.subscribe(70, &rooms, false, queue_only_outlet());
    let count = hub.shards.len();
    let told = |delivery: Delivery, room: i64| {
        hub.dispatch(shard_index(room, count), delivery);
        presence_resyncs(&subscription)
    };
    let [room, grown, shrunk, unordered] = rooms;
    // Far from the line: nothing to tell.
    assert_eq!(told(seated(room, 8, 60), room), 0);
    assert_eq!(told(seated(room, 9, 61), room), 0);
    assert_eq!(told(left(room, 9, 50), room), 1, "shrank to fifty");
    assert_eq!(told(left(room, 8, 49), room), 0);
    assert_eq!(
        told(seated(room, 8, 52), room),
        1,
        "grew past fifty at once"
    );
    assert_eq!(told(seated(room, 9, 53), room), 0);
    // The first size heard, at the line.
    assert_eq!(told(seated(grown, 8, 51), grown), 1);
    assert_eq!(told(left(shrunk, 8, 50), shrunk), 1);
    // A leave read 50 and a join read 51, announced in the other order, then another join
    // (51 with 51 heard last): each may be a crossing.
    assert_eq!(told(left(unordered, 8, 50), unordered), 1);
    assert_eq!(told(seated(unordered, 9, 51), unordered), 1);
    assert_eq!(told(seated(unordered, 10, 51), unordered), 1);
    // Asked twice before it began: told once.
    hub.dispatch(shard_index(grown, count), seated(grown, 11, 51));
    assert_eq!(told(seated(grown, 12, 51), grown), 1);
}

/// A presence change whose rooms were looked up before a room crossed the line, and handed out
/// after its followers were told who is online anew, is not told through that room: they read
/// the state with the change in it, and the room may carry presence no more (someone told of
/// through it would never be told gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_change_looked_up_before_a_crossing_is_not_told_through_that_room() {
    let hub = test_hub().await;
    let (room, other) = (5, 6);
    let subscription = hub.subscribe(70, &[room, other], false, queue_only_outlet());
    let changes = |subscription: &super::Subscription| {
        subscription
            .events
            .drain()
            .filter(|live| matches!(live, Live::Presence(_)))
            .count()
    };
    let change = chatboard_core::presence::PresenceChange {
        user_id: 8,
        online: true,
    };
    let looked_up = hub.presence_epoch();
    hub.dispatch(shard_index(room, hub.shards.len()), seated(room, 9, 51));
    hub.dispatch_change(change, &[room], looked_up, |_, _| true);
    assert_eq!(changes(&subscription), 0, "through the room that crossed");
    hub.dispatch_change(change, &[other], looked_up, |_, _| true);
    assert_eq!(changes(&subscription), 1, "through another room");
    hub.dispatch_change(change, &[room], hub.presence_epoch(), |_, _| true);
    assert_eq!(changes(&subscription), 1, "looked up after the crossing");
}

/// Announcements lost on the bus may have been crossings: every connection is told who is
/// online anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stretch_of_the_bus_brings_the_whole_presence_state_again() {
    let hub = test_hub().await;
    let room = 5;
    let subscription = hub.subscribe(70, &[room], false, queue_only_outlet());
    let count = hub.shards.len();
    for index in 0..count {
        hub.dispatch(index, Delivery::Missed);
    }
    let events = subscription.events.clone();
    let told = tokio::task::spawn_blocking(move || loop {
        match events.recv_timeout(Duration::from_secs(20)) {
            Ok(Live::PresenceResync) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    })
    .await
    .expect("the wait ends");
    assert!(told, "the whole presence state is told again");
}

/// Someone leaving a room is shown offline to its followers who share no other room with them,
/// once per connection however many rooms they left, and not through a room too large to have
/// told anyone they were there (each of its thousands of followers was handed a frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departures_are_told_through_rooms_that_carry_presence_once_per_connection() {
    use super::presence::{tell_departures, Departure};
    use chatboard_core::presence::Presence;

    let Migrated {
        _db,
        store,
        presence,
        hub,
        ..
    } = migrated().await;
    let subscription = hub.subscribe(7, &[5, 6], false, queue_only_outlet());
    presence.connected(8).await; // sharing no room with anyone: nobody is told
    let told = |departures: Vec<(i64, Option<i64>)>| {
        let (queue, taken) = flume::unbounded();
        for (room, room_members) in departures {
            queue
                .send(Departure {
                    room,
                    user_id: 8,
                    room_members,
                })
                .expect("queued");
        }
        drop(queue);
        let (hub, store) = (Arc::downgrade(&hub), store.clone());
        async {
            tell_departures(hub, store, taken).await;
            subscription
                .events
                .drain()
                .filter(|live| matches!(live, Live::Presence(change) if !change.online))
                .count()
        }
    };
    assert_eq!(told(vec![(5, Some(60))]).await, 0, "a large room");
    assert_eq!(told(vec![(5, Some(50)), (6, Some(10))]).await, 1);
    assert_eq!(told(vec![(5, None)]).await, 1, "an older publisher's");
}

/// A presence resync round works through the connections a few hundred at a time, pausing
/// between: a connection that ends meanwhile lets its socket go at once. The round held every
/// connection (and its socket) until its end, seconds over tens of thousands (two here).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_presence_resync_round_keeps_no_ended_connection_open() {
    let hub = test_hub().await;
    // Enough that the round (200 at a time, 100 ms between) lasts seconds, and a busy
    // machine's pauses do not let it end before the test looks.
    let outlets: Vec<Arc<Outlet>> = (0..4_000).map(|_| queue_only_outlet()).collect();
    let kept: Vec<std::sync::Weak<Outlet>> = outlets.iter().map(Arc::downgrade).collect();
    let subscriptions: Vec<_> = outlets
        .into_iter()
        .enumerate()
        .map(|(i, outlet)| hub.subscribe(1000 + i as i64, &[9], false, outlet))
        .collect();
    hub.presence_resync.notify_one();
    // The round's first few hundred told; it pauses before the rest.
    let told = |s: &super::Subscription| {
        s.events
            .try_iter()
            .any(|live| matches!(live, Live::PresenceResync))
    };
    let mut waited = 0;
    while !subscriptions.iter().any(told) {
        assert!(waited < 20_000, "no connection told within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        waited += 1;
    }
    drop(subscriptions);
    while !hub.connections().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let open = kept.iter().filter(|k| k.upgrade().is_some()).count();
    assert_eq!(open, 0, "connections ended but held by the round");
}
