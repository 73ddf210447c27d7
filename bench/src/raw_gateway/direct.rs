//! Fan-out by the sender: the task that reads a message writes its frame's bytes to every socket
//! of the room itself, with no task woken per socket and no WebSocket library on the write side
//! (tungstenite still does the handshake and reads the clients' frames).
//!
//! Several tasks may write to one socket at once (its own answers, other senders' messages), so
//! every write is one whole frame in one `send`; the kernel does not interleave two sends' bytes
//! on a TCP socket. A send the socket cannot take whole (full, closed) drops that socket from
//! its room: the load generator counts what it then misses. At the rates measured a socket
//! holds well under a second of traffic, so this does not happen in a healthy run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use anyhow::Context as _;
use batch_send::SendBatch;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{ack_json, greeting_json, message_json, room_of, Sent};

thread_local! {
    /// Each runtime worker's own ring (`uring`), made when the thread first fans out.
    static RING: RefCell<Option<SendBatch>> = const { RefCell::new(None) };
}

/// A room's sockets, locked while a message is sent to them.
type Members = Mutex<Vec<Arc<TcpStream>>>;

/// The rooms' sockets, and the ids handed out.
#[derive(Default)]
struct Rooms {
    sockets: Mutex<HashMap<i64, Arc<Members>>>,
    next_id: AtomicI64,
    /// Sockets dropped because a send did not go through whole.
    dropped: AtomicU64,
}

impl Rooms {
    fn room(&self, room: i64) -> Arc<Members> {
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        sockets.entry(room).or_default().clone()
    }
}

/// Serves until killed.
pub(super) async fn serve(listener: TcpListener, uring: bool) -> anyhow::Result<()> {
    if uring {
        // Fail at start rather than at the first message where io_uring is refused.
        SendBatch::new().context("io_uring is not available here")?;
    }
    let rooms = Arc::new(Rooms::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        // A connection's error is the load generator's to report (as losses), not ours.
        tokio::spawn(async move { connection(stream, &rooms, uring).await });
    }
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn connection(stream: TcpStream, rooms: &Rooms, uring: bool) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let stream = Arc::new(stream);
    let mut room = None;
    let config = WebSocketConfig::default().read_buffer_size(512);
    let mut socket = tokio_tungstenite::accept_hdr_async_with_config(
        Shared(stream.clone()),
        |request: &Request, response: Response| {
            room = room_of(request.uri().path());
            Ok(response)
        },
        Some(config),
    )
    .await?;
    let room = room.context("not a room's endpoint")?;
    let members = rooms.room(room);
    send_whole(&stream, &text_frame(greeting_json(room).as_bytes()))?;
    lock(&members).push(stream.clone());
    let outcome = read_messages(&mut socket, &stream, rooms, room, &members, uring).await;
    lock(&members).retain(|member| !Arc::ptr_eq(member, &stream));
    outcome
}

/// Reads the client's frames until it goes; each message is fanned out and answered.
async fn read_messages(
    socket: &mut tokio_tungstenite::WebSocketStream<Shared>,
    stream: &TcpStream,
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
        let frame = text_frame(message_json(id, room, &sent)?.as_bytes());
        let dropped = fan_out(&mut lock(members), &frame, uring);
        if dropped > 0 {
            let total = rooms.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            eprintln!("raw gateway: {total} sockets dropped so far (a send did not go whole)");
        }
        send_whole(stream, &text_frame(ack_json(&sent, id).as_bytes()))?;
    }
    Ok(())
}

/// Sends `frame` to every member, dropping those that did not take it whole; returns how many
/// were dropped.
fn fan_out(members: &mut Vec<Arc<TcpStream>>, frame: &[u8], uring: bool) -> u64 {
    let whole: Vec<bool> = if uring {
        RING.with(|ring| {
            let mut ring = ring.borrow_mut();
            if ring.is_none() {
                *ring = SendBatch::new().ok();
            }
            let fds: Vec<BorrowedFd<'_>> = members.iter().map(|member| member.as_fd()).collect();
            match ring.as_mut() {
                Some(ring) => ring
                    .send_all(frame, &fds)
                    .into_iter()
                    .map(|sent| matches!(sent, Ok(n) if n == frame.len()))
                    .collect(),
                None => vec![false; fds.len()],
            }
        })
    } else {
        members
            .iter()
            .map(|member| matches!(member.try_write(frame), Ok(n) if n == frame.len()))
            .collect()
    };
    let before = members.len();
    let mut outcome = whole.into_iter();
    members.retain(|_| outcome.next().unwrap_or(false));
    (before - members.len()) as u64
}

/// One `send` of all of `bytes`, or an error.
fn send_whole(stream: &TcpStream, bytes: &[u8]) -> anyhow::Result<()> {
    let sent = stream.try_write(bytes)?;
    anyhow::ensure!(
        sent == bytes.len(),
        "the socket took {sent} of {} bytes",
        bytes.len()
    );
    Ok(())
}

/// An unmasked, final WebSocket text frame holding `payload` (RFC 6455, section 5.2).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    let len = payload.len();
    if len < 126 {
        frame.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        frame.push(126);
        frame.extend_from_slice(&short.to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A socket read by one task (through tungstenite) while other tasks write to it: a
/// `TcpStream` behind an `Arc`, read and written through its `&self` readiness methods.
struct Shared(Arc<TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(bytes) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                outcome => return Poll::Ready(outcome),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the last `Arc` goes.
        Poll::Ready(Ok(()))
    }
}
