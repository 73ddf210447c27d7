//! Sends one buffer to many sockets in one system call.
//!
//! A chat message's fan-out writes the same frame to every socket of its room: a hundred
//! `send` calls, each paying a system call's entry and exit around the kernel's TCP work.
//! Queued on an io_uring instead, the sends go to the kernel in one `io_uring_enter`, which
//! performs each of them in turn (a non-blocking send completes inline) and reports each
//! result. Where io_uring is missing or refused (older kernels, container runtimes whose
//! seccomp profile blocks it), [`SendBatch::new`] fails and the caller keeps its plain sends.
//!
//! The API is safe because [`SendBatch::send_all`] borrows the buffer and the sockets and
//! does not return before the kernel has reported on every send it queued.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{opcode, types, IoUring};

/// Sends queued at once at most (a room's frame to more sockets goes in several rounds).
const RING_ENTRIES: u32 = 256;

/// An io_uring instance that sends one buffer to many sockets at a time.
pub struct SendBatch {
    ring: IoUring,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").finish_non_exhaustive()
    }
}

impl SendBatch {
    /// A ring of its own; fails where the kernel or its sandbox does not offer io_uring.
    pub fn new() -> io::Result<Self> {
        // `submit_all`: a send that cannot even be queued (a closed descriptor) must not stop
        // the ones after it. Kernels before 5.18 lack the flag; they queue each send anyway
        // for our purposes (every send here is well formed), so a ring without it will do.
        let ring = IoUring::builder()
            .setup_submit_all()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        Ok(Self { ring })
    }

    /// Sends `bytes` to each socket of `sockets`, without waiting for room in any of them
    /// (`MSG_DONTWAIT`), and returns each send's outcome in the same order: the bytes the
    /// socket took (possibly fewer than all), or its error (`WouldBlock` when it was full).
    pub fn send_all(&mut self, bytes: &[u8], sockets: &[BorrowedFd<'_>]) -> Vec<io::Result<usize>> {
        let mut outcomes: Vec<io::Result<usize>> = Vec::with_capacity(sockets.len());
        // One send's length is a u32 in the ring's entries; a longer buffer could only be
        // sent in part anyway, which the caller handles like any short send.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        for round in sockets.chunks(RING_ENTRIES as usize) {
            let first = outcomes.len();
            outcomes.extend(round.iter().map(|_| Err(io::ErrorKind::Interrupted.into())));
            let mut queued = 0;
            {
                let mut queue = self.ring.submission();
                for (index, socket) in round.iter().enumerate() {
                    let send =
                        opcode::Send::new(types::Fd(socket.as_raw_fd()), bytes.as_ptr(), len)
                            .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                            .build()
                            .user_data((first + index) as u64);
                    // SAFETY: the entry points at `bytes` and at `socket`, both borrowed for
                    // this whole call, and `reap` below does not return until the kernel has
                    // completed every entry queued here, so neither is used after the borrow.
                    #[allow(unsafe_code)]
                    let pushed = unsafe { queue.push(&send) };
                    match pushed {
                        Ok(()) => queued += 1,
                        // Cannot happen: a round is at most the ring's size, and each round
                        // is reaped before the next.
                        Err(_) => outcomes[first + index] = Err(io::ErrorKind::OutOfMemory.into()),
                    }
                }
            }
            self.reap(queued, &mut outcomes);
        }
        outcomes
    }

    /// Submits what is queued and waits for `queued` completions, writing each into its
    /// place in `outcomes`.
    fn reap(&mut self, queued: usize, outcomes: &mut [io::Result<usize>]) {
        let mut done = 0;
        while done < queued {
            if let Err(error) = self.ring.submit_and_wait(queued - done) {
                match error.kind() {
                    // A signal, or the kernel short of memory for a moment: wait again.
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => {}
                    _ if error.raw_os_error() == Some(libc::EBUSY) => {}
                    // The ring itself is broken (it cannot be, once set up). The kernel may
                    // still hold pointers into memory this call borrowed, so returning would
                    // be unsound: stop the process instead.
                    _ => {
                        eprintln!("batch-send: io_uring_enter failed: {error}; aborting");
                        std::process::abort();
                    }
                }
            }
            for completion in self.ring.completion() {
                done += 1;
                let result = completion.result();
                let outcome = if result >= 0 {
                    Ok(result as usize)
                } else {
                    Err(io::Error::from_raw_os_error(-result))
                };
                if let Some(slot) = usize::try_from(completion.user_data())
                    .ok()
                    .and_then(|index| outcomes.get_mut(index))
                {
                    *slot = outcome;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    /// Each socket receives the buffer whole, and a full socket reports `WouldBlock` instead
    /// of holding up the others.
    #[test]
    fn every_socket_gets_the_bytes_and_a_full_one_is_reported() {
        let Ok(mut batch) = SendBatch::new() else {
            eprintln!("io_uring is not available here: nothing to test");
            return;
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // More sockets than a round holds, so the rounds are exercised too.
        let count = RING_ENTRIES as usize + 3;
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..count {
            clients.push(TcpStream::connect(address).unwrap());
            let (server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            servers.push(server);
        }
        let fds: Vec<BorrowedFd<'_>> = servers.iter().map(|s| s.as_fd()).collect();
        let outcomes = batch.send_all(b"hello", &fds);
        assert_eq!(outcomes.len(), count);
        assert!(outcomes.iter().all(|o| matches!(o, Ok(5))), "{outcomes:?}");
        for client in &mut clients {
            let mut got = [0; 5];
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
        }

        // Fill the first socket (its peer never reads), then send to it and to the second.
        let big = vec![0u8; 1 << 20];
        let full = [servers[0].as_fd()];
        while batch.send_all(&big, &full)[0].is_ok() {}
        let outcomes = batch.send_all(b"next", &[servers[0].as_fd(), servers[1].as_fd()]);
        assert_eq!(
            outcomes[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(matches!(outcomes[1], Ok(4)), "{outcomes:?}");
    }

    /// A socket whose peer has gone reports its error (and, with `MSG_NOSIGNAL`, raises no SIGPIPE).
    #[test]
    fn a_closed_peer_is_reported_as_an_error() {
        let Ok(mut batch) = SendBatch::new() else {
            eprintln!("io_uring is not available here: nothing to test");
            return;
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(client);
        // The first send after the peer closed draws its reset; the next ones fail.
        let mut failed = false;
        for _ in 0..100 {
            if batch.send_all(b"x", &[server.as_fd()])[0].is_err() {
                failed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(failed);
    }
}
