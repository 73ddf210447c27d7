//! One shard's rooms: who follows each room here, and its messages' order on their way to them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use batch_send::SendBatch;
use chatboard_core::bus::BusEvent;
use chatboard_core::model::{Message, SMALL_ROOM_MEMBERS};
use tokio::time::Instant;

use super::{Live, Outgoing};
use crate::outlet::{fanout_latency, Claim, Direct, Outlet};
use crate::reorder::RoomOrder;

/// [`Follower::flags`]: the hub found the connection's queue full; it must close.
pub(super) const TOO_SLOW: u8 = 1;
/// [`Follower::flags`]: a `Resync` is queued and not yet begun; another would repeat it.
pub(super) const RESYNC_DUE: u8 = 2;
/// [`Follower::flags`]: a `PresenceResync` is queued and not yet begun.
pub(super) const PRESENCE_RESYNC_DUE: u8 = 4;

/// One connection's entry in a room.
pub(super) struct Follower {
    pub(super) id: u64,
    pub(super) user_id: i64,
    /// Follows every room of its user (the multiplexed endpoint), not one.
    pub(super) by_user: bool,
    pub(super) sender: flume::Sender<Live>,
    /// [`TOO_SLOW`], [`RESYNC_DUE`] and [`PRESENCE_RESYNC_DUE`], shared by the connection's
    /// copies in every room.
    pub(super) flags: Arc<AtomicU8>,
    pub(super) outlet: Arc<Outlet>,
}

impl Follower {
    /// Queues `live` (stopping direct writes until the session has handled it); false (and
    /// the connection marked too slow) when its queue is full.
    pub(super) fn offer(&self, live: Live) -> bool {
        self.outlet.queue(|| match self.sender.try_send(live) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                self.flags.fetch_or(TOO_SLOW, Ordering::Relaxed);
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        })
    }

    /// Queues a `Resync` unless one is queued already and not yet begun: a connection whose
    /// rooms lie in several shards is told by each of them, and would read the database once
    /// per shard. False when the queue is full.
    pub(super) fn offer_resync(&self) -> bool {
        if self.flags.fetch_or(RESYNC_DUE, Ordering::AcqRel) & RESYNC_DUE != 0 {
            return true;
        }
        self.offer(Live::Resync)
    }

    /// Queues a `PresenceResync` unless one is queued already and not yet begun (a room at the
    /// line of [`SMALL_ROOM_MEMBERS`] may cross it again and again). False when the queue is
    /// full.
    pub(super) fn offer_presence_resync(&self) -> bool {
        if self.flags.fetch_or(PRESENCE_RESYNC_DUE, Ordering::AcqRel) & PRESENCE_RESYNC_DUE != 0 {
            return true;
        }
        self.offer(Live::PresenceResync)
    }

    /// Hands a message to the connection: written straight into its socket when it is idle
    /// and caught up (`latency`: seconds since it was posted), queued otherwise.
    fn deliver(&self, out: &Arc<Outgoing>, latency: f64) -> bool {
        if let (Some(frame), BusEvent::Message { message, seq }) = (&out.frame, &out.event) {
            let direct = self.outlet.deliver(message, *seq, frame, latency);
            return self.settle(direct, out);
        }
        self.offer(Live::Event(out.clone()))
    }

    /// Finishes handing `out` to the connection after a direct write's attempt: queued for
    /// the session unless it was written whole.
    fn settle(&self, direct: Direct, out: &Arc<Outgoing>) -> bool {
        match direct {
            Direct::Delivered => true,
            Direct::Flush => self.offer(Live::Flush),
            Direct::Declined => self.offer(Live::Event(out.clone())),
        }
    }

    /// Another entry for the same connection (in another room's list).
    pub(super) fn copy(&self) -> Follower {
        Follower {
            id: self.id,
            user_id: self.user_id,
            by_user: self.by_user,
            sender: self.sender.clone(),
            flags: self.flags.clone(),
            outlet: self.outlet.clone(),
        }
    }

    /// The connection, kept without its socket (for a round that works through every
    /// connection over seconds: one ending meanwhile closes its socket at once).
    pub(super) fn for_later(&self) -> LaterFollower {
        LaterFollower {
            id: self.id,
            user_id: self.user_id,
            by_user: self.by_user,
            sender: self.sender.clone(),
            flags: self.flags.clone(),
            outlet: Arc::downgrade(&self.outlet),
        }
    }
}

/// A [`Follower`] that does not keep its connection's socket open.
pub(super) struct LaterFollower {
    id: u64,
    user_id: i64,
    by_user: bool,
    sender: flume::Sender<Live>,
    flags: Arc<AtomicU8>,
    outlet: Weak<Outlet>,
}

impl LaterFollower {
    /// The follower again, unless its connection has ended.
    pub(super) fn now(&self) -> Option<Follower> {
        Some(Follower {
            id: self.id,
            user_id: self.user_id,
            by_user: self.by_user,
            sender: self.sender.clone(),
            flags: self.flags.clone(),
            outlet: self.outlet.upgrade()?,
        })
    }
}

/// One room's connections, and its messages' order on their way to them.
#[derive(Default)]
pub(super) struct RoomFeed {
    pub(super) followers: Vec<Follower>,
    pub(super) order: RoomOrder,
    /// The room's number of seats, as the last announcement of a seat taken or lost here
    /// read it (none heard yet: unknown).
    pub(super) seats: Option<i64>,
    /// The hub's presence epoch when the room's followers were last told who is online anew
    /// for its crossing the line (0: never).
    pub(super) presence_resynced: u64,
}

/// The rooms of one shard that connections here follow.
#[derive(Default)]
pub(super) struct Rooms {
    pub(super) feeds: HashMap<i64, RoomFeed>,
    /// Rooms holding messages back behind a missing one (usually none).
    pub(super) holding: HashSet<i64>,
    /// Writes a message to its room's idle sockets in one system call, where io_uring is
    /// available and enabled.
    pub(super) batch: Option<SendBatch>,
}

/// Queues `out` for every follower; one whose queue is full leaves the room and closes as too
/// slow. With `batch`, a message's frame goes to every idle socket in one system call.
fn fan_out(followers: &mut Vec<Follower>, out: &Arc<Outgoing>, batch: Option<&mut SendBatch>) {
    // The clock is read once per message, not once per socket.
    let latency = match &out.event {
        BusEvent::Message { message, .. } => fanout_latency(message),
        _ => 0.0,
    };
    if let (Some(batch), Some(frame), BusEvent::Message { message, seq }) =
        (batch, &out.frame, &out.event)
    {
        if followers.len() > 1 {
            let written = write_together(followers, message, *seq, frame, latency, batch);
            let mut written = written.into_iter();
            followers.retain(|f| match written.next().flatten() {
                Some(direct) => f.settle(direct, out),
                None => f.deliver(out, latency),
            });
            return;
        }
    }
    // A receipt of a room too large for receipts goes to the reader's own connections only.
    if let BusEvent::Read {
        user_id,
        reader_only: true,
        ..
    } = &out.event
    {
        followers.retain(|f| f.user_id != *user_id || f.deliver(out, latency));
        return;
    }
    followers.retain(|f| f.deliver(out, latency));
}

/// Writes `frame` (of `message`, seq `seq`) into the sockets of every follower the hub may
/// write to directly, all in one system call, and counts those writes once for the room;
/// returns what became of each follower's copy, or `None` where it is yet to be delivered
/// (another thread held the connection).
fn write_together(
    followers: &[Follower],
    message: &Message,
    seq: i64,
    frame: &[u8],
    latency: f64,
    batch: &mut SendBatch,
) -> Vec<Option<Direct>> {
    let mut settled = Vec::with_capacity(followers.len());
    // Connections are claimed without waiting: this shard holds every claim until the batch is
    // out, and waiting for one while holding others could deadlock with another shard.
    let mut writes = Vec::with_capacity(followers.len());
    for (index, follower) in followers.iter().enumerate() {
        settled.push(match follower.outlet.try_claim(message, seq) {
            Claim::Write(write) => {
                writes.push((index, write));
                None
            }
            Claim::Settled(direct) => Some(direct),
            Claim::Busy => None,
        });
    }
    let sockets: Vec<_> = writes.iter().map(|(_, write)| write.socket()).collect();
    let outcomes = batch.send_all(frame, &sockets);
    drop(sockets);
    let mut written_to = 0;
    for ((index, write), written) in writes.into_iter().zip(outcomes) {
        let direct = write.sent(frame, written);
        if !matches!(direct, Direct::Declined) {
            written_to += 1;
        }
        settled[index] = Some(direct);
    }
    if let Some(follower) = followers.first() {
        follower.outlet.count_direct(written_to, latency);
    }
    settled
}

impl Rooms {
    /// Hands `event` to the room's feed and what the feed lets out to its followers.
    pub(super) fn send(&mut self, room_id: i64, event: Arc<Outgoing>, now: Instant) {
        let Some(RoomFeed {
            followers, order, ..
        }) = self.feeds.get_mut(&room_id)
        else {
            return; // nobody here follows the room
        };
        let batch = &mut self.batch;
        order.accept(event, now, |out| fan_out(followers, &out, batch.as_mut()));
        if order.deadline().is_some() {
            self.holding.insert(room_id);
        } else {
            self.holding.remove(&room_id);
        }
        self.forget_if_unfollowed(room_id);
    }

    /// Takes note of `room_id`'s size as an announcement read it after a seat was taken or
    /// lost; true when the room may have crossed [`SMALL_ROOM_MEMBERS`] (see
    /// [`super::Hub::resync_room_presence`]). Sizes are read after each change commits and
    /// announced in any order, so one seat's announcement may read a size past several changes
    /// and arrive after a later one's: a size at the line or one past it counts as a crossing
    /// whatever was heard before, as does a size on the other side of the line from the last
    /// one heard.
    pub(super) fn resize(&mut self, room_id: i64, seats: i64) -> bool {
        let Some(feed) = self.feeds.get_mut(&room_id) else {
            return false;
        };
        let at_the_line = seats == SMALL_ROOM_MEMBERS || seats == SMALL_ROOM_MEMBERS + 1;
        let flipped = feed
            .seats
            .is_some_and(|before| (before <= SMALL_ROOM_MEMBERS) != (seats <= SMALL_ROOM_MEMBERS));
        feed.seats = Some(seats);
        at_the_line || flipped
    }

    /// Tells `room_id`'s followers here who is online anew; stamps the feed with `epoch`.
    pub(super) fn resync_presence(&mut self, room_id: i64, epoch: u64) {
        if let Some(feed) = self.feeds.get_mut(&room_id) {
            feed.presence_resynced = epoch;
            feed.followers.retain(Follower::offer_presence_resync);
        }
        self.forget_if_unfollowed(room_id);
    }

    /// Drops the room's feed once it has no follower left (the last ones were closed for
    /// being too slow, or had gone): nobody's leaving would remove it.
    pub(super) fn forget_if_unfollowed(&mut self, room_id: i64) {
        if self
            .feeds
            .get(&room_id)
            .is_some_and(|feed| feed.followers.is_empty())
        {
            self.feeds.remove(&room_id);
            self.holding.remove(&room_id);
        }
    }

    /// Sends on what `room_id` holds, whatever is still missing.
    pub(super) fn release(&mut self, room_id: i64) {
        if let Some(RoomFeed {
            followers, order, ..
        }) = self.feeds.get_mut(&room_id)
        {
            let batch = &mut self.batch;
            order.release_all(|out| fan_out(followers, &out, batch.as_mut()));
        }
        self.holding.remove(&room_id);
        self.forget_if_unfollowed(room_id);
    }

    /// Sends on what every room whose wait is over holds.
    pub(super) fn release_overdue(&mut self, now: Instant) {
        let overdue: Vec<i64> = self
            .holding
            .iter()
            .copied()
            .filter(|room_id| {
                self.feeds
                    .get(room_id)
                    .and_then(|f| f.order.deadline())
                    .is_none_or(|deadline| deadline <= now)
            })
            .collect();
        for room_id in overdue {
            self.release(room_id);
        }
    }

    /// When the earliest wait for a missing message ends, if any room is holding.
    pub(super) fn next_release(&self) -> Option<Instant> {
        self.holding
            .iter()
            .filter_map(|room_id| self.feeds.get(room_id)?.order.deadline())
            .min()
    }

    /// Lets out everything held and tells every connection here (once) to catch up from the
    /// database: events may have been lost on the way.
    pub(super) fn resync(&mut self) {
        let holding: Vec<i64> = self.holding.iter().copied().collect();
        for room_id in holding {
            self.release(room_id);
        }
        let mut told = HashSet::new();
        for feed in self.feeds.values_mut() {
            feed.followers
                .retain(|f| !told.insert(f.id) || f.offer_resync());
        }
        self.feeds.retain(|_, feed| !feed.followers.is_empty());
        let feeds = &self.feeds;
        self.holding.retain(|room_id| feeds.contains_key(room_id));
    }
}
