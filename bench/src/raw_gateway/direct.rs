//! Fan-out by the sender: the task that reads a message writes its frame's bytes to every socket
//! of the room itself, with no task woken per socket and no WebSocket library on the write side
//! (tungstenite still does the handshake and reads the clients' frames).
//!
//! Several tasks may write to one socket at once (its own answers, other senders' messages), so
//! the sockets are the gateway's `SharedStream`s, whose writes are whole. A send the socket
//! cannot take whole (full, closed) drops that socket from its room: the load generator counts
//! what it then misses. At the rates measured a socket holds well under a second of traffic, so
//! this does not happen in a healthy run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use anyhow::Context as _;
use batch_send::SendBatch;
use chatboard_core::shared_stream::{text_frame, SharedStream, TrySend, WriteClaim};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::store::Store;
use super::{accept, ack_json, greeting_json, message_json, Sent};

thread_local! {
    /// Each runtime worker's own ring (`uring`), made when the thread first fans out.
    static RING: RefCell<Option<SendBatch>> = const { RefCell::new(None) };
}

/// A room's sockets, locked while a message is sent to them.
type Members = Mutex<Vec<Arc<SharedStream>>>;

/// The rooms' sockets, and the ids handed out.
#[derive(Default)]
struct Rooms {
    sockets: Mutex<HashMap<i64, Arc<Members>>>,
    next_id: AtomicI64,
    /// Sockets dropped because a send did not go through whole.
    dropped: AtomicU64,
    /// Where messages are stored before their fan-out, if anywhere.
    store: Option<Arc<Store>>,
}

impl Rooms {
    fn room(&self, room: i64) -> Arc<Members> {
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        sockets.entry(room).or_default().clone()
    }
}

/// Serves until killed.
pub(super) async fn serve(
    listener: TcpListener,
    uring: bool,
    store: Option<Arc<Store>>,
) -> anyhow::Result<()> {
    if uring {
        // Fail at start rather than at the first message where io_uring is refused.
        SendBatch::new().context("io_uring is not available here")?;
    }
    let rooms = Arc::new(Rooms {
        store,
        ..Rooms::default()
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        // A connection's error is the load generator's to report (as losses), not ours.
        tokio::spawn(async move { connection(stream, &rooms, uring).await });
    }
}

async fn connection(stream: TcpStream, rooms: &Rooms, uring: bool) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let stream = Arc::new(SharedStream::new(stream));
    let (mut socket, room) = accept(Shared(stream.clone()), WebSocketConfig::default()).await?;
    let members = rooms.room(room);
    {
        // Greeted and in the room at once, under the room's lock: a message fanned out in
        // between missed a socket already greeted (the client then waited for it in vain).
        let mut room_members = lock(&members);
        send_whole(&stream, &text_frame(&greeting_json(room)))?;
        room_members.push(stream.clone());
    }
    let outcome = read_messages(&mut socket, &stream, rooms, room, &members, uring).await;
    lock(&members).retain(|member| !Arc::ptr_eq(member, &stream));
    outcome
}

/// Reads the client's frames until it goes; each message is fanned out and answered.
async fn read_messages(
    socket: &mut tokio_tungstenite::WebSocketStream<Shared>,
    stream: &SharedStream,
    rooms: &Rooms,
    room: i64,
    members: &Members,
    uring: bool,
) -> anyhow::Result<()> {
    while let Some(incoming) = socket.next().await {
        let Ws::Text(text) = incoming? else { continue };
        let Ok(sent) = serde_json::from_str::<Sent>(text.as_str()) else {
            continue;
        };
        if sent.kind != "message" {
            continue;
        }
        let id = rooms.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(store) = &rooms.store {
            store.insert(id, room, &sent.body)?;
        }
        let frame = text_frame(&message_json(id, room, &sent)?);
        let dropped = fan_out(&mut lock(members), &frame, uring);
        if dropped > 0 {
            let total = rooms.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            eprintln!("raw gateway: {total} sockets dropped so far (a send did not go whole)");
        }
        send_whole(stream, &text_frame(&ack_json(&sent, id)))?;
    }
    Ok(())
}

/// Sends `frame` to every member, dropping those that did not take it whole; returns how many
/// were dropped.
fn fan_out(members: &mut Vec<Arc<SharedStream>>, frame: &[u8], uring: bool) -> u64 {
    let whole: Vec<bool> = if uring {
        // A claim per socket, then one submission for all of them. Waiting for a claim cannot
        // deadlock: the only other writer of a socket is its own task's answer, which holds
        // nothing else while it writes.
        let claims: Vec<Option<WriteClaim<'_>>> =
            members.iter().map(|member| member.claim()).collect();
        let sockets: Vec<_> = claims.iter().flatten().map(WriteClaim::socket).collect();
        let mut written = RING
            .with(|ring| {
                let mut ring = ring.borrow_mut();
                if ring.is_none() {
                    *ring = SendBatch::new().ok();
                }
                ring.as_mut().map(|ring| ring.send_all(frame, &sockets))
            })
            .unwrap_or_default()
            .into_iter();
        drop(sockets);
        // The outcomes follow the claimed sockets only: a socket without a claim takes none.
        claims
            .into_iter()
            .map(|claim| {
                claim.is_some_and(|claim| {
                    let sent = written.next().unwrap_or(Err(io::ErrorKind::Other.into()));
                    claim.sent(frame, sent) == TrySend::Sent
                })
            })
            .collect()
    } else {
        members
            .iter()
            .map(|member| member.try_send(frame) == TrySend::Sent)
            .collect()
    };
    let before = members.len();
    let mut outcome = whole.into_iter();
    members.retain(|_| outcome.next().unwrap_or(false));
    (before - members.len()) as u64
}

/// Writes all of `bytes` now, or fails.
fn send_whole(stream: &SharedStream, bytes: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(
        stream.try_send(bytes) == TrySend::Sent,
        "the socket did not take {} bytes at once",
        bytes.len()
    );
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `SharedStream` as tungstenite's stream: read by the connection's task while other tasks
/// write whole frames to it.
struct Shared(Arc<SharedStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}
