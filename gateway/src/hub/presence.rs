//! Presence changes, fanned out to the connections that share a room with the user who came or
//! went.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use chatboard_core::model::SMALL_ROOM_MEMBERS;
use chatboard_core::presence::PresenceChange;
use chatboard_store::Store;
use tokio::sync::{broadcast, Notify};

use super::Hub;

/// Presence changes go to the connections that share a room with the user. Changes come in
/// bursts (a gateway full of clients reconnecting), so they are taken in batches with one
/// database read for the rooms of all of them.
pub(super) async fn dispatch_presence(
    hub: Weak<Hub>,
    mut changes: broadcast::Receiver<PresenceChange>,
    store: Arc<dyn Store>,
) {
    const BATCH: usize = 1000;
    loop {
        let mut batch = Vec::new();
        match changes.recv().await {
            Ok(change) => batch.push(change),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                tracing::warn!(skipped, "presence changes skipped: the gateway fell behind");
                tell_everyone_again(&hub);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        // Skipped changes, however often, bring one telling of the whole state per batch.
        let mut lost = false;
        while batch.len() < BATCH {
            match changes.try_recv() {
                Ok(change) => batch.push(change),
                Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "presence changes skipped: the gateway fell behind");
                    lost = true;
                }
                Err(_) => break,
            }
        }
        if lost {
            tell_everyone_again(&hub);
        }
        let looked_up = match hub.upgrade() {
            None => return,
            Some(hub) if hub.is_idle() => continue,
            // Not held across the lookup: a hub dropped meanwhile is not kept alive by it.
            Some(hub) => hub.presence_epoch(),
        };
        let mut users: Vec<i64> = batch.iter().map(|c| c.user_id).collect();
        users.sort_unstable();
        users.dedup();
        let Some(seats) = seats_with_retries(store.as_ref(), &users).await else {
            tell_everyone_again(&hub);
            continue;
        };
        let Some(hub) = hub.upgrade() else { return };
        let mut rooms_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (user_id, room_id) in seats {
            rooms_of.entry(user_id).or_default().push(room_id);
        }
        // In order, so a user who came and went within the batch ends up offline.
        for change in batch {
            if let Some(rooms) = rooms_of.get(&change.user_id) {
                hub.dispatch_change(change, rooms, looked_up, |_, _| true);
            }
        }
    }
}

/// Changes were lost (skipped, or their batch given up): every connection is to be told again
/// who is online. Only asked here; [`resync`] does it.
fn tell_everyone_again(hub: &Weak<Hub>) {
    if let Some(hub) = hub.upgrade() {
        hub.presence_resync.notify_one();
    }
}

/// Tells every connection the whole presence state, each time it is asked to. A few hundred
/// connections at a time, a pause between: each reads its room-mates, and the gateway's
/// database pool is shared with everything else at a moment that is already a busy one. Asks
/// that come while it runs make one more round after it (`Notify` keeps one permit), so a
/// burst of lost batches never sets several rounds going at once.
pub(super) async fn resync(hub: Weak<Hub>, asked: Arc<Notify>) {
    const AT_ONCE: usize = 200;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
    loop {
        // Waits holding the `Notify` alone, not the hub, which must stay free to go.
        asked.notified().await;
        // Without their sockets: the round takes seconds over many connections, and one that
        // ends meanwhile must close its socket then, not at the end of the round.
        let Some(connections) = hub.upgrade().map(|hub| {
            hub.connections()
                .iter()
                .map(|c| c.for_later())
                .collect::<Vec<_>>()
        }) else {
            return;
        };
        for some in connections.chunks(AT_ONCE) {
            for connection in some.iter().filter_map(|c| c.now()) {
                connection.offer_presence_resync();
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// A seat lost, as announced on the bus.
#[derive(Debug, Clone, Copy)]
pub(super) struct Departure {
    pub(super) room: i64,
    pub(super) user_id: i64,
    /// The room's seats after the loss, when the announcement said.
    pub(super) room_members: Option<i64>,
}

impl Departure {
    /// Whether the leaver's going is to be told through the room. A room too large to carry
    /// presence told nobody of them: nothing to take back. Its size is read after the loss; at
    /// the line, the room may have carried presence before it, so the departure is told.
    pub(super) fn worth_telling(&self) -> bool {
        self.room_members
            .is_none_or(|seats| seats <= SMALL_ROOM_MEMBERS)
    }
}

/// Tells departures, a batch at a time: someone online who left a room that carries presence is
/// shown offline to its followers here who no longer share such a room with them. A user's
/// changes reach only their room-mates, so those would otherwise see them online for as long as
/// their connections last. One room-mates lookup per user who left, whatever number of rooms
/// (leaving an organization brings one departure per room of it), one batch after the other.
pub(super) async fn tell_departures(
    hub: Weak<Hub>,
    store: Arc<dyn Store>,
    departures: flume::Receiver<Departure>,
) {
    const BATCH: usize = 1000;
    while let Ok(first) = departures.recv_async().await {
        // Per user, in the order their first departure came: told in order.
        let mut rooms_left: Vec<(i64, Vec<i64>)> = Vec::new();
        let mut at: HashMap<i64, usize> = HashMap::new();
        let mut taken = 0;
        for departure in std::iter::once(first).chain(departures.try_iter()) {
            taken += 1;
            if departure.worth_telling() {
                let i = *at.entry(departure.user_id).or_insert_with(|| {
                    rooms_left.push((departure.user_id, Vec::new()));
                    rooms_left.len() - 1
                });
                rooms_left[i].1.push(departure.room);
            }
            if taken == BATCH {
                break;
            }
        }
        for (user_id, rooms) in rooms_left {
            tell_departure(&hub, store.as_ref(), user_id, &rooms).await;
        }
    }
}

/// [`tell_departures`] for one user who left `rooms`.
async fn tell_departure(hub: &Weak<Hub>, store: &dyn Store, user_id: i64, rooms: &[i64]) {
    let looked_up = match hub.upgrade() {
        Some(hub) if !hub.presence.online(&[user_id]).is_empty() => {
            let followed = rooms
                .iter()
                .any(|room| hub.followers_of(*room).iter().any(|f| *f != user_id));
            if !followed {
                return;
            }
            hub.presence_epoch()
        }
        _ => return,
    };
    let mates: HashSet<i64> = match store.room_mates(user_id, None).await {
        Ok(mates) => mates.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, user_id, "presence: a departure's room-mates lookup failed");
            return;
        }
    };
    // A leave announced again after the seat was taken anew (an API re-announcing its last
    // changes at start, a publish retried), or told after a quick return: the user sits there
    // now, and nothing would tell the room they are online again.
    let Some(seats) = seats_with_retries(store, &[user_id]).await else {
        return;
    };
    let seated: HashSet<i64> = seats.into_iter().map(|(_, room)| room).collect();
    let rooms: Vec<i64> = rooms
        .iter()
        .copied()
        .filter(|room| !seated.contains(room))
        .collect();
    if rooms.is_empty() {
        return;
    }
    let Some(hub) = hub.upgrade() else { return };
    let change = PresenceChange {
        user_id,
        online: false,
    };
    // Once per connection, however many of the rooms left together it follows. A connection
    // to one room is told even when its user still shares another room with the leaver: it
    // follows only this one, and nothing else would ever tell it the leaver went away.
    hub.dispatch_change(change, &rooms, looked_up, |follower, by_user| {
        !by_user || !mates.contains(&follower)
    });
}

/// The seats of `users`, read again after a failure (a database restarting, a pool briefly
/// exhausted): a batch given up leaves its users shown online, or offline, to their room-mates
/// until those reconnect. `None` after the last try (logged).
async fn seats_with_retries(store: &dyn Store, users: &[i64]) -> Option<Vec<(i64, i64)>> {
    // Short: changes queue behind the lookup meanwhile.
    const WAITS_MS: [u64; 2] = [100, 500];
    let mut waits = WAITS_MS.iter();
    loop {
        match store.seats_of(users).await {
            Ok(seats) => return Some(seats),
            Err(e) => match waits.next() {
                Some(ms) => {
                    tracing::warn!(error = %e, retry_in_ms = ms, "presence: rooms lookup failed");
                    tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                }
                None => {
                    tracing::error!(error = %e, users = users.len(), "presence: rooms lookup failed; changes dropped");
                    return None;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

    use std::time::Duration;

    use testing::{execute_sql, TestDb, TestEngine};

    use super::seats_with_retries;

    /// A lookup that fails for a moment is tried again: a batch of presence changes given up at
    /// the first failure left its users shown online (or offline) to their room-mates until
    /// those reconnected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rooms_lookup_failing_for_a_moment_is_tried_again() {
        let (_db, url) = TestDb::create(TestEngine::Sqlite).await.expect("sqlite");
        let store = chatboard_store::connect(&url, 2).await.expect("a store");
        store.migrate().await.expect("migrated");
        execute_sql(&url, "ALTER TABLE room_members RENAME TO room_members_away").await;
        let back = {
            let url = url.to_owned();
            tokio::spawn(async move {
                // Long after the first try, well before the last.
                tokio::time::sleep(Duration::from_millis(300)).await;
                execute_sql(&url, "ALTER TABLE room_members_away RENAME TO room_members").await;
            })
        };
        let seats = seats_with_retries(store.as_ref(), &[1, 2]).await;
        back.await.unwrap();
        assert_eq!(seats, Some(Vec::new()));
    }
}
