//! Lost seats reach open sockets even when their first announcement does not (a multiplexed
//! one is told with a `left` frame), and so do new ones (it follows the room); an old loss
//! announced again never undoes a newer seat, and room-mates who share no room any more stop
//! seeing each other online. In both shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

/// What a restarting API process does first: announce the last changes again.
async fn api_restarts(p: &Platform) {
    let window = Duration::from_secs(60);
    p.app.state.chat.reannounce_recent(window).await.unwrap();
}

/// Bob leaves a room and the API dies between the commit and the announcement: his open socket
/// went on receiving the room's messages until it reconnected. The leave is in the outbox now,
/// and the next API process announces it again at start-up.
async fn a_leave_never_announced_is_announced_at_the_next_start(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let other = p.room(org, &alice, "other").await;
    p.room_action(&bob, other, "join").await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    // The leave, committed and never announced.
    assert!(p
        .app
        .state
        .store
        .remove_room_member(general, bob.id)
        .await
        .unwrap());
    api_restarts(&p).await;
    // The client hears that the room left its list.
    let (left, _) = frame_of(&mut all, "left").await;
    assert_eq!(
        (left["room"].as_i64(), left["reason"].as_str()),
        (Some(general), Some("not_member")),
        "{left}"
    );
    p.post(&alice, general, "not for bob any more").await;
    let marker = p.post(&alice, other, "for bob").await;
    loop {
        let (message, _) = frame_of(&mut all, "message").await;
        assert_ne!(message["room"].as_i64(), Some(general), "{message}");
        if message["id"].as_i64() == Some(marker) {
            break;
        }
    }
}

/// As above, with more than a thousand changes committed after the leave before the next API
/// process starts (an `@room` in a room of a thousand writes that many): the start-up
/// announced only the newest thousand, and Bob's socket went on following the room.
async fn a_leave_never_announced_behind_a_thousand_changes_is_announced_too(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let noise = p.private_room(org, &alice, "noise").await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    let store = &p.app.state.store;
    assert!(store.remove_room_member(general, bob.id).await.unwrap());
    for n in 0..1_100 {
        let message = chatboard_store::NewMessage {
            room_id: noise,
            sender_id: alice.id,
            body: format!("noise {n}"),
            client_msg_id: None,
            file: None,
            parent_id: None,
            mentions: Default::default(),
        };
        store
            .post_message(message, chrono::Utc::now())
            .await
            .unwrap();
    }
    api_restarts(&p).await;
    let (left, _) = frame_of(&mut all, "left").await;
    assert_eq!(left["room"].as_i64(), Some(general), "{left}");
}

/// Bob is given a seat and the API dies between the commit and the announcement: his open
/// socket never followed the room (nothing but the seat's announcement adds a room to it), and
/// missed all of it until he reconnected. The seat is announced again at the next start.
async fn a_seat_never_announced_is_announced_at_the_next_start(p: Arc<Platform>) {
    let (_general, alice, bob, org) = p.team().await;
    let other = p.private_room(org, &alice, "private").await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    // The seat, committed and never announced.
    assert!(p
        .app
        .state
        .store
        .add_room_member(
            other,
            bob.id,
            chatboard_store::JoinVia::Invite,
            Some(alice.id),
            chrono::Utc::now(),
        )
        .await
        .unwrap());
    api_restarts(&p).await;
    let marker = p.post(&alice, other, "for bob now").await;
    assert_eq!(
        message_in(&mut all, other).await["id"].as_i64(),
        Some(marker)
    );
}

/// Bob leaves a room and joins it again; then an API starts and announces his leave again. His
/// socket must go on following the room: the gateway checks a loss before acting on it.
async fn an_old_leave_announced_again_does_not_undo_a_new_seat(p: Arc<Platform>) {
    let (general, alice, bob, _org) = p.team().await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    p.room_action(&bob, general, "leave").await;
    p.room_action(&bob, general, "join").await;
    let back = p.post(&alice, general, "welcome back").await;
    assert_eq!(
        message_in(&mut all, general).await["id"].as_i64(),
        Some(back)
    );
    api_restarts(&p).await;
    let next = p.post(&alice, general, "still here").await;
    assert_eq!(
        message_in(&mut all, general).await["id"].as_i64(),
        Some(next)
    );
}

/// Alice, online, leaves the only room she shares with Bob: Bob is told she is offline. He
/// heard nothing, and saw her online until he reconnected: her going away later did not reach
/// him either, as presence goes to room-mates only. Carol, whom a direct message still joins to
/// her, is told nothing.
async fn who_leaves_the_last_shared_room_goes_offline_there(p: Arc<Platform>) {
    let (general, alice, bob, carol) = team_with_a_dm(&p).await;
    let mut b = p.connect_all(&bob.token).await;
    let mut c = p.connect_all(&carol.token).await;
    // Their snapshots are out (they precede the answer to a ping) before Alice comes: she is
    // announced to each once.
    for socket in [&mut b, &mut c] {
        socket
            .send(Ws::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .unwrap();
        frame_of(socket, "pong").await;
    }
    let _a = p.connect_all(&alice.token).await;
    for socket in [&mut b, &mut c] {
        assert_eq!(presence_of(socket, alice.id).await, "online");
    }
    p.room_action(&alice, general, "leave").await;
    assert_eq!(presence_of(&mut b, alice.id).await, "offline");
    // Carol: nothing about Alice before a message posted after the leave.
    let marker = p.post(&bob, general, "after the leave").await;
    let (message, before) = frame_of(&mut c, "message").await;
    assert_eq!(message["id"].as_i64(), Some(marker));
    assert!(
        !before
            .iter()
            .any(|f| f["type"] == "presence" && f["user_id"] == alice.id),
        "{before:?}"
    );
}

/// A connection to one room hears that someone who left that room went offline there, even
/// when its user still shares another room with them (it used to hear nothing, and showed them
/// online until it reconnected: their going away later reached only the rooms they sat in).
async fn a_room_socket_sees_a_leaver_go(p: Arc<Platform>) {
    let (general, alice, _bob, carol) = team_with_a_dm(&p).await;
    let (mut c, _a) = watching_come_online(&p, general, &carol, &alice).await;
    p.room_action(&alice, general, "leave").await;
    assert_eq!(presence_of(&mut c, alice.id).await, "offline");
}

/// Alice, online, is in the room again when her leave is told again (an API re-announcing its
/// last changes, a publish retried): the room's sockets do not show her offline. They did, and
/// nothing told them she was online again. Bob's real leave afterwards is told: departures are
/// told in order, so Alice's would have come first.
async fn a_leave_told_again_does_not_show_a_member_back_offline(p: Arc<Platform>) {
    let (general, alice, bob, carol) = team_with_a_dm(&p).await;
    let (mut c, _a) = watching_come_online(&p, general, &carol, &alice).await;
    let _b = p.connect_all(&bob.token).await;
    assert_eq!(presence_of(&mut c, bob.id).await, "online");
    let again = chatboard_core::bus::BusEvent::MemberLeft {
        room: general,
        user_id: alice.id,
        room_members: Some(3),
    };
    p.app.state.bus.publish(&again).await.unwrap();
    p.room_action(&bob, general, "leave").await;
    loop {
        let (change, _) = frame_of(&mut c, "presence").await;
        assert_ne!(
            (change["user_id"].as_i64(), change["status"].as_str()),
            (Some(alice.id), Some("offline")),
            "Alice shown offline by her leave told again"
        );
        if change["user_id"].as_i64() == Some(bob.id) {
            assert_eq!(change["status"], "offline");
            break;
        }
    }
}

/// `watcher`'s connection to `room`, its snapshot out (it precedes the answer to a ping), and
/// `who` then connected to all their rooms, which `watcher` is told; both sockets.
async fn watching_come_online(
    p: &Platform,
    room: i64,
    watcher: &User,
    who: &User,
) -> (Socket, Socket) {
    let mut socket = p.connect(room, &watcher.token, None).await;
    socket
        .send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    frame_of(&mut socket, "pong").await;
    let theirs = p.connect_all(&who.token).await;
    assert_eq!(presence_of(&mut socket, who.id).await, "online");
    (socket, theirs)
}

/// The team's room and its Alice and Bob, and Carol, a member of the organization whom a direct
/// message joins to Alice.
async fn team_with_a_dm(p: &Platform) -> (i64, User, User, User) {
    let (general, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    p.call(
        reqwest::Method::POST,
        "/api/rooms/dm/",
        &alice.token,
        json!({"org": org, "user_id": carol.id}),
    )
    .await;
    (general, alice, bob, carol)
}

/// The status in the next presence frame about `user_id` (others are passed over).
async fn presence_of(socket: &mut Socket, user_id: i64) -> String {
    loop {
        let (change, _) = frame_of(socket, "presence").await;
        if change["user_id"].as_i64() == Some(user_id) {
            return change["status"].as_str().unwrap_or_default().to_owned();
        }
    }
}

both_shapes!(
    a_leave_never_announced_is_announced_at_the_next_start,
    a_leave_never_announced_behind_a_thousand_changes_is_announced_too,
    a_seat_never_announced_is_announced_at_the_next_start,
    an_old_leave_announced_again_does_not_undo_a_new_seat,
    who_leaves_the_last_shared_room_goes_offline_there,
    a_room_socket_sees_a_leaver_go,
    a_leave_told_again_does_not_show_a_member_back_offline,
);
