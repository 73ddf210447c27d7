//! `raw-gateway`: the floor the gateway's fan-out is measured against. It speaks just enough of
//! the gateway's protocol for `ws-fanout` (the per-room endpoint, the `connection` greeting, a
//! `message` frame per message sent, the sender's `ack`) with nothing else: no authentication,
//! no database, no bus, no presence, no limits, no metrics. A message frame is built once and
//! the same bytes go to every socket of the room, one write each, so what it costs is what the
//! WebSocket framing and the kernel cost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as Ws, Utf8Bytes};

/// Frames a room may hold for its slowest socket before that socket is dropped (the gateway's
/// 4009). A broadcast channel allocates all its slots up front, so this is also memory per room
/// (about 40 bytes a slot): 256 is a second of a room's traffic at the rates measured here.
const ROOM_BACKLOG: usize = 256;

/// The rooms, each a broadcast of ready-made frames.
#[derive(Default)]
struct Rooms {
    channels: Mutex<HashMap<i64, broadcast::Sender<Utf8Bytes>>>,
    next_id: AtomicI64,
}

impl Rooms {
    fn channel(&self, room: i64) -> broadcast::Sender<Utf8Bytes> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(room)
            .or_insert_with(|| broadcast::channel(ROOM_BACKLOG).0)
            .clone()
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

/// The message object the gateway sends, with the same fields in the same order (`type` first:
/// the load generator looks for that prefix).
#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: i64,
    room: i64,
    org: i64,
    sender: i64,
    body: &'a str,
    file: Option<()>,
    client_msg_id: Option<&'a str>,
    is_deleted: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    edited_at: Option<()>,
}

fn message_frame(id: i64, room: i64, sent: &Sent) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&MessageFrame {
        kind: "message",
        id,
        room,
        org: 1,
        sender: 1,
        body: &sent.body,
        file: None,
        client_msg_id: sent.client_msg_id.as_deref(),
        is_deleted: false,
        created_at: chrono::Utc::now(),
        edited_at: None,
    })?)
}

/// Serves until killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "raw gateway at ws://{} (pid {})",
        listener.local_addr()?,
        std::process::id()
    );
    let rooms = Arc::new(Rooms::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        // A connection's error is the load generator's to report (as losses), not ours.
        tokio::spawn(async move { connection(stream, &rooms).await });
    }
}

/// The room id in `/ws/rooms/{id}/...`.
fn room_of(path: &str) -> Option<i64> {
    path.strip_prefix("/ws/rooms/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn connection(stream: TcpStream, rooms: &Rooms) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut room = None;
    let config = WebSocketConfig::default()
        .read_buffer_size(512) // as the gateway's
        .write_buffer_size(0);
    let socket = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |request: &Request, response: Response| {
            room = room_of(request.uri().path());
            Ok(response)
        },
        Some(config),
    )
    .await?;
    let room = room.context("not a room's endpoint")?;
    let (mut sink, mut stream) = socket.split();
    let channel = rooms.channel(room);
    let mut frames = channel.subscribe();
    let greeting = serde_json::json!({"type": "connection", "room": room, "user_id": 1, "user_email": "raw@bench.example"});
    sink.send(Ws::Text(greeting.to_string().into())).await?;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => sink.send(Ws::Text(frame)).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let close = CloseFrame { code: CloseCode::from(4009), reason: "too slow".into() };
                    sink.send(Ws::Close(Some(close))).await?;
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Ws::Text(text))) => {
                    let Ok(sent) = serde_json::from_str::<Sent>(text.as_str()) else { continue };
                    if sent.kind != "message" {
                        continue;
                    }
                    let id = rooms.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                    let _ = channel.send(message_frame(id, room, &sent)?.into());
                    let ack = serde_json::json!({"type": "ack", "client_msg_id": sent.client_msg_id, "id": id});
                    sink.send(Ws::Text(ack.to_string().into())).await?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
