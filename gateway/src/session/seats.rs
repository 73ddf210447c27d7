//! A connection's seats: following a room it was given a seat in, catching up after the bus
//! lost events (seats whose news was lost included), and letting a room go when the seat or
//! the room goes.

use serde_json::json;

use super::{close, Ended, Position, Session, Step};

impl Session {
    /// A multiplexed connection's user got a seat: the hub already follows the room for it
    /// from the seat's point in the stream; deliver what came after `after` from the database
    /// first (live copies are then dropped by id). With `after`'s seq known, a live message
    /// that skips ahead, or arrives before an earlier one, is seen as a gap and read from the
    /// database, as on any other room.
    pub(crate) async fn seated(
        &mut self,
        room_id: i64,
        after: i64,
        after_seq: Option<i64>,
    ) -> Step {
        if self.fixed_room.is_some() || self.position(room_id).is_some() {
            return Ok(());
        }
        self.subscription.adopt(room_id);
        self.forget_read(room_id);
        self.set_position(
            room_id,
            Position {
                last_id: after,
                last_seq: after_seq,
            },
        );
        self.catch_up(room_id).await?;
        // The new room's members who are online: no change told this connection about them.
        self.send_presence_of(Some(room_id)).await
    }

    /// Events may have been lost: catch up the rooms that moved since this connection's
    /// position (one query for all of them, so a NATS restart does not cost every connection
    /// one read per room).
    #[tracing::instrument(name = "socket", skip_all, fields(user_id = self.user_id, room = ?self.fixed_room))]
    pub(super) async fn resync(&mut self) -> Step {
        self.subscription.resync_begins();
        let mut rooms = self.rooms();
        let mut unfollowed = Vec::new();
        if self.fixed_room.is_none() {
            match self.shared.store.room_positions(self.user_id).await {
                Ok(now) => {
                    let moved = |room_id: i64| {
                        let at = self.position(room_id);
                        match now.iter().find(|r| r.room_id == room_id) {
                            // Gone from the list: the seat is lost, which catch_up handles.
                            None => true,
                            Some(r) => at.is_none_or(|at| r.last_msg_id.unwrap_or(0) > at.last_id),
                        }
                    };
                    rooms.retain(|room_id| moved(*room_id));
                    unfollowed = now
                        .iter()
                        .map(|r| r.room_id)
                        .filter(|room_id| self.position(*room_id).is_none())
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "resync positions read failed; reading every room")
                }
            }
        }
        if !unfollowed.is_empty() {
            Box::pin(self.follow_missed_seats(&unfollowed)).await?;
        }
        for room_id in rooms {
            self.catch_up(room_id).await?;
        }
        Ok(())
    }

    /// Seats whose announcement was lost with the events: each is followed as its
    /// announcement would have had it, from where the room stood when the seat was taken
    /// (recorded with the seat), so what was posted since comes from the database.
    async fn follow_missed_seats(&mut self, rooms: &[i64]) -> Step {
        for room_id in rooms {
            match self.shared.store.seat_start(*room_id, self.user_id).await {
                Ok(Some(start)) => {
                    let after = start.position.last_msg_id.unwrap_or(0);
                    Box::pin(self.seated(*room_id, after, Some(start.position.last_seq))).await?;
                }
                Ok(None) => {} // the seat went again meanwhile
                Err(e) => {
                    tracing::warn!(error = %e, room_id, "seat start read failed");
                    return self.end_on_server_error().await;
                }
            }
        }
        Ok(())
    }

    /// Lets go of the rooms the user no longer sits in, as their `member.left` would have: one
    /// read of the user's seats (of the one room, for a per-room connection).
    pub(crate) async fn recheck_seats(&mut self) -> Step {
        if let Some(room_id) = self.fixed_room {
            return match self.shared.store.seat_start(room_id, self.user_id).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => self.seat_or_room_lost(room_id).await,
                Err(e) => {
                    // Unsure: the next renewal looks again.
                    tracing::warn!(error = %e, room_id, "seat check at renewal failed");
                    Ok(())
                }
            };
        }
        let seated = match self.shared.store.room_positions(self.user_id).await {
            Ok(seats) => seats.iter().map(|seat| seat.room_id).collect::<Vec<_>>(),
            Err(e) => {
                // Unsure, as for a loss announced: the next renewal looks again.
                tracing::warn!(error = %e, "seat check at renewal failed");
                return Ok(());
            }
        };
        for room_id in self.rooms() {
            if !seated.contains(&room_id) {
                self.seat_or_room_lost(room_id).await?;
            }
        }
        Ok(())
    }

    /// A `member.left` for this connection's user: the room is dropped unless the database
    /// still has the seat (one announced again, at an API's start-up or after a refused
    /// publish, can arrive after the seat was taken anew). One lookup of the seat.
    pub(super) async fn seat_maybe_lost(&mut self, room_id: i64) -> Step {
        match self.shared.store.seat_start(room_id, self.user_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => self.seat_lost(room_id).await,
            Err(e) => {
                // Unsure whether the seat is gone, the connection must not go on showing the
                // room: it ends, and the client's next one reads its rooms afresh.
                tracing::warn!(error = %e, room_id, "seat check failed");
                self.end_on_server_error().await
            }
        }
    }

    /// The room's messages were refused: the seat is gone, or the room with it (its deletion's
    /// news lost). A per-room connection is told which, as the news would have told it.
    pub(crate) async fn seat_or_room_lost(&mut self, room_id: i64) -> Step {
        match self.shared.store.room_sizes(&[room_id]).await {
            Ok(sizes) if sizes.is_empty() => self.room_gone(room_id).await,
            Ok(_) => self.seat_lost(room_id).await,
            Err(e) => {
                tracing::warn!(error = %e, room_id, "room check failed");
                self.end_on_server_error().await
            }
        }
    }

    /// The user no longer sits in the room: a per-room connection ends, a multiplexed one
    /// stops following it.
    pub(crate) async fn seat_lost(&mut self, room_id: i64) -> Step {
        self.stop_following(room_id, close::NOT_MEMBER, "not_member", "not a member")
            .await
    }

    /// The room was deleted: a per-room connection ends with "no such room", as a new
    /// connection to it would; a multiplexed one stops following it.
    pub(super) async fn room_gone(&mut self, room_id: i64) -> Step {
        self.stop_following(room_id, close::NO_ROOM, "no_room", "no such room")
            .await
    }

    async fn stop_following(
        &mut self,
        room_id: i64,
        code: u16,
        reason: &str,
        why: &'static str,
    ) -> Step {
        self.outlet.state().positions.remove(room_id);
        self.forget_read(room_id);
        self.subscription.leave(room_id);
        if self.fixed_room.is_some() {
            self.shared.metrics.closed(reason);
            self.send_close(code, why).await;
            return Err(Ended);
        }
        // The client's room list must lose it too: nothing else of the room reaches it now.
        self.send_json(&json!({"type": "left", "room": room_id, "reason": reason}))
            .await
    }
}
