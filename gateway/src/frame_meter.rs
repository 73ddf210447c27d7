//! Counts the WebSocket frames a client sends, as their bytes are read from the socket.
//!
//! The session's frame allowance sees what the WebSocket library hands it: whole messages,
//! pings and pongs. The fragments of a message are not among them: the library joins them,
//! and an empty continuation frame adds nothing to the message's size, so a client sending
//! them without end kept its connection busy, unlimited and never closed. The meter reads the
//! frame headers as the bytes go by and fails the read once a client sends frames faster than
//! [`FRAMES_PER_SECOND`] (with a burst of [`FRAME_BURST`]); the session then closes with 4008.
//!
//! The meter starts with the session, before anything has read from the socket after the
//! upgrade (refusals before it read only their closing handshake, uncounted). Bytes a client
//! sent before the handshake's answer (RFC 6455 forbids it) were read with the request and
//! never pass it, and can leave it out of step; hyper keeps them inside the upgraded stream,
//! out of reach. Out of step, it counts made-up headers; one claiming more than
//! [`MAX_FRAME_BYTES`] (which the library would refuse) is skipped by that much at most, so
//! such a client is still held to one frame per 64 KiB it sends.

use std::io;
use std::time::Instant;

use chatboard_core::shared_stream::ReadWatch;

use crate::MAX_FRAME_BYTES;

/// Frames a second a client may send, fragments and control frames included: five times the
/// session's message allowance, so only fragmenting without need comes near it.
pub const FRAMES_PER_SECOND: f64 = 100.0;
/// Frames a client may send at once: above the 600 frames the session credits a client for
/// the 30 s it may have left them unread, so a client that kept to its allowance never meets it.
pub const FRAME_BURST: f64 = 1_000.0;

/// Longest header: 2 bytes, an 8-byte length and a 4-byte mask.
const HEADER_MAX: usize = 14;

/// A client sent frames too fast: the read that brought the frame fails with this inside.
#[derive(Debug, thiserror::Error)]
#[error("more than {FRAMES_PER_SECOND} WebSocket frames a second")]
pub struct FrameFlood;

/// Whether an error is (or wraps) a [`FrameFlood`].
pub fn is_flood(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<FrameFlood>())
}

/// Where the meter stands in the byte stream.
#[derive(Debug)]
pub struct FrameMeter {
    /// The header being read.
    header: [u8; HEADER_MAX],
    /// How much of it has arrived.
    have: usize,
    /// Payload bytes still to pass before the next header.
    skip: u64,
    /// Frames that may still be sent at once.
    tokens: f64,
    /// When `tokens` was last topped up.
    topped_up: Instant,
}

impl FrameMeter {
    /// A meter at the start of the client's first frame, with a full burst.
    pub fn new() -> Self {
        Self {
            header: [0; HEADER_MAX],
            have: 0,
            skip: 0,
            tokens: FRAME_BURST,
            topped_up: Instant::now(),
        }
    }

    /// The header's length once its first two bytes are in.
    fn header_len(&self) -> usize {
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    /// The payload length the complete header gives.
    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(bytes)
            }
            short => u64::from(short),
        }
    }

    /// Takes one frame from the allowance.
    fn count_frame(&mut self, now: Instant) -> io::Result<()> {
        let elapsed = now.saturating_duration_since(self.topped_up).as_secs_f64();
        self.tokens = (self.tokens + elapsed * FRAMES_PER_SECOND).min(FRAME_BURST);
        self.topped_up = now;
        if self.tokens < 1.0 {
            return Err(io::Error::other(FrameFlood));
        }
        self.tokens -= 1.0;
        Ok(())
    }

    fn arrived_at(&mut self, mut bytes: &[u8], now: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let passed = usize::try_from(self.skip).map_or(bytes.len(), |s| s.min(bytes.len()));
                self.skip -= passed as u64;
                bytes = &bytes[passed..];
                continue;
            }
            let want = if self.have < 2 { 2 } else { self.header_len() };
            let take = (want - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have >= 2 && self.have == self.header_len() {
                self.skip = self.payload_len().min(MAX_FRAME_BYTES as u64);
                self.have = 0;
                self.count_frame(now)?;
            }
        }
        Ok(())
    }
}

impl Default for FrameMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadWatch for FrameMeter {
    fn arrived(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.arrived_at(bytes, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use std::time::Duration;

    use super::*;

    /// A masked client frame with `payload_len` bytes of payload.
    fn frame(opcode: u8, fin: bool, payload_len: usize) -> Vec<u8> {
        let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload_len {
            0..=125 => bytes.push(0x80 | payload_len as u8),
            126..=0xffff => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(payload_len as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(payload_len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend(std::iter::repeat_n(b'x', payload_len));
        bytes
    }

    /// Frames of every header size, split across reads at every byte, are each counted once.
    #[test]
    fn frames_are_counted_however_the_reads_split_them() {
        let mut stream = Vec::new();
        for len in [0, 5, 125, 126, 300, 0xffff, 0x10000] {
            stream.extend(frame(1, true, len));
        }
        for chunk in [1, 2, 3, 7, 512, stream.len()] {
            let mut meter = FrameMeter::new();
            let now = Instant::now();
            for part in stream.chunks(chunk) {
                meter.arrived_at(part, now).unwrap();
            }
            assert_eq!(FRAME_BURST - meter.tokens, 7.0, "chunks of {chunk}");
            assert_eq!((meter.have, meter.skip), (0, 0));
        }
    }

    /// Empty continuation frames, which add nothing to a message, run out the burst; the
    /// allowance comes back with time.
    #[test]
    fn a_flood_of_empty_fragments_is_refused_and_time_restores_the_allowance() {
        let mut meter = FrameMeter::new();
        let start = Instant::now();
        meter.arrived_at(&frame(1, false, 3), start).unwrap();
        let empty = frame(0, false, 0);
        for _ in 1..FRAME_BURST as usize {
            meter.arrived_at(&empty, start).unwrap();
        }
        let refused = meter.arrived_at(&empty, start).unwrap_err();
        assert!(is_flood(&refused));
        let later = start + Duration::from_millis(100);
        for _ in 0..10 {
            meter.arrived_at(&empty, later).unwrap();
        }
        assert!(meter.arrived_at(&empty, later).is_err());
    }

    /// A header claiming an enormous payload (a client out of step, or lying) is skipped by
    /// the largest frame at most: what follows is still counted.
    #[test]
    fn a_lying_length_cannot_hide_what_follows() {
        let mut meter = FrameMeter::new();
        let now = Instant::now();
        let mut lie = vec![0x81, 0x80 | 127];
        lie.extend_from_slice(&u64::MAX.to_be_bytes());
        lie.extend_from_slice(&[1, 2, 3, 4]);
        meter.arrived_at(&lie, now).unwrap();
        meter.arrived_at(&vec![0; MAX_FRAME_BYTES], now).unwrap();
        meter.arrived_at(&frame(9, true, 0), now).unwrap();
        assert_eq!(FRAME_BURST - meter.tokens, 2.0);
    }
}
