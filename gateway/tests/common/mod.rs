//! A platform to drive as clients would: the API and one or more gateways on one database, on
//! the in-process bus (single node) or over NATS (scale-out, each gateway with its own store,
//! NATS connection and presence, as separate pods would have; on PostgreSQL in the shape the
//! `both_shapes!` tests run, on SQLite where a test starts NATS itself).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly by design

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_server::config::Config;
use chat::{Chat, ChatSettings};
use chatboard_core::bus::{Bus, NatsBus};
use chatboard_core::config::settings::PoolSettings;
use chatboard_core::config::GatewaySettings;
use chatboard_core::presence::{LocalPresence, NatsPresence, Presence, PresenceSettings};
use futures::StreamExt;
use serde_json::{json, Value};
use testing::http::TestApp;
use testing::TestEngine;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Write queues of the scale-out gateways' stores (`CHATBOARD_DB_WRITE_QUEUES`).
pub const GATEWAY_WRITE_QUEUES: u32 = 4;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running gateway.
pub struct Gateway {
    /// `ws://host:port`
    pub ws: String,
    /// `http://host:port` (health and metrics)
    pub http: String,
    pub state: gateway::GatewayState,
    pub bus: Arc<dyn Bus>,
    pub presence: Arc<dyn Presence>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct Platform {
    /// The API (and its HTTP fixtures).
    pub app: TestApp,
    /// The API's base URL.
    pub api: String,
    pub http: reqwest::Client,
    pub gw: Gateway,
    pub db_url: String,
    pub nats: Option<(String, String)>,
    pub settings: GatewaySettings,
    chat_settings: ChatSettings,
}

pub struct User {
    pub id: i64,
    pub token: String,
}

#[allow(unused_imports)] // not every test binary uses both
pub use testing::{nats_url, unique_prefix};

/// Presence entries' lifetime in tests: quick expiry.
pub const PRESENCE_TTL: Duration = Duration::from_secs(3);

/// Settings for tests: quick heartbeats.
pub fn quick_settings() -> GatewaySettings {
    GatewaySettings {
        max_connections_per_user: 16,
        connects_per_minute: 0,
        ping_interval: Duration::from_secs(5),
        io_uring: true,
    }
}

impl Platform {
    /// The single-node shape.
    pub async fn start() -> Self {
        Self::start_with(None, quick_settings()).await
    }

    /// With `nats` (URL, subject prefix), the scale-out shape.
    pub async fn start_with(nats: Option<(String, String)>, settings: GatewaySettings) -> Self {
        Self::start_tuned(nats, settings, |_| {}).await
    }

    /// As [`Platform::start_with`], with the configuration (of the API and the gateways)
    /// adjusted by `tune` first.
    pub async fn start_tuned(
        nats: Option<(String, String)>,
        settings: GatewaySettings,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_on(TestEngine::Sqlite, nats, settings, tune)
            .await
            .expect("SQLite is always there")
    }

    /// The scale-out shape as it is deployed: PostgreSQL and NATS, each gateway with its own
    /// connections to both. `None` (with a printed note) when either is not configured.
    pub async fn scale_out() -> Option<Self> {
        let nats = Some((nats_url()?, unique_prefix()));
        Self::start_on(TestEngine::Postgres, nats, quick_settings(), |_| {}).await
    }

    /// The platform on `engine`; `None` when that engine is not configured.
    async fn start_on(
        engine: TestEngine,
        nats: Option<(String, String)>,
        settings: GatewaySettings,
        tune: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let on_nats = nats.clone();
        let app = TestApp::spawn_with(engine, move |config| {
            if let Some((nats_url, prefix)) = on_nats {
                config.nats_url = Some(nats_url);
                config.nats.nats_prefix = prefix;
            }
            tune(config);
        })
        .await?;
        let chat_settings = app.state.config.chat_settings();
        let gw = Self::gateway(
            &nats,
            &app.db_url,
            &app.state.tokens,
            &app.state.store,
            &app.state.bus,
            settings,
            &chat_settings,
        )
        .await;
        Some(Self {
            api: app.base.clone(),
            http: app.client.clone(),
            db_url: app.db_url.clone(),
            app,
            gw,
            nats,
            settings,
            chat_settings,
        })
    }

    /// Another gateway on the same platform (a second pod in the NATS shape).
    pub async fn another_gateway(&self) -> Gateway {
        Self::gateway(
            &self.nats,
            &self.db_url,
            &self.app.state.tokens,
            &self.app.state.store,
            &self.app.state.bus,
            self.settings,
            &self.chat_settings,
        )
        .await
    }

    async fn gateway(
        nats: &Option<(String, String)>,
        db_url: &str,
        tokens: &chatboard_core::auth::TokenIssuer,
        store: &Arc<dyn chatboard_store::Store>,
        api_bus: &Arc<dyn Bus>,
        settings: GatewaySettings,
        chat_settings: &ChatSettings,
    ) -> Gateway {
        let (store, bus, presence): (_, Arc<dyn Bus>, Arc<dyn Presence>) = match nats {
            None => (
                store.clone(),
                api_bus.clone(),
                Arc::new(LocalPresence::new()),
            ),
            Some((url, prefix)) => {
                // Several writers, as a deployment may configure them (the scenarios that
                // order posts across writers need them; the API's store has the default one).
                let store = chatboard_store::connect_with_timeout(
                    db_url,
                    5,
                    PoolSettings::DEFAULT_ACQUIRE_TIMEOUT,
                    GATEWAY_WRITE_QUEUES,
                )
                .await
                .unwrap();
                let bus = NatsBus::connect(url, prefix).await.unwrap();
                let presence = NatsPresence::start(
                    bus.client(),
                    prefix,
                    PresenceSettings {
                        ttl: PRESENCE_TTL,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                (store, Arc::new(bus), Arc::new(presence))
            }
        };
        Self::serve_gateway(store, bus, presence, tokens, settings, chat_settings).await
    }

    /// Another gateway of the single-node shape (this platform's store and in-process bus) whose
    /// bus is the one `wrap` makes of it: for faults on the way to the bus.
    pub async fn gateway_with_bus(
        &self,
        wrap: impl FnOnce(Arc<dyn Bus>) -> Arc<dyn Bus>,
    ) -> Gateway {
        Self::serve_gateway(
            self.app.state.store.clone(),
            wrap(self.app.state.bus.clone()),
            Arc::new(LocalPresence::new()),
            &self.app.state.tokens,
            self.settings,
            &self.chat_settings,
        )
        .await
    }

    async fn serve_gateway(
        store: Arc<dyn chatboard_store::Store>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        tokens: &chatboard_core::auth::TokenIssuer,
        settings: GatewaySettings,
        chat_settings: &ChatSettings,
    ) -> Gateway {
        let state = Self::gateway_state(
            store,
            bus.clone(),
            presence.clone(),
            tokens,
            settings,
            chat_settings,
        )
        .await;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = gateway::router(state.clone()).merge(gateway::health_router(state.clone()));
        let server = tokio::spawn(async move {
            // The server the gateway runs under: it shares each connection's stream, so the
            // hub's direct writes are what these tests exercise.
            let http = chatboard_core::config::HttpSettings {
                max_connections_per_ip: 0,
                ..Default::default()
            };
            let _ = chatboard_core::http_server::serve(listener, app, http, std::future::pending())
                .await;
        });
        Gateway {
            ws: format!("ws://{addr}"),
            http: format!("http://{addr}"),
            state,
            bus,
            presence,
            server,
        }
    }

    /// A gateway's state (its hub included) on `store` and `bus`, served by no one.
    pub async fn gateway_state(
        store: Arc<dyn chatboard_store::Store>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        tokens: &chatboard_core::auth::TokenIssuer,
        settings: GatewaySettings,
        chat_settings: &ChatSettings,
    ) -> gateway::GatewayState {
        let registry = chatboard_core::metrics::MetricRegistry::new();
        let chat = Chat::new(store, bus, chat_settings.clone(), &registry).unwrap();
        gateway::GatewayState::start(gateway::GatewayParts {
            chat,
            tokens: tokens.clone(),
            presence,
            settings,
            registry,
        })
        .await
        .unwrap()
    }

    /// Deletes the NATS stream and presence bucket of this test.
    pub async fn cleanup(&self) {
        if let Some((url, prefix)) = &self.nats {
            let bus = NatsBus::connect(url, prefix).await.unwrap();
            let presence = NatsPresence::start(bus.client(), prefix, PresenceSettings::default())
                .await
                .unwrap();
            let _ = presence.delete_bucket().await;
            let _ = bus.delete_stream().await;
        }
    }

    /// Runs one SQL statement on the platform's database (as the operator's writes would).
    pub async fn sql(&self, statement: &str) {
        testing::execute_sql(&self.db_url, statement).await;
    }

    /// A request as `token`'s user that must succeed; its JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Value {
        let body = (!body.is_null()).then_some(body);
        let r = self.app.call(method, path, Some(token), body).await;
        assert!(r.status.is_success(), "{path}: {}", r.status);
        r.body
    }

    /// Seats `count` more users (`seat1@example.com`, ...) in `room`, straight into the
    /// database: signing them up would hash as many passwords.
    #[allow(dead_code)] // not every test binary grows a room
    pub async fn seat_more(&self, room: i64, count: usize) {
        self.sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO users (email, password_hash, created_at) \
             SELECT 'seat' || i || '@example.com', u.password_hash, u.created_at \
             FROM n, users u WHERE u.id = (SELECT MIN(id) FROM users)"
        ))
        .await;
        self.sql(&format!(
            "INSERT INTO room_members (room_id, user_id, joined_at) \
             SELECT {room}, id, created_at FROM users WHERE email LIKE 'seat%@example.com'"
        ))
        .await;
    }

    /// A registered, signed-in user.
    pub async fn user(&self, email: &str) -> User {
        let user = self.app.user(email).await;
        User {
            id: user.id,
            token: user.access,
        }
    }

    /// Alice (ADMIN) and Bob (MEMBER) in an org with a PUBLIC room; returns (room, alice, bob, org).
    pub async fn team(&self) -> (i64, User, User, i64) {
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
        self.join_org(org, &alice, &bob, "bob@example.com").await;
        let room = self.room(org, &alice, "general").await;
        (room, alice, bob, org)
    }

    /// `user` accepts an invitation from `admin` into `org`.
    pub async fn join_org(&self, org: i64, admin: &User, user: &User, email: &str) {
        let invite = self
            .call(
                reqwest::Method::POST,
                &format!("/api/orgs/{org}/invite/"),
                &admin.token,
                json!({"email": email}),
            )
            .await;
        self.call(
            reqwest::Method::POST,
            "/api/orgs/accept-invite/",
            &user.token,
            json!({"token": invite["token"]}),
        )
        .await;
    }

    /// A PUBLIC room (every org member sits in it).
    pub async fn room(&self, org: i64, creator: &User, name: &str) -> i64 {
        self.call(
            reqwest::Method::POST,
            "/api/rooms/",
            &creator.token,
            json!({"org": org, "name": name}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    /// A PRIVATE room (its creator alone sits in it).
    pub async fn private_room(&self, org: i64, creator: &User, name: &str) -> i64 {
        self.call(
            reqwest::Method::POST,
            "/api/rooms/",
            &creator.token,
            json!({"org": org, "name": name, "access_level": "PRIVATE"}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn post(&self, user: &User, room: i64, body: &str) -> i64 {
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

    /// `POST /api/rooms/{room}/{action}/` as `user` (`join`, `leave`), which must succeed.
    pub async fn room_action(&self, user: &User, room: i64, action: &str) {
        let path = format!("/api/rooms/{room}/{action}/");
        self.call(reqwest::Method::POST, &path, &user.token, Value::Null)
            .await;
    }

    /// Stores a plain message straight into the store, announcing nothing (as a process killed
    /// between its commit and its announcement leaves it); its id.
    pub async fn stored_unannounced(&self, room: i64, sender: &User, body: &str) -> i64 {
        let (message, _) = self
            .app
            .state
            .store
            .post_message(
                chatboard_store::NewMessage {
                    room_id: room,
                    sender_id: sender.id,
                    body: body.into(),
                    client_msg_id: None,
                    file: None,
                    parent_id: None,
                    mentions: Default::default(),
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        message.id
    }

    /// An announcer on the gateway's bus and the API's store, to announce as the API does.
    pub fn announcer(&self) -> chat::announce::Announcer {
        let registry = chatboard_core::metrics::MetricRegistry::new();
        chat::announce::Announcer::new(self.gw.bus.clone(), self.app.state.store.clone(), &registry)
            .unwrap()
    }

    pub async fn connect(&self, room: i64, token: &str, since: Option<i64>) -> Socket {
        connect_to(&self.gw.ws, room, token, since).await
    }

    /// The multiplexed endpoint.
    pub async fn connect_all(&self, token: &str) -> Socket {
        tokio_tungstenite::connect_async(format!("{}/ws/?token={token}", self.gw.ws))
            .await
            .unwrap()
            .0
    }
}

/// Opens the per-room endpoint of the gateway at `ws`.
pub async fn connect_to(ws: &str, room: i64, token: &str, since: Option<i64>) -> Socket {
    let mut url = format!("{ws}/ws/rooms/{room}/?token={token}");
    if let Some(id) = since {
        url.push_str(&format!("&since={id}"));
    }
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text frame as JSON, whatever its type. One limit for the whole wait: the server's
/// pings (every 5 s in these tests) must not keep restarting it.
pub async fn any_frame(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
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

/// The next text frame that is not a presence notice.
pub async fn frame(socket: &mut Socket) -> Value {
    loop {
        let f = any_frame(socket).await;
        if f["type"] != "presence" {
            return f;
        }
    }
}

/// Reads frames until one of `kind` arrives, returning it and the others seen on the way.
pub async fn frame_of(socket: &mut Socket, kind: &str) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    loop {
        let f = any_frame(socket).await;
        if f["type"] == kind {
            return (f, others);
        }
        others.push(f);
    }
}

/// True when no frame other than presence arrives for a short while. The gateway's heartbeat
/// pings (and their pongs) are not news and do not break the quiet: one landing in the window
/// failed a test now and then.
pub async fn quiet(socket: &mut Socket) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Ws::Text(text)))) if text.as_str().contains("\"presence\"") => continue,
            Ok(Some(Ok(Ws::Ping(_) | Ws::Pong(_)))) => continue,
            Ok(other) => {
                eprintln!("not quiet: {other:?}");
                return false;
            }
        }
    }
}

/// The close code the server ends with.
pub async fn close_code(socket: &mut Socket) -> u16 {
    // One bound for the whole wait: the gateway's heartbeat pings would otherwise keep a
    // per-frame timeout from ever firing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the close frame within 20 s")
        {
            Some(Ok(Ws::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Ws::Close(None))) => return u16::from(CloseCode::Status),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The next message frame of `room`, passing those of other rooms.
pub async fn message_in(socket: &mut Socket, room: i64) -> Value {
    loop {
        let (message, _) = frame_of(socket, "message").await;
        if message["room"].as_i64() == Some(room) {
            return message;
        }
    }
}

/// A metric's value from the gateway's `/metrics` (0 when absent).
pub async fn metric(gw: &Gateway, name_and_labels: &str) -> f64 {
    testing::process::series(&testing::process::scrape(&gw.http).await, name_and_labels)
}

/// Runs each named `async fn(Arc<Platform>)` as two tests: on the single node (SQLite, the
/// in-process bus) and in the scale-out shape (PostgreSQL and NATS).
#[macro_export]
macro_rules! both_shapes {
    ($($name:ident),* $(,)?) => {
        mod single_node {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let p = std::sync::Arc::new($crate::common::Platform::start().await);
                    super::$name(p).await;
                }
            )*
        }
        mod scale_out {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(p) = $crate::common::Platform::scale_out().await else { return };
                    let p = std::sync::Arc::new(p);
                    super::$name(p.clone()).await;
                    p.cleanup().await;
                }
            )*
        }
    };
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
