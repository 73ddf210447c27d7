//! Announcing committed changes on the bus, for the WebSocket gateways: the last step of every
//! action that changes what sockets show or follow.
//!
//! A change is stored before it is announced, so a failed announcement only delays live
//! delivery (sockets catch up from the database when they resume): it is logged and counted
//! (`chatboard_bus_publish_failures_total`), never turned into an error for the action.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::bus::{Bus, BusEvent};
use chatboard_core::events::DomainEvent;
use chatboard_core::metrics::MetricRegistry;
use chatboard_core::model::SMALL_ROOM_MEMBERS;
use chatboard_store::{Seat, Store};
use prometheus::IntCounter;

/// The pauses between attempts at announcing seat losses the bus refused (about a minute).
const LOSS_RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];

/// Publishes bus events and counts the ones that could not be published.
#[derive(Clone)]
pub struct Announcer {
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    failures: IntCounter,
}

impl Announcer {
    /// An announcer on `bus`; its failure counter is registered in `registry`.
    pub fn new(
        bus: Arc<dyn Bus>,
        store: Arc<dyn Store>,
        registry: &MetricRegistry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            bus,
            store,
            failures: publish_failures(registry)?,
        })
    }

    /// The bus it publishes on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Publishes one event.
    pub async fn publish(&self, event: BusEvent) {
        self.try_publish(&event).await;
    }

    /// Publishes one event; whether the bus took it.
    #[tracing::instrument(level = "debug", skip_all, fields(room_id = event.room()))]
    async fn try_publish(&self, event: &BusEvent) -> bool {
        match self.bus.publish(event).await {
            Ok(()) => true,
            Err(e) => {
                self.failures.inc();
                tracing::warn!(error = %e, room_id = event.room(), "bus publish failed");
                false
            }
        }
    }

    /// Publishes the live events a domain event makes, if it makes any.
    pub async fn domain(&self, event: &DomainEvent) {
        if let DomainEvent::MemberLeft(left) = event {
            self.seats_lost(&seats_of(left.user_id, &left.rooms)).await;
        } else if let Some(live) = BusEvent::of(event) {
            self.publish(live).await;
        }
    }

    /// Announces that `user_id` now sits in `room`, with where the room stood when the seat
    /// was taken, so their multiplexed sockets follow it from there: messages posted between
    /// the seat's commit and this announcement reached no socket of theirs live, and the
    /// sockets read them from the database. Like a loss, a seat's announcement is the only
    /// thing that makes an open socket follow the room: what the bus refuses is tried again.
    pub async fn seated(&self, room: i64, user_id: i64) {
        self.seats_gained(&[Seat {
            room_id: room,
            user_id,
        }])
        .await;
    }

    /// Announces the seats a room was created with, read with one query; if that read fails,
    /// it is made again in the background, as refused announcements are published again.
    pub async fn seated_in_room_made(&self, room: i64) {
        let unread = self.seat_new_rooms(vec![room]).await;
        self.again_in_background(unread, "new rooms' seats", |this, rooms| async move {
            this.seat_new_rooms(rooms).await
        });
    }

    /// Announces the seats of these new rooms; those whose members could not be read.
    async fn seat_new_rooms(&self, rooms: Vec<i64>) -> Vec<i64> {
        let mut unread = Vec::new();
        for room in rooms {
            match self.store.member_ids(room).await {
                Ok(members) => self.seated_in_new_room(room, &members).await,
                Err(e) => {
                    tracing::warn!(error = %e, room_id = room, "reading the new room's members failed; read again shortly");
                    unread.push(room);
                }
            }
        }
        unread
    }

    /// Announces the seats a room was created with. They all start at the room's beginning,
    /// so no seat is read back (a PUBLIC room of a large organization read one per member).
    pub async fn seated_in_new_room(&self, room: i64, user_ids: &[i64]) {
        let this = self.clone();
        let user_ids = user_ids.to_vec();
        to_the_end(async move { this.seated_from_the_start(room, &user_ids).await }).await;
    }

    /// Announces seats of `user_ids` in `room` that begin at its start.
    async fn seated_from_the_start(&self, room: i64, user_ids: &[i64]) {
        let room_members = i64::try_from(user_ids.len()).unwrap_or(i64::MAX);
        let events = user_ids
            .iter()
            .map(|&user_id| BusEvent::MemberSeated {
                room,
                user_id,
                after: 0,
                after_seq: Some(0),
                shares_presence: room_members <= SMALL_ROOM_MEMBERS,
                room_members: Some(room_members),
            })
            .collect();
        self.announce_until_taken(events, "seats").await;
    }

    /// Announces new seats (see [`Announcer::seated`]). Seats whose start could not be read
    /// are read again in the background, as refused announcements are published again.
    pub async fn seats_gained(&self, seats: &[Seat]) {
        let (this, seats) = (self.clone(), seats.to_vec());
        to_the_end(async move {
            let unread = this.announce_seats(&seats).await;
            this.again_in_background(unread, "seat reads", |this, seats| async move {
                this.announce_seats(&seats).await
            });
        })
        .await;
    }

    /// Announces these seats; those whose start could not be read.
    async fn announce_seats(&self, seats: &[Seat]) -> Vec<Seat> {
        let mut events = Vec::with_capacity(seats.len());
        let mut unread = Vec::new();
        for seat in seats {
            match self.seat_event(seat.room_id, seat.user_id).await {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(()) => unread.push(*seat),
            }
        }
        self.announce_until_taken(events, "seats").await;
        unread
    }

    /// A `member.seated` for a seat, with where it began; none without a seat (gone since);
    /// `Err` when the seat could not be read (logged).
    async fn seat_event(&self, room: i64, user_id: i64) -> Result<Option<BusEvent>, ()> {
        let start = match self.store.seat_start(room, user_id).await {
            Ok(Some(start)) => start,
            Ok(None) => return Ok(None), // no seat after all
            Err(e) => {
                tracing::warn!(error = %e, room, "reading a new seat's start failed; read again shortly");
                return Err(());
            }
        };
        Ok(Some(BusEvent::MemberSeated {
            room,
            user_id,
            after: start.position.last_msg_id.unwrap_or(0),
            after_seq: Some(start.position.last_seq),
            shares_presence: start.room_members <= SMALL_ROOM_MEMBERS,
            room_members: Some(start.room_members),
        }))
    }

    /// Announces a change again, as at start-up (see `Chat::reannounce_recent`): what
    /// [`Announcer::domain`] publishes, and the seats a join or a room's creation gave.
    pub async fn again(&self, event: &DomainEvent) {
        match event {
            DomainEvent::MemberJoined(joined) => match joined.room_id {
                Some(room) => self.seated(room, joined.user_id).await,
                // Joining an organization seats its PUBLIC rooms, which the event does not
                // list: every seat of the user is announced (sockets skip rooms they follow).
                None => match self.store.room_positions(joined.user_id).await {
                    Ok(rooms) => {
                        let rooms: Vec<i64> = rooms.iter().map(|r| r.room_id).collect();
                        self.seats_gained(&seats_of(joined.user_id, &rooms)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the seats of a join failed; not announced again")
                    }
                },
            },
            // Read back seat by seat (not as at the creation): a member gone since must not be
            // announced as seated, or shown online to the room.
            DomainEvent::RoomCreated(created) => {
                self.seats_gained(&seats_of_room(created.room.id, &created.member_ids))
                    .await
            }
            other => self.domain(other).await,
        }
    }

    /// Announces that these seats are gone, so open sockets stop following those rooms. Unlike
    /// a message, whose loss a socket notices at the next one, a lost seat's announcement is
    /// the only thing that stops a socket: the ones the bus refused are tried again in the
    /// background for about a minute (gateways check a loss against the database before they
    /// act on it, so a late one cannot undo a newer seat). Runs to its end even if the
    /// caller is dropped meanwhile (see [`to_the_end`]).
    pub async fn seats_lost(&self, seats: &[Seat]) {
        let (this, seats) = (self.clone(), seats.to_vec());
        to_the_end(async move { this.announce_losses(&seats).await }).await;
    }

    /// [`Announcer::seats_lost`], in the caller's task.
    async fn announce_losses(&self, seats: &[Seat]) {
        let losses = self.losses(seats).await;
        self.announce_until_taken(losses, "seat losses").await;
    }

    /// Announces `events`; those the bus refuses are tried again a few times over about a
    /// minute, from a task of their own (the caller goes on). For announcements that are the
    /// only thing that stops sockets following a room: a lost seat, a deleted room.
    async fn announce_until_taken(&self, events: Vec<BusEvent>, what: &'static str) {
        let refused = self.announce_all(events).await;
        self.again_in_background(refused, what, |this, events| async move {
            this.announce_all(events).await
        });
    }

    /// Gives what a first attempt left (`pending`) to `attempt` again, from a task of its own,
    /// after each of [`LOSS_RETRY_DELAYS`] (about a minute in all) until it leaves nothing;
    /// what is left then is logged as `what`. For the announcements that alone make sockets
    /// follow or stop following a room.
    fn again_in_background<T, Attempt, Done>(
        &self,
        mut pending: Vec<T>,
        what: &'static str,
        attempt: Attempt,
    ) where
        T: Send + 'static,
        Attempt: Fn(Announcer, Vec<T>) -> Done + Send + 'static,
        Done: std::future::Future<Output = Vec<T>> + Send,
    {
        if pending.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for delay in LOSS_RETRY_DELAYS {
                tokio::time::sleep(delay).await;
                pending = attempt(this.clone(), pending).await;
                if pending.is_empty() {
                    return;
                }
            }
            tracing::warn!(
                left = pending.len(),
                what,
                "never announced; those sockets follow their rooms as they stand when they reconnect"
            );
        });
    }

    /// Announces that these rooms are deleted: sockets stop following them at once (a loss of
    /// a seat is checked against the database first, a deleted room is not: there is nothing
    /// left to check). Runs to its end even if the caller is dropped meanwhile (see
    /// [`to_the_end`]), and what the bus refuses is tried again.
    pub async fn rooms_deleted(&self, rooms: impl IntoIterator<Item = i64>) {
        let events: Vec<BusEvent> = rooms
            .into_iter()
            .map(|room| BusEvent::RoomDeleted { room })
            .collect();
        let this = self.clone();
        to_the_end(async move { this.announce_until_taken(events, "room deletions").await }).await;
    }

    /// A `member.left` per seat, with its room's size now (tried again, an announcement keeps
    /// the size it was made with).
    async fn losses(&self, seats: &[Seat]) -> Vec<BusEvent> {
        let rooms: Vec<i64> = seats.iter().map(|s| s.room_id).collect();
        let sizes: HashMap<i64, i64> = match self.store.room_sizes(&rooms).await {
            Ok(sizes) => sizes.into_iter().collect(),
            Err(e) => {
                // The losses still go out: the sizes only spare gateways work and tell them
                // of a room that crossed into carrying presence.
                tracing::warn!(error = %e, "reading the rooms' sizes failed");
                HashMap::new()
            }
        };
        seats
            .iter()
            .map(|seat| BusEvent::MemberLeft {
                room: seat.room_id,
                user_id: seat.user_id,
                // None for a room deleted meanwhile: read as an older publisher's loss.
                room_members: sizes.get(&seat.room_id).copied(),
            })
            .collect()
    }

    /// Publishes these events, a few at a time (a PUBLIC room of a large organization seats
    /// thousands); those the bus refused.
    async fn announce_all(&self, events: Vec<BusEvent>) -> Vec<BusEvent> {
        use futures::StreamExt;
        /// Announcements in flight at once.
        const AT_ONCE: usize = 32;
        futures::stream::iter(events)
            .map(|event| async move { (!self.try_publish(&event).await).then_some(event) })
            .buffer_unordered(AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await
    }
}

/// Runs `announcement` to its end even if the caller is dropped meanwhile (the operator drops
/// its reconciles in flight when it loses its Lease): the change it announces is committed, and
/// the announcement of a lost seat or a deleted room is the only thing that stops the sockets
/// following it.
async fn to_the_end(announcement: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Err(e) = tokio::spawn(announcement).await {
        tracing::warn!(error = %e, "announcing a committed change failed");
    }
}

/// Registers `chatboard_bus_publish_failures_total` (every process that runs actions exports
/// it) and returns it.
pub fn publish_failures(registry: &MetricRegistry) -> Result<IntCounter, prometheus::Error> {
    let failures = IntCounter::new(
        "chatboard_bus_publish_failures_total",
        "Committed changes whose announcement on the bus failed (live delivery delayed).",
    )?;
    registry.register(&failures)?;
    Ok(failures)
}

/// The seats of these users in one room.
pub fn seats_of_room(room_id: i64, user_ids: &[i64]) -> Vec<Seat> {
    user_ids
        .iter()
        .map(|&user_id| Seat { room_id, user_id })
        .collect()
}

/// The seats of one user in these rooms.
pub fn seats_of(user_id: i64, rooms: &[i64]) -> Vec<Seat> {
    rooms
        .iter()
        .map(|&room_id| Seat { room_id, user_id })
        .collect()
}
