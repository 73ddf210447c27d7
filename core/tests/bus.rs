//! The bus, through its trait, on both implementations: the in-process bus and NATS JetStream.
//! NATS tests read `NATS_URL`; without it they print a note and pass, unless
//! `CHATBOARD_REQUIRE_SERVICES=1`, which makes the skip a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::bus::{Bus, BusError, BusEvent, BusStream, Delivery, LocalBus, NatsBus};
use chatboard_core::model::Message;
use chrono::Utc;
use futures::StreamExt;

#[derive(Clone, Copy)]
enum Kind {
    Local,
    Nats,
}

/// A bus of the kind, with its own NATS stream and subjects, deleted at the end.
struct TestBus {
    bus: Arc<dyn Bus>,
    nats: Option<Arc<NatsBus>>,
}

impl TestBus {
    async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Local => Some(Self {
                bus: Arc::new(LocalBus::default()),
                nats: None,
            }),
            Kind::Nats => {
                let url = testing::nats_url()?;
                let prefix = testing::unique_prefix();
                let nats = Arc::new(
                    NatsBus::connect(&url, &prefix)
                        .await
                        .expect("connect to NATS_URL"),
                );
                Some(Self {
                    bus: nats.clone(),
                    nats: Some(nats),
                })
            }
        }
    }

    async fn cleanup(self) {
        if let Some(nats) = self.nats {
            nats.delete_stream().await.expect("delete test stream");
        }
    }
}

fn message(id: i64, room: i64) -> Message {
    Message {
        id,
        room,
        org: 1,
        sender: Some(7),
        body: format!("message {id}"),
        file: None,
        client_msg_id: None,
        is_deleted: false,
        created_at: Utc::now(),
        edited_at: None,
        seq: id,
        ..Message::default()
    }
}

/// The next delivery, or a failure after a few seconds.
async fn next(stream: &mut BusStream) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a delivery within 5 s")
        .expect("the stream goes on")
}

/// Whether nothing arrives within a short while.
async fn quiet(stream: &mut BusStream) -> bool {
    tokio::time::timeout(Duration::from_millis(300), stream.next())
        .await
        .is_err()
}

macro_rules! both_kinds {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Kind::Local).await } )*
        }
        mod nats {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Kind::Nats).await } )*
        }
    };
}

both_kinds!(
    every_subscriber_gets_every_event_in_order,
    typing_and_read_events_travel_too,
    a_repeated_publish_is_delivered_once,
    an_id_used_again_by_a_new_database_is_not_a_repeat,
    a_thread_back_at_an_earlier_reply_count_is_not_a_repeat,
    subscribers_get_only_later_events,
    ping_answers,
);

async fn every_subscriber_gets_every_event_in_order(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    let mut a = t.bus.subscribe().await.unwrap();
    let mut b = t.bus.subscribe().await.unwrap();
    let events: Vec<BusEvent> = (1..=60)
        .map(|id| match id % 3 {
            0 => BusEvent::new_message(message(id, 1)),
            1 => BusEvent::new_message(message(id, 2)),
            _ => BusEvent::MessageDeleted {
                id: id - 1,
                room: 3,
            },
        })
        .collect();
    for event in &events {
        t.bus.publish(event).await.unwrap();
    }
    for stream in [&mut a, &mut b] {
        let mut got = Vec::new();
        for _ in 0..events.len() {
            match next(stream).await {
                Delivery::Event(e) => got.push(e),
                Delivery::Missed => panic!("nothing should be missed"),
            }
        }
        assert_eq!(got, events);
        assert!(quiet(stream).await, "no extra deliveries");
    }
    t.cleanup().await;
}

async fn typing_and_read_events_travel_too(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    let mut s = t.bus.subscribe().await.unwrap();
    let typing = BusEvent::Typing {
        room: 4,
        user_id: 9,
        user_email: "t@example.com".into(),
        is_typing: true,
    };
    let read = BusEvent::Read {
        room: 4,
        user_id: 9,
        last_read_msg_id: 12,
        reader_only: false,
    };
    t.bus.publish(&typing).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(typing));
    t.bus.publish(&read).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(read));
    t.cleanup().await;
}

async fn a_repeated_publish_is_delivered_once(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    let mut s = t.bus.subscribe().await.unwrap();
    let first = BusEvent::new_message(message(1, 1));
    t.bus.publish(&first).await.unwrap();
    t.bus.publish(&first).await.unwrap();
    let second = BusEvent::new_message(message(2, 1));
    t.bus.publish(&second).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(first));
    assert_eq!(next(&mut s).await, Delivery::Event(second));
    assert!(quiet(&mut s).await);
    t.cleanup().await;
}

/// A database recreated (or restored from a backup) hands out message ids again; the bus keeps
/// its de-duplication memory for minutes. A new message with an old id is delivered: live
/// delivery once went silent for two minutes after a database reset.
async fn an_id_used_again_by_a_new_database_is_not_a_repeat(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    let mut s = t.bus.subscribe().await.unwrap();
    let before = BusEvent::new_message(message(1, 1));
    t.bus.publish(&before).await.unwrap();
    let mut again = message(1, 1);
    again.created_at += chrono::Duration::milliseconds(1);
    again.body = "another message, the same id".into();
    let again = BusEvent::new_message(again);
    t.bus.publish(&again).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(before));
    assert_eq!(next(&mut s).await, Delivery::Event(again));
    t.cleanup().await;
}

/// Retention purges a thread's oldest replies and lowers its count: the next reply brings it
/// back to a count it had before, and is a new state of the thread all the same (its frames
/// were dropped as repeats, and clients kept showing the old counters).
async fn a_thread_back_at_an_earlier_reply_count_is_not_a_repeat(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    let mut s = t.bus.subscribe().await.unwrap();
    let at = Utc::now();
    let thread = |replies: i64, last: chrono::DateTime<Utc>| {
        BusEvent::ThreadUpdated(chatboard_core::events::ThreadUpdated {
            room: 1,
            root_id: 7,
            reply_count: replies,
            last_reply_at: Some(last),
            repliers: vec![3],
        })
    };
    let before = thread(3, at);
    t.bus.publish(&before).await.unwrap();
    let after_purge = thread(3, at + chrono::Duration::seconds(5));
    t.bus.publish(&after_purge).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(before));
    assert_eq!(next(&mut s).await, Delivery::Event(after_purge));
    t.cleanup().await;
}

async fn subscribers_get_only_later_events(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    t.bus
        .publish(&BusEvent::new_message(message(1, 1)))
        .await
        .unwrap();
    let mut s = t.bus.subscribe().await.unwrap();
    assert!(quiet(&mut s).await, "history is the database's job");
    let later = BusEvent::new_message(message(2, 1));
    t.bus.publish(&later).await.unwrap();
    assert_eq!(next(&mut s).await, Delivery::Event(later));
    t.cleanup().await;
}

async fn ping_answers(kind: Kind) {
    let Some(t) = TestBus::new(kind).await else {
        return;
    };
    t.bus.ping().await.unwrap();
    assert!(["local", "nats"].contains(&t.bus.kind()));
    t.cleanup().await;
}

#[tokio::test]
async fn a_lagging_local_subscriber_is_told_it_missed_events() {
    let bus = LocalBus::with_capacity(4);
    let mut s = bus.subscribe().await.unwrap();
    for id in 1..=10 {
        bus.publish(&BusEvent::new_message(message(id, 1)))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut s).await, Delivery::Missed);
    // Then it carries on with what is still buffered.
    assert!(
        matches!(next(&mut s).await, Delivery::Event(BusEvent::Message { message: m, seq: 7 }) if m.id == 7),
        "the four newest remain"
    );
}

/// The room stream deleted under running processes (by hand, or a NATS that came back without
/// its storage): the next publish makes it again and goes through, the old subscription ends
/// (the new stream numbers its events anew, which its consumer would skip), and a new one gets
/// what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_stream_is_made_again() {
    let Some(t) = TestBus::new(Kind::Nats).await else {
        return;
    };
    let nats = t.nats.clone().unwrap();
    let mut old = t.bus.subscribe().await.unwrap();
    nats.delete_stream().await.unwrap();
    t.bus
        .publish(&BusEvent::new_message(message(1, 1)))
        .await
        .expect("published once the stream is made again");
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match old.next().await {
                None => return true,
                Some(Delivery::Missed) => continue,
                Some(Delivery::Event(e)) => panic!("from a stream that is gone: {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "the old subscription ends");
    let mut new = t.bus.subscribe().await.unwrap();
    let event = BusEvent::new_message(message(2, 1));
    t.bus.publish(&event).await.unwrap();
    match next(&mut new).await {
        Delivery::Event(got) => assert_eq!(got, event),
        Delivery::Missed => panic!("nothing missed"),
    }
    t.cleanup().await;
}

/// Events from publishers of the release before: a seat that does not say whether its room
/// carries presence is taken as one that does not (told of someone in a large room, its
/// followers would never hear them leave), a seat or a loss without the room's size has none, and
/// a receipt without `reader_only` goes to all.
#[test]
fn events_of_older_publishers_read_as_the_safe_default() {
    let seat =
        BusEvent::from_json(br#"{"type":"member.seated","room":3,"user_id":7,"after":0}"#).unwrap();
    assert_eq!(
        seat,
        BusEvent::MemberSeated {
            room: 3,
            user_id: 7,
            after: 0,
            after_seq: None,
            shares_presence: false,
            room_members: None,
        }
    );
    let left = BusEvent::from_json(br#"{"type":"member.left","room":3,"user_id":7}"#).unwrap();
    assert_eq!(
        left,
        BusEvent::MemberLeft {
            room: 3,
            user_id: 7,
            room_members: None,
        }
    );
    let read = BusEvent::from_json(br#"{"type":"read","room":3,"user_id":7,"last_read_msg_id":9}"#)
        .unwrap();
    assert_eq!(
        read,
        BusEvent::Read {
            room: 3,
            user_id: 7,
            last_read_msg_id: 9,
            reader_only: false,
        }
    );
}

/// Typing notices while NATS is away are refused at once: the client stops draining its queue
/// of commands while it reconnects, and once that was full (2,048 commands) a typing notice's
/// publish waited for the whole outage, holding the gateway's socket that sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_while_nats_is_away_never_waits() {
    let Some(mut nats) = testing::OwnNats::start() else {
        return;
    };
    let bus = NatsBus::connect(&nats.url(), &testing::unique_prefix())
        .await
        .unwrap();
    nats.kill();
    // Until the client has noticed, a notice may still be taken.
    let typing = BusEvent::Typing {
        room: 4,
        user_id: 9,
        user_email: "t@example.com".into(),
        is_typing: true,
    };
    for sent in 0..3_000 {
        let answered = tokio::time::timeout(Duration::from_secs(5), bus.publish(&typing)).await;
        assert!(answered.is_ok(), "notice {sent} waited for NATS");
    }
}

/// A subscription that saw no event before NATS restarted gets nothing of what the stream held
/// when it began: its consumer, made again with no event seen to resume after, started from the
/// stream's first event and replayed the whole hour (mentions and edits told again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_before_the_first_event_replays_nothing_older() {
    let Some(mut nats) = testing::OwnNats::start() else {
        return;
    };
    let bus = NatsBus::connect(&nats.url(), &testing::unique_prefix())
        .await
        .unwrap();
    for id in 1..=3 {
        bus.publish(&BusEvent::new_message(message(id, 7)))
            .await
            .unwrap();
    }
    let mut s = bus.subscribe().await.unwrap();
    nats.kill();
    nats.run();
    // Once the bus is back (the publish goes through), one new event.
    let new = BusEvent::new_message(message(4, 7));
    let mut published = false;
    for _ in 0..400 {
        if bus.publish(&new).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(published, "NATS did not come back");
    loop {
        // The consumer is made again once the client notices (its heartbeats): seconds.
        let delivery = tokio::time::timeout(Duration::from_secs(60), s.next())
            .await
            .expect("a delivery within 60 s")
            .expect("the subscription goes on");
        match delivery {
            Delivery::Missed => continue,
            event => {
                assert_eq!(event, Delivery::Event(new), "an older event replayed");
                break;
            }
        }
    }
}

/// Two deployments sharing a NATS whose prefixes differ only in `-` against `_` (or in letter
/// case) would share their streams: the second is refused, saying why, where it read the
/// first one's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_that_name_the_same_stream_are_refused() {
    let Some(url) = testing::nats_url() else {
        return;
    };
    let unique = testing::unique_prefix();
    let first = NatsBus::connect(&url, &format!("{unique}-a"))
        .await
        .unwrap();
    let refused = NatsBus::connect(&url, &format!("{unique}_a")).await;
    let Err(BusError::Conflict(why)) = refused else {
        panic!("the second deployment was let in");
    };
    assert!(why.contains("CHATBOARD_NATS_PREFIX"), "{why}");
    first.delete_stream().await.unwrap();
}

/// A NATS server of the test's own (to freeze), and a bus on it; `None` (with a note) without
/// NATS on this machine.
async fn own_nats_bus() -> Option<(testing::OwnNats, NatsBus)> {
    testing::nats_url()?;
    let nats = testing::OwnNats::start()?;
    let bus = NatsBus::connect(&nats.url(), &testing::unique_prefix())
        .await
        .unwrap();
    Some((nats, bus))
}

/// A NATS that stops answering without closing the connection (frozen here; a partition, or a
/// server stuck) is reported unreachable: the check is a round trip, not a write into the
/// socket's buffer. Once it answers again, so does the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_that_stops_answering_fails_the_ping() {
    let Some((nats, bus)) = own_nats_bus().await else {
        return;
    };
    bus.ping().await.expect("a server that answers");
    nats.pause();
    let frozen = tokio::time::timeout(Duration::from_secs(30), bus.ping()).await;
    nats.resume();
    assert!(
        matches!(frozen, Ok(Err(BusError::Unavailable(_)))),
        "a frozen server passed the check: {frozen:?}"
    );
    let mut answered = false;
    for _ in 0..100 {
        if bus.ping().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the check failed after the server came back");
}

/// While NATS takes publishes without acknowledging them (frozen with the connection open), one
/// publish waits its budget and the ones after it fail at once for a while, instead of each
/// waiting the budget in turn: a request announcing many changes (the seats of a large room)
/// is not held for as many seconds. Once NATS answers again, publishes go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_to_a_stalled_nats_fail_at_once_after_the_first() {
    let Some((nats, bus)) = own_nats_bus().await else {
        return;
    };
    bus.publish(&BusEvent::new_message(message(1, 1)))
        .await
        .expect("a server that answers");
    nats.pause();
    let started = std::time::Instant::now();
    let mut refused = 0;
    for id in 2..12 {
        if bus
            .publish(&BusEvent::new_message(message(id, 1)))
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    let took = started.elapsed();
    nats.resume();
    assert_eq!(refused, 10, "a frozen server acknowledged publishes");
    // Ten publishes waiting the 1 s budget each would take 10 s; one budget is the least.
    assert!(
        took < Duration::from_secs(5),
        "ten publishes to a frozen server took {took:?}"
    );
    let mut published = false;
    for _ in 0..200 {
        if bus
            .publish(&BusEvent::new_message(message(20, 1)))
            .await
            .is_ok()
        {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "publishes still refused after NATS came back");
    bus.delete_stream().await.unwrap();
}

/// A NATS that requires a user and password, or a token, is reached with the ones written in
/// `NATS_URL` (`nats://user:password@host:4222`, `nats://token@host:4222`), as the README
/// says: the client library reads the URL's host only, and the server refused the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_used() {
    if testing::nats_url().is_none() {
        return;
    }
    for (config, credentials) in [
        (
            "authorization { user: chat, password: \"s3cret/x\" }\n",
            "chat:s3cret%2Fx@",
        ),
        ("authorization { token: \"t0ken\" }\n", "t0ken@"),
    ] {
        let Some(nats) = testing::OwnNats::start_configured(config) else {
            return;
        };
        let url = nats
            .url()
            .replace("nats://", &format!("nats://{credentials}"));
        let bus = tokio::time::timeout(
            Duration::from_secs(20),
            NatsBus::connect(&url, &testing::unique_prefix()),
        )
        .await
        .expect("connected or refused within 20 s")
        .unwrap_or_else(|e| panic!("{credentials}: {e}"));
        bus.ping().await.expect("a server that answers");
    }
}
