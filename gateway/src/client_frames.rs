//! Frames from the client: `ping`, `typing`, `read` and `message`. A message sent over the
//! socket takes exactly the REST path: the same validation, idempotency on `client_msg_id`, the
//! same transaction with its outbox event, the same announcement; then it is acknowledged.

use std::sync::Arc;

use axum::extract::ws::WebSocket;
use chatboard_core::bus::{Bus, BusEvent};
use chatboard_core::model::{message_body_problem, CLIENT_MSG_ID_MAX};
use chatboard_core::store::{NewMessage, Store, StoreError};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::connection::send_json;

/// Who is on the other end, in which room.
pub struct Member {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Where changes are announced.
    pub bus: Arc<dyn Bus>,
    /// The room followed.
    pub room_id: i64,
    /// The user.
    pub user_id: i64,
    /// The user's email (typing frames carry it).
    pub user_email: String,
}

/// The frames a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Ping,
    Typing {
        is_typing: bool,
    },
    Read {
        msg_id: i64,
    },
    Message {
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
}

/// Answers one client frame; an `Err` ends the connection.
pub async fn on_client_frame(
    socket: &mut WebSocket,
    member: &Member,
    text: &str,
) -> Result<(), axum::Error> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(e) => return error(socket, "invalid_frame", &e.to_string()).await,
    };
    match frame {
        ClientFrame::Ping => send_json(socket, &json!({"type": "pong"})).await,
        ClientFrame::Typing { is_typing } => {
            announce(
                member,
                BusEvent::Typing {
                    room: member.room_id,
                    user_id: member.user_id,
                    user_email: member.user_email.clone(),
                    is_typing,
                },
            )
            .await;
            Ok(())
        }
        ClientFrame::Read { msg_id } => {
            match member
                .store
                .mark_read(member.room_id, member.user_id, msg_id)
                .await
            {
                Ok(last_read_msg_id) => {
                    announce(
                        member,
                        BusEvent::Read {
                            room: member.room_id,
                            user_id: member.user_id,
                            last_read_msg_id,
                        },
                    )
                    .await;
                    Ok(())
                }
                Err(StoreError::NotFound) => {
                    error(socket, "not_found", "No such message in this room.").await
                }
                Err(e) => unavailable(socket, e).await,
            }
        }
        ClientFrame::Message {
            body,
            client_msg_id,
        } => send_message(socket, member, body, client_msg_id).await,
    }
}

async fn send_message(
    socket: &mut WebSocket,
    member: &Member,
    body: String,
    client_msg_id: Option<String>,
) -> Result<(), axum::Error> {
    if let Some(problem) = message_body_problem(&body) {
        return error(socket, "invalid", &format!("body: {problem}")).await;
    }
    let client_msg_id = client_msg_id.map(|id| id.trim().to_owned());
    if client_msg_id
        .as_deref()
        .is_some_and(|id| id.is_empty() || id.chars().count() > CLIENT_MSG_ID_MAX)
    {
        let detail = format!("client_msg_id: 1 to {CLIENT_MSG_ID_MAX} characters.");
        return error(socket, "invalid", &detail).await;
    }
    let posted = member
        .store
        .post_message(
            NewMessage {
                room_id: member.room_id,
                sender_id: member.user_id,
                body,
                client_msg_id: client_msg_id.clone(),
            },
            Utc::now(),
        )
        .await;
    match posted {
        Ok((message, created)) => {
            if created {
                announce(member, BusEvent::new_message(message.clone())).await;
            }
            send_json(
                socket,
                &json!({"type": "ack", "client_msg_id": client_msg_id, "id": message.id}),
            )
            .await
        }
        // The seat went away since the connection opened.
        Err(StoreError::NotFound) => Err(axum::Error::new("no longer a member of the room")),
        Err(e) => unavailable(socket, e).await,
    }
}

/// Announces a committed change; a failure only delays live delivery (see the API's note).
async fn announce(member: &Member, event: BusEvent) {
    if let Err(e) = member.bus.publish(&event).await {
        tracing::warn!(error = %e, room_id = member.room_id, "bus publish failed");
    }
}

async fn error(socket: &mut WebSocket, code: &str, detail: &str) -> Result<(), axum::Error> {
    send_json(
        socket,
        &json!({"type": "error", "code": code, "detail": detail}),
    )
    .await
}

async fn unavailable(socket: &mut WebSocket, e: StoreError) -> Result<(), axum::Error> {
    tracing::warn!(error = %e, "store call from the gateway failed");
    error(socket, "unavailable", "Try again shortly.").await
}
