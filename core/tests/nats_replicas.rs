//! The copies a NATS cluster keeps of our streams (`CHATBOARD_NATS_REPLICAS`), against three
//! nats-server processes of the test's own: a room stream in three copies goes on when the
//! server leading it dies, and the setting changes streams made before it. Without a
//! `nats-server` binary the tests print a note and pass, unless `CHATBOARD_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use async_nats::jetstream;
use chatboard_core::bus::{Bus, BusEvent, Delivery, NatsBus, StreamReplicas};
use chatboard_core::model::Message;
use chatboard_core::presence::{NatsPresence, PresenceSettings};
use futures::StreamExt;
use testing::{unique_prefix, NatsCluster};
use tokio::time::Instant;

/// How long a cluster just started, or one that lost a server, may take to answer again.
const SETTLING: Duration = Duration::from_secs(60);

/// What `attempt` gives, tried every 250 ms until it succeeds; a failure once `deadline` has
/// passed, saying `what` was not done.
async fn until_done<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    deadline: Instant,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    loop {
        match attempt().await {
            Ok(done) => return done,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}, not yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{what}: not done in time: {e}"),
        }
    }
}

/// A bus on the cluster, tried until JetStream answers (it does once the servers have elected
/// a leader among them).
async fn connected(urls: &str, prefix: &str, replicas: StreamReplicas) -> NatsBus {
    until_done(
        Instant::now() + SETTLING,
        "the cluster takes the stream",
        || NatsBus::connect_replicated(urls, prefix, replicas),
    )
    .await
}

/// The stream `name` as the cluster describes it now.
async fn described(bus: &NatsBus, name: &str) -> jetstream::stream::Info {
    let jetstream = jetstream::new(bus.client());
    jetstream
        .get_stream(name)
        .await
        .unwrap()
        .cached_info()
        .clone()
}

fn rooms_stream(prefix: &str) -> String {
    format!("{}_ROOMS", prefix.to_uppercase())
}

fn message(id: i64) -> Message {
    Message {
        id,
        room: 1,
        org: 1,
        sender: Some(7),
        body: format!("message {id}"),
        seq: id,
        ..Message::default()
    }
}

#[tokio::test]
async fn a_room_stream_in_three_copies_outlives_the_server_leading_it() {
    // RUST_LOG=async_nats=debug shows the client's side of a failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(mut cluster) = NatsCluster::start() else {
        return;
    };
    let prefix = unique_prefix();
    let bus = connected(&cluster.urls(), &prefix, StreamReplicas(Some(3))).await;
    let info = described(&bus, &rooms_stream(&prefix)).await;
    assert_eq!(info.config.num_replicas, 3);
    let leader = info
        .cluster
        .and_then(|cluster| cluster.leader)
        .expect("the stream has a leader");
    let mut events = bus.subscribe().await.unwrap();

    eprintln!(
        "killing {leader}, the stream's leader; the client is on {}",
        bus.client().server_info().server_name
    );
    cluster.kill(&leader);
    let killed = Instant::now();
    // As the gateway does: an event published since is heard, on this subscription or, when
    // it ends (its consumer was lost with the server), on a new one. Publishes are refused or
    // unanswered until the two servers left have made one of them the stream's leader. (With
    // one copy, none is taken until the dead server is back.)
    let deadline = killed + SETTLING;
    let mut id = 0;
    'heard: loop {
        id += 1;
        let event = BusEvent::new_message(message(id));
        until_done(deadline, "a publish taken after losing the leader", || {
            bus.publish(&event)
        })
        .await;
        loop {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(Delivery::Event(got))) if got == event => break 'heard,
                Ok(Some(other)) => eprintln!("heard first: {other:?}"),
                Ok(None) => {
                    eprintln!("the subscription ended; subscribing again");
                    events = until_done(deadline, "a new subscription", || bus.subscribe()).await;
                    continue 'heard;
                }
                Err(_) => panic!("no event heard within {SETTLING:?} of losing {leader}"),
            }
        }
    }
    eprintln!(
        "heard an event published after losing {leader} {:?} later",
        killed.elapsed()
    );
}

#[tokio::test]
async fn the_setting_changes_streams_made_before_it_and_unset_leaves_them() {
    let Some(cluster) = NatsCluster::start() else {
        return;
    };
    let prefix = unique_prefix();
    let name = rooms_stream(&prefix);
    let first = connected(&cluster.urls(), &prefix, StreamReplicas::default()).await;
    assert_eq!(described(&first, &name).await.config.num_replicas, 1);

    let raised = connected(&cluster.urls(), &prefix, StreamReplicas(Some(3))).await;
    assert_eq!(described(&raised, &name).await.config.num_replicas, 3);
    // A process without the setting (an operator raised it by hand, say) lowers nothing.
    let unset = connected(&cluster.urls(), &prefix, StreamReplicas::default()).await;
    assert_eq!(described(&unset, &name).await.config.num_replicas, 3);

    // The presence bucket likewise.
    let settings = |replicas| PresenceSettings {
        replicas,
        ..PresenceSettings::default()
    };
    let bucket = format!("KV_{}_PRESENCE", prefix.to_uppercase());
    let _presence =
        NatsPresence::start(first.client(), &prefix, settings(StreamReplicas::default()))
            .await
            .unwrap();
    assert_eq!(described(&first, &bucket).await.config.num_replicas, 1);
    let _presence =
        NatsPresence::start(raised.client(), &prefix, settings(StreamReplicas(Some(3))))
            .await
            .unwrap();
    assert_eq!(described(&raised, &bucket).await.config.num_replicas, 3);
}
