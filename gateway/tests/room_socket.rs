//! The per-room WebSocket, driven as a client would, in both shapes: the single node (one
//! store, the in-process bus) and the scale-out shape (the gateway on its own store and NATS).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

async fn bad_tokens_missing_rooms_and_outsiders_are_closed_with_their_codes(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let eve = p.user("eve@example.com").await;

    let mut s = p.connect(room, "not-a-token", None).await;
    assert_eq!(close_code(&mut s).await, 4001);
    let mut s = tokio_tungstenite::connect_async(format!("{}/ws/rooms/{room}/", p.gw.ws))
        .await
        .unwrap()
        .0;
    assert_eq!(close_code(&mut s).await, 4001, "no token at all");
    let mut s = p.connect(999_999, &bob.token, None).await;
    assert_eq!(close_code(&mut s).await, 4004);
    // A resume point that is no message id would resume nowhere in particular.
    for since in ["abc", "-1", "1.5"] {
        let url = format!(
            "{}/ws/rooms/{room}/?token={}&since={since}",
            p.gw.ws, bob.token
        );
        let mut s = tokio_tungstenite::connect_async(url).await.unwrap().0;
        assert_eq!(close_code(&mut s).await, 4008, "since={since}");
    }
    // Someone outside the org cannot even learn the room exists.
    let mut s = p.connect(room, &eve.token, None).await;
    assert_eq!(close_code(&mut s).await, 4004);
    // An org member without a seat is told so, but of a PRIVATE room only that there is no
    // such room, as over REST (4003 told anyone walking room ids which private rooms exist).
    let private = p.private_room(org, &alice, "board").await;
    let mut s = p.connect(private, &bob.token, None).await;
    assert_eq!(close_code(&mut s).await, 4004, "a private room");
    let carol = p.user("carol@example.com").await;
    p.join_org(org, &alice, &carol, "carol@example.com").await;
    let dm = p
        .call(
            reqwest::Method::POST,
            "/api/rooms/dm/",
            &alice.token,
            json!({"org": org, "user_id": carol.id}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let mut s = p.connect(dm, &bob.token, None).await;
    assert_eq!(
        close_code(&mut s).await,
        4004,
        "someone else's direct message"
    );
    // An org ADMIN, who may see the private room, is told only that they have no seat.
    p.room_action(&alice, private, "leave").await;
    let mut s = p.connect(private, &alice.token, None).await;
    assert_eq!(
        close_code(&mut s).await,
        4003,
        "an ADMIN outside a private room"
    );
    p.room_action(&bob, room, "leave").await;
    let mut s = p.connect(room, &bob.token, None).await;
    assert_eq!(close_code(&mut s).await, 4003);
}

async fn members_get_live_messages_edits_deletes_and_receipts(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    let hello = frame(&mut s).await;
    assert_eq!(
        hello,
        json!({"type": "connection", "room": room, "user_id": bob.id, "user_email": "bob@example.com"})
    );

    let id = p.post(&alice, room, "hello").await;
    let m = frame(&mut s).await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_i64()),
        (Some("message"), Some(id))
    );
    assert_eq!(m["body"], "hello");
    assert_eq!(m["sender"], alice.id);

    p.call(
        reqwest::Method::PATCH,
        &format!("/api/rooms/{room}/messages/{id}/"),
        &alice.token,
        json!({"body": "hello!"}),
    )
    .await;
    let u = frame(&mut s).await;
    assert_eq!(
        (u["type"].as_str(), u["body"].as_str()),
        (Some("message.updated"), Some("hello!"))
    );
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/rooms/{room}/messages/{id}/"),
        &alice.token,
        Value::Null,
    )
    .await;
    assert_eq!(
        frame(&mut s).await,
        json!({"type": "message.deleted", "id": id, "room": room})
    );
    p.call(
        reqwest::Method::POST,
        &format!("/api/rooms/{room}/read/{id}/"),
        &alice.token,
        Value::Null,
    )
    .await;
    assert_eq!(
        frame(&mut s).await,
        json!({"type": "read", "room": room, "user_id": alice.id, "last_read_msg_id": id})
    );

    // A new connection without `since` starts after what is already there.
    let mut fresh = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut fresh).await["type"], "connection");
    let next = p.post(&alice, room, "next").await;
    assert_eq!(frame(&mut fresh).await["id"].as_i64(), Some(next));
    assert_eq!(frame(&mut s).await["id"].as_i64(), Some(next));

    s.send(Ws::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(frame(&mut s).await, json!({"type": "pong"}));
    s.send(Ws::Text("not json".into())).await.unwrap();
    assert_eq!(frame(&mut s).await["type"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_may_come_as_a_subprotocol_and_a_close_is_answered() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let p = Platform::start().await;
    let (room, _alice, bob, _org) = p.team().await;
    // An empty `?token=` beside it does not hide it.
    let mut request = format!("{}/ws/rooms/{room}/?token=", p.gw.ws)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer.{}", bob.token).parse().unwrap(),
    );
    let (mut s, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        format!("bearer.{}", bob.token).as_str()
    );
    assert_eq!(frame(&mut s).await["type"], "connection");
    // The client closes: the gateway answers with its own close frame (a clean close).
    s.send(Ws::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.next().await {
                Some(Ok(Ws::Close(frame))) => return Some(frame),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    assert!(answer.is_some(), "the close was not answered");
}

async fn resuming_with_since_replays_then_goes_live_without_gap_or_duplicate(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(p.post(&alice, room, &format!("m{i}")).await);
    }
    let mut s = p.connect(room, &bob.token, Some(ids[1])).await;
    assert_eq!(frame(&mut s).await["type"], "connection");
    for expected in &ids[2..] {
        assert_eq!(frame(&mut s).await["id"].as_i64(), Some(*expected));
    }
    let live = p.post(&alice, room, "live").await;
    assert_eq!(frame(&mut s).await["id"].as_i64(), Some(live));
    // A `since` beyond the newest message does not hold back what comes next.
    let mut ahead = p.connect(room, &bob.token, Some(live + 1_000)).await;
    assert_eq!(frame(&mut ahead).await["type"], "connection");
    let next = p.post(&alice, room, "next").await;
    assert_eq!(frame(&mut ahead).await["id"].as_i64(), Some(next));
}

/// Posts continuously from several senders while a client drops and resumes from the last id
/// it saw, again and again: across all its connections it sees every message exactly once, in
/// id order.
async fn continuous_posting_with_random_reconnects_loses_nothing(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let carol = p.user("carol@example.com").await;
    let invite = p
        .call(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/invite/"),
            &alice.token,
            json!({"email": "carol@example.com"}),
        )
        .await;
    p.call(
        reqwest::Method::POST,
        "/api/orgs/accept-invite/",
        &carol.token,
        json!({"token": invite["token"]}),
    )
    .await;
    const PER_SENDER: usize = 60;
    let mut posters = Vec::new();
    for user in [alice, carol] {
        let p = p.clone();
        posters.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..PER_SENDER {
                mine.push(p.post(&user, room, &format!("{i}")).await);
            }
            mine
        }));
    }
    // The client: read a few frames, hang up, resume from the last id seen.
    let mut seen: Vec<i64> = Vec::new();
    let mut round = 0usize;
    while seen.len() < 2 * PER_SENDER {
        let mut s = p
            .connect(room, &bob.token, Some(seen.last().copied().unwrap_or(0)))
            .await;
        assert_eq!(frame(&mut s).await["type"], "connection");
        let take = 7 + (round * 13) % 29;
        for _ in 0..take {
            if seen.len() == 2 * PER_SENDER {
                break;
            }
            let f = frame(&mut s).await;
            assert_eq!(f["type"], "message", "{f}");
            seen.push(f["id"].as_i64().unwrap());
        }
        drop(s);
        round += 1;
    }
    let mut posted = Vec::new();
    for poster in posters {
        posted.extend(poster.await.unwrap());
    }
    posted.sort();
    assert!(round > 3, "the client reconnected several times");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in id order, no duplicate: {seen:?}"
    );
    assert_eq!(seen, posted, "every message exactly once");
}

async fn frames_from_clients_post_type_and_read(p: Arc<Platform>) {
    let (room, alice, bob, org) = p.team().await;
    let mut a = p.connect(room, &alice.token, None).await;
    let mut b = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut a).await["type"], "connection");
    assert_eq!(frame(&mut b).await["type"], "connection");

    // A message over the socket: stored, acknowledged, delivered to everyone in the room.
    let send = json!({"type": "message", "body": "from a socket", "client_msg_id": "c-1"});
    b.send(Ws::Text(send.to_string().into())).await.unwrap();
    let (ack, _) = frame_of(&mut b, "ack").await;
    assert_eq!(ack["client_msg_id"], "c-1");
    let id = ack["id"].as_i64().unwrap();
    let (m, _) = frame_of(&mut a, "message").await;
    assert_eq!(
        (m["id"].as_i64(), m["body"].as_str()),
        (Some(id), Some("from a socket"))
    );
    assert_eq!(m["sender"], bob.id);
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{room}/messages/"),
            &alice.token,
            Value::Null,
        )
        .await;
    assert_eq!(page["results"][0]["id"].as_i64(), Some(id));
    // The same client_msg_id again: the same message, acknowledged, nothing new delivered.
    b.send(Ws::Text(send.to_string().into())).await.unwrap();
    let (again, _) = frame_of(&mut b, "ack").await;
    assert_eq!(again["id"].as_i64(), Some(id));
    assert!(
        quiet(&mut a).await,
        "a repeated send is not delivered again"
    );
    // An id written decomposed is stored composed, as text is: the ack names it as the
    // message frame does, so the client can match the two.
    let decomposed = json!({"type": "message", "body": "accents", "client_msg_id": "e\u{301}-2"});
    b.send(Ws::Text(decomposed.to_string().into()))
        .await
        .unwrap();
    // Either may come first.
    let (mut ack, mut m) = (Value::Null, Value::Null);
    while ack.is_null() || m.is_null() {
        let f = frame(&mut b).await;
        match f["type"].as_str() {
            Some("ack") => ack = f,
            Some("message") => m = f,
            _ => {}
        }
    }
    assert_eq!(m["id"], ack["id"]);
    assert_eq!(m["client_msg_id"], "\u{e9}-2");
    assert_eq!(ack["client_msg_id"], m["client_msg_id"]);
    frame_of(&mut a, "message").await;
    let blank = json!({"type": "message", "body": "", "client_msg_id": "e\u{301}-3"});
    b.send(Ws::Text(blank.to_string().into())).await.unwrap();
    let (refused, _) = frame_of(&mut b, "error").await;
    assert_eq!(
        refused["client_msg_id"], "\u{e9}-3",
        "an error names it so too"
    );
    // The REST rules apply.
    for bad in [
        json!({"type": "message", "body": "   "}),
        json!({"type": "message", "body": "x".repeat(4001)}),
        json!({"type": "message", "body": "ok", "client_msg_id": "c".repeat(65)}),
        json!({"type": "message"}),
        json!({"type": "shout"}),
    ] {
        b.send(Ws::Text(bad.to_string().into())).await.unwrap();
        let (e, _) = frame_of(&mut b, "error").await;
        assert!(
            e["code"].is_string() && e["detail"].is_string(),
            "{bad}: {e}"
        );
    }

    // Typing reaches the others, not the typist.
    a.send(Ws::Text(
        json!({"type": "typing", "is_typing": true})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        frame_of(&mut b, "typing").await.0,
        json!({"type": "typing", "room": room, "user_id": alice.id,
               "user_email": "alice@example.com", "is_typing": true})
    );
    assert!(quiet(&mut a).await, "no echo to the typist");

    // A read receipt over the socket moves the pointer and tells the room.
    a.send(Ws::Text(
        json!({"type": "read", "msg_id": id}).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        frame_of(&mut b, "read").await.0,
        json!({"type": "read", "room": room, "user_id": alice.id, "last_read_msg_id": id})
    );
    // The same receipt again moves nothing, and tells nobody; it is answered without the
    // database (receipts sent in a loop each took the database's writer).
    let stale_before = metric(&p.gw, "chatboard_ws_stale_reads_total").await;
    a.send(Ws::Text(
        json!({"type": "read", "msg_id": id}).to_string().into(),
    ))
    .await
    .unwrap();
    assert!(
        quiet(&mut b).await,
        "a receipt that moved nothing was announced"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&p.gw, "chatboard_ws_stale_reads_total").await == stale_before + 1.0
        })
        .await,
        "the repeated receipt went to the database"
    );
    // No message at all: answered as the REST read is, though below the pointer (which is
    // taken as read already, without the database).
    for msg_id in [999_999, 0, -1] {
        a.send(Ws::Text(
            json!({"type": "read", "msg_id": msg_id}).to_string().into(),
        ))
        .await
        .unwrap();
        assert_eq!(
            frame_of(&mut a, "error").await.0["code"],
            "not_found",
            "{msg_id}"
        );
    }

    // A suspended organization (the operator's doing) takes no messages: an error frame says why.
    p.sql(&format!(
        "UPDATE orgs SET suspended = TRUE WHERE id = {org}"
    ))
    .await;
    let send = json!({"type": "message", "body": "while suspended"});
    b.send(Ws::Text(send.to_string().into())).await.unwrap();
    let (e, _) = frame_of(&mut b, "error").await;
    assert_eq!(e["code"], "org_suspended", "{e}");
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{room}/messages/"),
            &alice.token,
            Value::Null,
        )
        .await;
    assert_ne!(
        page["results"][0]["body"], "while suspended",
        "nothing was posted"
    );
}

async fn a_lost_seat_stops_the_live_feed_at_once(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let random = p.room(org, &alice, "random").await;
    let mut per_room = p.connect(general, &bob.token, None).await;
    frame(&mut per_room).await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    p.room_action(&bob, general, "leave").await;
    assert_eq!(close_code(&mut per_room).await, 4003);
    let left = frame(&mut all).await;
    assert_eq!(
        (
            left["type"].as_str(),
            left["room"].as_i64(),
            left["reason"].as_str()
        ),
        (Some("left"), Some(general), Some("not_member")),
        "{left}"
    );
    p.post(&alice, general, "bob is gone").await;
    let still = p.post(&alice, random, "bob is here").await;
    let f = frame(&mut all).await;
    assert_eq!(
        (f["room"].as_i64(), f["id"].as_i64()),
        (Some(random), Some(still)),
        "{f}"
    );

    // Removed from the org: every seat there goes, and with it the multiplexed feed of them.
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/orgs/{org}/members/{}/", bob.id),
        &alice.token,
        Value::Null,
    )
    .await;
    let mut again = p.connect(random, &bob.token, None).await;
    assert_eq!(close_code(&mut again).await, 4004, "outside the org now");
    let left = frame(&mut all).await;
    assert_eq!(
        (left["type"].as_str(), left["room"].as_i64()),
        (Some("left"), Some(random)),
        "{left}"
    );
    // The removal's announcement reaches the open socket before this post's does.
    p.post(&alice, random, "after the removal").await;
    use futures::StreamExt;
    // Heartbeat pings may come; nothing else may.
    let next = loop {
        match tokio::time::timeout(Duration::from_millis(500), all.next()).await {
            Ok(Some(Ok(Ws::Ping(_) | Ws::Pong(_)))) => continue,
            other => break other,
        }
    };
    assert!(
        next.is_err(),
        "nothing from the org's rooms any more; got {next:?}"
    );
}

/// A deleted room is no room at all: its per-room sockets close with 4004 (what a new
/// connection to it gets), and multiplexed sockets stop following it, say so with a `left`
/// frame, and go on with the rest.
async fn a_deleted_room_closes_its_sockets_as_no_such_room(p: Arc<Platform>) {
    let (general, alice, bob, org) = p.team().await;
    let random = p.room(org, &alice, "random").await;
    let mut per_room = p.connect(random, &bob.token, None).await;
    frame(&mut per_room).await;
    let mut all = p.connect_all(&bob.token).await;
    frame(&mut all).await;
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/rooms/{random}/"),
        &alice.token,
        Value::Null,
    )
    .await;
    assert_eq!(close_code(&mut per_room).await, 4004);
    let mut again = p.connect(random, &bob.token, None).await;
    assert_eq!(
        close_code(&mut again).await,
        4004,
        "the same code as a new connection"
    );
    let left = frame(&mut all).await;
    assert_eq!(
        (
            left["type"].as_str(),
            left["room"].as_i64(),
            left["reason"].as_str()
        ),
        (Some("left"), Some(random), Some("no_room")),
        "{left}"
    );
    let still = p.post(&alice, general, "general goes on").await;
    let f = frame(&mut all).await;
    assert_eq!(
        (f["room"].as_i64(), f["id"].as_i64()),
        (Some(general), Some(still)),
        "{f}"
    );
}

/// A reply sent over the socket is stored as over REST, arrives as a `message` with its
/// `parent_id`, and its root's new counters follow as `thread.updated`; a resume replays it.
async fn replies_arrive_with_their_parent_and_move_the_root_live(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut s).await["type"], "connection");
    let mut all = p.connect_all(&alice.token).await;
    assert_eq!(frame(&mut all).await["type"], "connection");
    let root = p.post(&alice, room, "root").await;
    assert_eq!(frame(&mut s).await["id"].as_i64(), Some(root));
    let reply = json!({"type": "message", "body": "re", "parent_id": root, "client_msg_id": "r1"});
    s.send(Ws::Text(reply.to_string().into())).await.unwrap();
    // The ack may come before or after the live frames: read until both have come.
    let mut seen = Vec::new();
    while !(seen.iter().any(|f: &Value| f["type"] == "ack")
        && seen.iter().any(|f| f["type"] == "thread.updated"))
    {
        seen.push(any_frame(&mut s).await);
    }
    let ack = seen.iter().find(|f| f["type"] == "ack").unwrap();
    let id = ack["id"].as_i64().unwrap();
    let (thread, mut more) = frame_of(&mut all, "thread.updated").await;
    more.push(thread);
    assert!(
        more.iter().any(|f| f["id"].as_i64() == Some(root)),
        "{more:?}"
    );
    for frames in [seen, more] {
        let at = |kind: &str| frames.iter().position(|f| f["type"] == kind);
        let reply_at = frames
            .iter()
            .position(|f| f["type"] == "message" && f["id"].as_i64() == Some(id))
            .unwrap_or_else(|| panic!("the reply in {frames:?}"));
        let message = &frames[reply_at];
        assert_eq!(message["parent_id"].as_i64(), Some(root), "{message}");
        let thread_at = at("thread.updated").unwrap_or_else(|| panic!("{frames:?}"));
        assert!(reply_at < thread_at, "the reply first: {frames:?}");
        let thread = &frames[thread_at];
        assert_eq!(thread["room"].as_i64(), Some(room), "{thread}");
        assert_eq!(thread["root_id"].as_i64(), Some(root), "{thread}");
        assert_eq!(thread["reply_count"], 1, "{thread}");
        assert_eq!(thread["repliers"], json!([bob.id]), "{thread}");
        assert!(thread["last_reply_at"].is_string(), "{thread}");
    }
    // A reply to a message of another room is refused, as over REST.
    let bad = json!({"type": "message", "body": "x", "parent_id": 999_999, "client_msg_id": "r2"});
    s.send(Ws::Text(bad.to_string().into())).await.unwrap();
    let (error, _) = frame_of(&mut s, "error").await;
    assert!(error.to_string().contains("parent_id"), "{error}");
    // Resuming after the root replays the reply with its parent.
    let mut resumed = p.connect(room, &bob.token, Some(root)).await;
    assert_eq!(frame(&mut resumed).await["type"], "connection");
    let replayed = frame(&mut resumed).await;
    assert_eq!(replayed["id"].as_i64(), Some(id));
    assert_eq!(replayed["parent_id"].as_i64(), Some(root));
}

/// Reactions reach the room's sockets as `reaction.added` / `reaction.removed`, with the count.
async fn reactions_reach_the_room_live(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let msg = p.post(&alice, room, "vote").await;
    let mut s = p.connect(room, &alice.token, Some(msg)).await;
    assert_eq!(frame(&mut s).await["type"], "connection");
    let path = format!("/api/rooms/{room}/messages/{msg}/reactions/");
    p.call(
        reqwest::Method::POST,
        &path,
        &bob.token,
        json!({"emoji": ":+1:"}),
    )
    .await;
    let (added, _) = frame_of(&mut s, "reaction.added").await;
    assert_eq!(added["room"].as_i64(), Some(room), "{added}");
    assert_eq!(added["message_id"].as_i64(), Some(msg), "{added}");
    assert_eq!(added["emoji"], "👍");
    assert_eq!(added["user_id"].as_i64(), Some(bob.id));
    assert_eq!(added["count"], 1);
    p.call(
        reqwest::Method::DELETE,
        &format!("{path}%F0%9F%91%8D/"),
        &bob.token,
        Value::Null,
    )
    .await;
    let (removed, _) = frame_of(&mut s, "reaction.removed").await;
    assert_eq!(removed["count"], 0, "{removed}");
}

/// A socket's messages are stored in a pipeline: while one waits for its commit the connection
/// goes on reading and delivering (it once waited for each commit, so a sender whose commits
/// took longer than the gap between its messages fell further behind with each one). Its
/// messages are stored in the order sent, and every frame is answered in that order.
async fn a_socket_goes_on_while_its_messages_wait_for_their_commit(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut a = p.connect(room, &alice.token, None).await;
    let mut b = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut a).await["type"], "connection");
    assert_eq!(frame(&mut b).await["type"], "connection");
    let frames_in = "chatboard_ws_frames_in_total";
    let before = metric(&p.gw, frames_in).await;

    let held = testing::HeldWrites::take(&p.db_url).await;
    for n in 1..=3 {
        let send = json!({"type": "message", "body": format!("held {n}"), "client_msg_id": format!("h-{n}")});
        a.send(Ws::Text(send.to_string().into())).await.unwrap();
    }
    let ping = json!({"type": "ping"});
    a.send(Ws::Text(ping.to_string().into())).await.unwrap();
    // The gateway reads all four frames, then Bob types.
    let reading = async {
        while metric(&p.gw, frames_in).await < before + 4.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the frames after a message waiting for its commit are read within 10 s");
    let typing = json!({"type": "typing", "is_typing": true});
    b.send(Ws::Text(typing.to_string().into())).await.unwrap();
    // Alice hears it although none of her messages is stored yet.
    let heard = frame(&mut a).await;
    assert_eq!(heard["type"], "typing", "{heard}");
    assert_eq!(heard["user_id"], bob.id);
    held.release().await;

    // Then her answers, in the order of her frames, and her messages, in the order sent.
    let mut answers = Vec::new();
    let mut delivered = Vec::new();
    while answers.len() < 4 || delivered.len() < 3 {
        let f = frame(&mut a).await;
        match f["type"].as_str() {
            Some("ack") | Some("pong") => answers.push(f),
            Some("message") => delivered.push((f["id"].as_i64().unwrap(), f["body"].clone())),
            _ => panic!("unexpected {f}"),
        }
    }
    let kinds: Vec<_> = answers
        .iter()
        .map(|f| {
            f["client_msg_id"]
                .as_str()
                .unwrap_or(f["type"].as_str().unwrap())
        })
        .collect();
    assert_eq!(kinds, ["h-1", "h-2", "h-3", "pong"]);
    let acked: Vec<i64> = answers[..3]
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "{acked:?}");
    assert_eq!(
        delivered,
        acked
            .iter()
            .zip(1..)
            .map(|(id, n)| (*id, json!(format!("held {n}"))))
            .collect::<Vec<_>>()
    );
    let page = p
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{room}/messages/"),
            &bob.token,
            Value::Null,
        )
        .await;
    let stored: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(stored, ["held 3", "held 2", "held 1"], "newest first");
}

/// Receipts of a room of more than fifty members reach the reader's own connections (their
/// other devices keep their unread state) and nobody else's: every member telling every member
/// of each message read costs the square of the room's size. In a smaller room every member
/// hears them.
async fn receipts_of_a_large_room_reach_only_the_readers_own_sockets(p: Arc<Platform>) {
    let (room, alice, bob, _org) = p.team().await;
    let mut a = p.connect(room, &alice.token, None).await;
    let mut b = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut a).await["type"], "connection");
    assert_eq!(frame(&mut b).await["type"], "connection");
    let read = |id: i64| {
        let p = p.clone();
        let token = bob.token.clone();
        async move {
            let path = format!("/api/rooms/{room}/read/{id}/");
            p.call(reqwest::Method::POST, &path, &token, Value::Null)
                .await;
        }
    };

    let first = p.post(&alice, room, "to two").await;
    read(first).await;
    let heard = json!({"type": "read", "room": room, "user_id": bob.id, "last_read_msg_id": first});
    assert_eq!(frame_of(&mut a, "read").await.0, heard, "two members");
    assert_eq!(frame_of(&mut b, "read").await.0, heard);

    p.seat_more(room, 49).await;
    let second = p.post(&alice, room, "to fifty-one").await;
    frame_of(&mut a, "message").await;
    frame_of(&mut b, "message").await;
    let mut b2 = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut b2).await["type"], "connection");
    read(second).await;
    let own = json!({"type": "read", "room": room, "user_id": bob.id,
                     "last_read_msg_id": second, "reader_only": true});
    assert_eq!(
        frame_of(&mut b, "read").await.0,
        own,
        "the reader's sockets"
    );
    assert_eq!(frame_of(&mut b2, "read").await.0, own);
    assert!(quiet(&mut a).await, "another member hears nothing of it");
}

both_shapes!(
    a_socket_goes_on_while_its_messages_wait_for_their_commit,
    reactions_reach_the_room_live,
    replies_arrive_with_their_parent_and_move_the_root_live,
    a_lost_seat_stops_the_live_feed_at_once,
    a_deleted_room_closes_its_sockets_as_no_such_room,
    bad_tokens_missing_rooms_and_outsiders_are_closed_with_their_codes,
    members_get_live_messages_edits_deletes_and_receipts,
    resuming_with_since_replays_then_goes_live_without_gap_or_duplicate,
    continuous_posting_with_random_reconnects_loses_nothing,
    frames_from_clients_post_type_and_read,
    receipts_of_a_large_room_reach_only_the_readers_own_sockets
);

/// While its answers wait for their commits the gateway does not read a socket's frames; a
/// client that kept to the frame rate meanwhile is not closed as a flood once they are read
/// together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_held_back_by_the_gateway_do_not_count_as_a_flood() {
    let p = Platform::start().await;
    let (room, alice, _bob, _org) = p.team().await;
    let mut a = p.connect(room, &alice.token, None).await;
    assert_eq!(frame(&mut a).await["type"], "connection");
    let frames_in = "chatboard_ws_frames_in_total";
    let before = metric(&p.gw, frames_in).await;
    let held = testing::HeldWrites::take(&p.db_url).await;
    for n in 1..=16 {
        let send = json!({"type": "message", "body": format!("held {n}"), "client_msg_id": format!("h-{n}")});
        a.send(Ws::Text(send.to_string().into())).await.unwrap();
    }
    let reading = async {
        while metric(&p.gw, frames_in).await < before + 16.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the sixteen messages are read");
    // Ten frames a second for three seconds, half the allowed rate, while nothing is read.
    let ping = json!({"type": "ping"}).to_string();
    for _ in 0..30 {
        a.send(Ws::Text(ping.clone().into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    held.release().await;
    let (mut acks, mut pongs) = (0, 0);
    while acks < 16 || pongs < 30 {
        let f = frame(&mut a).await;
        match f["type"].as_str() {
            Some("ack") => acks += 1,
            Some("pong") => pongs += 1,
            _ => {}
        }
    }
}
