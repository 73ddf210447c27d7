//! The WebSocket gateway: live room events from the bus, with resume from the database.
//!
//! Endpoints: `GET /ws/rooms/{room_id}/?token=..[&since=..]` follows one room, `GET /ws/?token=..`
//! all of the user's rooms (frames carry `room`). The token may instead come as the
//! `bearer.<JWT>` subprotocol. See API.md for frames and close codes; [`session`] for how a
//! connection gets every message once, in order.

mod attempts;
pub mod client_frames;
mod closing;
pub mod config;
mod frame_meter;
mod handshake;
pub mod hub;
pub mod metrics;
mod outlet;
mod positions;
pub mod process;
mod reorder;
mod replies;
pub mod session;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat::Chat;
use chatboard_core::auth::TokenIssuer;
use chatboard_core::bus::BusError;
use chatboard_core::config::GatewaySettings;
use chatboard_core::http_server::ConnectionStream;
use chatboard_core::presence::Presence;
use chatboard_core::probes::{metrics_reply, probe_routes, Health};
use chatboard_store::Store;
use tokio::sync::watch;

use crate::closing::{close_socket, Refusal};
use crate::handshake::Handshake;
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::outlet::Outlet;
use crate::session::{Position, Session};

/// Largest frame a client may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Initial read buffer per connection; it grows for larger frames. Small, because idle
/// connections are the common case (tungstenite keeps the buffer for the connection's life and
/// its default, 128 KiB, would dominate memory) and client frames are short: a typical one
/// fits, and a long message costs a few more reads.
const READ_BUFFER_BYTES: usize = 512;

/// Frames written out together when a connection has several waiting.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What every connection shares.
pub(crate) struct Shared {
    /// The actions client frames translate into.
    chat: Chat,
    /// Reads of positions and catch-up pages (the store `chat` writes to).
    store: Arc<dyn Store>,
    tokens: TokenIssuer,
    presence: Arc<dyn Presence>,
    hub: Arc<Hub>,
    settings: GatewaySettings,
    metrics: GatewayMetrics,
    per_user: Mutex<HashMap<i64, u32>>,
    /// Connection attempts per user (`CHATBOARD_WS_CONNECTS_PER_MINUTE`).
    attempts: attempts::ConnectAttempts,
    shutdown: watch::Sender<bool>,
}

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    shared: Arc<Shared>,
}

/// What the gateway needs to start.
pub struct GatewayParts {
    /// The actions, over the database the API uses and the bus changes are announced on (the
    /// gateway follows that bus).
    pub chat: Chat,
    /// Verifies access tokens.
    pub tokens: TokenIssuer,
    /// Who is online.
    pub presence: Arc<dyn Presence>,
    /// Limits and timings.
    pub settings: GatewaySettings,
    /// Where the gateway's metrics are registered (the process's `/metrics`).
    pub registry: chatboard_core::metrics::MetricRegistry,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The bus subscription failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The hub's shard threads could not be started.
    #[error("hub threads: {0}")]
    Threads(std::io::Error),
}

impl GatewayState {
    /// Subscribes to the bus and presence and builds the state.
    pub async fn start(parts: GatewayParts) -> Result<Self, StartError> {
        let store = parts.chat.store().clone();
        // Messages posted through this process reach with `@here` who is online here (on a
        // single node, the API shares this gateway's actions, so its posts do too).
        parts.chat.use_presence(parts.presence.clone());
        let hub = Hub::start(
            parts.chat.bus().clone(),
            parts.presence.clone(),
            store.clone(),
            parts.settings.io_uring,
        )
        .await?;
        Ok(Self {
            shared: Arc::new(Shared {
                chat: parts.chat,
                store,
                tokens: parts.tokens,
                presence: parts.presence,
                hub,
                settings: parts.settings,
                metrics: GatewayMetrics::new(parts.registry)?,
                per_user: Mutex::new(HashMap::new()),
                attempts: attempts::ConnectAttempts::new(parts.settings.connects_per_minute),
                shutdown: watch::channel(false).0,
            }),
        })
    }

    /// Open connections.
    pub fn connections(&self) -> i64 {
        self.shared.metrics.connections.get()
    }

    /// Closes every connection with 1012 (reconnect elsewhere), waits up to `timeout` for them
    /// to go, and withdraws this process's presence entries.
    pub async fn shut_down(&self, timeout: std::time::Duration) {
        self.shared.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.shared.presence.withdraw().await;
    }
}

/// The gateway's routes (with and without the trailing slash).
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/ws", get(user_socket))
        .route("/ws/", get(user_socket))
        .route("/ws/rooms/{room_id}", get(room_socket))
        .route("/ws/rooms/{room_id}/", get(room_socket))
        .with_state(state)
}

/// `/health/live`, `/health/ready` (database and bus) and `/metrics`, for the gateway's own
/// binary; in the single-node binary the API's routes answer for the whole process.
pub fn health_router(state: GatewayState) -> Router {
    probe_routes(get(ready), get(metrics)).with_state(state)
}

async fn metrics(State(state): State<GatewayState>) -> Response {
    metrics_reply(state.shared.metrics.render())
}

/// Ready when the database and the bus answer and the gateway is not draining.
async fn ready(State(state): State<GatewayState>) -> (StatusCode, Json<Health>) {
    let shared = &state.shared;
    let bus = shared.chat.bus();
    Health::checking()
        .require("database", shared.store.ping())
        .await
        .require(bus.kind(), bus.ping())
        .await
        .draining(*shared.shutdown.borrow())
        .into_reply()
}

/// The subprotocol prefix that carries the token outside the URL.
const BEARER_PROTOCOL: &str = "bearer.";

/// The token (query or subprotocol) and the upgrade, configured for our limits.
fn prepare(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> (Option<String>, WebSocketUpgrade) {
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let from_protocol = offered
        .iter()
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL).map(str::to_owned));
    // An empty `?token=` (a client that always appends it) is no token: the subprotocol's counts.
    let token = query
        .get("token")
        .filter(|t| !t.trim().is_empty())
        .cloned()
        .or(from_protocol);
    let mut upgrade = upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames queued while batching (see the session) go out together, up to this much.
        .write_buffer_size(WRITE_BATCH_BYTES);
    if let Some(p) = offered.iter().find(|p| p.starts_with(BEARER_PROTOCOL)) {
        // Echo the protocol the token came in, as browsers require.
        upgrade = upgrade.protocols([p.clone()]);
    }
    (token, upgrade)
}

/// A user's connection slot on this process, given back when dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    user_id: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.metrics.connections.dec();
        let mut per_user = self
            .shared
            .per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = per_user.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user_id);
            }
        }
    }
}

/// An admitted connection: its socket and who it is.
struct Admitted {
    socket: WebSocket,
    identity: Identity,
}

/// Who an admitted connection is, until when its token holds, and its slot.
pub(crate) struct Identity {
    pub(crate) user_id: i64,
    pub(crate) user_email: String,
    /// The token's expiry, unix seconds (see [`Session::token_expires_at`]).
    pub(crate) token_expires_at: i64,
    pub(crate) slot: Slot,
}

/// Who the token names, with a slot under the per-user cap; `Err` after closing the socket.
async fn admit(
    shared: &Arc<Shared>,
    socket: WebSocket,
    token: Option<&str>,
) -> Result<Admitted, ()> {
    let (user_id, token_expires_at) = match token.map(|t| shared.tokens.verify_access(t)) {
        Some(Ok(claims)) => (claims.user_id, claims.exp),
        _ => {
            close_socket(socket, shared, Refusal::UNAUTHENTICATED).await;
            return Err(());
        }
    };
    if *shared.shutdown.borrow() {
        close_socket(socket, shared, Refusal::RESTARTING).await;
        return Err(());
    }
    // Before any lookup: the attempts are what costs.
    if !shared.attempts.admit(user_id) {
        close_socket(socket, shared, Refusal::TOO_MANY_ATTEMPTS).await;
        return Err(());
    }
    let user_email = match shared.store.user_by_id(user_id).await {
        Ok(Some(user)) => user.email,
        Ok(None) => {
            close_socket(socket, shared, Refusal::UNKNOWN_ACCOUNT).await;
            return Err(());
        }
        Err(e) => {
            server_error(socket, shared, &e, "account lookup failed").await;
            return Err(());
        }
    };
    let cap = shared.settings.max_connections_per_user;
    let admitted = {
        let mut per_user = shared
            .per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = per_user.entry(user_id).or_insert(0);
        if cap > 0 && *count >= cap {
            false
        } else {
            *count += 1;
            true
        }
    };
    if !admitted {
        close_socket(socket, shared, Refusal::TOO_MANY_CONNECTIONS).await;
        return Err(());
    }
    shared.metrics.connections.inc();
    let slot = Slot {
        shared: shared.clone(),
        user_id,
    };
    Ok(Admitted {
        socket,
        identity: Identity {
            user_id,
            user_email,
            token_expires_at,
            slot,
        },
    })
}

/// Logs a failed lookup and closes with 1011 (try again).
async fn server_error(
    socket: WebSocket,
    shared: &Shared,
    e: &(dyn std::fmt::Display + Sync),
    what: &'static str,
) {
    tracing::warn!(error = %e, "{what}");
    close_socket(socket, shared, Refusal::SERVER_ERROR).await;
}

/// A new connection's outlet, writing to its stream when the server shares it.
fn outlet(shared: &Shared, stream: Option<Extension<ConnectionStream>>) -> Arc<Outlet> {
    let metrics = &shared.metrics;
    Arc::new(Outlet::new(
        stream.map(|Extension(ConnectionStream(stream))| stream),
        metrics.deliveries.clone(),
        metrics.queued_deliveries.clone(),
        metrics.frames_out.clone(),
        metrics.fanout_seconds.clone(),
    ))
}

/// Runs an admitted session on a task of its own. The upgrade's task (the handshake, the
/// admission lookups and their state) then ends, and its memory with it: an idle connection
/// keeps only the session's own, smaller, future. The connection's work that can log (client
/// frames, catch-up reads) opens the `socket` span for itself rather than holding one for the
/// connection's whole life.
fn serve(session: Session, replay: bool) {
    // The client's frames are counted from here (see [`frame_meter`]): nothing has read from
    // the socket yet, so the meter starts at a frame's beginning; refusals before this point
    // end the connection and read only its closing handshake, uncounted.
    if let Some(stream) = session.stream() {
        stream.watch_reads(Box::new(frame_meter::FrameMeter::new()));
    }
    tokio::spawn(Box::new(session).run(replay));
}

async fn room_socket(
    stream: Option<Extension<ConnectionStream>>,
    State(state): State<GatewayState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Handshake(upgrade): Handshake,
) -> Response {
    let (token, upgrade) = prepare(&query, &headers, upgrade);
    // Absent: from now on. Present, it must be an id (0 replays the whole room).
    let since = query
        .get("since")
        .map(|s| s.trim().parse::<i64>().ok().filter(|id| *id >= 0));
    let shared = state.shared;
    upgrade.on_upgrade(move |socket| async move {
        let Ok(admitted) = admit(&shared, socket, token.as_deref()).await else {
            return;
        };
        let (socket, user_id) = (admitted.socket, admitted.identity.user_id);
        let since = match since {
            Some(None) => return close_socket(socket, &shared, Refusal::BAD_SINCE).await,
            Some(Some(id)) => Some(id),
            None => None,
        };
        let Ok(room_id) = room.parse::<i64>() else {
            return close_socket(socket, &shared, Refusal::NO_ROOM).await;
        };
        match shared.store.room_access(room_id, user_id).await {
            Ok(Some(access)) if access.is_member => {}
            // A PRIVATE room or DM the user may not know of is no room, as over REST.
            Ok(Some(access)) if !access.hidden() => {
                return close_socket(socket, &shared, Refusal::NOT_MEMBER).await
            }
            Ok(_) => return close_socket(socket, &shared, Refusal::NO_ROOM).await,
            Err(e) => {
                return server_error(socket, &shared, &e, "room check failed").await;
            }
        }
        // Follow first, then read where the room stands: nothing can fall between the two.
        let outlet = outlet(&shared, stream);
        let subscription = shared
            .hub
            .subscribe(user_id, &[room_id], false, outlet.clone());
        let version = match shared.store.page_version(room_id, user_id).await {
            Ok(Some(version)) => version,
            Ok(None) => return close_socket(socket, &shared, Refusal::NOT_MEMBER).await,
            Err(e) => {
                return server_error(socket, &shared, &e, "reading the room's position failed")
                    .await;
            }
        };
        subscription.starts_at(room_id, version.last_seq);
        // Without `since`, the client wants what comes next: start after the newest message as
        // it stands now. With it, the replay sets the position; if there is nothing to replay
        // the room's newest seq is the one to expect next after.
        let position = match since {
            Some(id) if id < version.last_msg_id.unwrap_or(0) => Position {
                last_id: id,
                last_seq: None,
            },
            // At or beyond the newest message (a bogus `since` is clamped, or live messages
            // would be taken for duplicates until ids caught up with it).
            Some(_) => Position {
                last_id: version.last_msg_id.unwrap_or(0),
                last_seq: Some(version.last_seq),
            },
            None => Position {
                last_id: version.last_msg_id.unwrap_or(0),
                last_seq: Some(version.last_seq),
            },
        };
        outlet.state().positions.insert(room_id, position);
        let identity = admitted.identity;
        let session = Session::new(
            socket,
            &shared,
            identity,
            Some(room_id),
            outlet,
            subscription,
        );
        serve(session, since.is_some());
    })
}

async fn user_socket(
    stream: Option<Extension<ConnectionStream>>,
    State(state): State<GatewayState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Handshake(upgrade): Handshake,
) -> Response {
    let (token, upgrade) = prepare(&query, &headers, upgrade);
    let shared = state.shared;
    upgrade.on_upgrade(move |socket| async move {
        let Ok(admitted) = admit(&shared, socket, token.as_deref()).await else {
            return;
        };
        let (socket, user_id) = (admitted.socket, admitted.identity.user_id);
        let rooms = match shared.store.room_positions(user_id).await {
            Ok(rooms) => rooms.iter().map(|r| r.room_id).collect::<Vec<_>>(),
            Err(e) => {
                return server_error(socket, &shared, &e, "rooms lookup failed").await;
            }
        };
        // Follow first, then read where the rooms stand.
        let outlet = outlet(&shared, stream);
        let mut subscription = shared.hub.subscribe(user_id, &rooms, true, outlet.clone());
        let mut now = shared.store.room_positions(user_id).await;
        // A seat taken between the two reads was announced before the hub knew this
        // connection: follow its room too, then read again, so it starts from a point read
        // after following.
        let mut followed: HashSet<i64> = rooms.iter().copied().collect();
        let joined: Vec<i64> = match &now {
            Ok(now) => now
                .iter()
                .map(|r| r.room_id)
                .filter(|room| !followed.contains(room))
                .collect(),
            Err(_) => Vec::new(),
        };
        followed.extend(&joined);
        if !joined.is_empty() {
            for room in &joined {
                subscription.adopt(*room);
            }
            now = shared.store.room_positions(user_id).await;
        }
        match now {
            Ok(now) => {
                // A seat lost between the reads: its room is left, or its presence would go on
                // reaching this connection.
                let seated: HashSet<i64> = now.iter().map(|r| r.room_id).collect();
                for room in followed.difference(&seated) {
                    subscription.leave(*room);
                }
                for r in now.into_iter().filter(|r| followed.contains(&r.room_id)) {
                    // Each under its own lock, never both: the hub takes its rooms' lock and
                    // then an outlet's, so holding the outlet's here while `starts_at` waits for
                    // the rooms' could deadlock with a message arriving for one of the rooms.
                    subscription.starts_at(r.room_id, r.last_seq);
                    let at = Position {
                        last_id: r.last_msg_id.unwrap_or(0),
                        last_seq: Some(r.last_seq),
                    };
                    outlet.state().positions.insert(r.room_id, at);
                }
            }
            Err(e) => {
                return server_error(socket, &shared, &e, "rooms lookup failed").await;
            }
        }
        let identity = admitted.identity;
        let session = Session::new(socket, &shared, identity, None, outlet, subscription);
        serve(session, false);
    })
}
