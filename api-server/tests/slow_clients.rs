//! Slow, idle and greedy HTTP clients: half-sent heads and stalled bodies are hung up on, idle
//! keep-alive connections are closed, and one address holds only so many connections. The
//! listener is the one every service uses; the engine does not matter, so SQLite only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Engine, TestApp};
use testing::slow_client::{authority, read_until_closed, send_and_wait_for_close, HALF_A_HEAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(60);

async fn app(header: Duration, body: Duration, idle: Duration, per_ip: u32) -> TestApp {
    TestApp::spawn_with(Engine::Sqlite, |config| {
        config.http.header_timeout = header;
        config.http.body_timeout = body;
        config.http.idle_timeout = idle;
        config.http.max_connections_per_ip = per_ip;
    })
    .await
    .expect("SQLite needs no service")
}

/// Sends one complete request on `stream` and reads its response (which has a
/// `Content-Length`), leaving the connection open.
async fn round_trip(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: chatboard\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(LONG, stream.read(&mut chunk))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {received:?}");
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_hung_up_on() {
    let app = app(SHORT, LONG, LONG, 0).await;
    let (received, after) = send_and_wait_for_close(&app.base, HALF_A_HEAD).await;
    assert_eq!(received, "", "no response to half a request");
    assert!(
        after >= SHORT - Duration::from_millis(50),
        "closed too soon: {after:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_hung_up_on() {
    let app = app(LONG, SHORT, LONG, 0).await;
    // Declares 100 bytes, sends 10.
    let request =
        b"POST /auth/token/ HTTP/1.1\r\nHost: chatboard\r\nContent-Type: application/json\r\n\
Content-Length: 100\r\n\r\n{\"email\":";
    let (received, _) = send_and_wait_for_close(&app.base, request).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(
        received.contains("\"code\":\"request_timeout\""),
        "{received}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app(LONG, LONG, SHORT, 0).await;
    let mut stream = TcpStream::connect(authority(&app.base)).await.unwrap();
    assert!(round_trip(&mut stream).await.starts_with("HTTP/1.1 200"));
    let (received, after) = read_until_closed(&mut stream).await;
    assert_eq!(received, "");
    assert!(
        after >= SHORT - Duration::from_millis(50),
        "closed too soon: {after:?}"
    );
    // A connection that opens and never speaks is idle too.
    let (received, _) = send_and_wait_for_close(&app.base, b"").await;
    assert_eq!(received, "");
}

#[tokio::test]
async fn keep_alive_outlasts_the_header_timeout() {
    // The head clock starts at a request's first byte, not while the connection idles.
    let app = app(SHORT, LONG, LONG, 0).await;
    let mut stream = TcpStream::connect(authority(&app.base)).await.unwrap();
    assert!(round_trip(&mut stream).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(SHORT * 3).await;
    assert!(round_trip(&mut stream).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn one_address_holds_only_so_many_connections() {
    let app = app(LONG, LONG, LONG, 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(authority(&app.base)).await.unwrap();
        // A served request proves the connection was counted.
        assert!(round_trip(&mut stream).await.starts_with("HTTP/1.1 200"));
        open.push(stream);
    }
    let (received, _) = send_and_wait_for_close(&app.base, b"").await;
    assert!(received.starts_with("HTTP/1.1 503"), "{received}");
    assert!(received.contains("retry-after: 1") || received.contains("Retry-After: 1"));
    assert!(
        received.contains("\"code\":\"too_many_connections\""),
        "{received}"
    );
    // A closed connection gives its place back (once the server has seen the close).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let mut stream = TcpStream::connect(authority(&app.base)).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: chatboard\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (received, _) = read_until_closed(&mut stream).await;
        if received.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
