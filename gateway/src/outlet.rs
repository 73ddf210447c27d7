//! A connection's outlet: where it stands in each of its rooms, and whether the hub may write
//! the rooms' next messages straight into its socket.
//!
//! Waking a connection's task for every message it receives cost more than the write itself.
//! So while a connection is idle (nothing queued, nothing being written, every room caught
//! up), the hub writes each new message's frame (encoded once, the same bytes for every
//! socket) directly, and moves the connection's position. Anything else goes through the
//! connection's queue as before: a message that is not the next one of its room (the session
//! fills the gap from the database), anything while the session is awake, and every other
//! event. The socket's writes are whole (`SharedStream`), so the hub's frames and the
//! session's never interleave.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use chatboard_core::model::Message;
use chatboard_core::shared_stream::{SharedStream, TrySend, Unclaimed, WriteClaim};
use chrono::Utc;
use prometheus::{Histogram, IntCounter};

use crate::positions::Positions;
use crate::session::Position;

/// One connection's positions and direct-write state.
pub(crate) struct Outlet {
    /// The socket, when the server shares it (always under the gateway's own HTTP server).
    stream: Option<Arc<SharedStream>>,
    state: Mutex<OutletState>,
    deliveries: IntCounter,
    queued_deliveries: IntCounter,
    frames_out: IntCounter,
    fanout_seconds: Histogram,
}

/// What the outlet's lock guards.
pub(crate) struct OutletState {
    /// Whether the hub may write to the socket now: the session is parked with nothing queued.
    open: bool,
    /// Where the connection stands in each room it follows.
    pub(crate) positions: Positions,
}

/// What became of a message offered to the outlet.
pub(crate) enum Direct {
    /// Written (or already delivered): nothing more to do.
    Delivered,
    /// Written in part: the session must flush the rest.
    Flush,
    /// Not written: queue it for the session.
    Declined,
}

impl Outlet {
    /// An outlet writing to `stream` (if any), counting in the gateway's metrics.
    pub(crate) fn new(
        stream: Option<Arc<SharedStream>>,
        deliveries: IntCounter,
        queued_deliveries: IntCounter,
        frames_out: IntCounter,
        fanout_seconds: Histogram,
    ) -> Self {
        Self {
            stream,
            state: Mutex::new(OutletState {
                open: false,
                positions: Positions::default(),
            }),
            deliveries,
            queued_deliveries,
            frames_out,
            fanout_seconds,
        }
    }

    /// The connection's stream, when the server shares it.
    pub(crate) fn stream(&self) -> Option<&SharedStream> {
        self.stream.as_deref()
    }

    /// The positions (and the direct-write state), locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, OutletState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets the hub write directly if `idle` holds (checked under the lock, so nothing can be
    /// queued in between).
    pub(crate) fn open_if(&self, idle: impl FnOnce() -> bool) {
        if self.stream.is_some() {
            let mut state = self.state();
            state.open = idle();
        }
    }

    /// Stops direct writes: the session is about to deliver or write itself. Once this
    /// returns no direct write is under way.
    pub(crate) fn close(&self) {
        self.state().open = false;
    }

    /// Runs `queue` with direct writes stopped: whatever it queues is handled by the session,
    /// before any later message (which then queues too, until the session is idle again).
    pub(crate) fn queue<T>(&self, queue: impl FnOnce() -> T) -> T {
        let mut state = self.state();
        state.open = false;
        queue()
    }

    /// Writes `frame` (the WebSocket frame of `message`, seq `seq`, `latency` seconds after it
    /// was posted) if the hub may and it is the room's next message for this connection.
    pub(crate) fn deliver(
        &self,
        message: &Message,
        seq: i64,
        frame: &[u8],
        latency: f64,
    ) -> Direct {
        match self.claim(message, seq, Wait::Yes) {
            Claim::Write(write) => {
                let written = write.claim.write(frame);
                let direct = write.sent(frame, written);
                if !matches!(direct, Direct::Declined) {
                    self.count_direct(1, latency);
                }
                direct
            }
            Claim::Settled(direct) => direct,
            Claim::Busy => Direct::Declined, // only when not waiting
        }
    }

    /// Like [`Outlet::deliver`], but leaves the write to the caller (with the sockets of other
    /// connections, in one system call), and answers `Busy` instead of waiting for a
    /// connection another thread is writing to.
    pub(crate) fn try_claim(&self, message: &Message, seq: i64) -> Claim<'_> {
        self.claim(message, seq, Wait::No)
    }

    fn claim(&self, message: &Message, seq: i64, wait: Wait) -> Claim<'_> {
        let Some(stream) = &self.stream else {
            return Claim::Settled(Direct::Declined);
        };
        if seq <= 0 {
            // Announced again from the outbox, which keeps no seqs: the session reads the
            // room's place from the database.
            return Claim::Settled(Direct::Declined);
        }
        let mut state = match wait {
            Wait::Yes => self.state(),
            Wait::No => match self.state.try_lock() {
                Ok(state) => state,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return Claim::Busy,
            },
        };
        if !state.open {
            return Claim::Settled(Direct::Declined);
        }
        let Some(at) = state.positions.get(message.room) else {
            return Claim::Settled(Direct::Declined);
        };
        if message.id <= at.last_id || at.last_seq.is_some_and(|last| seq <= last) {
            return Claim::Settled(Direct::Delivered); // already delivered
        }
        if at.last_seq != Some(seq - 1) {
            // Something before it has not reached this connection: the session fills the gap.
            state.open = false;
            return Claim::Settled(Direct::Declined);
        }
        let claim = match wait {
            Wait::Yes => stream.claim(),
            Wait::No => match stream.try_claim() {
                Ok(claim) => Some(claim),
                Err(Unclaimed::Busy) => return Claim::Busy,
                Err(Unclaimed::Waiting) => None,
            },
        };
        let Some(claim) = claim else {
            // Bytes are waiting to go out: the session writes them first.
            state.open = false;
            return Claim::Settled(Direct::Declined);
        };
        Claim::Write(DirectWrite {
            state,
            claim,
            room: message.room,
            at: Position {
                last_id: message.id,
                last_seq: Some(seq),
            },
        })
    }

    /// Counts `n` frames the hub wrote straight into sockets, each `latency` seconds after its
    /// message was posted. Every outlet of a gateway counts into the same metrics, so a room's
    /// batch of writes (io_uring) counts once for all the sockets it wrote to: shared counters
    /// touched for every socket cost more than the rest of the hub's own work on it.
    pub(crate) fn count_direct(&self, n: u64, latency: f64) {
        match n {
            0 => {}
            1 => {
                self.frames_out.inc();
                self.deliveries.inc();
                self.fanout_seconds.observe(latency);
            }
            _ => {
                self.frames_out.inc_by(n);
                self.deliveries.inc_by(n);
                // One update of the shared histogram for all `n`, not one each.
                let local = self.fanout_seconds.local();
                for _ in 0..n {
                    local.observe(latency);
                }
                local.flush();
            }
        }
    }

    /// Counts a message the connection's own task delivered, with the seconds since it was
    /// posted when it came live (replayed messages have no fan-out latency).
    pub(crate) fn count_delivery(&self, latency: Option<f64>) {
        self.deliveries.inc();
        if let Some(latency) = latency {
            self.queued_deliveries.inc();
            self.fanout_seconds.observe(latency);
        }
    }
}

/// Whether to wait for a connection another thread is busy with.
#[derive(Clone, Copy)]
enum Wait {
    Yes,
    No,
}

/// What [`Outlet::try_claim`] allows.
pub(crate) enum Claim<'a> {
    /// Write the frame to the socket now, then report with [`DirectWrite::sent`].
    Write(DirectWrite<'a>),
    /// Nothing to write: settled as this.
    Settled(Direct),
    /// Another thread holds the connection: deliver it later, waiting.
    Busy,
}

/// A direct write under way: the connection's state stays locked (the session cannot start
/// writing) until it is finished.
pub(crate) struct DirectWrite<'a> {
    state: MutexGuard<'a, OutletState>,
    claim: WriteClaim<'a>,
    room: i64,
    /// The connection's position in the room once the frame is out.
    at: Position,
}

impl DirectWrite<'_> {
    /// The socket to write the frame to.
    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.claim.socket()
    }

    /// Records what writing `frame` did (`written`: the bytes the socket took, or its error);
    /// the caller counts it ([`Outlet::count_direct`]) unless it was declined.
    pub(crate) fn sent(self, frame: &[u8], written: io::Result<usize>) -> Direct {
        let Self {
            mut state,
            claim,
            room,
            at,
        } = self;
        let outcome = match claim.sent(frame, written) {
            TrySend::Sent => Direct::Delivered,
            TrySend::Partly => {
                state.open = false;
                Direct::Flush
            }
            TrySend::Refused => {
                state.open = false;
                return Direct::Declined;
            }
        };
        if let Some(position) = state.positions.get_mut(room) {
            *position = at;
        }
        outcome
    }
}

/// Seconds from a message's posting to now: its fan-out latency, as delivered now.
pub(crate) fn fanout_latency(message: &Message) -> f64 {
    (Utc::now() - message.created_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64()
}
