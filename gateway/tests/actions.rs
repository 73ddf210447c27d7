//! A message sent over the socket takes the same action as a REST post (the application
//! layer's): the same posting limits, the same announcement bookkeeping, the same attachments.
//! Each test here failed while the socket path had a copy of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use chatboard_core::bus::{Bus, BusError, BusEvent, BusStream};
use common::{close_code, frame, frame_of, metric, Platform};
use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

/// The next answer to a frame sent (an `ack` or an `error`), past any other frames.
async fn answer(socket: &mut common::Socket) -> Value {
    loop {
        let f = frame(socket).await;
        if f["type"] == "error" || f["type"] == "ack" {
            return f;
        }
    }
}

async fn send(socket: &mut common::Socket, frame: Value) {
    socket
        .send(Ws::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The per-user posting limit (`CHATBOARD_RATE_LIMIT_PER_USER` a minute) holds over the socket
/// as over REST: the socket once took 150 messages in 11 s with a limit of 100 a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_posting_limit_holds_over_the_socket() {
    let p = Platform::start_tuned(None, common::quick_settings(), |c| {
        c.rate_limit_per_user = 5;
    })
    .await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut socket = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    for n in 0..6 {
        send(
            &mut socket,
            json!({"type": "message", "body": format!("m{n}"), "client_msg_id": format!("c{n}")}),
        )
        .await;
    }
    let mut acks = 0;
    let mut refused = Vec::new();
    while acks + refused.len() < 6 {
        let f = frame(&mut socket).await;
        match f["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => refused.push(f),
            _ => {} // our own messages coming back live
        }
    }
    assert_eq!(acks, 5, "{refused:?}");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["code"], "rate_limited", "{refused:?}");
}

/// A fault of the gateway's bus.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// Subscriptions work; every publish is refused.
    Mute,
    /// Subscribers never hear of new seats (as when the notice is late or lost).
    NoSeatNews,
    /// A room's deletion is lost on the way, and the subscriber is told events were missed.
    LostDeletions,
    /// A room's deletion, or a seat's loss, is lost on the way, and nobody is told.
    SilentLosses,
}

/// The gateway's bus with a fault.
struct FaultyBus(Arc<dyn Bus>, Fault);

#[async_trait]
impl Bus for FaultyBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        if self.1 == Fault::Mute {
            return Err(BusError::Unavailable("muted for the test".into()));
        }
        self.0.publish(event).await
    }
    async fn subscribe(&self) -> Result<BusStream, BusError> {
        use chatboard_core::bus::Delivery;
        use futures::StreamExt;
        let events = self.0.subscribe().await?;
        if self.1 == Fault::LostDeletions {
            return Ok(Box::pin(events.map(|delivery| match delivery {
                Delivery::Event(BusEvent::RoomDeleted { .. }) => Delivery::Missed,
                other => other,
            })));
        }
        let fault = self.1;
        if fault != Fault::NoSeatNews && fault != Fault::SilentLosses {
            return Ok(events);
        }
        Ok(Box::pin(events.filter(move |delivery| {
            let dropped = match fault {
                Fault::NoSeatNews => {
                    matches!(delivery, Delivery::Event(BusEvent::MemberSeated { .. }))
                }
                _ => matches!(
                    delivery,
                    Delivery::Event(BusEvent::RoomDeleted { .. } | BusEvent::MemberLeft { .. })
                ),
            };
            std::future::ready(!dropped)
        })))
    }
    async fn ping(&self) -> Result<(), BusError> {
        self.0.ping().await
    }
    fn kind(&self) -> &'static str {
        "faulty"
    }
}

/// A message whose announcement fails is still stored and acknowledged, and the failure is
/// counted in the gateway's `chatboard_bus_publish_failures_total` (it once went uncounted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_announcement_from_the_socket_is_counted() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let gw = p
        .gateway_with_bus(|bus| Arc::new(FaultyBus(bus, Fault::Mute)))
        .await;
    let mut socket = common::connect_to(&gw.ws, room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    send(
        &mut socket,
        json!({"type": "message", "body": "hello", "client_msg_id": "x1"}),
    )
    .await;
    let ack = frame(&mut socket).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        metric(&gw, "chatboard_bus_publish_failures_total").await,
        1.0
    );
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{room}/messages/"),
            &alice.token,
            Value::Null,
        )
        .await;
    assert_eq!(page["results"][0]["id"], ack["id"]);
}

/// A message frame may carry a completed upload (`file_id`), as a REST post may; the socket
/// once dropped it and stored the text alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_frame_can_attach_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().to_owned();
    let p = Platform::start_tuned(None, common::quick_settings(), |c| {
        c.uploads.local_dir = Some(files);
    })
    .await;
    let (room, alice, bob, _org) = p.team().await;
    let bytes = b"%PDF-1.7 minutes".to_vec();
    let presigned = p
        .call(
            reqwest::Method::POST,
            "/api/uploads/presign/",
            &bob.token,
            json!({"filename": "minutes.pdf", "content_type": "application/pdf", "size": bytes.len()}),
        )
        .await;
    let put = p
        .http
        .put(presigned["upload_url"].as_str().unwrap())
        .header("Content-Type", "application/pdf")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let file_id = presigned["id"].as_str().unwrap().to_owned();
    p.call(
        reqwest::Method::POST,
        &format!("/api/uploads/{file_id}/complete/"),
        &bob.token,
        json!({}),
    )
    .await;

    let mut socket = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    send(
        &mut socket,
        json!({"type": "message", "body": "the minutes", "file_id": file_id}),
    )
    .await;
    let (ack, _) = frame_of(&mut socket, "ack").await;
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{room}/messages/"),
            &alice.token,
            Value::Null,
        )
        .await;
    let message = &page["results"][0];
    assert_eq!(message["id"], ack["id"]);
    assert_eq!(message["file"]["id"], file_id.as_str(), "{message}");
    assert_eq!(message["file"]["filename"], "minutes.pdf");

    // Someone else's upload cannot be attached: the same field error as over REST.
    let mut alices = p.connect(room, &alice.token, None).await;
    assert_eq!(frame(&mut alices).await["type"], "connection");
    send(
        &mut alices,
        json!({"type": "message", "body": "mine now", "file_id": file_id}),
    )
    .await;
    let (refused, _) = frame_of(&mut alices, "error").await;
    assert_eq!(refused["code"], "invalid");
    assert!(
        refused["detail"].as_str().unwrap().starts_with("file_id:"),
        "{refused}"
    );
}

/// A NUL character in a frame is refused as invalid input naming its field, on any engine: it
/// once reached the store, which answered "unavailable, try again" on PostgreSQL (inviting
/// endless retries) and stored it on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_frame_is_refused_as_invalid() {
    let p = Platform::start().await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut socket = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    send(
        &mut socket,
        json!({"type": "message", "body": "a\u{0}b", "client_msg_id": "nul"}),
    )
    .await;
    let f = answer(&mut socket).await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("invalid")),
        "{f}"
    );
    assert!(f["detail"].as_str().unwrap_or("").contains("body"), "{f}");
    // Named, as its ack would be: a client matching answers by id settles it.
    assert_eq!(f["client_msg_id"], "nul", "{f}");
    // So is a message whose field has the wrong type (a room id as a string, as JavaScript
    // easily sends it).
    send(
        &mut socket,
        json!({"type": "message", "body": "typed", "parent_id": "5", "client_msg_id": " typed "}),
    )
    .await;
    let f = answer(&mut socket).await;
    assert_eq!(
        (f["code"].as_str(), f["client_msg_id"].as_str()),
        (Some("invalid_frame"), Some("typed")),
        "{f}"
    );
    // The socket stays usable.
    send(
        &mut socket,
        json!({"type": "message", "body": "fine", "client_msg_id": "ok"}),
    )
    .await;
    let f = answer(&mut socket).await;
    assert_eq!(f["type"], "ack", "{f}");
}

/// A repeated "started" typing frame is passed on at most once per two seconds per
/// user and room: a flood of them once fanned out to every socket in the room, each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_passed_on_at_most_once_per_interval() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let mut sender = p.connect(room, &alice.token, None).await;
    assert_eq!(frame(&mut sender).await["type"], "connection");
    let mut watcher = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut watcher).await["type"], "connection");

    let started = std::time::Instant::now();
    // Fifteen: within the socket's allowance of 20 frames a second, so none is refused.
    for _ in 0..15 {
        send(&mut sender, json!({"type": "typing", "is_typing": true})).await;
    }
    // A message after the flood: once Bob sees it, every typing event before it has arrived.
    send(
        &mut sender,
        json!({"type": "message", "body": "done", "client_msg_id": "end"}),
    )
    .await;
    let sending = started.elapsed();
    let mut typing = 0;
    loop {
        let f = frame(&mut watcher).await;
        match f["type"].as_str() {
            Some("typing") => typing += 1,
            Some("message") => break,
            _ => {}
        }
    }
    // One per two seconds of sending (plus the first): a slow machine lets a few more through,
    // never the flood.
    let allowed =
        1 + (sending.as_secs_f64() / chat::limits::TYPING_INTERVAL.as_secs_f64()) as usize;
    assert!(typing >= 1, "the first typing frame is passed on");
    assert!(typing <= allowed, "{typing} typing events in {sending:?}");
}

/// On the multiplexed connection, a frame for a room just joined (over REST) is taken even
/// before the seat's notice reaches the connection, as REST takes it: the room is followed from
/// the seat's start. A room without a seat is still not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_for_a_room_just_joined_is_taken() {
    let p = Platform::start().await;
    let (_room, alice, bob, org) = p.team().await;
    let later = p.room(org, &alice, "later").await;
    p.room_action(&bob, later, "leave").await;
    let gw = p
        .gateway_with_bus(|bus| Arc::new(FaultyBus(bus, Fault::NoSeatNews)))
        .await;
    let mut socket = tokio_tungstenite::connect_async(format!("{}/ws/?token={}", gw.ws, bob.token))
        .await
        .unwrap()
        .0;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    send(
        &mut socket,
        json!({"type": "message", "room": later, "body": "not yet", "client_msg_id": "n1"}),
    )
    .await;
    let (refused, _) = frame_of(&mut socket, "error").await;
    assert_eq!(refused["code"], "not_found", "{refused}");
    // The refusal names the message it answers, as its ack would (it named none).
    assert_eq!(refused["client_msg_id"], "n1", "{refused}");
    p.room_action(&bob, later, "join").await;
    send(
        &mut socket,
        json!({"type": "message", "room": later, "body": "just joined", "client_msg_id": "j1"}),
    )
    .await;
    let mut acked = false;
    let mut delivered = false;
    while !(acked && delivered) {
        let f = frame(&mut socket).await;
        match f["type"].as_str() {
            Some("ack") => {
                assert_eq!(f["client_msg_id"], "j1", "{f}");
                acked = true;
            }
            Some("message") if f["body"] == "just joined" => delivered = true,
            Some("error") => panic!("refused: {f}"),
            _ => {}
        }
    }
}

/// An error answering a message frame names the message it answers, as an ack does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answering_a_message_names_it() {
    let p = Platform::start().await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut socket = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    send(
        &mut socket,
        json!({"type": "message", "body": "   ", "client_msg_id": "empty-1"}),
    )
    .await;
    let (error, _) = frame_of(&mut socket, "error").await;
    assert_eq!(error["code"], "invalid", "{error}");
    assert_eq!(error["client_msg_id"], "empty-1", "{error}");
}

/// A room deleted while its deletion's news was lost: the connection that follows it finds out
/// when it catches up, and is told what a new connection would be, "no such room" (4004). It
/// was told it had lost its seat (4003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_deleted_unannounced_closes_its_socket_as_gone() {
    let (_p, _gw, mut socket) = deleted_under(Fault::LostDeletions).await;
    assert_eq!(close_code(&mut socket).await, 4004);
}

/// A room deleted whose news has not come (or never does): a message sent to it is refused as
/// not found, and the per-room connection is told what a new connection would be, "no such
/// room" (4004). It was told it had lost its seat (4003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_deleted_room_closes_its_socket_as_gone() {
    let (_p, _gw, mut socket) = deleted_under(Fault::SilentLosses).await;
    send(
        &mut socket,
        json!({"type": "message", "body": "anyone?", "client_msg_id": "gone-1"}),
    )
    .await;
    assert_eq!(close_code(&mut socket).await, 4004);
}

/// The same with the sender removed from the organization (the room still there): "not a
/// member" (4003), not "no such room".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_leaving_the_organization_closes_its_socket_as_not_a_member() {
    let p = Platform::start().await;
    let (room, alice, bob, org) = p.team().await;
    let gw = p
        .gateway_with_bus(|bus| Arc::new(FaultyBus(bus, Fault::SilentLosses)))
        .await;
    let mut socket = common::connect_to(&gw.ws, room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/orgs/{org}/members/{}/", bob.id),
        &alice.token,
        Value::Null,
    )
    .await;
    send(
        &mut socket,
        json!({"type": "message", "body": "still here?", "client_msg_id": "out-1"}),
    )
    .await;
    assert_eq!(close_code(&mut socket).await, 4003);
}

/// Bob's per-room socket on a gateway whose bus has `fault`, greeted, and its room then
/// deleted through the API (with the platform and the gateway, which must outlive it).
async fn deleted_under(fault: Fault) -> (Platform, common::Gateway, common::Socket) {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let gw = p
        .gateway_with_bus(move |bus| Arc::new(FaultyBus(bus, fault)))
        .await;
    let mut socket = common::connect_to(&gw.ws, room, &bob.token, None).await;
    assert_eq!(frame(&mut socket).await["type"], "connection");
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/rooms/{room}/"),
        &alice.token,
        Value::Null,
    )
    .await;
    (p, gw, socket)
}
