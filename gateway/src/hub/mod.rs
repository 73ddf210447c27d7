//! The hub: this process's one subscription to the bus, fanned out to the connections that
//! follow each room, and presence changes fanned out to the connections that share a room
//! with the user who came or went.
//!
//! The rooms are split into shards (by room id), each dispatched by a thread of its own (see
//! `stream.rs`). One task reading the bus hands each event to its room's shard. A message's fan-out is mostly
//! `send` system calls, one per socket; with a single dispatching task those ran on one core
//! at a time and every room queued behind the room being written, whereas shards let rooms
//! fan out on every core, as a broadcaster that writes from the task that read the message
//! does. A room stays in one shard, so its events keep their order.

mod presence;
mod rooms;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use batch_send::SendBatch;
use chatboard_core::bus::{Bus, BusEvent, Delivery};
use chatboard_core::presence::{Presence, PresenceChange};
use chatboard_core::shared_stream::text_frame;
use chatboard_store::Store;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::outlet::Outlet;
use crate::StartError;
use rooms::{Follower, Rooms, PRESENCE_RESYNC_DUE, RESYNC_DUE, TOO_SLOW};
use stream::{dispatch_shard, listen};

/// An event with its frame, encoded once for every connection that gets it.
#[derive(Debug)]
pub struct Outgoing {
    /// The event.
    pub event: BusEvent,
    /// Its JSON text frame.
    pub text: Utf8Bytes,
    /// A message's whole WebSocket frame, for the hub's direct writes (see `outlet`).
    pub frame: Option<Vec<u8>>,
}

/// What a connection receives from the hub.
#[derive(Debug, Clone)]
pub enum Live {
    /// An event of one of its rooms.
    Event(Arc<Outgoing>),
    /// Someone sharing one of its rooms came or went.
    Presence(PresenceChange),
    /// Its user was given a seat in `room` (multiplexed connections follow it from `after`).
    Seated {
        /// Room id.
        room: i64,
        /// Deliver messages after this id.
        after: i64,
        /// Its seq, when the announcement carried it.
        after_seq: Option<i64>,
    },
    /// Events may have been lost on the way: catch up from the database.
    Resync,
    /// Presence changes may have been lost on the way: tell who is online now.
    PresenceResync,
    /// The hub wrote part of a frame: write out the rest.
    Flush,
}

/// Events a connection may have waiting before it counts as too slow.
pub const QUEUE: usize = 1024;

/// Departures waiting to be told as presence (see `presence::tell_departures`).
const DEPARTURES_QUEUE: usize = 4096;

/// Deliveries a shard may have waiting before the bus reader waits for it (and the bus,
/// if it fills, tells the hub it missed some).
const SHARD_QUEUE: usize = 1024;

/// Shards per core: more than one, so that a room's fan-out seldom waits behind another
/// room of its own shard while a core is free.
const SHARDS_PER_CORE: usize = 4;

/// Connections by room, and multiplexed connections by user.
pub struct Hub {
    /// The rooms, by `room_id` modulo their number.
    shards: Vec<Mutex<Rooms>>,
    /// Who is online: a new room-mate's followers are told when someone online gets a seat.
    presence: Arc<dyn Presence>,
    users: Mutex<HashMap<i64, Vec<Follower>>>,
    next_id: AtomicU64,
    /// Asks for every connection to be told the whole presence state again; asking while a
    /// telling runs brings one more after it, never two at once (see `presence::resync`).
    presence_resync: Arc<Notify>,
    /// Counts the rooms whose followers were told who is online anew for crossing the line of
    /// a room that carries presence. A change looked up before a crossing and dispatched after
    /// it skips that room: its followers' new state was read after the change.
    presence_epoch: AtomicU64,
    /// Dropped with the hub, which ends its tasks (`listen`, `dispatch_presence`) even while
    /// the runtime and the bus live on; the shard threads end when `listen` drops their
    /// inboxes.
    _alive: watch::Sender<()>,
}

/// A connection's place in the hub: it leaves every room when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    /// Registered by user too (multiplexed): told about new seats.
    by_user: bool,
    rooms: Vec<i64>,
    /// The rooms' events, in bus order per room.
    pub events: flume::Receiver<Live>,
    /// The connection's entry, copied into each room it follows. Its queue's sender keeps the
    /// queue open while the connection follows no room at all (a user without rooms, or one
    /// who lost every seat): the connection lives on for presence and pings.
    me: Follower,
}

impl Subscription {
    /// Whether the hub found the queue full: the connection must close as too slow.
    pub fn too_slow(&self) -> bool {
        self.me.flags.load(Ordering::Relaxed) & TOO_SLOW != 0
    }

    /// The connection begins the `Resync` it was handed: a loss reported from now on needs
    /// another.
    pub fn resync_begins(&self) {
        self.me.flags.fetch_and(!RESYNC_DUE, Ordering::AcqRel);
    }

    /// The connection begins the `PresenceResync` it was handed: a crossing from now on needs
    /// another.
    pub fn presence_resync_begins(&self) {
        self.me
            .flags
            .fetch_and(!PRESENCE_RESYNC_DUE, Ordering::AcqRel);
    }

    /// Stops following one room (the user lost the seat).
    pub fn leave(&mut self, room_id: i64) {
        self.rooms.retain(|r| *r != room_id);
        self.hub.remove(self.me.id, room_id);
    }

    /// Records a room the hub added this connection to (the user got a seat), so that it is
    /// left again when the connection ends, and puts it back in the room's feed if it is not
    /// there: when a seat is lost and taken again before the connection hears of the loss, the
    /// hub seats it while it still follows the room, and its leaving then takes it out.
    pub fn adopt(&mut self, room_id: i64) {
        if !self.rooms.contains(&room_id) {
            self.rooms.push(room_id);
        }
        let mut rooms = self.hub.shard_of(room_id);
        let followers = &mut rooms.feeds.entry(room_id).or_default().followers;
        if !followers.iter().any(|f| f.id == self.me.id) {
            followers.push(self.me.copy());
        }
    }

    /// Tells the hub where `room_id` stood when this connection read it (after following
    /// it), so that the room's first live messages can be put in order too.
    pub fn starts_at(&self, room_id: i64, last_seq: i64) {
        if let Some(feed) = self.hub.shard_of(room_id).feeds.get_mut(&room_id) {
            feed.order.start_at(last_seq);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.by_user {
            // First out of the user's list, so that no seat adds this connection to a room
            // from now on; a seat that already did so has put its `Seated` in the queue
            // (`Hub::seat` adds only followers it told), and rooms the connection never got
            // to adopt are left with the others.
            let mut users = self
                .hub
                .users
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(list) = users.get_mut(&self.me.user_id) {
                list.retain(|f| f.id != self.me.id);
                if list.is_empty() {
                    users.remove(&self.me.user_id);
                }
            }
            drop(users);
            for live in self.events.drain() {
                if let Live::Seated { room, .. } = live {
                    if !self.rooms.contains(&room) {
                        self.rooms.push(room);
                    }
                }
            }
        }
        for room_id in &self.rooms {
            self.hub.remove(self.me.id, *room_id);
        }
    }
}

impl Hub {
    /// Subscribes to the bus and to presence changes and starts dispatching; with `io_uring`,
    /// each shard writes a message to its room's idle sockets in one system call where the
    /// kernel allows it.
    pub async fn start(
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        store: Arc<dyn Store>,
        io_uring: bool,
    ) -> Result<Arc<Self>, StartError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = cores * SHARDS_PER_CORE;
        let mut batches = send_batches(io_uring, count).into_iter();
        let (alive, gone) = watch::channel(());
        let hub = Arc::new(Hub {
            shards: (0..count)
                .map(|_| {
                    Mutex::new(Rooms {
                        batch: batches.next(),
                        ..Rooms::default()
                    })
                })
                .collect(),
            users: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            presence_resync: Arc::new(Notify::new()),
            presence_epoch: AtomicU64::new(0),
            presence: presence.clone(),
            _alive: alive,
        });
        // The first subscription must work (a gateway that cannot hear anything should not
        // start); later ones are retried for as long as it takes.
        let stream = bus.subscribe().await?;
        let mut inboxes = Vec::with_capacity(count);
        for index in 0..count {
            let (inbox, deliveries) = flume::bounded(SHARD_QUEUE);
            inboxes.push(inbox);
            let hub = Arc::downgrade(&hub);
            std::thread::Builder::new()
                .name(format!("hub-shard-{index}"))
                .spawn(move || dispatch_shard(hub, index, deliveries))
                .map_err(StartError::Threads)?;
        }
        let (departures, departed) = flume::bounded(DEPARTURES_QUEUE);
        tokio::spawn(until_dropped(
            gone.clone(),
            listen(Arc::downgrade(&hub), bus, stream, inboxes, departures),
        ));
        tokio::spawn(until_dropped(
            gone.clone(),
            presence::tell_departures(Arc::downgrade(&hub), store.clone(), departed),
        ));
        tokio::spawn(until_dropped(
            gone.clone(),
            presence::resync(Arc::downgrade(&hub), hub.presence_resync.clone()),
        ));
        let changes = presence.changes();
        tokio::spawn(until_dropped(
            gone,
            presence::dispatch_presence(Arc::downgrade(&hub), changes, store),
        ));
        Ok(hub)
    }

    /// The shard that `room_id` belongs to, locked.
    fn shard_of(&self, room_id: i64) -> MutexGuard<'_, Rooms> {
        self.shard(shard_index(room_id, self.shards.len()))
    }

    /// Shard `index`, locked.
    fn shard(&self, index: usize) -> MutexGuard<'_, Rooms> {
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows `rooms` for `user_id` from now on, with one queue for all of them. With
    /// `by_user` (the multiplexed endpoint) the connection is also told of new seats.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        user_id: i64,
        rooms: &[i64],
        by_user: bool,
        outlet: Arc<Outlet>,
    ) -> Subscription {
        // flume's bounded queue allocates nothing until events arrive (tokio's takes 1.3 KiB
        // up front), and most connections are idle.
        let (sender, events) = flume::bounded(QUEUE);
        let subscription = Subscription {
            hub: self.clone(),
            by_user,
            rooms: rooms.to_vec(),
            events,
            me: Follower {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                user_id,
                by_user,
                sender,
                flags: Arc::new(AtomicU8::new(0)),
                outlet,
            },
        };
        for room_id in rooms {
            self.shard_of(*room_id)
                .feeds
                .entry(*room_id)
                .or_default()
                .followers
                .push(subscription.me.copy());
        }
        if by_user {
            self.users
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(user_id)
                .or_default()
                .push(subscription.me.copy());
        }
        subscription
    }

    fn remove(&self, id: u64, room_id: i64) {
        let mut rooms = self.shard_of(room_id);
        if let Some(feed) = rooms.feeds.get_mut(&room_id) {
            feed.followers.retain(|f| f.id != id);
            if feed.followers.is_empty() {
                rooms.feeds.remove(&room_id);
                rooms.holding.remove(&room_id);
            }
        }
    }

    /// Whether any connection follows any room here.
    fn is_idle(&self) -> bool {
        (0..self.shards.len()).all(|index| self.shard(index).feeds.is_empty())
    }

    /// Hands one delivery to the connections of shard `index` it concerns; returns when the
    /// shard's earliest wait for a missing message ends, if any room is holding one back.
    fn dispatch(&self, index: usize, delivery: Delivery) -> Option<Instant> {
        let mut rooms = self.shard(index);
        match delivery {
            Delivery::Event(BusEvent::MemberSeated {
                room,
                user_id,
                after,
                after_seq,
                shares_presence,
                room_members,
            }) => {
                self.seat(
                    &mut rooms,
                    (room, user_id),
                    after,
                    after_seq,
                    shares_presence,
                );
                if room_members.is_some_and(|seats| rooms.resize(room, seats)) {
                    self.resync_room_presence(&mut rooms, room);
                }
            }
            Delivery::Event(event) => {
                let room_id = event.room();
                if !rooms.feeds.contains_key(&room_id) {
                    return rooms.next_release(); // nobody here follows the room
                }
                let text = match serde_json::to_string(&event) {
                    Ok(text) => Utf8Bytes::from(text),
                    Err(e) => {
                        tracing::error!(error = %e, "event encoding failed");
                        return rooms.next_release();
                    }
                };
                let frame = matches!(event, BusEvent::Message { .. }).then(|| text_frame(&text));
                let resized = match event {
                    BusEvent::MemberLeft {
                        room_members: Some(seats),
                        ..
                    } => Some(seats),
                    _ => None,
                };
                let out = Arc::new(Outgoing { event, text, frame });
                rooms.send(room_id, out, Instant::now());
                // After the loss itself, which the leaver's connections act on first.
                if resized.is_some_and(|seats| rooms.resize(room_id, seats)) {
                    self.resync_room_presence(&mut rooms, room_id);
                }
            }
            // What was held goes out first; the connections then fill every gap. A connection
            // with rooms in several shards is told once, not once per shard, unless it begins
            // catching up before the last shard has told it (see `offer_resync`). Every
            // shard hears of the loss; the first also tells the multiplexed connections, which
            // may have missed a seat in a room they do not follow yet, or follow none at all.
            Delivery::Missed => {
                rooms.resync();
                if index == 0 {
                    // Presence changes ride on the same announcements (seats, crossings).
                    self.presence_resync.notify_one();
                    let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
                    for list in users.values_mut() {
                        list.retain(Follower::offer_resync);
                    }
                }
            }
        }
        rooms.next_release()
    }

    /// The user's multiplexed connections follow `room` from this point of the stream on, so
    /// nothing announced after the seat passes them by.
    fn seat(
        &self,
        rooms: &mut Rooms,
        (room, user_id): (i64, i64),
        after: i64,
        after_seq: Option<i64>,
        shares_presence: bool,
    ) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = users.get_mut(&user_id) {
            let followers = &mut rooms.feeds.entry(room).or_default().followers;
            // Only a connection told of the seat follows the room: its `Seated` (handled, or
            // still queued when it ends) is how it knows to leave the room again.
            list.retain(|f| {
                let told = f.offer(Live::Seated {
                    room,
                    after,
                    after_seq,
                });
                if told && !followers.iter().any(|g| g.id == f.id) {
                    followers.push(f.copy());
                }
                told
            });
        }
        drop(users);
        rooms.forget_if_unfollowed(room);
        // The room's other followers learn that their new room-mate is online: they came
        // online before sharing a room, when no change reached these connections. Not in a
        // room too large to carry presence: no later change of theirs would reach them there.
        if shares_presence && !self.presence.online(&[user_id]).is_empty() {
            let change = PresenceChange {
                user_id,
                online: true,
            };
            if let Some(feed) = rooms.feeds.get_mut(&room) {
                feed.followers
                    .retain(|f| f.user_id == user_id || f.offer(Live::Presence(change)));
            }
            rooms.forget_if_unfollowed(room);
        }
    }

    /// Tells the followers of `room` (in `rooms`, its shard, locked) who is online anew: it
    /// may have crossed the line of a room that carries presence.
    fn resync_room_presence(&self, rooms: &mut Rooms, room: i64) {
        let epoch = self.presence_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        rooms.resync_presence(room, epoch);
    }

    /// Where the presence epoch stands: taken before a change's rooms are looked up.
    fn presence_epoch(&self) -> u64 {
        self.presence_epoch.load(Ordering::SeqCst)
    }

    /// Sends on what every room of shard `index` whose wait is over holds; returns the
    /// shard's next wait's end, if any.
    fn release_overdue(&self, index: usize, now: Instant) -> Option<Instant> {
        let mut rooms = self.shard(index);
        rooms.release_overdue(now);
        rooms.next_release()
    }

    /// Every connection here, once each.
    fn connections(&self) -> Vec<Follower> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for index in 0..self.shards.len() {
            for feed in self.shard(index).feeds.values() {
                all.extend(
                    feed.followers
                        .iter()
                        .filter(|f| seen.insert(f.id))
                        .map(Follower::copy),
                );
            }
        }
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        for list in users.values() {
            all.extend(
                list.iter()
                    .filter(|f| seen.insert(f.id))
                    .map(Follower::copy),
            );
        }
        all
    }

    /// The users following `room` here.
    fn followers_of(&self, room: i64) -> Vec<i64> {
        let rooms = self.shard_of(room);
        let mut users: Vec<i64> = rooms
            .feeds
            .get(&room)
            .map(|feed| feed.followers.iter().map(|f| f.user_id).collect())
            .unwrap_or_default();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Tells the connections following `room_ids` (once each, never the user themself) that
    /// `concerned` picks (by their user, and whether they follow all of the user's rooms) about
    /// `change`, looked up at presence epoch `looked_up`: a room
    /// whose followers were told who is online anew since then is skipped (they read the state
    /// with the change in it, and the room may no longer carry presence).
    fn dispatch_change(
        &self,
        change: PresenceChange,
        room_ids: &[i64],
        looked_up: u64,
        concerned: impl Fn(i64, bool) -> bool,
    ) {
        let mut told = HashSet::new();
        for room_id in room_ids {
            let mut rooms = self.shard_of(*room_id);
            if let Some(feed) = rooms
                .feeds
                .get_mut(room_id)
                .filter(|feed| feed.presence_resynced <= looked_up)
            {
                feed.followers.retain(|f| {
                    f.user_id == change.user_id
                        || !concerned(f.user_id, f.by_user)
                        || !told.insert(f.id)
                        || f.offer(Live::Presence(change))
                });
            }
            rooms.forget_if_unfollowed(*room_id);
        }
    }
}

/// An io_uring per shard for writing messages to sockets if `wanted`; none (said once in the
/// log) where the kernel or its sandbox refuses them: the shards then send to each socket in
/// turn. Container runtimes' default seccomp profiles commonly block io_uring.
fn send_batches(wanted: bool, count: usize) -> Vec<SendBatch> {
    if !wanted {
        return Vec::new();
    }
    match (0..count).map(|_| SendBatch::new()).collect() {
        Ok(batches) => batches,
        Err(error) => {
            tracing::info!(%error, "io_uring unavailable: writing to each socket in turn");
            Vec::new()
        }
    }
}

/// Runs `task` until it ends or the hub that owns the sender of `alive` is dropped: a task
/// waiting on the bus or on presence would otherwise outlive its hub for as long as they live.
async fn until_dropped(
    mut alive: watch::Receiver<()>,
    task: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        () = task => {}
        _ = alive.changed() => {} // only ever an error: the hub is gone
    }
}

/// The shard of `room_id` among `count`.
fn shard_index(room_id: i64, count: usize) -> usize {
    // Room ids are positive; `rem_euclid` keeps any other in range too.
    room_id.rem_euclid(count as i64) as usize
}
