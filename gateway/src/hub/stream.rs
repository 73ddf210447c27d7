//! The bus's stream on its way to the connections: one task reads it and hands each delivery
//! to its room's shard, and each shard's thread dispatches what it is handed.

use std::sync::{Arc, Weak};

use chatboard_core::bus::{Bus, BusEvent, Delivery};
use futures::StreamExt;
use tokio::time::Instant;

use super::presence::Departure;
use super::{shard_index, Hub};

/// Reads the bus and hands each delivery to its room's shard (a lost stretch to every shard);
/// if the subscription ends, subscribes again and has every connection catch up on what it
/// may have missed in between.
pub(super) async fn listen(
    hub: Weak<Hub>,
    bus: Arc<dyn Bus>,
    mut stream: chatboard_core::bus::BusStream,
    inboxes: Vec<flume::Sender<Delivery>>,
    departures: flume::Sender<Departure>,
) {
    // Sending fails only once the shard's thread has ended, which it does when the hub is gone
    // (this task is also cancelled then, see `until_dropped`).
    let to_all = |delivery: Delivery| {
        let inboxes = &inboxes;
        async move {
            for inbox in inboxes {
                if inbox.send_async(delivery.clone()).await.is_err() {
                    return false;
                }
            }
            true
        }
    };
    loop {
        while let Some(delivery) = stream.next().await {
            let handed = match delivery {
                Delivery::Event(event) => {
                    if let BusEvent::MemberLeft {
                        room,
                        user_id,
                        room_members,
                    } = event
                    {
                        // Presence is a courtesy: when departures come faster than they are
                        // told, the rest are dropped rather than held in memory (those with
                        // nothing to tell never take a place).
                        let departure = Departure {
                            room,
                            user_id,
                            room_members,
                        };
                        if departure.worth_telling() {
                            let _ = departures.try_send(departure);
                        }
                    }
                    let inbox = &inboxes[shard_index(event.room(), inboxes.len())];
                    inbox.send_async(Delivery::Event(event)).await.is_ok()
                }
                Delivery::Missed => to_all(Delivery::Missed).await,
            };
            if !handed {
                return;
            }
        }
        tracing::error!("bus subscription ended; subscribing again");
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if hub.strong_count() == 0 {
                return;
            }
            match bus.subscribe().await {
                Ok(again) => {
                    stream = again;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "bus subscription failed; retrying"),
            }
        }
        if !to_all(Delivery::Missed).await {
            return;
        }
    }
}

/// Dispatches shard `index`'s deliveries, and lets out what its rooms held back behind a
/// missing message once the wait for it is over; ends with the hub.
///
/// A thread of its own, not a task: a message's fan-out is a millisecond of `send` work with
/// nothing to await, so a shard task with a backlog kept its worker for as long as tokio's
/// budget let it (over a hundred fan-outs), and the tasks queued behind it on that worker
/// (sockets' frames, the store's writer, the posters it answered) waited as long. As threads,
/// the shards and the runtime's workers share the cores by the kernel's time slices.
pub(super) fn dispatch_shard(hub: Weak<Hub>, index: usize, deliveries: flume::Receiver<Delivery>) {
    // When the earliest wait for a missing message ends, if any room is holding one back.
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            Some(deadline) => deliveries.recv_deadline(deadline.into_std()),
            None => deliveries
                .recv()
                .map_err(|_| flume::RecvTimeoutError::Disconnected),
        };
        let Some(hub) = hub.upgrade() else { return };
        deadline = match next {
            Ok(delivery) => hub.dispatch(index, delivery),
            Err(flume::RecvTimeoutError::Timeout) => hub.release_overdue(index, Instant::now()),
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        // A receive with deliveries queued returns one even past the deadline, so a shard
        // with a backlog would never time out: what is overdue goes out between deliveries.
        if deadline.is_some_and(|d| d <= Instant::now()) {
            deadline = hub.release_overdue(index, Instant::now());
        }
    }
}
