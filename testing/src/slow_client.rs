//! A client that sends part of a request and then nothing, to see a listener hang up on it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a listener to hang up before calling it stuck: far above any
/// timeout the tests configure, so only a listener that never hangs up fails.
pub const HANG_UP_BOUND: Duration = Duration::from_secs(20);

/// The `host:port` of a base URL (`http://127.0.0.1:8080` → `127.0.0.1:8080`).
pub fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/')
}

/// Connects to `base`, sends `sent`, then waits (at most [`HANG_UP_BOUND`]) for the server to
/// close: what it wrote before closing, and how long after the last byte sent it closed.
pub async fn send_and_wait_for_close(base: &str, sent: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(authority(base)).await.expect("connect");
    stream.write_all(sent).await.expect("send");
    read_until_closed(&mut stream).await
}

/// Reads until the peer closes (EOF or reset), at most [`HANG_UP_BOUND`]: what came, and when.
pub async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = HANG_UP_BOUND.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "still open after {HANG_UP_BOUND:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// A request head cut off before its end.
pub const HALF_A_HEAD: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: chatboard\r\nX-Slow: ";

/// Asserts that the listener at `base` hangs up, without a word, on a client that sent half a
/// request head (start it with a short `CHATBOARD_HTTP_HEADER_TIMEOUT_MS`).
pub async fn assert_half_a_head_is_hung_up_on(base: &str) {
    let (received, _) = send_and_wait_for_close(base, HALF_A_HEAD).await;
    assert_eq!(received, "", "no answer to half a request");
}
