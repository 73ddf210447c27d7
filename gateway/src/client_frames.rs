//! Frames from the client: `ping`, `auth`, `typing`, `read` and `message`. Each one is translated into
//! the application layer's action (`chat`), the same one the REST API calls: a message sent
//! over the socket is validated, limited, stored with its outbox event and announced exactly
//! as a REST post is, then acknowledged; the connection reads on while it waits for the commit,
//! and answers every frame in turn (see [`crate::replies`]). On the multiplexed endpoint
//! `typing`, `read` and `message` name their `room`.

use chat::validate::stored_text;
use chat::{ChatError, FieldErrors, MessageDraft};
use chatboard_core::error_code::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::replies::Reply;
use crate::session::{close, error_frame, Ended, Session, Step};

/// The frames a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Ping,
    /// A renewed access token of the same user, so the connection outlives the first one.
    Auth {
        token: String,
    },
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
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
        #[serde(default)]
        client_msg_id: Option<String>,
        #[serde(default)]
        parent_id: Option<i64>,
        #[serde(default)]
        room: Option<i64>,
    },
}

impl Session {
    /// Answers one client frame; an `Err` ends the connection. What it causes (the action,
    /// store calls, announcements) runs in the connection's span.
    #[tracing::instrument(name = "socket", skip_all, fields(user_id = self.user_id, room = ?self.fixed_room))]
    pub(crate) async fn on_client_frame(&mut self, text: &str) -> Step {
        // Refused before it is read as a frame: a message's answer still names it, as its ack
        // would, or a client matching answers by id would wait for it for ever.
        if let Some(field) = chat::validate::nul_field(text.as_bytes()) {
            let fields =
                FieldErrors::from([(field, vec!["NUL characters are not allowed.".into()])]);
            let frame = naming(refusal(ChatError::Invalid(fields)), answered_message(text));
            return self.reply(Reply::Frame(frame)).await;
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => {
                let answering = answered_message(text);
                return self
                    .error_answering("invalid_frame", &e.to_string(), answering.as_deref())
                    .await;
            }
        };
        match frame {
            ClientFrame::Ping => self.reply(Reply::Frame(json!({"type": "pong"}))).await,
            ClientFrame::Auth { token } => self.renew_token(&token).await,
            ClientFrame::Typing { is_typing, room } => {
                let Some(room) = self.target_room(room, None).await? else {
                    return Ok(());
                };
                let chat = self.shared.chat.clone();
                chat.typing(self.user_id, &self.user_email, room, is_typing)
                    .await;
                Ok(())
            }
            ClientFrame::Read { msg_id, room } => {
                let Some(room) = self.target_room(room, None).await? else {
                    return Ok(());
                };
                // No message has such an id (below the pointer, it was taken as read already).
                if msg_id <= 0 {
                    return self
                        .error("not_found", "No such message in this room.")
                        .await;
                }
                if self.read_pointer(room).is_some_and(|at| msg_id <= at) {
                    self.shared.metrics.stale_reads.inc();
                    return Ok(());
                }
                let chat = self.shared.chat.clone();
                match chat.mark_read(self.user_id, room, msg_id).await {
                    Ok(at) => {
                        self.reads.insert(room, at);
                        Ok(())
                    }
                    Err(e) if e.code() == ErrorCode::NotFound => {
                        self.error("not_found", "No such message in this room.")
                            .await
                    }
                    Err(e) => self.refused(e).await,
                }
            }
            ClientFrame::Message {
                body,
                file_id,
                client_msg_id,
                parent_id,
                room,
            } => {
                let Some(room) = self.target_room(room, client_msg_id.as_deref()).await? else {
                    return Ok(());
                };
                let draft = MessageDraft {
                    body,
                    file_id,
                    client_msg_id,
                    parent_id,
                };
                self.send_message(room, draft).await
            }
        }
    }

    /// Takes a renewed access token: the connection then lasts until it expires. A token that
    /// is not valid, or is another user's, is refused with an `error` frame and changes nothing;
    /// an account gone since ends the connection as at the upgrade.
    async fn renew_token(&mut self, token: &str) -> Step {
        let not_valid = ErrorCode::TokenNotValid.code();
        let claims = match self.shared.tokens.verify_access(token) {
            // Checking allows a few seconds of clock skew; a renewal that expired, however
            // recently, would not extend the connection, and is refused as such.
            Ok(claims) if claims.exp <= chrono::Utc::now().timestamp() => {
                return self
                    .error(not_valid, "The access token is invalid or expired.")
                    .await
            }
            Ok(claims) if claims.user_id == self.user_id => claims,
            Ok(_) => return self.error(not_valid, "This token is another user's.").await,
            Err(_) => {
                return self
                    .error(not_valid, "The access token is invalid or expired.")
                    .await
            }
        };
        match self.shared.store.user_by_id(self.user_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.close(close::UNAUTHENTICATED, "unknown account", "unauthenticated")
                    .await;
                return Err(Ended);
            }
            Err(e) => {
                tracing::warn!(error = %e, "account lookup failed");
                return self
                    .error(ErrorCode::Unavailable.code(), "Try again shortly.")
                    .await;
            }
        }
        // The seats, looked at again: a loss whose announcement never came (refused by the bus
        // for longer than it is retried) would otherwise be followed for as long as renewals
        // go on.
        self.recheck_seats().await?;
        self.token_expires_at = self.token_expires_at.max(claims.exp);
        let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0);
        self.reply(Reply::Frame(
            json!({"type": "authenticated", "expires_at": expires_at}),
        ))
        .await
    }

    /// The room a frame is about: the connection's own, or the one it names (multiplexed).
    /// `None` after answering with an error frame, which carries `answering`, the
    /// `client_msg_id` of the message the frame is, if any.
    async fn target_room(
        &mut self,
        named: Option<i64>,
        answering: Option<&str>,
    ) -> Result<Option<i64>, Ended> {
        let room = match (self.fixed_room, named) {
            (Some(fixed), Some(named)) if fixed != named => {
                self.error_answering(
                    "invalid",
                    "This connection follows another room.",
                    answering,
                )
                .await?;
                return Ok(None);
            }
            (Some(fixed), _) => fixed,
            (None, Some(named)) => named,
            (None, None) => {
                let detail = "room: required on the multiplexed connection.";
                self.error_answering("invalid", detail, answering).await?;
                return Ok(None);
            }
        };
        if self.position(room).is_none() && self.fixed_room.is_none() {
            // A seat taken a moment ago (a join over REST) whose announcement has not reached
            // this connection yet: followed now, from the seat's start, as its announcement
            // would have had it (a frame naming a room without a seat costs one lookup).
            match self.shared.store.seat_start(room, self.user_id).await {
                Ok(Some(start)) => {
                    let after = start.position.last_msg_id.unwrap_or(0);
                    Box::pin(self.seated(room, after, Some(start.position.last_seq))).await?;
                }
                Ok(None) => {}
                Err(e) => {
                    // The frame is refused; the connection goes on.
                    tracing::warn!(error = %e, room, "seat lookup failed");
                    let unavailable = ErrorCode::Unavailable.code();
                    self.error_answering(unavailable, "Try again shortly.", answering)
                        .await?;
                    return Ok(None);
                }
            }
        }
        if self.position(room).is_none() {
            let detail = "No such room among this connection's rooms.";
            self.error_answering("not_found", detail, answering).await?;
            return Ok(None);
        }
        Ok(Some(room))
    }

    /// An error frame answering a frame; with the `client_msg_id` of the message it answers,
    /// as its ack would have (as stored: trimmed and composed).
    async fn error_answering(&mut self, code: &str, detail: &str, answering: Option<&str>) -> Step {
        let frame = naming(error_frame(code, detail), answering.map(stored_text));
        self.reply(Reply::Frame(frame)).await
    }

    /// Checks and queues a message; its answer follows its commit (see [`crate::replies`]).
    async fn send_message(&mut self, room: i64, draft: MessageDraft) -> Step {
        let client_msg_id = draft.client_msg_id.as_deref().map(stored_text);
        let chat = self.shared.chat.clone();
        match chat.queue_post(self.user_id, room, draft).await {
            Ok(queued) => {
                // Awaited later, outside this frame's span: it keeps the connection's.
                let posted = queued.posted().in_current_span();
                self.replies.push_post(room, client_msg_id, posted);
                Ok(())
            }
            Err(e) => {
                self.reply(Reply::Posted {
                    room,
                    client_msg_id,
                    result: Box::new(Err(e)),
                })
                .await
            }
        }
    }

    /// Sends an answer now, or queues it behind those still due, so answers keep the order of
    /// the frames.
    pub(crate) async fn reply(&mut self, reply: Reply) -> Step {
        if self.replies.is_empty() {
            self.send_reply(reply).await
        } else {
            self.replies.push_ready(reply);
            Ok(())
        }
    }

    /// Sends an answer that is due.
    pub(crate) async fn send_reply(&mut self, reply: Reply) -> Step {
        let (room, client_msg_id, result) = match reply {
            Reply::Frame(frame) => return self.send_json(&frame).await,
            Reply::Posted {
                room,
                client_msg_id,
                result,
            } => (room, client_msg_id, *result),
        };
        match result {
            Ok(posted) => {
                // As stored (composed, as text is), as the message frame and the errors name
                // it: a client matches them by it.
                let ack =
                    json!({"type": "ack", "client_msg_id": client_msg_id, "id": posted.message.id});
                self.send_json(&ack).await
            }
            // The seat went away since the connection opened. A per-room connection ends. A
            // multiplexed one keeps what it follows: this answer may be older than a seat taken
            // since, and the room's own stream (`member_left`, a deletion, a resync) ends a
            // seat in order with any new one.
            // Errors answering a message carry its client_msg_id, as its ack would: frames that
            // succeed silently (read, typing) leave the order of answers no guide.
            Err(e) if e.code() == ErrorCode::NotFound => {
                if self.fixed_room.is_some() {
                    // Which is gone, the room or the seat, is what the connection is told
                    // (4004 or 4003); with both there, what was not found is something else
                    // (a reply's thread, purged meanwhile), and the connection stays.
                    match self.shared.store.room_access(room, self.user_id).await {
                        // No access at all: the room is gone, or the user's organization seat.
                        Ok(None) => self.seat_or_room_lost(room).await?,
                        Ok(Some(access)) if !access.is_member => self.seat_lost(room).await?,
                        Ok(Some(_)) => {
                            return self.send_json(&naming(refusal(e), client_msg_id)).await
                        }
                        Err(store) => {
                            tracing::warn!(error = %store, room_id = room, "room check failed");
                            return self.end_on_server_error().await;
                        }
                    }
                }
                let frame = error_frame("not_found", "You are no longer a member of this room.");
                self.send_json(&naming(frame, client_msg_id)).await
            }
            Err(e) => self.send_json(&naming(refusal(e), client_msg_id)).await,
        }
    }

    /// Answers a refused action with an `error` frame carrying its code.
    async fn refused(&mut self, e: ChatError) -> Step {
        self.reply(Reply::Frame(refusal(e))).await
    }
}

/// The `client_msg_id` (trimmed, as acks carry it) of a `message` frame that cannot be read as
/// one (a field of the wrong type, a NUL), if the JSON says which.
fn answered_message(text: &str) -> Option<String> {
    let frame: serde_json::Value = serde_json::from_str(text).ok()?;
    if frame["type"] != "message" {
        return None;
    }
    frame["client_msg_id"].as_str().map(stored_text)
}

/// `frame` with the `client_msg_id` of the message it answers, if it had one.
fn naming(mut frame: serde_json::Value, client_msg_id: Option<String>) -> serde_json::Value {
    if let Some(id) = client_msg_id {
        frame["client_msg_id"] = json!(id);
    }
    frame
}

/// The `error` frame answering a refused action, with its code.
fn refusal(e: ChatError) -> serde_json::Value {
    let detail = match &e {
        ChatError::Invalid(fields) => fields
            .iter()
            .map(|(field, problems)| format!("{field}: {}", problems.join(" ")))
            .collect::<Vec<_>>()
            .join("; "),
        ChatError::Refused { detail, .. } => detail.to_string(),
        ChatError::RateLimited {
            retry_after,
            detail,
        } => format!(
            "{detail} Try again in {} s.",
            retry_after.as_secs_f64().ceil()
        ),
        ChatError::Unavailable(_) | ChatError::Internal(_) => {
            tracing::warn!(error = %e, "an action from the gateway failed");
            "Try again shortly.".to_owned()
        }
    };
    let code = match e.code() {
        ErrorCode::InternalError => ErrorCode::Unavailable,
        code => code,
    };
    error_frame(code.code(), &detail)
}
