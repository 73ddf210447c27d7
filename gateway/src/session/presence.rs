//! Presence as a connection tells it: who of the user's room-mates is online when it opens,
//! each change after, and the whole state again when changes may have been lost on the way.

use chatboard_core::presence::PresenceChange;
use serde_json::json;

use super::{Session, Step};

impl Session {
    /// Who of the user's room-mates is online now.
    #[tracing::instrument(name = "socket", skip_all, fields(user_id = self.user_id, room = ?self.fixed_room))]
    pub(super) async fn send_presence_snapshot(&mut self) -> Step {
        self.send_presence_of(self.fixed_room).await
    }

    /// Who of the user's mates in `room` (all their rooms: `None`) is online now.
    pub(super) async fn send_presence_of(&mut self, room: Option<i64>) -> Step {
        let mates = match self.shared.store.room_mates(self.user_id, room).await {
            Ok(mates) => mates,
            Err(e) => {
                // Presence is a courtesy: the connection works without the snapshot.
                tracing::warn!(error = %e, "room mates lookup failed");
                return Ok(());
            }
        };
        for user_id in self.shared.presence.online(&mates) {
            self.send_presence(PresenceChange {
                user_id,
                online: true,
            })
            .await?;
        }
        Ok(())
    }

    pub(super) async fn send_presence(&mut self, change: PresenceChange) -> Step {
        let status = if change.online { "online" } else { "offline" };
        self.send_json(&json!({"type": "presence", "user_id": change.user_id, "status": status}))
            .await
    }

    /// Who of the user's room-mates (of its room, for a per-room connection) is online now, in
    /// one frame the client takes as the whole truth: sent when presence changes may have been
    /// lost on the way (the gateway fell behind, or could not look up who to tell).
    pub(super) async fn send_presence_state(&mut self) -> Step {
        let mates = match self
            .shared
            .store
            .room_mates(self.user_id, self.fixed_room)
            .await
        {
            Ok(mates) => mates,
            Err(e) => {
                tracing::warn!(error = %e, "room mates lookup failed");
                return Ok(());
            }
        };
        let online = self.shared.presence.online(&mates);
        self.send_json(&json!({"type": "presence_snapshot", "online": online}))
            .await
    }
}
