//! How the gateway closes sockets: refusals before a session starts (with the close code and
//! reason the client reads), and the closing handshake it finishes.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chatboard_core::shared_stream::SharedStream;
use tokio::io::ReadBuf;

use crate::session::close;
use crate::Shared;

/// Why a socket is closed before its session starts: the close code, the reason the client
/// reads, and the `reason` label of `chatboard_gateway_closed_total`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    code: u16,
    reason: &'static str,
    metric: &'static str,
}

impl Refusal {
    /// No token, or one that does not verify.
    pub(crate) const UNAUTHENTICATED: Self =
        Self::new(close::UNAUTHENTICATED, "unauthenticated", "unauthenticated");
    /// The token names an account that is gone.
    pub(crate) const UNKNOWN_ACCOUNT: Self =
        Self::new(close::UNAUTHENTICATED, "unknown account", "unauthenticated");
    /// The gateway is shutting down.
    pub(crate) const RESTARTING: Self =
        Self::new(close::RESTARTING, "server restarting", "shutdown");
    /// The user has as many sockets as allowed.
    pub(crate) const TOO_MANY_CONNECTIONS: Self = Self::new(
        close::POLICY,
        "too many connections",
        "too_many_connections",
    );
    /// The user opened connections faster than allowed (`CHATBOARD_WS_CONNECTS_PER_MINUTE`).
    pub(crate) const TOO_MANY_ATTEMPTS: Self = Self::new(
        close::POLICY,
        "too many connection attempts",
        "connect_rate",
    );
    /// `since` is not a message id: resuming from it would silently skip or repeat messages.
    pub(crate) const BAD_SINCE: Self =
        Self::new(close::POLICY, "since must be a message id", "protocol");
    /// The room does not exist (or is not visible to the user).
    pub(crate) const NO_ROOM: Self = Self::new(close::NO_ROOM, "no such room", "no_room");
    /// The user has no seat in the room.
    pub(crate) const NOT_MEMBER: Self = Self::new(close::NOT_MEMBER, "not a member", "not_member");
    /// A lookup failed: try again.
    pub(crate) const SERVER_ERROR: Self =
        Self::new(close::SERVER_ERROR, "try again", "server_error");

    const fn new(code: u16, reason: &'static str, metric: &'static str) -> Self {
        Self {
            code,
            reason,
            metric,
        }
    }
}

/// Sends a close frame on a socket that has no session yet.
pub(crate) async fn close_socket(mut socket: WebSocket, shared: &Shared, refusal: Refusal) {
    shared.metrics.closed(refusal.metric);
    let frame = CloseFrame {
        code: refusal.code,
        reason: Utf8Bytes::from_static(refusal.reason),
    };
    if socket.send(WsMessage::Close(Some(frame))).await.is_ok() {
        finish_closing(&mut socket, None).await;
    }
}

/// How long a socket the server is closing keeps reading for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Finishes a closing handshake the server started: reads and discards what the client still
/// sends until its own close frame (or [`CLOSE_GRACE`]). A socket dropped with unread data is
/// answered by the kernel with a reset, which can destroy the close frame before the client
/// reads it: a flooding client then saw 1006 and never learnt its 4008. What the client sends
/// now is not counted (`stream`'s frame meter, if any, is taken off); should the library fail a
/// read all the same, the rest is read from `stream` itself.
pub(crate) async fn finish_closing(socket: &mut WebSocket, stream: Option<&SharedStream>) {
    if let Some(stream) = stream {
        stream.unwatch_reads();
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            match socket.recv().await {
                Some(Ok(WsMessage::Close(_))) | None => return,
                Some(Ok(_)) => {}
                Some(Err(_)) => return discard_until_closed(stream).await,
            }
        }
    })
    .await;
}

/// Finishes a closing handshake after the WebSocket library failed a read (a frame too large,
/// a flood, bytes that are not WebSocket): the library reads nothing more, so what the client
/// still sends is read from the socket itself and discarded until it closes (or
/// [`CLOSE_GRACE`]), for the same reason as in [`finish_closing`].
pub(crate) async fn drain_after_read_error(stream: Option<&SharedStream>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, discard_until_closed(stream)).await;
}

/// Reads and discards, uncounted, until the client closes its side or the socket fails. The
/// client's close frame is not looked for (the library knew where frames began, and it has
/// given up): a client that waits for the server to close first is held until the grace ends.
async fn discard_until_closed(stream: Option<&SharedStream>) {
    let Some(stream) = stream else {
        return;
    };
    stream.unwatch_reads();
    let mut discard = [0u8; 4096];
    loop {
        let mut buf = ReadBuf::new(&mut discard);
        match std::future::poll_fn(|cx| stream.poll_read(cx, &mut buf)).await {
            Ok(()) if !buf.filled().is_empty() => {}
            _ => return,
        }
    }
}
