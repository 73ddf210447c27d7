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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chatboard_core::model::Message;
use chatboard_core::shared_stream::{SharedStream, TrySend};
use chrono::Utc;
use prometheus::{Histogram, IntCounter};

use crate::session::Position;

/// One connection's positions and direct-write state.
pub(crate) struct Outlet {
    /// The socket, when the server shares it (always under the gateway's own HTTP server).
    stream: Option<Arc<SharedStream>>,
    state: Mutex<OutletState>,
    deliveries: IntCounter,
    frames_out: IntCounter,
    fanout_seconds: Histogram,
}

/// What the outlet's lock guards.
pub(crate) struct OutletState {
    /// Whether the hub may write to the socket now: the session is parked with nothing queued.
    open: bool,
    /// Where the connection stands in each room it follows.
    pub(crate) positions: HashMap<i64, Position>,
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
        frames_out: IntCounter,
        fanout_seconds: Histogram,
    ) -> Self {
        Self {
            stream,
            state: Mutex::new(OutletState {
                open: false,
                positions: HashMap::new(),
            }),
            deliveries,
            frames_out,
            fanout_seconds,
        }
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
        let Some(stream) = &self.stream else {
            return Direct::Declined;
        };
        if seq <= 0 {
            // Announced again from the outbox, which keeps no seqs: the session reads the
            // room's place from the database.
            return Direct::Declined;
        }
        let mut state = self.state();
        if !state.open {
            return Direct::Declined;
        }
        let state = &mut *state;
        let Some(at) = state.positions.get_mut(&message.room) else {
            return Direct::Declined;
        };
        if message.id <= at.last_id || at.last_seq.is_some_and(|last| seq <= last) {
            return Direct::Delivered; // already delivered
        }
        if at.last_seq != Some(seq - 1) {
            // Something before it has not reached this connection: the session fills the gap.
            state.open = false;
            return Direct::Declined;
        }
        let outcome = match stream.try_send(frame) {
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
        *at = Position {
            last_id: message.id,
            last_seq: Some(seq),
        };
        self.frames_out.inc();
        self.count_delivery(Some(latency));
        outcome
    }

    /// Counts a message delivered to this connection, with the seconds since it was posted
    /// when it came live (replayed messages have no fan-out latency).
    pub(crate) fn count_delivery(&self, latency: Option<f64>) {
        self.deliveries.inc();
        if let Some(latency) = latency {
            self.fanout_seconds.observe(latency);
        }
    }
}

/// Seconds from a message's posting to now: its fan-out latency, as delivered now.
pub(crate) fn fanout_latency(message: &Message) -> f64 {
    (Utc::now() - message.created_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64()
}

/// The WebSocket text frame of `text` as a server sends it (final, unmasked).
pub(crate) fn text_frame(text: &str) -> Vec<u8> {
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
