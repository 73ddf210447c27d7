//! The multiplexed endpoint `/ws/` and presence, in both shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::*;
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

/// One socket follows every room of its user; frames carry their room, and client frames name it.
async fn one_socket_follows_all_of_a_users_rooms(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let random = p.room(org, &alice, "random").await;
    // A room Bob is not in.
    let carol = p.user("carol@example.com").await;
    let elsewhere_org = p
        .call(
            reqwest::Method::POST,
            "/api/orgs/",
            &carol.token,
            json!({"name": "Else"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let elsewhere = p.room(elsewhere_org, &carol, "private").await;

    let mut s = p.connect_all(&bob.token).await;
    assert_eq!(
        frame(&mut s).await,
        json!({"type": "connection", "room": null, "user_id": bob.id, "user_email": "bob@example.com"})
    );
    let first = p.post(&alice, general, "in general").await;
    let second = p.post(&alice, random, "in random").await;
    p.post(&carol, elsewhere, "not for bob").await;
    let a = frame(&mut s).await;
    let b = frame(&mut s).await;
    // Order is promised within a room only: rooms are dispatched apart (hub shards, and each
    // room its own subject on NATS), so the two may arrive either way.
    let mut got = [
        (a["id"].as_i64(), a["room"].as_i64()),
        (b["id"].as_i64(), b["room"].as_i64()),
    ];
    got.sort();
    assert_eq!(
        got,
        [(Some(first), Some(general)), (Some(second), Some(random))]
    );
    assert!(quiet(&mut s).await, "nothing from rooms Bob is not in");

    // Client frames name their room.
    let send = json!({"type": "message", "room": random, "body": "over the socket", "client_msg_id": "m1"});
    s.send(Ws::Text(send.to_string().into())).await.unwrap();
    let (ack, skipped) = frame_of(&mut s, "ack").await;
    // The message's own frame comes too, before or after the ack (answers and room events go
    // out in their own turns): taken now, or a busy machine had it arrive among the frames of
    // rooms joined later.
    if !skipped
        .iter()
        .any(|f| f["type"] == "message" && f["id"] == ack["id"])
    {
        let (echo, _) = frame_of(&mut s, "message").await;
        assert_eq!(echo["id"], ack["id"], "{echo}");
    }
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{random}/messages/"),
            &alice.token,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(page["results"][0]["id"], ack["id"]);
    for (bad, code) in [
        (json!({"type": "message", "body": "where?"}), "invalid"),
        (
            json!({"type": "message", "room": elsewhere, "body": "sneaky"}),
            "not_found",
        ),
        (
            json!({"type": "typing", "room": elsewhere, "is_typing": true}),
            "not_found",
        ),
        (json!({"type": "read", "msg_id": first}), "invalid"),
    ] {
        s.send(Ws::Text(bad.to_string().into())).await.unwrap();
        let (e, _) = frame_of(&mut s, "error").await;
        assert_eq!(e["code"], code, "{bad}");
    }
    let mut a_socket = p.connect(general, &alice.token, None).await;
    frame(&mut a_socket).await;
    s.send(Ws::Text(
        json!({"type": "typing", "room": general, "is_typing": true})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let (typing, _) = frame_of(&mut a_socket, "typing").await;
    assert_eq!(
        (typing["room"].as_i64(), typing["user_id"].as_i64()),
        (Some(general), Some(bob.id))
    );
    s.send(Ws::Text(
        json!({"type": "read", "room": general, "msg_id": first})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let (read, _) = frame_of(&mut a_socket, "read").await;
    assert_eq!(read["last_read_msg_id"].as_i64(), Some(first));

    // Rooms that come later are followed from then on: a new PUBLIC room seats Bob, and so
    // does an invitation to a PRIVATE one.
    let later = p.room(org, &alice, "later").await;
    let private = p.private_room(org, &alice, "private").await;
    p.call(
        reqwest::Method::POST,
        &format!("/api/rooms/{private}/invite/"),
        &alice.token,
        json!({"user_id": bob.id}),
    )
    .await;
    let in_later = p.post(&alice, later, "news").await;
    let in_private = p.post(&alice, private, "secret").await;
    let (m1, _) = frame_of(&mut s, "message").await;
    let (m2, _) = frame_of(&mut s, "message").await;
    // Order is promised within a room only: across rooms (each its own subject on the bus in
    // the scale-out shape) the two may arrive either way.
    let mut got = [
        (m1["room"].as_i64(), m1["id"].as_i64()),
        (m2["room"].as_i64(), m2["id"].as_i64()),
    ];
    got.sort();
    let mut expected = [
        (Some(later), Some(in_later)),
        (Some(private), Some(in_private)),
    ];
    expected.sort();
    assert_eq!(got, expected);

    // A user without any room may connect too, and stays connected.
    let loner = p.user("loner@example.com").await;
    let mut l = p.connect_all(&loner.token).await;
    assert_eq!(frame(&mut l).await["type"], "connection");
    l.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(frame(&mut l).await["type"], "pong");
}

/// Room-mates learn who comes and goes; a newcomer learns who is already there; nobody hears
/// about themself, and strangers hear nothing.
async fn presence_goes_to_room_mates(p: Arc<Platform>) {
    let (_room, alice, bob, _org) = p.team().await;
    let stranger = p.user("stranger@example.com").await;
    let lonely_org = p
        .call(
            reqwest::Method::POST,
            "/api/orgs/",
            &stranger.token,
            json!({"name": "Alone"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    p.room(lonely_org, &stranger, "solo").await;
    let mut outsider = p.connect_all(&stranger.token).await;
    frame(&mut outsider).await;

    // Once Bob's snapshot is out, only changes follow.
    let (mut b, snapshot) = greeted_with_snapshot(&p, &bob.token).await;
    assert!(snapshot.is_empty(), "nobody else online yet: {snapshot:?}");
    let mut a = p.connect_all(&alice.token).await;
    let (hello, before) = frame_of(&mut a, "connection").await;
    assert!(before.is_empty() && hello["user_id"] == alice.id);
    // Alice learns Bob is here (the snapshot) ...
    let (seen, _) = frame_of(&mut a, "presence").await;
    assert_eq!(
        seen,
        json!({"type": "presence", "user_id": bob.id, "status": "online"})
    );
    // ... and Bob learns Alice arrived.
    let (arrived, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        arrived,
        json!({"type": "presence", "user_id": alice.id, "status": "online"})
    );
    // A second connection of Alice's changes nothing; closing it neither.
    let mut a2 = p.connect_all(&alice.token).await;
    frame(&mut a2).await;
    drop(a2);
    drop(a);
    let (left, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        left,
        json!({"type": "presence", "user_id": alice.id, "status": "offline"})
    );
    assert!(quiet(&mut b).await);
    // The stranger shares no room with either and heard nothing.
    let mut heard = Vec::new();
    while !quiet_or_collect(&mut outsider, &mut heard).await {}
    assert!(heard.is_empty(), "{heard:?}");
}

/// `token`'s user's multiplexed socket, greeted, and the frames of its presence snapshot,
/// which come before the answer to a ping.
async fn greeted_with_snapshot(p: &Platform, token: &str) -> (Socket, Vec<serde_json::Value>) {
    let mut socket = p.connect_all(token).await;
    frame(&mut socket).await;
    socket
        .send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    let (_, snapshot) = frame_of(&mut socket, "pong").await;
    (socket, snapshot)
}

/// Collects any text frame arriving within a short while; true once quiet.
async fn quiet_or_collect(socket: &mut Socket, into: &mut Vec<serde_json::Value>) -> bool {
    use futures::StreamExt;
    match tokio::time::timeout(std::time::Duration::from_millis(300), socket.next()).await {
        Err(_) => true,
        Ok(Some(Ok(Ws::Text(text)))) => {
            into.push(serde_json::from_str(text.as_str()).unwrap());
            false
        }
        Ok(_) => false,
    }
}

/// Those a message mentions get a `mention` frame on their multiplexed socket, and nobody
/// else: not the room's other sockets, not the sender. `@here` reaches who is online.
async fn mentions_reach_the_mentioned_user_socket(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    let mut bobs = p.connect_all(&bob.token).await;
    assert_eq!(frame(&mut bobs).await["type"], "connection");
    let mut bobs_room = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut bobs_room).await["type"], "connection");
    let mut alices = p.connect_all(&alice.token).await;
    assert_eq!(frame(&mut alices).await["type"], "connection");
    // Posted over Alice's socket: the gateway's own actions resolve `@here`.
    let post = json!({"type": "message", "room": room, "body": "@here and @carol@example.com: ship?", "client_msg_id": "m1"});
    alices
        .send(Ws::Text(post.to_string().into()))
        .await
        .unwrap();
    let (mention, before) = frame_of(&mut bobs, "mention").await;
    assert_eq!(mention["room"].as_i64(), Some(room), "{mention}");
    assert_eq!(
        mention["message"]["body"],
        "@here and @carol@example.com: ship?"
    );
    assert_eq!(mention["message"]["mentions"], json!([carol.id]));
    assert!(
        before.iter().any(|f| f["type"] == "message"),
        "the message itself comes first: {before:?}"
    );
    let (message, _) = frame_of(&mut bobs_room, "message").await;
    let id = message["id"].as_i64().unwrap();
    assert!(quiet(&mut bobs_room).await, "no mention on a room socket");
    let (_, mut seen) = frame_of(&mut alices, "ack").await;
    while !quiet_or_collect(&mut alices, &mut seen).await {}
    assert!(
        !seen.iter().any(|f| f["type"] == "mention"),
        "never the sender: {seen:?}"
    );
    // Bob was online, so `@here` mentions him; Carol, offline, is mentioned by address.
    for user in [&bob, &carol] {
        let r = p
            .call(
                reqwest::Method::GET,
                "/auth/me/mentions/",
                &user.token,
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(r["results"][0]["id"].as_i64(), Some(id), "{r}");
    }
    let r = p
        .call(
            reqwest::Method::GET,
            "/auth/me/mentions/",
            &alice.token,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(r["results"], json!([]));
}

/// Someone already online who joins an organization: they learn who of their new room-mates is
/// online, and those room-mates learn they are (no change announced it: they came online
/// before sharing a room).
async fn a_new_seat_brings_presence_both_ways(p: Arc<Platform>) {
    let (_room, alice, _bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    let mut c = p.connect_all(&carol.token).await;
    frame(&mut c).await;
    // Carol shares no room with Alice yet.
    let (mut a, snapshot) = greeted_with_snapshot(&p, &alice.token).await;
    assert!(
        !snapshot.iter().any(|f| f["user_id"] == carol.id),
        "{snapshot:?}"
    );

    // Carol joins: she is seated in the org's PUBLIC room with Alice.
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    let (seen_by_carol, _) = frame_of(&mut c, "presence").await;
    assert_eq!(
        seen_by_carol,
        json!({"type": "presence", "user_id": alice.id, "status": "online"})
    );
    let (seen_by_alice, _) = frame_of(&mut a, "presence").await;
    assert_eq!(
        seen_by_alice,
        json!({"type": "presence", "user_id": carol.id, "status": "online"})
    );
}

/// A room of more than fifty members carries no presence: Alice and Bob, who share only such
/// a room, hear nothing of each other's coming and going (each of N members would hear of all
/// the others: N² frames when they all reconnect). Carol, who also has a direct-message room
/// with Bob, sees him and is seen by him.
async fn presence_stays_out_of_rooms_too_large_for_it(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    p.seat_more(room, 49).await;
    let dm = p
        .call(
            reqwest::Method::POST,
            "/api/rooms/dm/",
            &bob.token,
            json!({"org": org, "user_id": carol.id}),
        )
        .await;
    assert!(dm["id"].is_i64(), "{dm}");

    let mut b = p.connect_all(&bob.token).await;
    frame(&mut b).await;
    // Bob is online, but not to Alice.
    let (_a, snapshot) = greeted_with_snapshot(&p, &alice.token).await;
    assert!(
        !snapshot.iter().any(|f| f["type"] == "presence"),
        "{snapshot:?}"
    );
    let mut c = p.connect_all(&carol.token).await;
    let (seen_by_carol, _) = frame_of(&mut c, "presence").await;
    assert_eq!(
        seen_by_carol,
        json!({"type": "presence", "user_id": bob.id, "status": "online"})
    );
    // Changes reach Bob in the order they came: Alice's arrival, had it been told him, would
    // come before Carol's.
    loop {
        let heard = any_frame(&mut b).await;
        if heard["type"] == "presence" {
            assert_eq!(
                heard,
                json!({"type": "presence", "user_id": carol.id, "status": "online"}),
                "Bob hears of Carol only"
            );
            break;
        }
    }
}

/// A room that grows past fifty members stops carrying presence, and one that shrinks back
/// starts again: its followers are told who is online anew each time. Bob, who shares only
/// `general` with Alice, kept her shown online after the room grew (her going would no longer
/// reach him through it), and after it shrank back he learned of her only at his next
/// connection.
async fn presence_follows_a_room_across_fifty_members(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    p.room_action(&carol, room, "leave").await;
    p.seat_more(room, 48).await; // 50 with Alice and Bob

    let mut b = p.connect_all(&bob.token).await;
    frame(&mut b).await;
    let _a = p.connect_all(&alice.token).await;
    let (arrived, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        arrived,
        json!({"type": "presence", "user_id": alice.id, "status": "online"})
    );

    p.room_action(&carol, room, "join").await; // 51
    let (grown, _) = frame_of(&mut b, "presence_snapshot").await;
    assert_eq!(grown, json!({"type": "presence_snapshot", "online": []}));

    p.room_action(&carol, room, "leave").await; // 50 again
    let (shrunk, _) = frame_of(&mut b, "presence_snapshot").await;
    assert_eq!(
        shrunk,
        json!({"type": "presence_snapshot", "online": [alice.id]})
    );
}

/// A PRIVATE room of Alice's in `org`, in which Bob has no seat.
async fn private_room(p: &Platform, org: i64, alice: &User) -> i64 {
    p.private_room(org, alice, "secret").await
}

/// The ids of `room`'s message frames up to and including `last`.
async fn messages_until(socket: &mut Socket, room: i64, last: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        ids.push(message_in(socket, room).await["id"].as_i64().unwrap());
    }
    ids
}

/// A seat is committed, then announced a moment later. A message posted in between reached no
/// socket of the new member live (the hub did not follow the room for them yet); their
/// multiplexed socket reads it from the database, as it reads nothing from before the seat.
/// The announcement used to carry where the room stood when it was made, past that message.
async fn what_is_posted_before_a_seat_is_announced_still_arrives(p: Arc<Platform>) {
    let (_general, alice, bob, org) = p.team().await;
    let secret = private_room(&p, org, &alice).await;
    p.post(&alice, secret, "before bob's seat").await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    // Bob's seat, committed but not yet announced (as by an API slow to do it).
    p.sql(&format!(
        "INSERT INTO room_members (room_id, user_id, joined_at) \
         VALUES ({secret}, {}, '2026-01-01T00:00:00Z')",
        bob.id
    ))
    .await;
    let between = p
        .post(&alice, secret, "between the seat and its news")
        .await;
    // Announced late, as by an API slow to do it.
    p.announcer().seated(secret, bob.id).await;
    let after = p.post(&alice, secret, "after the news").await;
    assert_eq!(
        messages_until(&mut all, secret, after).await,
        [between, after]
    );
}

/// A new room on a multiplexed socket knows where it stands in the room's seq: a message whose
/// announcement was lost is read from the database when the next one arrives, not skipped.
async fn a_newly_followed_room_fills_a_gap_from_the_database(p: Arc<Platform>) {
    let (_general, alice, bob, org) = p.team().await;
    let secret = private_room(&p, org, &alice).await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    p.call(
        reqwest::Method::POST,
        &format!("/api/rooms/{secret}/invite/"),
        &alice.token,
        json!({"user_id": bob.id}),
    )
    .await;
    let lost = p
        .stored_unannounced(secret, &alice, "its announcement was lost")
        .await;
    let next = p.post(&alice, secret, "the next one").await;
    assert_eq!(messages_until(&mut all, secret, next).await, [lost, next]);
}

/// A seat lost and taken again at once: the hub hears of both before the connection has
/// handled the first, and the connection, leaving the room for the loss, must not stay out of
/// it for the new seat.
async fn a_seat_lost_and_taken_again_at_once_keeps_the_room_live(p: Arc<Platform>) {
    let (general, alice, bob, _org) = p.team().await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    // Announced back to back, as a leave and a join a moment apart are.
    let announcer = p.announcer();
    announcer
        .seats_lost(&[chatboard_store::Seat {
            room_id: general,
            user_id: bob.id,
        }])
        .await;
    announcer.seated(general, bob.id).await;
    // The socket answers a ping once it has handled both.
    all.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    frame_of(&mut all, "pong").await;
    let live = p.post(&alice, general, "still here").await;
    assert_eq!(message_in(&mut all, general).await["id"], live);
}

/// An `@here` message keeps whom it mentioned through an edit: someone who went offline since
/// keeps the mention (an edit used to take it away), and is not pinged again once back online
/// (the next edit used to mention them anew).
async fn an_edit_keeps_whom_here_mentioned(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut bobs = p.connect_all(&bob.token).await;
    assert_eq!(frame(&mut bobs).await["type"], "connection");
    let mut alices = p.connect_all(&alice.token).await;
    assert_eq!(frame(&mut alices).await["type"], "connection");
    let post =
        json!({"type": "message", "room": room, "body": "@here standup", "client_msg_id": "h1"});
    alices
        .send(Ws::Text(post.to_string().into()))
        .await
        .unwrap();
    let (mention, _) = frame_of(&mut bobs, "mention").await;
    let id = mention["message"]["id"].as_i64().unwrap();
    let mentioned = |user: &User| {
        let p = p.clone();
        let token = user.token.clone();
        async move {
            let r = p
                .call(
                    reqwest::Method::GET,
                    "/auth/me/mentions/",
                    &token,
                    serde_json::Value::Null,
                )
                .await;
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["id"].as_i64() == Some(id))
                .count()
        }
    };
    assert_eq!(mentioned(&bob).await, 1);

    // Bob goes offline; Alice fixes a typo.
    drop(bobs);
    loop {
        let (change, _) = frame_of(&mut alices, "presence").await;
        if change["user_id"] == bob.id && change["status"] == "offline" {
            break;
        }
    }
    let edit = |body: &'static str| {
        let p = p.clone();
        let token = alice.token.clone();
        async move {
            p.call(
                reqwest::Method::PATCH,
                &format!("/api/rooms/{room}/messages/{id}/"),
                &token,
                json!({ "body": body }),
            )
            .await
        }
    };
    edit("@here standup now").await;
    assert_eq!(mentioned(&bob).await, 1, "the mention went with the typo");

    // Back online, Bob is not pinged by the next edit.
    let mut bobs = p.connect_all(&bob.token).await;
    assert_eq!(frame(&mut bobs).await["type"], "connection");
    // Seen online (in the scale-out shape, through the presence every process reads) before
    // the edit, or the edit could not have pinged him anyway.
    loop {
        let (change, _) = frame_of(&mut alices, "presence").await;
        if change["user_id"] == bob.id && change["status"] == "online" {
            break;
        }
    }
    edit("@here standup now!").await;
    // This edit's update (the socket may first be told of the one made while Bob was away).
    loop {
        let (update, before) = frame_of(&mut bobs, "message.updated").await;
        assert!(!before.iter().any(|f| f["type"] == "mention"), "{before:?}");
        if update["body"] == "@here standup now!" {
            break;
        }
    }
    assert!(quiet(&mut bobs).await, "no mention after the edit");
}

both_shapes!(
    a_seat_lost_and_taken_again_at_once_keeps_the_room_live,
    what_is_posted_before_a_seat_is_announced_still_arrives,
    a_newly_followed_room_fills_a_gap_from_the_database,
    one_socket_follows_all_of_a_users_rooms,
    presence_goes_to_room_mates,
    a_new_seat_brings_presence_both_ways,
    presence_stays_out_of_rooms_too_large_for_it,
    presence_follows_a_room_across_fifty_members,
    mentions_reach_the_mentioned_user_socket,
    an_edit_keeps_whom_here_mentioned
);

/// In the scale-out shape presence crosses gateways, and a gateway that dies without saying
/// goodbye drops out of everybody's view once its entries expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_gateways_and_forgets_dead_ones() {
    use chatboard_core::bus::NatsBus;
    use chatboard_core::presence::{NatsPresence, Presence, PresenceSettings};
    let Some(url) = nats_url() else { return };
    let prefix = unique_prefix();
    let p = Platform::start_with(Some((url.clone(), prefix.clone())), quick_settings()).await;
    let (room, alice, bob, _org) = p.team().await;
    let other = p.another_gateway().await;
    let mut b = p.connect(room, &bob.token, None).await;
    frame(&mut b).await;
    b.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    frame_of(&mut b, "pong").await;
    let mut a = connect_to(&other.ws, room, &alice.token, None).await;
    frame(&mut a).await;
    let (arrived, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        arrived,
        json!({"type": "presence", "user_id": alice.id, "status": "online"})
    );
    // Any pod can say who is online.
    assert_eq!(
        p.gw.presence.online(&[alice.id, bob.id]),
        vec![alice.id, bob.id]
    );
    drop(a);
    let (left, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        left,
        json!({"type": "presence", "user_id": alice.id, "status": "offline"})
    );

    // A pod that holds Alice dies: its entry is never deleted, only no longer refreshed.
    let bus = NatsBus::connect(&url, &prefix).await.unwrap();
    let doomed = NatsPresence::start(
        bus.client(),
        &prefix,
        PresenceSettings {
            ttl: PRESENCE_TTL,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    doomed.connected(alice.id).await;
    let (back, _) = frame_of(&mut b, "presence").await;
    assert_eq!(back["status"], "online");
    let died = std::time::Instant::now();
    drop(doomed);
    let (gone, _) = frame_of(&mut b, "presence").await;
    assert_eq!(
        gone,
        json!({"type": "presence", "user_id": alice.id, "status": "offline"})
    );
    let waited = died.elapsed();
    assert!(
        waited >= PRESENCE_TTL / 2,
        "offline only once the entry expired, not at once ({waited:?})"
    );
    p.cleanup().await;
}

/// A post's answer can be older than a seat: Bob's post into a room fails because he has just
/// left it, its answer waits behind an earlier post's, and meanwhile he joins the room again.
/// The late `not_found` must not make his socket stop following the room he sits in again.
/// (PostgreSQL: held row locks order the steps, the answers' order does the rest.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_refusal_does_not_unfollow_a_room_joined_since() {
    use std::time::Duration;
    use testing::{waiting_for_locks, HeldLocks};
    let Some(p) = Platform::scale_out().await else {
        return;
    };
    let (general, alice, bob, org) = p.team().await;
    // The gateway's posts are stored by several writers, by room id: `slow` has a writer of
    // its own, `stuck` shares the one of `left`.
    let queues = i64::from(common::GATEWAY_WRITE_QUEUES);
    let left = p.room(org, &alice, "left").await;
    let mut slow = p.room(org, &alice, "slow").await;
    while slow % queues == left % queues {
        slow = p.room(org, &alice, "slow").await;
    }
    let mut stuck = slow;
    while stuck % queues != left % queues {
        stuck = p.room(org, &alice, "stuck").await;
    }
    let mut s = p.connect_all(&bob.token).await;
    assert_eq!(frame(&mut s).await["type"], "connection");
    let mut a = p.connect(general, &alice.token, None).await;
    assert_eq!(frame(&mut a).await["type"], "connection");

    // Bob's first post waits for its room's row; so does one of Alice's that keeps the writer
    // of `left` busy. (Posted through the gateway: its writers are its own.)
    let lock = |room: i64| format!("SELECT id FROM rooms WHERE id = {room} FOR NO KEY UPDATE");
    let slow_lock = HeldLocks::take(&p.db_url, &lock(slow)).await;
    let stuck_lock = HeldLocks::take(&p.db_url, &lock(stuck)).await;
    let mut w = p.connect(stuck, &alice.token, None).await;
    assert_eq!(frame(&mut w).await["type"], "connection");
    let post = |room: Option<i64>, body: &str| {
        let mut frame = json!({"type": "message", "body": body, "client_msg_id": body});
        if let Some(room) = room {
            frame["room"] = json!(room);
        }
        Ws::Text(frame.to_string().into())
    };
    s.send(post(Some(slow), "first")).await.unwrap();
    w.send(post(None, "in the way")).await.unwrap();
    let both_waiting = eventually(Duration::from_secs(20), || async {
        waiting_for_locks(&p.db_url).await == 2
    })
    .await;
    assert!(both_waiting, "both posts wait for their room's row");

    // Bob's second post queues behind Alice's. (Frames are handled in order: once his typing
    // is heard, the post is queued.)
    let typing = json!({"type": "typing", "room": general, "is_typing": true});
    s.send(post(Some(left), "second")).await.unwrap();
    s.send(Ws::Text(typing.to_string().into())).await.unwrap();
    frame_of(&mut a, "typing").await;

    // He leaves the room; his post there then fails, its answer held behind the first's.
    p.room_action(&bob, left, "leave").await;
    stuck_lock.release().await;
    // Alice's next post is stored after his failed one, by the same writer.
    w.send(post(None, "after it")).await.unwrap();
    for expected in ["in the way", "after it"] {
        assert_eq!(frame_of(&mut w, "ack").await.0["client_msg_id"], expected);
    }

    // He joins again, and his socket follows the room from then on.
    p.room_action(&bob, left, "join").await;
    let back = p.post(&alice, left, "welcome back").await;
    assert_eq!(message_in(&mut s, left).await["id"].as_i64(), Some(back));

    // The first post goes through; the answers follow in the order of the frames.
    slow_lock.release().await;
    let (ack, _) = frame_of(&mut s, "ack").await;
    assert_eq!(ack["client_msg_id"], "first");
    let (refused, _) = frame_of(&mut s, "error").await;
    assert_eq!(refused["code"], "not_found", "{refused}");

    // Still following: the room's next message arrives.
    let next = p.post(&alice, left, "still here?").await;
    assert_eq!(message_in(&mut s, left).await["id"].as_i64(), Some(next));
    p.cleanup().await;
}
