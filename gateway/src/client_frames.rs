//! Frames from the client: `ping`, `typing`, `read` and `message`. A message sent over the
//! socket takes exactly the REST path: the same validation, idempotency on `client_msg_id`, the
//! same transaction with its outbox event, the same announcement; then it is acknowledged.
//! On the multiplexed endpoint `typing`, `read` and `message` name their `room`.

use chatboard_core::bus::BusEvent;
use chatboard_core::model::{message_body_problem, CLIENT_MSG_ID_MAX};
use chatboard_core::store::{NewMessage, StoreError};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::session::{Session, Step};

/// The frames a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Ping,
    Typing {
        is_typing: bool,
        #[serde(default)]
        room: Option<i64>,
    },
    Read {
        msg_id: i64,
        #[serde(default)]
        room: Option<i64>,
    },
    Message {
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
        #[serde(default)]
        room: Option<i64>,
    },
}

impl Session {
    /// Answers one client frame; an `Err` ends the connection.
    pub(crate) async fn on_client_frame(&mut self, text: &str) -> Step {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => return self.error("invalid_frame", &e.to_string()).await,
        };
        match frame {
            ClientFrame::Ping => self.send_json(&json!({"type": "pong"})).await,
            ClientFrame::Typing { is_typing, room } => {
                let Some(room) = self.target_room(room).await? else {
                    return Ok(());
                };
                let event = BusEvent::Typing {
                    room,
                    user_id: self.user_id,
                    user_email: self.user_email.clone(),
                    is_typing,
                };
                self.announce(event).await;
                Ok(())
            }
            ClientFrame::Read { msg_id, room } => {
                let Some(room) = self.target_room(room).await? else {
                    return Ok(());
                };
                match self
                    .shared
                    .store
                    .mark_read(room, self.user_id, msg_id)
                    .await
                {
                    Ok(last_read_msg_id) => {
                        let event = BusEvent::Read {
                            room,
                            user_id: self.user_id,
                            last_read_msg_id,
                        };
                        self.announce(event).await;
                        Ok(())
                    }
                    Err(StoreError::NotFound) => {
                        self.error("not_found", "No such message in this room.")
                            .await
                    }
                    Err(e) => self.unavailable(e).await,
                }
            }
            ClientFrame::Message {
                body,
                client_msg_id,
                room,
            } => {
                let Some(room) = self.target_room(room).await? else {
                    return Ok(());
                };
                self.send_message(room, body, client_msg_id).await
            }
        }
    }

    /// The room a frame is about: the connection's own, or the one it names (multiplexed).
    /// `None` after answering with an error frame.
    async fn target_room(
        &mut self,
        named: Option<i64>,
    ) -> Result<Option<i64>, crate::session::Ended> {
        let room = match (self.fixed_room, named) {
            (Some(fixed), Some(named)) if fixed != named => {
                self.error("invalid", "This connection follows another room.")
                    .await?;
                return Ok(None);
            }
            (Some(fixed), _) => fixed,
            (None, Some(named)) => named,
            (None, None) => {
                self.error("invalid", "room: required on the multiplexed connection.")
                    .await?;
                return Ok(None);
            }
        };
        if !self.positions.contains_key(&room) {
            self.error("not_found", "No such room among this connection's rooms.")
                .await?;
            return Ok(None);
        }
        Ok(Some(room))
    }

    async fn send_message(
        &mut self,
        room: i64,
        body: String,
        client_msg_id: Option<String>,
    ) -> Step {
        if let Some(problem) = message_body_problem(&body) {
            return self.error("invalid", &format!("body: {problem}")).await;
        }
        let client_msg_id = client_msg_id.map(|id| id.trim().to_owned());
        if client_msg_id
            .as_deref()
            .is_some_and(|id| id.is_empty() || id.chars().count() > CLIENT_MSG_ID_MAX)
        {
            let detail = format!("client_msg_id: 1 to {CLIENT_MSG_ID_MAX} characters.");
            return self.error("invalid", &detail).await;
        }
        match self.shared.org_limits.check_post(room, self.user_id).await {
            Ok(None) => {}
            Ok(Some(wait)) => {
                let detail = format!(
                    "Your organization allows fewer messages a minute; try again in {} s.",
                    wait.as_secs_f64().ceil()
                );
                return self.error("rate_limited", &detail).await;
            }
            Err(e) => return self.unavailable(e).await,
        }
        let new = NewMessage {
            file: None,
            room_id: room,
            sender_id: self.user_id,
            body,
            client_msg_id: client_msg_id.clone(),
        };
        match self.shared.store.post_message(new, Utc::now()).await {
            Ok((message, created)) => {
                let id = message.id;
                if created {
                    self.announce(BusEvent::new_message(message)).await;
                }
                self.send_json(&json!({"type": "ack", "client_msg_id": client_msg_id, "id": id}))
                    .await
            }
            // The seat went away since the connection opened.
            Err(StoreError::NotFound) => {
                self.seat_lost(room).await?;
                self.error("not_found", "You are no longer a member of this room.")
                    .await
            }
            // The organization was suspended or archived by the platform team.
            Err(StoreError::Forbidden(code)) => {
                self.error(code, "This organization takes no new messages now.")
                    .await
            }
            Err(e) => self.unavailable(e).await,
        }
    }

    /// Announces a committed change; a failure only delays live delivery (see the API's note).
    async fn announce(&mut self, event: BusEvent) {
        if let Err(e) = self.shared.bus.publish(&event).await {
            tracing::warn!(error = %e, room_id = event.room(), "bus publish failed");
        }
    }

    async fn unavailable(&mut self, e: StoreError) -> Step {
        tracing::warn!(error = %e, "store call from the gateway failed");
        self.error("unavailable", "Try again shortly.").await
    }
}
