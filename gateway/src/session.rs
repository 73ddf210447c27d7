//! One WebSocket connection following one room (`/ws/rooms/{id}/`) or all of its user's rooms
//! (`/ws/`): replay from the database, live events from the hub, presence, client frames and
//! the protections (frame rate, heartbeat, slow consumer, shutdown).
//!
//! The connection follows its rooms on the hub *before* reading where they stand, so every
//! message is either in the replay or arrives live (or both, and ids drop the copy). Live
//! messages carry their seq, the room's gapless count: a seq beyond the next one means a message
//! was committed but its announcement is late or lost, and the database, which has it, fills
//! the gap first. So each room's messages reach the socket once each, in id order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chatboard_core::bus::BusEvent;
use chatboard_core::model::Message;
use chatboard_store::{PageCursor, Timeline};
use futures::SinkExt;
use serde_json::json;

use crate::closing::{drain_after_read_error, finish_closing};
use crate::hub::{Live, Outgoing, Subscription};
use crate::outlet::{fanout_latency, Outlet};
use crate::replies::{Replies, Reply};
use crate::{Shared, Slot};

mod allowance;
mod presence;
mod seats;

use allowance::FrameAllowance;

/// Close codes of the protocol (API.md).
pub mod close {
    /// Missing, invalid or expired token.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// Not a member of the room.
    pub const NOT_MEMBER: u16 = 4003;
    /// No such room.
    pub const NO_ROOM: u16 = 4004;
    /// Too many frames, too many connections, or a protocol violation.
    pub const POLICY: u16 = 4008;
    /// The client reads too slowly.
    pub const TOO_SLOW: u16 = 4009;
    /// The server is going away: reconnect (to another gateway).
    pub const RESTARTING: u16 = 1012;
    /// The server failed: try again.
    pub const SERVER_ERROR: u16 = 1011;
}

/// Client frames allowed per second per connection (and as a burst).
pub const FRAMES_PER_SECOND: u32 = 20;

/// Messages read from the database per page while catching up.
const CATCH_UP_PAGE: u32 = 100;

/// The connection is over (the socket failed or was closed); nothing more to send.
#[derive(Debug)]
pub(crate) struct Ended;

/// What a step of the connection yields: go on, or stop.
pub(crate) type Step = Result<(), Ended>;

/// Where a connection stands in a room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    /// Newest message id delivered (or the start point).
    pub last_id: i64,
    /// Its seq, once known.
    pub last_seq: Option<i64>,
}

/// One authenticated connection.
pub(crate) struct Session {
    pub(crate) socket: WebSocket,
    pub(crate) shared: Arc<Shared>,
    pub(crate) user_id: i64,
    pub(crate) user_email: String,
    /// When the access token the connection authenticated with (or last renewed with an
    /// `auth` frame) expires, unix seconds: the connection then closes with `4001`, as a
    /// request with that token would be refused.
    pub(crate) token_expires_at: i64,
    /// The room of a per-room connection; `None` on the multiplexed endpoint.
    pub(crate) fixed_room: Option<i64>,
    /// Where the connection stands in each room, shared with the hub's direct writes.
    pub(crate) outlet: Arc<Outlet>,
    pub(crate) subscription: Subscription,
    /// While set, frames are queued in the socket's write buffer and go out with the next
    /// flush (see [`Session::on_live_batch`]).
    pub(crate) batching: bool,
    /// Answers due to the client's frames, oldest first.
    pub(crate) replies: Replies,
    /// The user's connection slot, given back when the session ends.
    pub(crate) _slot: Slot,
    /// The reader's pointer in each room this connection sent a receipt for, as the database
    /// last answered: a receipt at or below it cannot move it, and is answered without the
    /// database (a client may send 20 frames a second on each of 16 sockets, and every receipt
    /// took the writer). It allocates nothing until the first receipt.
    pub(crate) reads: std::collections::HashMap<i64, i64>,
}

impl Session {
    /// The session of an admitted connection, following what `subscription` follows.
    pub(crate) fn new(
        socket: WebSocket,
        shared: &Arc<Shared>,
        identity: crate::Identity,
        fixed_room: Option<i64>,
        outlet: Arc<Outlet>,
        subscription: Subscription,
    ) -> Self {
        let crate::Identity {
            user_id,
            user_email,
            token_expires_at,
            slot,
        } = identity;
        Self {
            socket,
            shared: shared.clone(),
            user_id,
            user_email,
            token_expires_at,
            fixed_room,
            outlet,
            subscription,
            batching: false,
            replies: Replies::default(),
            _slot: slot,
            reads: std::collections::HashMap::new(),
        }
    }

    /// The connection's stream, when the server shares it.
    pub(crate) fn stream(&self) -> Option<&chatboard_core::shared_stream::SharedStream> {
        self.outlet.stream()
    }

    /// The reader's pointer in `room_id` as the database last answered this connection.
    pub(crate) fn read_pointer(&self, room_id: i64) -> Option<i64> {
        self.reads.get(&room_id).copied()
    }

    /// Forgets the reader's pointer in `room_id`: a seat lost and taken again starts a new one.
    pub(crate) fn forget_read(&mut self, room_id: i64) {
        self.reads.remove(&room_id);
    }

    /// Where the connection stands in `room_id`, if it follows it.
    pub(crate) fn position(&self, room_id: i64) -> Option<Position> {
        self.outlet.state().positions.get(room_id)
    }

    fn set_position(&self, room_id: i64, at: Position) {
        self.outlet.state().positions.insert(room_id, at);
    }

    /// The rooms the connection follows.
    fn rooms(&self) -> Vec<i64> {
        self.outlet.state().positions.rooms()
    }

    /// Serves the connection until it ends, with its user counted as present meanwhile.
    /// Boxed: an `async fn` keeps a `mut self` both as its argument and as its local, so a
    /// session by value would sit twice in every idle connection's task.
    pub(crate) async fn run(mut self: Box<Self>, replay: bool) {
        let presence = self.shared.presence.clone();
        presence.connected(self.user_id).await;
        // Messages still waiting for their commit are announced all the same, by their own
        // tasks (see `replies`); their answers have nowhere to go.
        self.converse(replay).await;
        presence.disconnected(self.user_id).await;
    }

    /// Greets, replays, then serves frames both ways until the connection ends.
    async fn converse(&mut self, replay: bool) {
        let mut shutdown = self.shared.shutdown.subscribe();
        // Resolves when the gateway starts shutting down (or is gone); made once, polled on
        // every turn of the loop.
        let shutting_down = async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::pin!(shutting_down);
        let hello = json!({
            "type": "connection",
            "room": self.fixed_room,
            "user_id": self.user_id,
            "user_email": self.user_email,
        });
        // Boxed, like the loop's branches: the future's size is that of its largest state, and
        // an idle connection should keep only what the loop's waits need.
        if Box::pin(self.send_json(&hello)).await.is_err()
            || Box::pin(self.send_presence_snapshot()).await.is_err()
        {
            return;
        }
        let replaying = Instant::now();
        if replay {
            let rooms = self.rooms();
            for room_id in rooms {
                if Box::pin(self.catch_up(room_id)).await.is_err() {
                    return;
                }
            }
        }
        let ping_every = self.shared.settings.ping_interval;
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut allowance = FrameAllowance::new();
        // The `since` replay is the gateway's time as a live catch-up is: frames the client
        // sent at the allowed rate meanwhile, read at once after it, are not a flood.
        allowance.own_work(replaying.elapsed());
        let mut last_heard = Instant::now();
        loop {
            allowance.reading(self.replies.has_room());
            // Parked with nothing queued: the hub may write the rooms' next messages itself.
            self.outlet.open_if(|| self.subscription.events.is_empty());
            let step = tokio::select! {
                // In this order: shutdown first, then queued events before client frames.
                biased;
                () = &mut shutting_down => {
                    self.outlet.close();
                    if Box::pin(self.send_replies()).await.is_err() {
                        return;
                    }
                    return Box::pin(self.close(close::RESTARTING, "server restarting", "shutdown")).await;
                }
                live = self.subscription.events.recv_async() => {
                    // Awake: the hub queues from here on, and no direct write is under way.
                    self.outlet.close();
                    let live = live.ok();
                    if self.subscription.too_slow() {
                        // A seat taken off the queue here is the connection's to leave as it
                        // ends (the hub already put it in the room).
                        if let Some(Live::Seated { room, .. }) = &live {
                            self.subscription.adopt(*room);
                        }
                        return Box::pin(self.close(close::TOO_SLOW, "too slow", "slow_consumer")).await;
                    }
                    let Some(live) = live else {
                        return;
                    };
                    let began = Instant::now();
                    // Boxed, like every branch's work: the loop's own state is what an idle
                    // connection keeps, so it holds only the waits.
                    let step = Box::pin(self.on_live_batch(live)).await;
                    // Catching up from the database is the gateway's time, not the client's:
                    // neither its frames waiting meanwhile nor its silence count against it.
                    let busy = began.elapsed();
                    if allowance.own_work(busy) {
                        last_heard = (last_heard + busy).min(Instant::now());
                    }
                    step
                }
                reply = self.replies.next(), if !self.replies.is_empty() => {
                    self.outlet.close();
                    Box::pin(self.send_reply(reply)).await
                }
                // While too many answers are due the frames wait in the socket.
                incoming = self.socket.recv(), if self.replies.has_room() => {
                    self.outlet.close();
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(WsMessage::Text(text))) => {
                            self.shared.metrics.frames_in.inc();
                            if !allowance.admit() {
                                return Box::pin(self.close(close::POLICY, "rate limit", "rate_limit")).await;
                            }
                            Box::pin(self.on_client_frame(text.as_str())).await
                        }
                        Some(Ok(WsMessage::Binary(_))) => {
                            self.shared.metrics.frames_in.inc();
                            if !allowance.admit() {
                                return Box::pin(self.close(close::POLICY, "rate limit", "rate_limit")).await;
                            }
                            Box::pin(self.error("invalid_frame", "Frames are JSON text.")).await
                        }
                        // The library queued the close frame answering the client's: it goes out
                        // with a flush, which finishes the closing handshake.
                        Some(Ok(WsMessage::Close(_))) => {
                            let _ = Box::pin(self.socket.flush()).await;
                            return;
                        }
                        None => return,
                        // Fragments and control frames faster than any client needs.
                        Some(Err(e)) if flooded(&e) => {
                            return Box::pin(self.close_after_read_error("rate limit", "rate_limit")).await;
                        }
                        // The peer went away without a closing handshake: nothing to answer.
                        Some(Err(e)) if peer_vanished(&e) => return,
                        // A frame over the size limit, or not WebSocket at all.
                        Some(Err(_)) => {
                            return Box::pin(self.close_after_read_error("protocol violation", "protocol")).await;
                        }
                        // Pings are answered by the library; pongs only show the peer is alive.
                        // Both count against the frame rate: each ping costs a pong's write.
                        Some(Ok(_)) => {
                            if !allowance.admit() {
                                return Box::pin(self.close(close::POLICY, "rate limit", "rate_limit")).await;
                            }
                            Ok(())
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    self.outlet.close();
                    if !self.replies.has_room() {
                        // Not reading is the gateway's doing, not the client's silence.
                        last_heard = Instant::now();
                    }
                    let silent = last_heard.elapsed();
                    if silent >= ping_every * 2 {
                        self.shared.metrics.closed("dead_peer");
                        return;
                    }
                    // Checked with the heartbeat, which every connection has anyway: a timer
                    // of its own would add to what each idle connection keeps.
                    // Not while reads wait for answers (for a while): an `auth` frame renewing
                    // the token may be among the frames not read yet.
                    if chrono::Utc::now().timestamp() >= self.token_expires_at
                        && !allowance.paused_within(ping_every * 2)
                    {
                        return Box::pin(self.close(close::UNAUTHENTICATED, "token expired", "token_expired")).await;
                    }
                    Box::pin(self.send(WsMessage::Ping(Default::default()))).await
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Sends every answer still due, each once ready, oldest first.
    async fn send_replies(&mut self) -> Step {
        while !self.replies.is_empty() {
            let reply = self.replies.next().await;
            self.send_reply(reply).await?;
        }
        Ok(())
    }

    /// Sends a close frame, waits for the client's, and ends.
    pub(crate) async fn close(&mut self, code: u16, reason: &'static str, metric: &str) {
        self.shared.metrics.closed(metric);
        self.send_close(code, reason).await;
    }

    /// Closes with 4008 after the WebSocket library failed a read: it reads nothing more, so
    /// the closing handshake is finished on the socket itself.
    async fn close_after_read_error(&mut self, reason: &'static str, metric: &str) {
        self.shared.metrics.closed(metric);
        let frame = CloseFrame {
            code: close::POLICY,
            reason: Utf8Bytes::from_static(reason),
        };
        if self.send(WsMessage::Close(Some(frame))).await.is_ok() {
            drain_after_read_error(self.outlet.stream()).await;
        }
    }

    /// Sends a close frame and finishes the closing handshake.
    async fn send_close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if self.send(WsMessage::Close(Some(frame))).await.is_ok() {
            finish_closing(&mut self.socket, self.outlet.stream()).await;
        }
    }

    /// Sends one frame (or queues it while batching); a peer that does not take it within a
    /// ping interval is given up on.
    async fn send(&mut self, frame: WsMessage) -> Step {
        let limit = self.shared.settings.ping_interval;
        let sent = if self.batching {
            tokio::time::timeout(limit, self.socket.feed(frame)).await
        } else {
            tokio::time::timeout(limit, self.socket.send(frame)).await
        };
        match sent {
            Ok(Ok(())) => {
                self.shared.metrics.frames_out.inc();
                Ok(())
            }
            Ok(Err(_)) => Err(Ended),
            Err(_) => {
                self.shared.metrics.closed("slow_consumer");
                Err(Ended)
            }
        }
    }

    /// Writes out whatever is queued in the socket's write buffer.
    async fn flush(&mut self) -> Step {
        let limit = self.shared.settings.ping_interval;
        match tokio::time::timeout(limit, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ended),
            Err(_) => {
                self.shared.metrics.closed("slow_consumer");
                Err(Ended)
            }
        }
    }

    /// Handles `first` and whatever else is already queued (up to a bound), then writes them
    /// out together: when the gateway is busy and events pile up, a socket gets several frames
    /// per system call instead of one, so the busier it is the less each delivery costs.
    async fn on_live_batch(&mut self, first: Live) -> Step {
        const MAX_BATCH: usize = 64;
        self.batching = true;
        let mut step = self.on_live(first).await;
        let mut handled = 1;
        while step.is_ok() && handled < MAX_BATCH {
            let Ok(next) = self.subscription.events.try_recv() else {
                break;
            };
            step = self.on_live(next).await;
            handled += 1;
        }
        self.batching = false;
        // Write out what was queued even when the batch ends the connection: its frames, and
        // the close frame that says why.
        let flushed = self.flush().await;
        step.and(flushed)
    }

    /// Sends one JSON text frame.
    pub(crate) async fn send_json(&mut self, value: &impl serde::Serialize) -> Step {
        let text = serde_json::to_string(value).map_err(|e| {
            tracing::error!(error = %e, "frame encoding failed");
            Ended
        })?;
        self.send(WsMessage::Text(text.into())).await
    }

    /// Answers a client frame with an `error` frame (in turn, see [`crate::replies`]).
    pub(crate) async fn error(&mut self, code: &str, detail: &str) -> Step {
        self.reply(Reply::Frame(error_frame(code, detail))).await
    }

    async fn on_live(&mut self, live: Live) -> Step {
        match live {
            Live::Event(outgoing) => self.on_event(&outgoing).await,
            Live::Presence(change) if change.user_id != self.user_id => {
                self.send_presence(change).await
            }
            Live::Presence(_) => Ok(()),
            // Rare, and their futures are large: boxed, so an idle connection's task stays small.
            Live::Seated {
                room,
                after,
                after_seq,
            } => Box::pin(self.seated(room, after, after_seq)).await,
            Live::Resync => Box::pin(self.resync()).await,
            Live::PresenceResync => {
                self.subscription.presence_resync_begins();
                Box::pin(self.send_presence_state()).await
            }
            // The batch's flush writes out what the hub left unsent.
            Live::Flush => Ok(()),
        }
    }

    /// Delivers a live event, filling any gap from the database first.
    async fn on_event(&mut self, outgoing: &Outgoing) -> Step {
        let event = &outgoing.event;
        let room_id = event.room();
        let Some(at) = self.position(room_id) else {
            return Ok(()); // a room this connection stopped following
        };
        match event {
            BusEvent::Message { message, seq } => {
                if message.id <= at.last_id {
                    return Ok(()); // already delivered (replay, or a repeated announcement)
                }
                if *seq <= 0 {
                    // Announced again from the outbox, which does not keep seqs: the
                    // database has the message and its place in the room.
                    return Box::pin(self.catch_up(room_id)).await;
                }
                if at.last_seq.is_some_and(|last| *seq <= last) {
                    return Ok(()); // already delivered
                }
                if at.last_seq.is_some_and(|last| *seq > last + 1) {
                    // Something committed before this one has not been announced yet: the
                    // database has it, and the catch-up delivers this one too, in order.
                    self.shared.metrics.gap_catch_ups.inc();
                    return Box::pin(self.catch_up(room_id)).await;
                }
                self.deliver(message, Some(outgoing.text.clone())).await
            }
            // Typists do not hear their own typing.
            BusEvent::Typing { user_id, .. } if *user_id == self.user_id => Ok(()),
            // A mention goes to the multiplexed sockets of those mentioned, and only to them.
            BusEvent::Mention {
                room,
                message,
                user_ids,
            } => {
                if self.fixed_room.is_some() || user_ids.binary_search(&self.user_id).is_err() {
                    return Ok(());
                }
                let frame =
                    serde_json::json!({"type": "mention", "room": room, "message": message});
                self.send_json(&frame).await
            }
            // Seat changes are for the gateway, not for clients.
            BusEvent::MemberLeft { user_id, .. } if *user_id == self.user_id => {
                self.seat_maybe_lost(room_id).await
            }
            BusEvent::MemberLeft { .. } | BusEvent::MemberSeated { .. } => Ok(()),
            BusEvent::RoomDeleted { .. } => self.room_gone(room_id).await,
            _ => self.send(WsMessage::Text(outgoing.text.clone())).await,
        }
    }

    /// Delivers every stored message of the room after the connection's position, oldest first.
    #[tracing::instrument(name = "socket", skip_all, fields(user_id = self.user_id, room = ?self.fixed_room))]
    pub(crate) async fn catch_up(&mut self, room_id: i64) -> Step {
        loop {
            let Some(at) = self.position(room_id) else {
                return Ok(());
            };
            let page = self
                .shared
                .store
                .list_messages(
                    room_id,
                    self.user_id,
                    Timeline::All,
                    PageCursor::After(at.last_id),
                    CATCH_UP_PAGE,
                )
                .await;
            let page = match page {
                Ok(Some(page)) => page,
                Ok(None) => return self.seat_or_room_lost(room_id).await,
                Err(e) => {
                    tracing::warn!(error = %e, room_id, "catch-up read failed");
                    return self.end_on_server_error().await;
                }
            };
            let full = page.len() as u32 == CATCH_UP_PAGE;
            for message in &page {
                self.deliver(message, None).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The database failed the connection: it ends with 1011, and the client's next one
    /// starts afresh.
    pub(crate) async fn end_on_server_error(&mut self) -> Step {
        self.shared.metrics.closed("server_error");
        self.send_close(close::SERVER_ERROR, "try again").await;
        Err(Ended)
    }

    /// Sends a message frame (`live` carries the frame the hub encoded; replayed messages are
    /// encoded here) and moves the room's position.
    async fn deliver(&mut self, message: &Message, live: Option<Utf8Bytes>) -> Step {
        let is_live = live.is_some();
        match live {
            Some(text) => self.send(WsMessage::Text(text)).await?,
            None => {
                self.send_json(&BusEvent::new_message(message.clone()))
                    .await?
            }
        }
        self.outlet
            .count_delivery(is_live.then(|| fanout_latency(message)));
        self.set_position(
            message.room,
            Position {
                last_id: message.id,
                last_seq: Some(message.seq),
            },
        );
        Ok(())
    }
}

/// An `error` frame.
pub(crate) fn error_frame(code: &str, detail: &str) -> serde_json::Value {
    json!({"type": "error", "code": code, "detail": detail})
}

/// Whether a read failed because the peer dropped the connection (no close frame, a reset),
/// rather than because of anything it sent.
fn peer_vanished(error: &axum::Error) -> bool {
    use tungstenite::error::{Error, ProtocolError};
    let cause = std::error::Error::source(error).and_then(|e| e.downcast_ref::<Error>());
    matches!(
        cause,
        Some(
            Error::Io(_)
                | Error::ConnectionClosed
                | Error::AlreadyClosed
                | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        )
    )
}

/// Whether a read failed because the client sent frames too fast (see [`crate::frame_meter`]).
fn flooded(error: &axum::Error) -> bool {
    use tungstenite::error::Error;
    let cause = std::error::Error::source(error).and_then(|e| e.downcast_ref::<Error>());
    matches!(cause, Some(Error::Io(e)) if crate::frame_meter::is_flood(e))
}

/// How long a graceful shutdown waits for connections to close.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
