//! A connection lasts as long as its access token: it closes with `4001` once the token has
//! expired (as a request with it would be refused), unless the client renewed it with an `auth`
//! frame. Connections used to stay open, and able to post, for as long as the socket did: after
//! sign-out, or after the token's family was revoked for reuse.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chatboard_core::auth::TokenIssuer;
use chatboard_core::config::GatewaySettings;
use chrono::Utc;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Heartbeats every 200 ms, so an expiry is noticed quickly.
fn brisk() -> GatewaySettings {
    GatewaySettings {
        ping_interval: Duration::from_millis(200),
        ..quick_settings()
    }
}

/// A token of `user` that expires `ttl` from now, signed with the platform's key.
fn token_for(p: &Platform, user: &User, ttl: Duration) -> (String, i64) {
    let issuer = TokenIssuer::new(&p.app.state.config.jwt_secret, ttl, ttl);
    let now = Utc::now();
    let token = issuer.issue_access(user.id, now).unwrap();
    (
        token,
        now.timestamp() + i64::try_from(ttl.as_secs()).unwrap(),
    )
}

/// What a connection read in the background brings.
#[derive(Debug)]
enum Event {
    Text(serde_json::Value),
    Ping,
    Closed(u16, String),
}

/// A connection read all the time by a task of its own, so that it answers the gateway's pings
/// (every 200 ms here; one unanswered for two intervals ends it) whatever the test is doing.
struct Polled {
    sink: futures::stream::SplitSink<Socket, Ws>,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
}

impl Polled {
    fn new(socket: Socket) -> Self {
        let (sink, mut stream) = socket.split();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let event = match frame {
                    Ws::Text(text) => Event::Text(serde_json::from_str(text.as_str()).unwrap()),
                    Ws::Ping(_) => Event::Ping,
                    Ws::Close(Some(frame)) => {
                        Event::Closed(u16::from(frame.code), frame.reason.as_str().to_owned())
                    }
                    Ws::Close(None) => Event::Closed(1005, String::new()),
                    _ => continue,
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Self { sink, events }
    }

    async fn send(&mut self, frame: serde_json::Value) {
        self.sink
            .send(Ws::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next event, within `within`.
    async fn next(&mut self, within: Duration) -> Event {
        tokio::time::timeout(within, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the connection is still read")
    }

    /// The next text frame of type `kind` within 10 s, passing pings and other frames.
    async fn frame(&mut self, kind: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Event::Text(frame) if frame["type"] == kind => return frame,
                Event::Closed(code, reason) => panic!("closed ({code} {reason}) before a {kind}"),
                _ => {}
            }
        }
    }

    /// The close frame's code and reason, waiting as long as `within`.
    async fn closed(&mut self, within: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Event::Closed(code, reason) = self.next(left).await {
                return (code, reason);
            }
        }
    }
}

/// A multiplexed connection with a token that expires soon after it opens: tried with longer
/// lifetimes until the connection was admitted before its token ran out (a busy machine may
/// take a while to connect). Returns the connection and the token's expiry.
async fn short_lived(p: &Platform, user: &User) -> (Polled, i64) {
    for secs in [2, 4, 8, 16, 32] {
        let (token, expires_at) = token_for(p, user, Duration::from_secs(secs));
        let mut socket = Polled::new(p.connect_all(&token).await);
        if let Event::Text(hello) = socket.next(Duration::from_secs(10)).await {
            // With a second left at least, so the test's next steps come before the expiry.
            if hello["type"] == "connection"
                && Utc::now().timestamp_millis() + 1_000 < expires_at * 1_000
            {
                return (socket, expires_at);
            }
        }
    }
    panic!("no connection admitted before its token expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_with_4001_once_its_token_expires() {
    let p = Platform::start_with(None, brisk()).await;
    let (_room, _alice, bob, _org) = p.team().await;
    let (mut socket, expires_at) = short_lived(&p, &bob).await;
    let (code, reason) = socket.closed(Duration::from_secs(60)).await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert!(
        Utc::now().timestamp() >= expires_at,
        "closed before the token expired"
    );
    assert_eq!(
        metric(
            &p.gw,
            r#"chatboard_ws_closes_total{reason="token_expired"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_frame_renews_the_connection() {
    let p = Platform::start_with(None, brisk()).await;
    let (room, alice, bob, _org) = p.team().await;
    let (mut renewed, expires_at) = short_lived(&p, &bob).await;
    let (longer, longer_expiry) = token_for(&p, &bob, Duration::from_secs(3600));
    renewed.send(json!({"type": "auth", "token": longer})).await;
    let answer = renewed.frame("authenticated").await;
    let expected = chrono::DateTime::from_timestamp(longer_expiry, 0).unwrap();
    assert_eq!(answer["expires_at"], json!(expected));

    // A second connection with a token that expires no later, not renewed: its close shows the
    // first token's expiry has passed on the gateway's clock.
    let left = u64::try_from(expires_at - Utc::now().timestamp()).unwrap_or(0);
    let (first_token, _) = token_for(&p, &bob, Duration::from_secs(left.max(1)));
    let mut left_alone = Polled::new(p.connect_all(&first_token).await);

    assert_eq!(left_alone.closed(Duration::from_secs(60)).await.0, 4001);
    // A few of the renewed connection's own heartbeats after that, then it still takes
    // messages.
    let mut pings = 0;
    while pings < 3 {
        match renewed.next(Duration::from_secs(10)).await {
            Event::Ping => pings += 1,
            Event::Closed(code, reason) => panic!("the renewed connection closed: {code} {reason}"),
            Event::Text(_) => {}
        }
    }
    assert!(Utc::now().timestamp() >= expires_at);
    p.post(&alice, room, "still here?").await;
    let message = renewed.frame("message").await;
    assert_eq!(message["room"].as_i64(), Some(room));
    assert_eq!(message["body"], "still here?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_frame_with_a_bad_token_changes_nothing() {
    let p = Platform::start_with(None, brisk()).await;
    let (_room, alice, bob, _org) = p.team().await;
    let mut socket = Polled::new(p.connect_all(&bob.token).await);
    socket.frame("connection").await;
    // Expired two seconds ago: inside the checks' allowance for clock skew, still expired.
    let just_expired = TokenIssuer::new(
        &p.app.state.config.jwt_secret,
        Duration::from_secs(58),
        Duration::from_secs(58),
    )
    .issue_access(bob.id, Utc::now() - chrono::Duration::seconds(60))
    .unwrap();
    for (token, detail) in [
        (alice.token.clone(), "another user's"),
        ("not-a-token".to_owned(), "invalid or expired"),
        (just_expired, "invalid or expired"),
    ] {
        socket.send(json!({"type": "auth", "token": token})).await;
        let error = socket.frame("error").await;
        assert_eq!(error["code"], "token_not_valid", "{error}");
        assert!(
            error["detail"].as_str().unwrap().contains(detail),
            "{error}"
        );
    }
    socket.send(json!({"type": "ping"})).await;
    socket.frame("pong").await;
}

/// A seat lost without its news reaching the gateway (the announcement refused for longer
/// than it is retried) is noticed at the connection's next renewal: the room is let go, and
/// what is posted there no longer reaches the user, who could otherwise keep the connection,
/// and the room's messages, for as long as they renewed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_lost_unannounced_is_let_go_at_the_next_renewal() {
    let p = Platform::start_with(None, brisk()).await;
    let (room, alice, bob, _org) = p.team().await;
    let mut socket = Polled::new(p.connect_all(&bob.token).await);
    socket.frame("connection").await;
    // Taken in the database alone: no announcement.
    assert!(p
        .app
        .state
        .store
        .remove_room_member(room, bob.id)
        .await
        .unwrap());
    let (renewal, _) = token_for(&p, &bob, Duration::from_secs(3600));
    socket.send(json!({"type": "auth", "token": renewal})).await;
    let left = socket.frame("left").await;
    assert_eq!(left["room"].as_i64(), Some(room), "{left}");
    assert_eq!(left["reason"], "not_member");
    socket.frame("authenticated").await;
    p.post(&alice, room, "not for bob").await;
    p.post(&alice, room, "nor this").await;
    let mut pings = 0;
    while pings < 3 {
        match socket.next(Duration::from_secs(10)).await {
            Event::Ping => pings += 1,
            Event::Text(frame) => assert_ne!(frame["type"], "message", "{frame}"),
            Event::Closed(code, reason) => panic!("closed: {code} {reason}"),
        }
    }
}
