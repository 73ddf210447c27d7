//! A connection's TCP stream, shared between the HTTP server that owns it and, after a
//! WebSocket upgrade, whoever may write to the connection from elsewhere (the gateway's hub
//! writes live messages straight into caught-up sockets instead of waking each socket's task).
//!
//! Writes are whole: what the socket does not take at once waits here, and goes out before
//! anything written after it. So two writers can never interleave their bytes, whichever
//! thread they write from.
//!
//! Reads may be watched (see [`ReadWatch`]): the gateway counts a client's WebSocket frames
//! here, below the WebSocket library, which reads fragments and control frames without
//! telling.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

/// Sees every byte read from a [`SharedStream`], in order, once installed.
pub trait ReadWatch: Send + std::fmt::Debug {
    /// Looks at bytes just read; an error fails the read that brought them and ends the watch
    /// (the reads after it, a closing handshake's, are not watched).
    fn arrived(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// A TCP stream whose writes are whole, shareable (behind an `Arc`) by several writers.
#[derive(Debug)]
pub struct SharedStream {
    stream: TcpStream,
    /// Bytes accepted but not yet taken by the socket, oldest first.
    unsent: Mutex<BytesMut>,
    /// What looks at the bytes read, if anything (only the reading task locks it).
    watch: Mutex<Option<Box<dyn ReadWatch>>>,
}

/// What [`SharedStream::try_send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrySend {
    /// The socket took it all.
    Sent,
    /// The socket took part of it; the rest waits here until the owner flushes the stream.
    Partly,
    /// Nothing was written: bytes were already waiting, the socket is full, or it failed.
    Refused,
}

impl SharedStream {
    /// Wraps an accepted connection.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            unsent: Mutex::new(BytesMut::new()),
            watch: Mutex::new(None),
        }
    }

    /// Shows every byte read from now on to `watch` (replacing any watch before it).
    pub fn watch_reads(&self, watch: Box<dyn ReadWatch>) {
        *self.watch.lock().unwrap_or_else(PoisonError::into_inner) = Some(watch);
    }

    /// Reads from now on are not watched.
    pub fn unwatch_reads(&self) {
        *self.watch.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn unsent(&self) -> MutexGuard<'_, BytesMut> {
        self.unsent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `bytes` now, without waiting, if nothing else is waiting to go out.
    pub fn try_send(&self, bytes: &[u8]) -> TrySend {
        self.claim()
            .map_or(TrySend::Refused, |claim| claim.write_now(bytes))
    }

    /// The right to write to the socket now, if nothing is waiting to go out (waiting for
    /// another writer to finish first).
    pub fn claim(&self) -> Option<WriteClaim<'_>> {
        self.claim_with(self.unsent())
    }

    /// The right to write to the socket now, if nothing is waiting to go out and no other
    /// writer is busy with the stream; held until the claim reports what the write did. Lets
    /// a caller write to many sockets at once (one system call for all of them) and still
    /// keep each socket's writes whole.
    pub fn try_claim(&self) -> Result<WriteClaim<'_>, Unclaimed> {
        let unsent = match self.unsent.try_lock() {
            Ok(unsent) => unsent,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Unclaimed::Busy),
        };
        self.claim_with(unsent).ok_or(Unclaimed::Waiting)
    }

    fn claim_with<'a>(&'a self, unsent: MutexGuard<'a, BytesMut>) -> Option<WriteClaim<'a>> {
        if !unsent.is_empty() {
            return None;
        }
        Some(WriteClaim {
            stream: &self.stream,
            unsent,
        })
    }

    /// Reads what has arrived into `buf`.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    let watched = buf.filled().len();
                    buf.advance(n);
                    let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(seen) = watch.as_mut().map(|w| w.arrived(&buf.filled()[watched..]))
                    {
                        if seen.is_err() {
                            *watch = None;
                        }
                        seen?;
                    }
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale; `try_read` cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `buf` whole after what is waiting: all of it is accepted once the waiting bytes
    /// are out and the socket takes at least a first part (the rest then waits here).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut unsent = self.unsent();
        std::task::ready!(self.poll_drain(cx, &mut unsent))?;
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Ok(n) => {
                    unsent.extend_from_slice(&buf[n..]);
                    return Poll::Ready(Ok(buf.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes out what is waiting.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut unsent = self.unsent();
        self.poll_drain(cx, &mut unsent)
    }

    /// Writes out what is waiting, then closes the sending direction.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_flush(cx))?;
        match socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write) {
            // The peer already went away: nothing left to close.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            done => Poll::Ready(done),
        }
    }

    fn poll_drain(&self, cx: &mut Context<'_>, unsent: &mut BytesMut) -> Poll<io::Result<()>> {
        while !unsent.is_empty() {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(unsent) {
                Ok(n) => unsent.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // A burst's buffer is not kept for the connection's life.
        if unsent.capacity() > 0 {
            *unsent = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// Why [`SharedStream::try_claim`] gave no claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed {
    /// Another writer holds the stream for a moment.
    Busy,
    /// Bytes are waiting to go out: whoever owns the stream must flush them first.
    Waiting,
}

/// The right to write to a [`SharedStream`]'s socket now (from [`SharedStream::try_claim`]):
/// no other write to the stream can start until it reports what the write did.
#[derive(Debug)]
pub struct WriteClaim<'a> {
    stream: &'a TcpStream,
    unsent: MutexGuard<'a, BytesMut>,
}

impl WriteClaim<'_> {
    /// The socket, to write to without waiting (it is non-blocking), then report with
    /// [`WriteClaim::sent`].
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Writes `bytes` with a `send` of its own; what the socket does not take goes out before
    /// anything after it.
    pub fn write_now(self, bytes: &[u8]) -> TrySend {
        let written = self.write(bytes);
        self.sent(bytes, written)
    }

    /// Writes `bytes` with a `send` of its own, without waiting; report it with
    /// [`WriteClaim::sent`].
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.try_write(bytes)
    }

    /// Records what writing `bytes` did (`written`: how many the socket took, or the error)
    /// and ends the claim; what the socket did not take goes out before anything after it.
    pub fn sent(mut self, bytes: &[u8], written: io::Result<usize>) -> TrySend {
        match written {
            Ok(n) if n >= bytes.len() => TrySend::Sent,
            Ok(n) => {
                self.unsent.extend_from_slice(&bytes[n..]);
                TrySend::Partly
            }
            Err(_) => TrySend::Refused,
        }
    }
}

/// The WebSocket text frame of `text` as a server sends it (final, unmasked).
pub fn text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut frame = Vec::with_capacity(len + 10);
    frame.push(0x81); // FIN, text
    match u16::try_from(len) {
        Ok(short) if short < 126 => frame.push(short as u8),
        Ok(medium) => {
            frame.push(126);
            frame.extend_from_slice(&medium.to_be_bytes());
        }
        Err(_) => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(text.as_bytes());
    frame
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    /// A frame the socket takes only in part is finished before anything written after it,
    /// from whichever writer.
    #[tokio::test]
    async fn a_partly_sent_write_goes_out_whole_before_the_next() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let shared = Arc::new(SharedStream::new(server));
        // Far more than a loopback socket takes without the peer reading.
        let big = vec![b'a'; 32 * 1024 * 1024];
        assert_eq!(shared.try_send(&big), TrySend::Partly);
        assert_eq!(shared.try_send(b"c"), TrySend::Refused);
        let writer = {
            let shared = shared.clone();
            tokio::spawn(async move {
                std::future::poll_fn(|cx| shared.poll_write(cx, b"bb"))
                    .await
                    .unwrap();
                std::future::poll_fn(|cx| shared.poll_flush(cx))
                    .await
                    .unwrap();
                std::future::poll_fn(|cx| shared.poll_shutdown(cx))
                    .await
                    .unwrap();
            })
        };
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), big.len() + 2);
        assert!(received[..big.len()].iter().all(|b| *b == b'a'));
        assert_eq!(&received[big.len()..], b"bb");
    }
}
