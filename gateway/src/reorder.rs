//! Putting each room's messages back in seq order before they fan out.
//!
//! Messages carry their seq, the room's gapless count. Posts committed one after the other are
//! announced by the requests that made them, concurrently, and by several api-server replicas
//! in the scale-out shape, so the bus may deliver seq 8 a moment before seq 7. Handed on as
//! they came, every connection in the room would see a gap and read the database to fill it
//! (a hundred reads for a room of a hundred). Instead the hub holds what arrives ahead of a
//! missing message for up to [`REORDER_WAIT`]; the missing one nearly always turns up within
//! it. If it does not (its announcement failed), what was held goes out anyway and the
//! connections fill the gap from the database, as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::bus::BusEvent;
use tokio::time::Instant;

use crate::hub::Outgoing;

/// How long a room's feed waits for a missing message before sending on what came after it.
pub const REORDER_WAIT: Duration = Duration::from_millis(100);

/// One room's position in its message stream, and what waits behind a missing message.
#[derive(Default)]
pub struct RoomOrder {
    /// The seq of the newest message sent on; `None` until the first.
    last_seq: Option<i64>,
    /// Messages that arrived ahead of a missing one, by seq.
    held: BTreeMap<i64, Arc<Outgoing>>,
    /// Other events of the room that arrived while messages were held (an edit or a delete
    /// may concern a held message), in arrival order.
    behind: Vec<Arc<Outgoing>>,
    /// When holding began: the wait ends [`REORDER_WAIT`] later.
    since: Option<Instant>,
}

impl RoomOrder {
    /// Takes the room's next event and passes on, in order, every event that may go out now.
    pub fn accept(
        &mut self,
        event: Arc<Outgoing>,
        now: Instant,
        mut emit: impl FnMut(Arc<Outgoing>),
    ) {
        let seq = match &event.event {
            BusEvent::Message { seq, .. } if *seq > 0 => *seq,
            // Re-announced from the outbox (no seq: connections consult the database anyway),
            // or a typing notice (about no message): never held.
            BusEvent::Message { .. } | BusEvent::Typing { .. } => return emit(event),
            // A seat or the room gone: at once, ahead of what is held. Behind them, a message
            // posted after the removal would still reach the removed member's sockets; what is
            // held may instead miss them, which a member leaving may.
            BusEvent::MemberLeft { .. } | BusEvent::RoomDeleted { .. } => return emit(event),
            _ if self.held.is_empty() => return emit(event),
            _ => {
                self.behind.push(event);
                return;
            }
        };
        match self.last_seq {
            // The first message seen, or one the room has gone past (late, or a repeat):
            // connections place it themselves.
            None => {
                self.last_seq = Some(seq);
                emit(event);
            }
            Some(last) if seq <= last => emit(event),
            Some(last) if seq == last + 1 => {
                self.last_seq = Some(seq);
                emit(event);
                self.release_ready(&mut emit);
            }
            Some(_) => {
                self.held.insert(seq, event);
                self.since.get_or_insert(now);
            }
        }
    }

    /// Where the room stood when a connection read it from the database after following it:
    /// the position to wait from, unless messages have come through here already.
    pub fn start_at(&mut self, seq: i64) {
        self.last_seq.get_or_insert(seq);
    }

    /// When the wait for a missing message ends, if any message is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + REORDER_WAIT)
    }

    /// Sends on everything held, gaps and all (the wait is over, or the bus lost events and
    /// connections resynchronise anyway).
    pub fn release_all(&mut self, mut emit: impl FnMut(Arc<Outgoing>)) {
        let held = std::mem::take(&mut self.held);
        for (seq, event) in held {
            self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
            emit(event);
        }
        self.since = None;
        self.behind.drain(..).for_each(emit);
    }

    /// Sends on the held messages that now follow without a gap, and once nothing is held,
    /// the events that waited behind them.
    fn release_ready(&mut self, emit: &mut impl FnMut(Arc<Outgoing>)) {
        while let Some(entry) = self.held.first_entry() {
            if Some(*entry.key()) != self.last_seq.map(|last| last + 1) {
                return;
            }
            self.last_seq = Some(*entry.key());
            emit(entry.remove());
        }
        self.since = None;
        self.behind.drain(..).for_each(emit);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::extract::ws::Utf8Bytes;
    use chatboard_core::model::Message;

    fn message(seq: i64) -> Arc<Outgoing> {
        let message = Message {
            id: 100 + seq,
            room: 1,
            org: 1,
            sender: Some(1),
            body: "x".into(),
            file: None,
            client_msg_id: None,
            is_deleted: false,
            created_at: chrono::Utc::now(),
            edited_at: None,
            seq,
            ..Message::default()
        };
        event(BusEvent::new_message(message))
    }

    fn event(event: BusEvent) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            event,
            text: Utf8Bytes::from_static(""),
            frame: None,
        })
    }

    fn label(out: &Outgoing) -> String {
        match &out.event {
            BusEvent::Message { seq, .. } => format!("m{seq}"),
            BusEvent::MessageDeleted { id, .. } => format!("del{id}"),
            BusEvent::MemberLeft { user_id, .. } => format!("left{user_id}"),
            BusEvent::RoomDeleted { .. } => "gone".into(),
            _ => "other".into(),
        }
    }

    fn feed(order: &mut RoomOrder, events: Vec<Arc<Outgoing>>) -> Vec<String> {
        let mut out = Vec::new();
        let now = Instant::now();
        for e in events {
            order.accept(e, now, |o| out.push(label(&o)));
        }
        out
    }

    #[test]
    fn a_message_ahead_of_a_missing_one_waits_for_it() {
        let mut order = RoomOrder::default();
        let out = feed(&mut order, vec![message(1), message(3), message(4)]);
        assert_eq!(out, ["m1"]);
        assert!(order.deadline().is_some());
        let deleted = event(BusEvent::MessageDeleted { id: 103, room: 1 });
        let out = feed(&mut order, vec![deleted, message(2)]);
        assert_eq!(out, ["m2", "m3", "m4", "del103"]);
        assert_eq!(order.deadline(), None);
    }

    /// A member removed while messages wait: the removal goes out at once, so nothing
    /// released after it (here seq 4, posted after the removal) reaches their sockets.
    #[test]
    fn a_lost_seat_or_room_does_not_wait_behind_held_messages() {
        let mut order = RoomOrder::default();
        let left = event(BusEvent::MemberLeft {
            room: 1,
            user_id: 9,
            room_members: None,
        });
        let gone = event(BusEvent::RoomDeleted { room: 1 });
        let out = feed(&mut order, vec![message(1), message(3), left, message(4)]);
        assert_eq!(out, ["m1", "left9"]);
        let out = feed(&mut order, vec![gone, message(2)]);
        assert_eq!(out, ["gone", "m2", "m3", "m4"]);
    }

    #[test]
    fn when_the_wait_is_over_what_was_held_goes_out_in_order() {
        let mut order = RoomOrder::default();
        feed(&mut order, vec![message(1), message(4), message(3)]);
        let mut out = Vec::new();
        order.release_all(|o| out.push(label(&o)));
        assert_eq!(out, ["m3", "m4"]);
        // The late one goes out as it comes; the feed carries on from 4.
        assert_eq!(feed(&mut order, vec![message(2), message(5)]), ["m2", "m5"]);
    }
}
