//! `raw-gateway`: the floor the gateway's fan-out is measured against. It speaks just enough of
//! the gateway's protocol for `ws-fanout` (the per-room endpoint, the `connection` greeting, a
//! `message` frame per message sent, the sender's `ack`) with nothing else: no authentication,
//! no database, no bus, no presence, no limits, no metrics. A message frame is built once and
//! the same bytes go to every socket of the room, so what it costs is what the WebSocket
//! framing, the runtime and the kernel cost.
//!
//! Two ways to deliver ([`Fanout`]): a task per socket reading a room's broadcast channel and
//! writing through tungstenite (`tasks`, the floor of every table before 2026-12-03's last
//! session), and the sender's own task writing the frame's bytes to every socket of the room
//! itself (`sends`: one `send` per socket, as the minimal broadcaster did; `uring`: all
//! of them in one io_uring submission, as the gateway's shards do). With `--store`, the direct
//! fan-outs first store each message in SQLite (see [`store`]): the floor with storage.

mod direct;
mod store;
mod tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chatboard_core::bus::BusEvent;
use chatboard_core::model::Message;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// How a room's message reaches its sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fanout {
    /// A task per socket, woken through the room's broadcast channel, one write each.
    Tasks,
    /// The sender's task sends the frame to each socket of the room, one `send` each.
    Sends,
    /// The sender's task sends the frame to the room's sockets in one io_uring submission.
    Uring,
}

/// Serves until killed; with `store`, each message is first stored in the SQLite database at
/// that path (the `sends` and `uring` fan-outs only).
pub async fn serve(
    listen: SocketAddr,
    fanout: Fanout,
    store: Option<PathBuf>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        store.is_none() || fanout != Fanout::Tasks,
        "--store needs --fanout sends or uring"
    );
    let store = store
        .map(|path| store::Store::open(&path).map(Arc::new))
        .transpose()?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "raw gateway at ws://{} (pid {}, fan-out by {fanout:?}{})",
        listener.local_addr()?,
        std::process::id(),
        if store.is_some() {
            ", messages stored"
        } else {
            ""
        }
    );
    match fanout {
        Fanout::Tasks => tasks::serve(listener).await,
        Fanout::Sends | Fanout::Uring => {
            direct::serve(listener, fanout == Fanout::Uring, store).await
        }
    }
}

/// What a client's `message` frame carries.
#[derive(Deserialize)]
struct Sent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// The JSON of a `message` frame for message `id` of `room`: the gateway's own frame type
/// (`BusEvent::Message`, encoded as the hub encodes it), so that the floor's frames carry every
/// field the gateway's do, in the same order (`type` first: the load generator looks for that
/// prefix), and keep doing so when the message object grows. Before 2026-12-08 the floor wrote a
/// copy of the frame without the fields that threads, reactions and mentions added (about 130
/// bytes fewer per frame).
fn message_json(id: i64, room: i64, sent: &Sent) -> anyhow::Result<String> {
    let message = Message {
        id,
        room,
        org: 1,
        sender: Some(1),
        body: sent.body.clone(),
        client_msg_id: sent.client_msg_id.clone(),
        created_at: chrono::Utc::now(),
        ..Message::default()
    };
    Ok(serde_json::to_string(&BusEvent::Message {
        message,
        seq: id,
    })?)
}

/// The JSON of the greeting a room's socket gets first.
fn greeting_json(room: i64) -> String {
    serde_json::json!({"type": "connection", "room": room, "user_id": 1, "user_email": "raw@bench.example"})
        .to_string()
}

/// The JSON of the answer to a sent message.
fn ack_json(sent: &Sent, id: i64) -> String {
    serde_json::json!({"type": "ack", "client_msg_id": sent.client_msg_id, "id": id}).to_string()
}

/// Accepts a client's WebSocket handshake on a room's endpoint; returns the socket and the room.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: WebSocketConfig,
) -> anyhow::Result<(WebSocketStream<S>, i64)> {
    let mut room = None;
    let socket = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |request: &Request, response: Response| {
            room = room_of(request.uri().path());
            Ok(response)
        },
        Some(config.read_buffer_size(512)), // as the gateway's
    )
    .await?;
    Ok((socket, room.context("not a room's endpoint")?))
}

/// The room id in `/ws/rooms/{id}/...`.
fn room_of(path: &str) -> Option<i64> {
    path.strip_prefix("/ws/rooms/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}
