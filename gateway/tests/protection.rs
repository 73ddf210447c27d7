//! The gateway's protections: frame rate, frame size, connections per user, heartbeat, slow
//! consumers, graceful shutdown, and the metrics that show them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chatboard_core::bus::BusEvent;
use chatboard_core::config::GatewaySettings;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

async fn platform(settings: GatewaySettings) -> Platform {
    Platform::start_with(None, settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_twenty_frames_a_second_closes_with_4008() {
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    frame(&mut s).await;
    // Twenty at once are fine (the burst) ...
    for _ in 0..20 {
        s.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .unwrap();
    }
    for _ in 0..20 {
        assert_eq!(frame(&mut s).await["type"], "pong");
    }
    // ... twenty more at once are not.
    for _ in 0..20 {
        if s.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut s).await, 4008);
    assert_eq!(
        metric(&p.gw, r#"chatboard_ws_closes_total{reason="rate_limit"}"#).await,
        1.0
    );
}

/// WebSocket pings count too: each costs the gateway a pong's write, and a client flooding
/// them was never held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_websocket_pings_closes_with_4008() {
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    frame(&mut s).await;
    for _ in 0..100 {
        if s.send(Ws::Ping(Default::default())).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut s).await, 4008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_64_kib_are_refused() {
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    frame(&mut s).await;
    // Just under the limit is a (bad) message, answered with an error frame.
    let body = "x".repeat(60 * 1024);
    s.send(Ws::Text(
        json!({"type": "message", "body": body}).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(frame_of(&mut s, "error").await.0["code"], "invalid");
    let huge = "x".repeat(65 * 1024);
    s.send(Ws::Text(huge.into())).await.unwrap();
    assert_eq!(close_code(&mut s).await, 4008);
}

/// A message sent as endless empty fragments grows no larger and never completes: the
/// frames themselves are counted, and the connection is closed as for any flood (it stayed
/// open, never counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_empty_fragments_are_a_flood() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    frame(&mut s).await;
    let first = Frame::message(b"{\"type\":".to_vec(), OpCode::Data(Data::Text), false);
    s.send(Ws::Frame(first)).await.unwrap();
    for _ in 0..5_000 {
        let empty = Frame::message(Vec::new(), OpCode::Data(Data::Continue), false);
        if s.send(Ws::Frame(empty)).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut s).await, 4008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped() {
    let p = platform(GatewaySettings {
        max_connections_per_user: 2,
        ..quick_settings()
    })
    .await;
    let (room, alice, bob, _org) = p.team().await;
    let mut first = p.connect(room, &bob.token, None).await;
    frame(&mut first).await;
    let mut second = p.connect_all(&bob.token).await;
    frame(&mut second).await;
    let mut third = p.connect(room, &bob.token, None).await;
    assert_eq!(close_code(&mut third).await, 4008);
    // Other users are not affected.
    let mut alices = p.connect(room, &alice.token, None).await;
    assert_eq!(frame(&mut alices).await["type"], "connection");
    // A slot frees when a connection closes.
    first.close(None).await.unwrap();
    let freed = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_connections").await == 2.0
    })
    .await;
    assert!(freed);
    let mut again = p.connect(room, &bob.token, None).await;
    assert_eq!(frame(&mut again).await["type"], "connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_stop_answering_pings_are_dropped() {
    let p = platform(GatewaySettings {
        ping_interval: Duration::from_millis(500),
        ..quick_settings()
    })
    .await;
    let (room, _alice, bob, _org) = p.team().await;
    // A client that keeps reading answers the pings (the library does) and stays.
    let mut alive = p.connect(room, &bob.token, None).await;
    frame(&mut alive).await;
    let mut pings = 0;
    let reader = async {
        while let Some(Ok(f)) = alive.next().await {
            if matches!(f, Ws::Ping(_)) {
                pings += 1;
            }
        }
    };
    // A client that stops reading never answers.
    let mut dead = p.connect(room, &bob.token, None).await;
    frame(&mut dead).await;
    let _ = tokio::time::timeout(Duration::from_secs(4), reader).await;
    assert!(pings >= 3, "idle connections are pinged ({pings})");
    assert_eq!(
        metric(&p.gw, r#"chatboard_ws_closes_total{reason="dead_peer"}"#).await,
        1.0
    );
    assert_eq!(metric(&p.gw, "chatboard_ws_connections").await, 1.0);
    drop(dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_too_slowly_is_dropped_not_buffered() {
    let p = platform(GatewaySettings {
        ping_interval: Duration::from_secs(1),
        ..quick_settings()
    })
    .await;
    let (room, alice, bob, _org) = p.team().await;
    let mut slow = p.connect(room, &bob.token, None).await;
    frame(&mut slow).await;
    let mut fine = p.connect(room, &alice.token, None).await;
    frame(&mut fine).await;
    // Alice reads everything as it comes.
    let reader = tokio::spawn(async move {
        let mut typing = 0;
        while typing < 600 {
            if frame(&mut fine).await["type"] == "typing" {
                typing += 1;
            }
        }
        fine
    });
    // Far more than the socket buffers hold, to a client that reads nothing.
    let big = "x".repeat(32 * 1024);
    for _ in 0..600 {
        let event = BusEvent::Typing {
            room,
            user_id: alice.id + 1000,
            user_email: big.clone(),
            is_typing: true,
        };
        p.gw.bus.publish(&event).await.unwrap();
        tokio::task::yield_now().await;
    }
    let dropped = eventually(Duration::from_secs(10), || async {
        metric(
            &p.gw,
            r#"chatboard_ws_closes_total{reason="slow_consumer"}"#,
        )
        .await
            >= 1.0
    })
    .await;
    assert!(dropped, "the slow client was dropped");
    drop(slow);
    // Alice, who reads, got everything and is still connected.
    let mut fine = reader.await.unwrap();
    fine.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(frame(&mut fine).await["type"], "pong");
    assert_eq!(
        metric(
            &p.gw,
            r#"chatboard_ws_closes_total{reason="slow_consumer"}"#
        )
        .await,
        1.0
    );
}

/// A client that stops reading while messages keep coming gets every one once it reads again:
/// whole, in order, once. The hub writes messages straight into idle sockets; what a full socket
/// does not take waits for the session to write it out, and what comes after queues behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_late_gets_every_message_whole_and_in_order() {
    // Heartbeats far apart: the pause in reading is not a dead or slow peer.
    let p = platform(GatewaySettings {
        ping_interval: Duration::from_secs(120),
        ..quick_settings()
    })
    .await;
    let (room, alice, bob, _org) = p.team().await;
    // Two sockets in the room, so each message is written to both at once (in one system call
    // where io_uring is available).
    let mut sockets = Vec::new();
    for user in [&bob, &alice] {
        let mut late = p.connect(room, &user.token, None).await;
        frame(&mut late).await;
        sockets.push(late);
    }
    // About 9.6 MB of frames, far more than the socket buffers between the gateway and a
    // client that reads nothing hold: writes are cut short and the rest must follow whole.
    let filler = "€".repeat(3990);
    let mut ids = Vec::new();
    for i in 0..800 {
        ids.push(p.post(&alice, room, &format!("{i:04}{filler}")).await);
    }
    for late in &mut sockets {
        for (i, id) in ids.iter().enumerate() {
            let (message, _) = frame_of(late, "message").await;
            assert_eq!(
                message["id"].as_i64(),
                Some(*id),
                "message {i} out of order"
            );
            assert_eq!(
                message["body"].as_str(),
                Some(format!("{i:04}{filler}").as_str())
            );
        }
        assert!(quiet(late).await, "no message twice");
    }
    // The messages the hub could not write into a full socket were written by the
    // connections' own tasks, and counted as such.
    let counted = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_deliveries_total").await == 1600.0
    })
    .await;
    assert!(counted, "1,600 deliveries");
    let queued = metric(&p.gw, "chatboard_ws_queued_deliveries_total").await;
    assert!((1.0..1600.0).contains(&queued), "{queued} queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_closes_sockets_with_1012_and_turns_new_ones_away() {
    let p = platform(quick_settings()).await;
    let (room, alice, bob, _org) = p.team().await;
    let mut a = p.connect_all(&alice.token).await;
    frame(&mut a).await;
    let mut b = p.connect(room, &bob.token, None).await;
    frame(&mut b).await;
    let state = p.gw.state.clone();
    let drained = tokio::spawn(async move { state.shut_down(Duration::from_secs(5)).await });
    assert_eq!(close_code(&mut a).await, 1012);
    assert_eq!(close_code(&mut b).await, 1012);
    drained.await.unwrap();
    assert_eq!(p.gw.state.connections(), 0);
    let ready = reqwest::get(format!("{}/health/ready", p.gw.http))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready while draining");
    let mut late = p.connect(room, &bob.token, None).await;
    assert_eq!(close_code(&mut late).await, 1012);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_frames_deliveries_and_fanout_latency() {
    let p = platform(quick_settings()).await;
    let (room, alice, bob, _org) = p.team().await;
    let mut b = p.connect(room, &bob.token, None).await;
    frame(&mut b).await;
    assert_eq!(metric(&p.gw, "chatboard_ws_connections").await, 1.0);
    for i in 0..3 {
        p.post(&alice, room, &format!("m{i}")).await;
        assert_eq!(frame(&mut b).await["type"], "message");
    }
    b.send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    frame(&mut b).await;
    // The hub counts a direct write once it is out, which the client may read first.
    let counted = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_deliveries_total").await == 3.0
            && metric(&p.gw, "chatboard_ws_fanout_seconds_count").await == 3.0
            // connection + 3 messages + pong
            && metric(&p.gw, "chatboard_ws_frames_out_total").await == 5.0
    })
    .await;
    assert!(counted, "deliveries, latencies and frames out: 3, 3 and 5");
    assert_eq!(metric(&p.gw, "chatboard_ws_frames_in_total").await, 1.0);
    drop(b);
    let closed = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_connections").await == 0.0
    })
    .await;
    assert!(closed);
}

/// A message the hub writes to several sockets at once (one system call for the room) counts
/// a delivery and a fan-out latency for each socket, as one written to a single socket does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_to_several_sockets_counts_each_delivery() {
    let p = platform(quick_settings()).await;
    let (room, alice, bob, _org) = p.team().await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut s = p.connect(room, &bob.token, None).await;
        frame(&mut s).await;
        sockets.push(s);
    }
    for i in 0..2 {
        p.post(&alice, room, &format!("m{i}")).await;
        for s in &mut sockets {
            assert_eq!(frame(s).await["type"], "message");
        }
    }
    // The hub counts once the room's writes are out, which may be after a client read its frame.
    let counted = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_deliveries_total").await == 6.0
            && metric(&p.gw, "chatboard_ws_fanout_seconds_count").await == 6.0
            // 3 greetings and 6 messages
            && metric(&p.gw, "chatboard_ws_frames_out_total").await == 9.0
    })
    .await;
    let deliveries = metric(&p.gw, "chatboard_ws_deliveries_total").await;
    let latencies = metric(&p.gw, "chatboard_ws_fanout_seconds_count").await;
    let frames = metric(&p.gw, "chatboard_ws_frames_out_total").await;
    assert!(
        counted,
        "deliveries {deliveries} and latencies {latencies} (not 6), frames out {frames} (not 9)"
    );
}

/// A client that keeps flooding after its twentieth frame still reads the 4008 close: the
/// gateway finishes the closing handshake, reading and discarding until the client's close,
/// instead of dropping a socket with unread data (which the kernel answers with a reset, so
/// 4-9 clients in 15 saw 1006 and no code). Fifty runs, fifty 4008s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_always_reads_its_4008() {
    floods_read_their_4008(50, || Ws::Text(json!({"type": "ping"}).to_string().into())).await;
}

/// The same with floods refused in the middle of a read: a frame over the size limit (by the
/// WebSocket library), a message begun and continued by endless empty fragments (by the frame
/// meter; the connection stayed open before it). The library then reads no more; the gateway
/// reads and discards the rest from the socket itself, uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_what_the_library_refuses_reads_its_4008() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    floods_read_their_4008(20, || Ws::Text("x".repeat(256 * 1024).into())).await;
    let mut opened = false;
    floods_read_their_4008(20, move || {
        // A message begun, then continued without end.
        let (opcode, payload) = if std::mem::replace(&mut opened, true) {
            (OpCode::Data(Data::Continue), Vec::new())
        } else {
            (OpCode::Data(Data::Text), b"{".to_vec())
        };
        Ws::Frame(Frame::message(payload, opcode, false))
    })
    .await;
}

/// Connects `runs` times; each time the client sends frames made by `flood` (made anew for
/// each connection) until its writes fail, reading nothing meanwhile, and must read a 4008.
async fn floods_read_their_4008<F>(runs: usize, flood: F)
where
    F: FnMut() -> Ws + Clone + Send + 'static,
{
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    for run in 0..runs {
        let mut s = p.connect(room, &bob.token, None).await;
        frame(&mut s).await;
        let (mut sink, mut stream) = s.split();
        let mut flood = flood.clone();
        let flooding = tokio::spawn(async move { while sink.send(flood()).await.is_ok() {} });
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("an answer within 10 s")
            {
                Some(Ok(Ws::Close(Some(frame)))) => break u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("run {run}: expected the 4008 close, got {other:?}"),
            }
        };
        assert_eq!(code, 4008, "run {run}");
        flooding.abort();
    }
}

/// A client that vanishes without a closing handshake is not counted as a protocol violation
/// (every dropped phone once was); one that sends a frame over the size limit still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_not_a_protocol_violation() {
    let p = platform(quick_settings()).await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut gone = p.connect(room, &bob.token, None).await;
    frame(&mut gone).await;
    drop(gone);
    let mut rude = p.connect(room, &bob.token, None).await;
    frame(&mut rude).await;
    let huge = "x".repeat(gateway::MAX_FRAME_BYTES + 1);
    let _ = rude.send(Ws::Text(huge.into())).await;
    let settled = eventually(Duration::from_secs(5), || async {
        metric(&p.gw, "chatboard_ws_connections").await == 0.0
    })
    .await;
    assert!(settled, "both connections ended");
    assert_eq!(
        metric(&p.gw, r#"chatboard_ws_closes_total{reason="protocol"}"#).await,
        1.0
    );
}

/// A plain request on a socket path (a browser tab, a probe pointed at the wrong path) gets the
/// API's error shape, with a code, not a line of text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_on_a_socket_path_gets_the_error_shape() {
    let p = platform(quick_settings()).await;
    for path in ["/ws/", "/ws/rooms/1/"] {
        let r = reqwest::get(format!("{}{path}", p.gw.http)).await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid", "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("WebSocket endpoint"),
            "{body}"
        );
    }
}

/// Opening and closing connections in a loop is limited per user: each handshake reads the
/// account, the rooms' positions and the room-mates, and each coming and going is told to every
/// room-mate. Three attempts a minute here; the fourth is refused before it reads anything, and
/// other users are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_attempts_per_user_are_limited() {
    let p = platform(GatewaySettings {
        connects_per_minute: 3,
        ..quick_settings()
    })
    .await;
    let (room, alice, bob, _org) = p.team().await;
    for _ in 0..3 {
        let mut s = p.connect(room, &bob.token, None).await;
        assert_eq!(frame(&mut s).await["type"], "connection");
        s.close(None).await.unwrap();
    }
    let mut fourth = p.connect_all(&bob.token).await;
    assert_eq!(close_code(&mut fourth).await, 4008);
    assert_eq!(
        metric(&p.gw, r#"chatboard_ws_closes_total{reason="connect_rate"}"#).await,
        1.0
    );
    let mut alices = p.connect(room, &alice.token, None).await;
    assert_eq!(frame(&mut alices).await["type"], "connection");
}
