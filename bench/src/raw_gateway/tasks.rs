//! Fan-out by tasks: each socket's task reads its room's broadcast channel and writes each frame
//! through tungstenite.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as Ws, Utf8Bytes};

use super::{accept, ack_json, greeting_json, message_json, Sent};

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

/// Serves until killed.
pub(super) async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let rooms = Arc::new(Rooms::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        // A connection's error is the load generator's to report (as losses), not ours.
        tokio::spawn(async move { connection(stream, &rooms).await });
    }
}

async fn connection(stream: TcpStream, rooms: &Rooms) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (socket, room) = accept(stream, WebSocketConfig::default().write_buffer_size(0)).await?;
    let (mut sink, mut stream) = socket.split();
    let channel = rooms.channel(room);
    let mut frames = channel.subscribe();
    sink.send(Ws::Text(greeting_json(room).into())).await?;
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
                    let _ = channel.send(message_json(id, room, &sent)?.into());
                    sink.send(Ws::Text(ack_json(&sent, id).into())).await?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
