//! Presence across processes in NATS, when processes keep their entries for different times
//! (`CHATBOARD_PRESENCE_TTL` set apart, or in the middle of a rolling change): every entry
//! lives as long as its writer said, whoever reads it and whoever made the bucket. Reads
//! `NATS_URL`; without it the tests print a note and pass, unless `CHATBOARD_REQUIRE_SERVICES=1`.
//! Also: a process answers from the whole bucket once started, and keeps others online through
//! an outage of NATS (a server of the test's own).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use chatboard_core::bus::NatsBus;
use chatboard_core::presence::{NatsPresence, Presence, PresenceSettings};

const USER: i64 = 7;

/// A process of the test's deployment (its own NATS prefix) keeping entries for `ttl`.
async fn process(url: &str, prefix: &str, ttl: Duration) -> NatsPresence {
    let bus = NatsBus::connect(url, prefix).await.unwrap();
    NatsPresence::start(
        bus.client(),
        prefix,
        PresenceSettings {
            ttl,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Polls until `user` is shown online (or offline) by `reader`; whether it came to be.
async fn shown(reader: &NatsPresence, online: bool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if reader.online(&[USER]).is_empty() != online {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reader with a short TTL keeps a long-lived writer's entry as long as the writer said;
/// a process that starts later, after the bucket was made by a short-TTL process, still reads
/// it from the bucket's history; and a short-lived writer's entry leaves a long-TTL reader's
/// view on the writer's time, not the reader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_live_as_long_as_their_writer_says() {
    let Some(url) = testing::nats_url() else {
        return;
    };
    let prefix = testing::unique_prefix();
    let short = Duration::from_secs(1);
    // The bucket is made by a process that keeps entries 1 s.
    let quick_reader = process(&url, &prefix, short).await;
    // A process keeping them 60 s holds the user, then dies without cleaning up.
    let lasting = process(&url, &prefix, Duration::from_secs(60)).await;
    lasting.connected(USER).await;
    assert!(shown(&quick_reader, true, Duration::from_secs(10)).await);
    drop(lasting);
    // Several of the reader's own TTLs later, the user is still online for it.
    tokio::time::sleep(short * 3).await;
    assert!(
        !quick_reader.online(&[USER]).is_empty(),
        "dropped on the reader's TTL, not the writer's"
    );
    // A process starting now reads the entry from the bucket's history.
    let late = process(&url, &prefix, short).await;
    assert!(
        shown(&late, true, Duration::from_secs(10)).await,
        "the bucket forgot an entry still alive"
    );

    // A writer keeping entries 1 s dies holding another user; a reader that keeps its own 60 s
    // forgets it after about 1 s.
    let slow_reader = process(&url, &prefix, Duration::from_secs(60)).await;
    let brief = process(&url, &prefix, short).await;
    brief.connected(USER + 1).await;
    let other = |reader: &NatsPresence| !reader.online(&[USER + 1]).is_empty();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !other(&slow_reader) {
        assert!(tokio::time::Instant::now() < deadline, "never shown online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(brief);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while other(&slow_reader) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kept on the reader's TTL, not the writer's"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slow_reader.delete_bucket().await.unwrap();
    let bus = NatsBus::connect(&url, &prefix).await.unwrap();
    bus.delete_stream().await.unwrap();
}

/// The bucket deleted under running processes (by hand, or a NATS that came back without its
/// storage): they make it again, put their entries back and watch it anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_bucket_is_made_again() {
    let Some(url) = testing::nats_url() else {
        return;
    };
    let prefix = testing::unique_prefix();
    let long = Duration::from_secs(60);
    let holder = process(&url, &prefix, long).await;
    let reader = process(&url, &prefix, long).await;
    holder.connected(USER).await;
    assert!(shown(&reader, true, Duration::from_secs(10)).await);
    holder.delete_bucket().await.unwrap();
    // A user who comes after the loss reaches the reader once the watch is back.
    holder.connected(USER + 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while reader.online(&[USER + 1]).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader never watched again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A process that starts now reads both from the bucket made again (well before the 60 s
    // refresh would have put them back).
    let late = process(&url, &prefix, long).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while late.online(&[USER, USER + 1]).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries never put back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    late.delete_bucket().await.unwrap();
    let bus = NatsBus::connect(&url, &prefix).await.unwrap();
    bus.delete_stream().await.unwrap();
}

/// A process answers only once it has read the bucket's history: asked at once after it
/// started, it knows everyone connected elsewhere (the worker used to take them for offline
/// and note their messages for digest emails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_answers_from_the_whole_bucket_once_started() {
    let Some(url) = testing::nats_url() else {
        return;
    };
    let prefix = testing::unique_prefix();
    let long = Duration::from_secs(60);
    let holder = process(&url, &prefix, long).await;
    let users: Vec<i64> = (1..=500).collect();
    for user in &users {
        holder.connected(*user).await;
    }
    let late = process(&url, &prefix, long).await;
    assert_eq!(
        late.online(&users).len(),
        users.len(),
        "answered before reading the bucket"
    );
    late.delete_bucket().await.unwrap();
    let bus = NatsBus::connect(&url, &prefix).await.unwrap();
    bus.delete_stream().await.unwrap();
}

/// Waits until `client`'s connection is in `state`.
async fn connection(client: &async_nats::Client, state: async_nats::connection::State) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.connection_state() != state {
        assert!(tokio::time::Instant::now() < deadline, "never {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// NATS away for longer than the TTL: nobody could refresh, so nobody is dropped; back, the
/// others' entries get a whole TTL to be refreshed in. (A reader used to drop them all, and
/// until their processes refreshed after reconnecting everyone elsewhere looked offline.) The
/// holder here dies during the outage, so only that TTL keeps its user, and only for a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_nats_drops_nobody() {
    let Some(mut nats) = testing::OwnNats::start() else {
        return;
    };
    let prefix = testing::unique_prefix();
    let ttl = Duration::from_secs(3);
    let holder = process(&nats.url(), &prefix, ttl).await;
    let reader_bus = NatsBus::connect(&nats.url(), &prefix).await.unwrap();
    let reader_client = reader_bus.client();
    let reader = NatsPresence::start(
        reader_client.clone(),
        &prefix,
        PresenceSettings {
            ttl,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    holder.connected(USER).await;
    assert!(shown(&reader, true, Duration::from_secs(10)).await);

    nats.kill();
    connection(&reader_client, async_nats::connection::State::Disconnected).await;
    drop(holder);
    // Two TTLs without a refresh.
    tokio::time::sleep(ttl * 2).await;
    assert!(
        !reader.online(&[USER]).is_empty(),
        "dropped during the outage"
    );
    nats.run();
    connection(&reader_client, async_nats::connection::State::Connected).await;
    // Half a TTL later (a sweep runs every third of one): still held.
    tokio::time::sleep(ttl / 2).await;
    assert!(!reader.online(&[USER]).is_empty(), "dropped on coming back");
    // Nobody refreshes it: gone once the TTL is over.
    assert!(shown(&reader, false, ttl * 3).await, "held for ever");
}
