//! Nothing lost, nothing twice, when the parts under the gateway go away mid-stream: a gateway
//! shuts down (its clients resume on another) or NATS itself restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::Value;
use testing::OwnNats;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Messages posted per test.
const TOTAL: usize = 90;

/// A client that follows `room` until it has seen `total` messages, resuming with `since` on
/// the next gateway in `gateways` whenever its connection ends. Returns the ids it saw.
async fn follow(
    gateways: Vec<String>,
    room: i64,
    token: String,
    total: usize,
) -> (Vec<i64>, usize) {
    let mut seen: Vec<i64> = Vec::new();
    let mut at = 0usize;
    let mut connections = 0usize;
    let started = std::time::Instant::now();
    while seen.len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "all {total} messages within 60 s; got {}",
            seen.len()
        );
        let since = seen.last().copied().unwrap_or(0);
        let url = format!(
            "{}/ws/rooms/{room}/?token={token}&since={since}",
            gateways[at]
        );
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
            // That gateway is gone: go to the next one.
            at = (at + 1).min(gateways.len() - 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        connections += 1;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .expect("the stream goes on within 20 s");
            match next {
                Some(Ok(Ws::Text(text))) => {
                    let f: Value = serde_json::from_str(text.as_str()).unwrap();
                    if f["type"] == "message" {
                        seen.push(f["id"].as_i64().unwrap());
                        if seen.len() == total {
                            break;
                        }
                    }
                }
                Some(Ok(Ws::Close(frame))) => {
                    if frame.is_some_and(|f| u16::from(f.code) == 1012) {
                        at = (at + 1).min(gateways.len() - 1);
                    }
                    break;
                }
                Some(Ok(_)) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "stalled at {}",
                        seen.len()
                    );
                }
                Some(Err(_)) | None => break,
            }
        }
    }
    (seen, connections)
}

/// A multiplexed connection that stays up, collecting the ids of `room`'s messages until it has
/// `total` (it cannot resume: it must get everything live or through the gateway's catch-up).
/// It counts itself in `ready` once the gateway has placed it (its `connection` frame): from
/// then on it gets every message committed, and not before, since it asks for no replay.
async fn follow_all(
    gateway: String,
    room: i64,
    token: String,
    total: usize,
    ready: Arc<AtomicUsize>,
) -> Vec<i64> {
    let url = format!("{gateway}/ws/?token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    frame_of(&mut socket, "connection").await;
    ready.fetch_add(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stalled at {}",
            seen.len()
        );
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Ws::Text(text)))) => {
                let f: Value = serde_json::from_str(text.as_str()).unwrap();
                if f["type"] == "message" && f["room"].as_i64() == Some(room) {
                    seen.push(f["id"].as_i64().unwrap());
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the multiplexed connection ended: {other:?}"),
        }
    }
    seen
}

/// Posts `total` messages from `user`, counting them in `posted` as it goes.
async fn post_all(
    p: Arc<Platform>,
    user: User,
    room: i64,
    total: usize,
    posted: Arc<AtomicUsize>,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..total {
        ids.push(p.post(&user, room, &format!("m{i}")).await);
        posted.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ids
}

/// Waits until `counter` reaches `n`.
async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A gateway shuts down mid-stream (1012); its clients resume on another gateway with `since`
/// and end up with every message exactly once, in order.
async fn a_gateway_shutting_down_mid_stream_loses_nothing(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    let second = p.another_gateway().await;
    let gateways = vec![p.gw.ws.clone(), second.ws.clone()];
    let clients: Vec<_> = [bob.token.clone(), carol.token.clone()]
        .into_iter()
        .map(|token| tokio::spawn(follow(gateways.clone(), room, token, TOTAL)))
        .collect();
    // Let both clients connect to the first gateway before anything is posted.
    while p.gw.state.connections() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let posted = Arc::new(AtomicUsize::new(0));
    let poster = tokio::spawn(post_all(p.clone(), alice, room, TOTAL, posted.clone()));
    wait_for(&posted, TOTAL / 3).await;
    p.gw.state.shut_down(Duration::from_secs(5)).await;
    let mut ids = poster.await.unwrap();
    ids.sort();
    for client in clients {
        let (seen, connections) = client.await.unwrap();
        assert!(connections >= 2, "the client moved to the other gateway");
        assert_eq!(seen, ids, "every message exactly once, in id order");
    }
}

both_shapes!(a_gateway_shutting_down_mid_stream_loses_nothing);

/// NATS is killed mid-stream and comes back: clients that stay connected end up with every
/// message exactly once, in order (what was not announced is caught up from the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_loses_nothing() {
    let Some(mut nats) = OwnNats::start() else {
        return;
    };
    let p =
        Arc::new(Platform::start_with(Some((nats.url(), unique_prefix())), quick_settings()).await);
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    // A second room, so the multiplexed connection follows more than one.
    p.room(org, &alice, "other").await;
    let clients: Vec<_> = [bob.token.clone(), carol.token.clone()]
        .into_iter()
        .map(|token| tokio::spawn(follow(vec![p.gw.ws.clone()], room, token, TOTAL)))
        .collect();
    let ready = Arc::new(AtomicUsize::new(0));
    let multiplexed = tokio::spawn(follow_all(
        p.gw.ws.clone(),
        room,
        bob.token.clone(),
        TOTAL,
        ready.clone(),
    ));
    // The room clients replay from `since=0`, so only the multiplexed one must be in place
    // before the first post.
    wait_for(&ready, 1).await;
    while p.gw.state.connections() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let posted = Arc::new(AtomicUsize::new(0));
    let sender = User {
        id: alice.id,
        token: alice.token.clone(),
    };
    let poster = tokio::spawn(post_all(p.clone(), sender, room, TOTAL - 1, posted.clone()));
    wait_for(&posted, TOTAL / 3).await;
    nats.kill();
    wait_for(&posted, 2 * TOTAL / 3).await;
    nats.run();
    let mut ids = poster.await.unwrap();
    // Once NATS answers the API again, one last message: announced, so it arrives live, and
    // everything before it that was never announced is filled in from the database.
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let ready: serde_json::Value = http
            .get(format!("{}/health/ready", p.api))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["checks"]["nats"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids.push(p.post(&alice, room, "after the restart").await);
    // The outage was real: announcements failed while NATS was down.
    let metrics = http
        .get(format!("{}/metrics", p.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chatboard_bus_publish_failures_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        failures > 0.0,
        "some announcements failed during the outage"
    );
    ids.sort();
    for client in clients {
        let (seen, connections) = client.await.unwrap();
        assert_eq!(connections, 1, "the clients stayed connected");
        assert_eq!(seen, ids, "every message exactly once, in id order");
    }
    assert_eq!(multiplexed.await.unwrap(), ids, "the multiplexed one too");
}

/// Message ids of `room` read from `socket` until `ids` have all arrived (other frames are
/// skipped), or panics after `bound`.
async fn wait_for_messages(
    socket: &mut Socket,
    room: i64,
    ids: &[i64],
    bound: Duration,
) -> Vec<i64> {
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while !ids.iter().all(|id| seen.contains(id)) {
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!("only {seen:?} of {ids:?} within {bound:?}"),
            Ok(Some(Ok(Ws::Text(text)))) => {
                let f: Value = serde_json::from_str(text.as_str()).unwrap();
                if f["type"] == "message" && f["room"].as_i64() == Some(room) {
                    seen.push(f["id"].as_i64().unwrap());
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the socket ended: {other:?}"),
        }
    }
    seen
}

/// NATS restarts and nobody posts afterwards: open sockets still get every message committed
/// while it was away (they catch up from the database when the bus reconnects), and a member
/// removed while it was away loses the room on every socket (issue 17 points 12 and 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_nats_restart_sockets_catch_up_without_new_posts() {
    let Some(mut nats) = OwnNats::start() else {
        return;
    };
    let p = Platform::start_with(Some((nats.url(), unique_prefix())), quick_settings()).await;
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    let mut bob_room = p.connect(room, &bob.token, None).await;
    let mut carol_room = p.connect(room, &carol.token, None).await;
    let mut carol_all = p.connect_all(&carol.token).await;
    // Counted as connected is not yet placed in the room: a message committed in between
    // precedes the socket's starting point. The `connection` frame comes once it is placed.
    for socket in [&mut bob_room, &mut carol_room, &mut carol_all] {
        frame_of(socket, "connection").await;
    }
    let first = p.post(&alice, room, "before").await;
    for socket in [&mut bob_room, &mut carol_room, &mut carol_all] {
        wait_for_messages(socket, room, &[first], Duration::from_secs(20)).await;
    }

    nats.kill();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            p.post(&alice, room, &format!("while NATS is down {i}"))
                .await,
        );
    }
    let removed = p
        .call(
            reqwest::Method::DELETE,
            &format!("/api/orgs/{org}/members/{}/", carol.id),
            &alice.token,
            serde_json::json!(null),
        )
        .await;
    assert!(removed.is_null(), "{removed}");
    nats.run();
    let back = std::time::Instant::now();

    // No new post: the five arrive, in order, once the gateway is reconnected.
    let seen = wait_for_messages(&mut bob_room, room, &missed, Duration::from_secs(30)).await;
    assert_eq!(seen, missed);
    eprintln!("caught up {:?} after NATS came back", back.elapsed());
    // Carol's room socket is closed as no longer a member; her multiplexed one stops
    // following the room.
    assert_eq!(close_code(&mut carol_room).await, 4003);
    let after = p.post(&alice, room, "after the removal").await;
    wait_for_messages(&mut bob_room, room, &[after], Duration::from_secs(20)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while let Ok(next) = tokio::time::timeout_at(deadline.into(), carol_all.next()).await {
        if let Some(Ok(Ws::Text(text))) = next {
            let f: Value = serde_json::from_str(text.as_str()).unwrap();
            assert!(
                !(f["type"] == "message" && f["id"].as_i64() == Some(after)),
                "a removed member still reads the room: {f}"
            );
        }
    }
}

/// An edit made while NATS is away reaches open sockets once it is back, with nothing posted
/// after it: the catch-up from the database finds new messages only, and the edit's failed
/// announcement was never made again (the API announces recent changes again when its own
/// connection comes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_nats_is_away_reaches_open_sockets() {
    let Some(mut nats) = OwnNats::start() else {
        return;
    };
    let p = Platform::start_with(Some((nats.url(), unique_prefix())), quick_settings()).await;
    let (room, alice, bob, _org) = p.team().await;
    let mut bob_room = p.connect(room, &bob.token, None).await;
    frame_of(&mut bob_room, "connection").await;
    let id = p.post(&alice, room, "befor").await;
    wait_for_messages(&mut bob_room, room, &[id], Duration::from_secs(20)).await;

    nats.kill();
    let edited = p
        .call(
            reqwest::Method::PATCH,
            &format!("/api/rooms/{room}/messages/{id}/"),
            &alice.token,
            serde_json::json!({"body": "before"}),
        )
        .await;
    assert_eq!(edited["body"], "before", "{edited}");
    nats.run();
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let next = tokio::time::timeout(left, bob_room.next())
            .await
            .expect("the edit within 45 s of NATS coming back");
        if let Some(Ok(Ws::Text(text))) = next {
            let f: Value = serde_json::from_str(text.as_str()).unwrap();
            if f["type"] == "message.updated" && f["id"].as_i64() == Some(id) {
                assert_eq!(f["body"], "before", "{f}");
                break;
            }
        }
    }
}

/// An API process dies between committing messages and announcing them; the next one to start
/// announces them again, so open sockets get them without waiting for the room's next message
/// (issue 17 point 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_a_crashed_api_never_announced_reach_sockets_when_an_api_starts() {
    let Some(nats) = nats_url() else {
        return;
    };
    let p = Platform::start_with(Some((nats, unique_prefix())), quick_settings()).await;
    let (room, alice, bob, _) = p.team().await;
    let mut bob_room = p.connect(room, &bob.token, None).await;
    frame_of(&mut bob_room, "connection").await;
    // Committed straight into the store, as by a process killed before it could announce.
    let mut committed = Vec::new();
    for i in 0..3 {
        let id = p
            .stored_unannounced(room, &alice, &format!("committed, never announced {i}"))
            .await;
        committed.push(id);
    }
    assert!(quiet(&mut bob_room).await, "nothing announced them yet");
    // Another API process starts (the crashed one's replacement).
    let restarted = api_server::build_state(p.app.state.config.clone())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let seen = wait_for_messages(&mut bob_room, room, &committed, Duration::from_secs(30)).await;
    assert_eq!(seen, committed);
    eprintln!("announced again {:?} after the start", started.elapsed());
    restarted.store.close().await;
    p.cleanup().await;
}

/// A bus whose subscriptions deliver messages swapped in pairs (the second before the first),
/// as concurrent announcements, or two api-server replicas, may; with `lose_first`, the first
/// message of the first pair never arrives (its announcement failed).
struct SwappingBus {
    inner: Arc<dyn chatboard_core::bus::Bus>,
    lose_first: bool,
}

#[async_trait::async_trait]
impl chatboard_core::bus::Bus for SwappingBus {
    async fn publish(
        &self,
        event: &chatboard_core::bus::BusEvent,
    ) -> Result<(), chatboard_core::bus::BusError> {
        self.inner.publish(event).await
    }
    async fn subscribe(
        &self,
    ) -> Result<chatboard_core::bus::BusStream, chatboard_core::bus::BusError> {
        use chatboard_core::bus::{BusEvent, Delivery};
        let inner = self.inner.subscribe().await?;
        let mut lose = self.lose_first;
        let swapped = inner
            .scan(None::<Delivery>, move |held, delivery| {
                let out = match delivery {
                    Delivery::Event(BusEvent::Message { .. }) => match held.take() {
                        None => {
                            *held = Some(delivery);
                            Vec::new()
                        }
                        Some(_) if std::mem::take(&mut lose) => vec![delivery],
                        Some(first) => vec![delivery, first],
                    },
                    other => vec![other],
                };
                futures::future::ready(Some(futures::stream::iter(out)))
            })
            .flatten();
        Ok(Box::pin(swapped))
    }
    async fn ping(&self) -> Result<(), chatboard_core::bus::BusError> {
        self.inner.ping().await
    }
    fn kind(&self) -> &'static str {
        "swapping"
    }
}

/// A single-node gateway whose bus swaps messages in pairs (see [`SwappingBus`]).
async fn swapping_gateway(p: &Platform, lose_first: bool) -> Gateway {
    p.gateway_with_bus(|inner| Arc::new(SwappingBus { inner, lose_first }))
        .await
}

/// Messages announced out of order reach sockets in order without a database read per socket:
/// the hub waits briefly for the missing one. Each socket once read the database at every swap
/// (`chatboard_ws_gap_catch_ups_total` counted them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_announced_out_of_order_go_out_in_order_without_database_reads() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let gw = swapping_gateway(&p, false).await;
    let mut sockets = Vec::new();
    for token in [&bob.token, &alice.token] {
        let mut socket = connect_to(&gw.ws, room, token, None).await;
        assert_eq!(frame(&mut socket).await["type"], "connection");
        sockets.push(socket);
    }
    let mut posted = Vec::new();
    for n in 0..6 {
        posted.push(p.post(&alice, room, &format!("m{n}")).await);
    }
    for socket in &mut sockets {
        let seen = wait_for_messages(socket, room, &posted, Duration::from_secs(10)).await;
        assert_eq!(seen, posted, "in order, once each");
    }
    assert_eq!(metric(&gw, "chatboard_ws_gap_catch_ups_total").await, 0.0);
}

/// A message whose announcement is lost holds the ones after it back only for the reordering
/// wait: they go out, and each socket fills the gap from the database, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_announcement_holds_the_room_back_only_briefly() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let gw = swapping_gateway(&p, true).await;
    let mut socket = connect_to(&gw.ws, room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    let posted = vec![
        p.post(&alice, room, "lost").await,
        p.post(&alice, room, "after").await,
    ];
    let seen = wait_for_messages(&mut socket, room, &posted, Duration::from_secs(10)).await;
    assert_eq!(seen, posted, "in order, once each");
    assert_eq!(metric(&gw, "chatboard_ws_gap_catch_ups_total").await, 1.0);
}

/// A seat given while NATS is away: its announcement is lost, and the multiplexed socket of
/// the new member followed no room the gateway could tell to catch up. Once NATS is back the
/// socket follows the new room from the seat's start, so what was posted there meanwhile
/// arrives too (it used to hear nothing from the room until it reconnected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_given_while_nats_is_away_is_followed_once_it_is_back() {
    let Some(mut nats) = OwnNats::start() else {
        return;
    };
    let p = Platform::start_with(Some((nats.url(), unique_prefix())), quick_settings()).await;
    let alice = p.user("alice@example.com").await;
    let bob = p.user("bob@example.com").await;
    let org = p
        .call(
            reqwest::Method::POST,
            "/api/orgs/",
            &alice.token,
            serde_json::json!({"name": "Acme"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    p.join_org(org, &alice, &bob, "bob@example.com").await;
    let mut bob_all = p.connect_all(&bob.token).await;
    frame_of(&mut bob_all, "connection").await;

    nats.kill();
    let later = p.room(org, &alice, "later").await; // public: Bob is seated
    let meanwhile = p.post(&alice, later, "posted while NATS was away").await;
    nats.run();

    let seen = wait_for_messages(&mut bob_all, later, &[meanwhile], Duration::from_secs(30)).await;
    assert_eq!(seen, [meanwhile]);
    let after = p.post(&alice, later, "and after").await;
    let seen = wait_for_messages(&mut bob_all, later, &[after], Duration::from_secs(30)).await;
    assert_eq!(seen, [after]);
}
