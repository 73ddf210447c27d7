//! The per-room WebSocket, driven as a client would: the API and the gateway share a store and
//! the in-process bus, as in the single-node binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::time::Duration;

use chatboard_core::bus::NatsBus;
use chatboard_core::config::{Config, JwtSecret};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Ws;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Platform {
    api: String,
    ws: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct User {
    id: i64,
    token: String,
}

impl Platform {
    /// The single-node shape: one store and the in-process bus shared by API and gateway.
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With `nats` (URL, subject prefix), the scale-out shape: the gateway opens its own store on
    /// the same database and its own NATS connection, as a separate pod would, so everything it
    /// delivers has crossed NATS.
    async fn start_with(nats: Option<(String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let secret = JwtSecret::new(b"gateway-test-secret-gateway-test-secret".to_vec()).unwrap();
        let mut config = Config::for_tests(url.clone(), secret);
        if let Some((nats_url, prefix)) = &nats {
            config.nats_url = Some(nats_url.clone());
            config.nats_prefix = prefix.clone();
        }
        let state = api_server::build_state(config).await.unwrap();
        let gateway = match &nats {
            None => gateway::GatewayState::start(
                state.store.clone(),
                state.tokens.clone(),
                state.bus.clone(),
            )
            .await
            .unwrap(),
            Some((nats_url, prefix)) => {
                let store = chatboard_core::store::connect(&url, 5).await.unwrap();
                let bus = std::sync::Arc::new(NatsBus::connect(nats_url, prefix).await.unwrap());
                gateway::GatewayState::start(store, state.tokens.clone(), bus)
                    .await
                    .unwrap()
            }
        };
        let api_listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let ws_listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let (api, ws) = (
            api_listener.local_addr().unwrap(),
            ws_listener.local_addr().unwrap(),
        );
        tokio::spawn(api_server::serve(
            api_listener,
            state,
            std::future::pending(),
        ));
        tokio::spawn(async move {
            axum::serve(ws_listener, gateway::router(gateway))
                .await
                .unwrap()
        });
        Self {
            api: format!("http://{api}"),
            ws: format!("ws://{ws}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn user(&self, email: &str) -> User {
        let body = json!({"email": email, "password": "password123"});
        let created: Value = self
            .http
            .post(format!("{}/auth/register/", self.api))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tokens: Value = self
            .http
            .post(format!("{}/auth/token/", self.api))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        User {
            id: created["id"].as_i64().unwrap(),
            token: tokens["access"].as_str().unwrap().to_owned(),
        }
    }

    /// Alice (ADMIN) and Bob (MEMBER) in an org with a PUBLIC room; returns (room, alice, bob, org).
    async fn team(&self) -> (i64, User, User, i64) {
        let alice = self.user("alice@example.com").await;
        let bob = self.user("bob@example.com").await;
        let org = self
            .call(
                reqwest::Method::POST,
                "/api/orgs/",
                &alice.token,
                json!({"name": "Acme"}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let invite = self
            .call(
                reqwest::Method::POST,
                &format!("/api/orgs/{org}/invite/"),
                &alice.token,
                json!({"email": "bob@example.com"}),
            )
            .await;
        self.call(
            reqwest::Method::POST,
            "/api/orgs/accept-invite/",
            &bob.token,
            json!({"token": invite["token"]}),
        )
        .await;
        let room = self
            .call(
                reqwest::Method::POST,
                "/api/rooms/",
                &alice.token,
                json!({"org": org, "name": "general"}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        (room, alice, bob, org)
    }

    async fn post(&self, user: &User, room: i64, body: &str) -> i64 {
        self.call(
            reqwest::Method::POST,
            &format!("/api/rooms/{room}/messages/"),
            &user.token,
            json!({ "body": body }),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    async fn connect(&self, room: i64, token: &str, since: Option<i64>) -> Socket {
        let mut url = format!("{}/ws/rooms/{room}/?token={token}", self.ws);
        if let Some(id) = since {
            url.push_str(&format!("&since={id}"));
        }
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }
}

/// The next text frame as JSON.
async fn frame(socket: &mut Socket) -> Value {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("frame");
        match next {
            Ws::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Ws::Ping(_) | Ws::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The close code the server ends with.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
        {
            Some(Ok(Ws::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Ws::Close(None))) => return u16::from(CloseCode::Status),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_missing_rooms_and_outsiders_are_closed_with_their_codes() {
    let p = Platform::start().await;
    let (room, _alice, bob, _org) = p.team().await;
    let eve = p.user("eve@example.com").await;

    let mut s = p.connect(room, "not-a-token", None).await;
    assert_eq!(close_code(&mut s).await, 4001);
    let mut s = tokio_tungstenite::connect_async(format!("{}/ws/rooms/{room}/", p.ws))
        .await
        .unwrap()
        .0;
    assert_eq!(close_code(&mut s).await, 4001, "no token at all");
    let mut s = p.connect(999_999, &bob.token, None).await;
    assert_eq!(close_code(&mut s).await, 4004);
    // Someone outside the org cannot even learn the room exists.
    let mut s = p.connect(room, &eve.token, None).await;
    assert_eq!(close_code(&mut s).await, 4004);
    // An org member without a seat is told so.
    p.call(
        reqwest::Method::POST,
        &format!("/api/rooms/{room}/leave/"),
        &bob.token,
        Value::Null,
    )
    .await;
    let mut s = p.connect(room, &bob.token, None).await;
    assert_eq!(close_code(&mut s).await, 4003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_get_live_messages_edits_deletes_and_receipts() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
    let mut s = p.connect(room, &bob.token, None).await;
    let hello = frame(&mut s).await;
    assert_eq!(
        hello,
        json!({"type": "connection", "room": room, "user_id": bob.id})
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
async fn the_token_may_come_as_a_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let p = Platform::start().await;
    let (room, _alice, bob, _org) = p.team().await;
    let mut request = format!("{}/ws/rooms/{room}/", p.ws)
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_since_replays_then_goes_live_without_gap_or_duplicate() {
    let p = Platform::start().await;
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
}

/// Posts continuously from several senders while a client drops and resumes from the last id
/// it saw, again and again: across all its connections it sees every message exactly once, in
/// id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_posting_with_random_reconnects_loses_nothing() {
    let p = std::sync::Arc::new(Platform::start().await);
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

/// True when no frame arrives for a short while.
async fn quiet(socket: &mut Socket) -> bool {
    tokio::time::timeout(Duration::from_millis(300), socket.next())
        .await
        .is_err()
}

/// Reads frames until one of `kind` arrives, returning it and the others seen on the way.
async fn frame_of(socket: &mut Socket, kind: &str) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    loop {
        let f = frame(socket).await;
        if f["type"] == kind {
            return (f, others);
        }
        others.push(f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_from_clients_post_type_and_read() {
    let p = Platform::start().await;
    let (room, alice, bob, _org) = p.team().await;
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
    a.send(Ws::Text(
        json!({"type": "read", "msg_id": 999_999})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(frame_of(&mut a, "error").await.0["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_nats_a_post_on_one_process_reaches_sockets_on_another() {
    let url = match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CHATBOARD_REQUIRE_SERVICES").map_or(true, |v| v != "1"),
                "CHATBOARD_REQUIRE_SERVICES=1 but NATS_URL is not set"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: NATS_URL is not set; NATS variants are skipped"
            );
            return;
        }
    };
    let prefix = format!("test{}", uuid_like());
    let p = Platform::start_with(Some((url.clone(), prefix.clone()))).await;
    let (room, alice, bob, _org) = p.team().await;
    let first = p.post(&alice, room, "before").await;
    let mut s = p.connect(room, &bob.token, Some(0)).await;
    assert_eq!(frame(&mut s).await["type"], "connection");
    assert_eq!(frame(&mut s).await["id"].as_i64(), Some(first), "replayed");
    let mut live = Vec::new();
    for i in 0..20 {
        live.push(p.post(&alice, room, &format!("live {i}")).await);
    }
    for expected in live {
        assert_eq!(frame(&mut s).await["id"].as_i64(), Some(expected));
    }
    // Sent over the socket on the gateway, announced over NATS, acknowledged.
    s.send(Ws::Text(
        json!({"type": "message", "body": "from the socket"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    // The acknowledgement and the message itself, in either order.
    let two = [frame(&mut s).await, frame(&mut s).await];
    let ack = two.iter().find(|f| f["type"] == "ack").expect("an ack");
    let echo = two
        .iter()
        .find(|f| f["type"] == "message")
        .expect("the message");
    assert_eq!(echo["id"], ack["id"]);
    NatsBus::connect(&url, &prefix)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{}", std::process::id())
}
