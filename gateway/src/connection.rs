//! One WebSocket following one room: replay from the database, then live events from the hub,
//! with no gap and no duplicate at the seam and messages in id order.
//!
//! The connection follows the room on the hub *before* reading the database, so every message
//! is either in the replay or arrives live (or both, and ids drop the copy). Live messages carry
//! their seq, the room's gapless count: a seq beyond the next one means a message was committed
//! but its announcement is late or lost, and the database, which has it, fills the gap first.

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chatboard_core::bus::BusEvent;
use chatboard_core::model::Message;
use chatboard_core::store::{PageCursor, Store};
use serde_json::json;

use crate::client_frames::{on_client_frame, Member};
use crate::hub::{Following, Live};

/// Close codes of the protocol (API.md).
pub mod close {
    /// Missing, invalid or expired token.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// Not a member of the room.
    pub const NOT_MEMBER: u16 = 4003;
    /// No such room.
    pub const NO_ROOM: u16 = 4004;
    /// The client reads too slowly.
    pub const TOO_SLOW: u16 = 4009;
}

/// Messages read from the database per page while catching up.
const CATCH_UP_PAGE: u32 = 100;

/// Where a connection stands in its room.
struct Position {
    /// Whose connection (reads are made as them, so a lost seat shows).
    user_id: i64,
    /// Newest message id delivered.
    last_id: i64,
    /// Its seq, once known.
    last_seq: Option<i64>,
}

/// Sends a close frame and ends.
pub async fn close_with(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(WsMessage::Close(Some(frame))).await;
}

/// Serves a member's connection to a room until either side ends it.
pub async fn follow_room(
    mut socket: WebSocket,
    member: Member,
    mut following: Following,
    since: Option<i64>,
) {
    let (store, room_id, user_id) = (member.store.clone(), member.room_id, member.user_id);
    // Without `since`, the client wants what comes next: start after the newest message as it
    // stands now that the connection is following the room, so a later catch-up (after a gap)
    // never replays older history it did not ask for.
    let last_id = match since {
        Some(id) => id,
        None => match store.page_version(room_id, user_id).await {
            Ok(Some(version)) => version.last_msg_id.unwrap_or(0),
            Ok(None) => return close_with(socket, close::NOT_MEMBER, "not a member").await,
            Err(e) => {
                tracing::warn!(error = %e, room_id, "reading the room's position failed");
                return close_with(socket, 1011, "try again").await;
            }
        },
    };
    // Only now greet: whatever is committed after the client sees this is delivered.
    let hello = json!({"type": "connection", "room": room_id, "user_id": user_id});
    if send_json(&mut socket, &hello).await.is_err() {
        return;
    }
    let mut at = Position {
        user_id,
        last_id,
        last_seq: None,
    };
    if since.is_some()
        && catch_up(&mut socket, &*store, room_id, &mut at)
            .await
            .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            live = following.events.recv() => {
                let outcome = match live {
                    Some(Live::Event(event)) => on_event(&mut socket, &*store, room_id, &mut at, &event).await,
                    Some(Live::Resync) => catch_up(&mut socket, &*store, room_id, &mut at).await,
                    None => {
                        close_with(socket, close::TOO_SLOW, "too slow").await;
                        return;
                    }
                };
                if outcome.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    if on_client_frame(&mut socket, &member, text.as_str()).await.is_err() {
                        return;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by the library; binary frames are not part of the protocol.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Delivers a live event, filling any gap from the database first.
async fn on_event(
    socket: &mut WebSocket,
    store: &dyn Store,
    room_id: i64,
    at: &mut Position,
    event: &BusEvent,
) -> Result<(), axum::Error> {
    match event {
        BusEvent::Message { message, seq } => {
            if message.id <= at.last_id || at.last_seq.is_some_and(|last| *seq <= last) {
                return Ok(()); // already delivered (replay, or a repeated announcement)
            }
            if at.last_seq.is_some_and(|last| *seq > last + 1) {
                // Something committed before this one has not been announced yet: the
                // database has it, and the catch-up delivers this one too, in order.
                return catch_up(socket, store, room_id, at).await;
            }
            deliver(socket, at, message).await
        }
        // Typists do not hear their own typing.
        BusEvent::Typing { user_id, .. } if *user_id == at.user_id => Ok(()),
        other => send_json(socket, other).await,
    }
}

/// Delivers every stored message after the connection's position, oldest first.
async fn catch_up(
    socket: &mut WebSocket,
    store: &dyn Store,
    room_id: i64,
    at: &mut Position,
) -> Result<(), axum::Error> {
    loop {
        let page = match store
            .list_messages(
                room_id,
                at.user_id,
                PageCursor::After(at.last_id),
                CATCH_UP_PAGE,
            )
            .await
        {
            Ok(Some(page)) => page,
            // The seat is gone: so is the connection.
            Ok(None) => return Err(axum::Error::new("no longer a member of the room")),
            Err(e) => {
                tracing::warn!(error = %e, room_id, "catch-up read failed");
                return Err(axum::Error::new(e));
            }
        };
        let full = page.len() as u32 == CATCH_UP_PAGE;
        for message in &page {
            deliver(socket, at, message).await?;
        }
        if !full {
            return Ok(());
        }
    }
}

async fn deliver(
    socket: &mut WebSocket,
    at: &mut Position,
    message: &Message,
) -> Result<(), axum::Error> {
    let frame = BusEvent::new_message(message.clone());
    send_json(socket, &frame).await?;
    at.last_id = message.id;
    at.last_seq = Some(message.seq);
    Ok(())
}

/// Sends one JSON text frame.
pub(crate) async fn send_json(
    socket: &mut WebSocket,
    value: &impl serde::Serialize,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(value).map_err(axum::Error::new)?;
    socket.send(WsMessage::Text(text.into())).await
}
