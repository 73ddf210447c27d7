//! The local store's signed PUT: a write still under way long after its link expired is refused
//! and leaves no file. It used to be checked only when the request began, so a body sent
//! slowly enough could land after the worker had given the upload up and stay on disk,
//! counted against no quota.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use objects::local::{router, LocalObjects};
use objects::ObjectStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves `objects` on a loopback port; its address.
async fn serve(objects: Arc<LocalObjects>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(objects)).await;
    });
    addr
}

/// PUTs `body` to `url` (a path and query) in two halves, the second after `pause`; the answer's
/// status line.
async fn put_in_two_halves(
    addr: std::net::SocketAddr,
    url: &str,
    body: &[u8],
    pause: Duration,
) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {url} HTTP/1.1\r\nHost: chatboard\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(pause).await;
    // The server may have answered and closed already.
    let _ = stream.write_all(second).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Starts a PUT on `url` declaring `total` bytes, sends `first` of them and leaves the rest.
async fn start_put(addr: std::net::SocketAddr, url: &str, total: usize, first: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {url} HTTP/1.1\r\nHost: chatboard\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream
}

/// Sends the rest of a started PUT; the whole answer.
async fn finish_put(mut stream: TcpStream, rest: &[u8]) -> String {
    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits (20 s at most) until `dir/uploads` holds `count` files being written; how many there
/// are is [`being_written`].
async fn until_being_written(dir: &std::path::Path, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while being_written(dir) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} PUTs under way"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The temporary files under `dir/uploads`: PUTs being written.
fn being_written(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("uploads"))
        .map(|entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().contains(".part-"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_still_sending_past_its_deadline_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(LocalObjects::new(dir.path(), b"k").with_write_grace(Duration::ZERO));
    let addr = serve(objects.clone()).await;
    let body = b"twenty bytes of text".to_vec();

    // In time: stored.
    let put = objects
        .presign_put(
            "uploads/in-time",
            "text/plain",
            body.len() as i64,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let status = put_in_two_halves(addr, &put.url, &body, Duration::ZERO).await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(objects.head("uploads/in-time").await.unwrap().is_some());

    // Begun in time, finished after the link's last second and the deadline after it (at most
    // two seconds after the request began): refused, nothing stored. A request that reached the
    // server only after its link expired (a stalled machine) is refused at once; then again.
    let mut status = String::new();
    for _ in 0..5 {
        let put = objects
            .presign_put(
                "uploads/late",
                "text/plain",
                body.len() as i64,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        status = put_in_two_halves(addr, &put.url, &body, Duration::from_millis(3_100)).await;
        if !status.contains(" 403 ") {
            break;
        }
    }
    assert!(status.contains(" 409 "), "{status}");
    assert_eq!(objects.head("uploads/late").await.unwrap(), None);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("late"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A rotation of the signing secret (the old one kept as the previous): a link signed before it,
/// or by a replica not rolled yet, still works on a replica that signs with the new secret,
/// as tokens do; a link from a secret it never had does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_signed_with_the_previous_secret_pass_during_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalObjects::new(dir.path(), b"the old secret");
    let stranger = LocalObjects::new(dir.path(), b"a secret never used here");
    let rotated = Arc::new(
        LocalObjects::new(dir.path(), b"the new secret")
            .accepting_previous(Some(b"the old secret")),
    );
    let addr = serve(rotated.clone()).await;
    let body = b"twenty bytes of text".to_vec();
    let len = body.len() as i64;
    let by_old = old
        .presign_put("uploads/old", "text/plain", len, Duration::from_secs(60))
        .await
        .unwrap();
    let status = put_in_two_halves(addr, &by_old.url, &body, Duration::ZERO).await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(rotated.head("uploads/old").await.unwrap().is_some());
    let by_stranger = stranger
        .presign_put(
            "uploads/stranger",
            "text/plain",
            len,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let status = put_in_two_halves(addr, &by_stranger.url, &body, Duration::ZERO).await;
    assert!(status.contains(" 403 "), "{status}");
    assert!(rotated.head("uploads/stranger").await.unwrap().is_none());
}

/// Two PUTs to one signed URL at once: the second is refused (409) while the first is still
/// sending, and the first stores the file. Each used to stream into a temporary file of its
/// own, so many PUTs to one link could fill the disk with up to its size apiece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_to_a_link_being_written_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(LocalObjects::new(dir.path(), b"k"));
    let addr = serve(objects.clone()).await;
    let body = b"twenty bytes of text".to_vec();
    let put = objects
        .presign_put(
            "uploads/once",
            "text/plain",
            body.len() as i64,
            Duration::from_secs(60),
        )
        .await
        .unwrap();

    // The first sends half its body and waits, until the server is writing it.
    let first = start_put(addr, &put.url, body.len(), &body[..10]).await;
    until_being_written(dir.path(), 1).await;

    let second = put_in_two_halves(addr, &put.url, &body, Duration::ZERO).await;
    assert!(second.contains(" 409 "), "{second}");
    assert_eq!(being_written(dir.path()), 1, "one temporary file");

    let status = finish_put(first, &body[10..]).await;
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    assert!(objects.head("uploads/once").await.unwrap().is_some());
    // Written: another PUT is refused as before, the file being there.
    let again = put_in_two_halves(addr, &put.url, &body, Duration::ZERO).await;
    assert!(again.contains(" 409 "), "{again}");
}

/// Two replicas sharing the volume, each writing a PUT to the same signed URL at once: exactly
/// one stores its bytes (the file is linked into place, which fails when it exists), the
/// other is answered 409, and the stored file is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_writing_one_link_store_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let one = Arc::new(LocalObjects::new(dir.path(), b"k"));
    let two = Arc::new(LocalObjects::new(dir.path(), b"k"));
    let (addr_one, addr_two) = (serve(one.clone()).await, serve(two).await);
    let put = one
        .presign_put("uploads/shared", "text/plain", 8, Duration::from_secs(60))
        .await
        .unwrap();
    let a = start_put(addr_one, &put.url, 8, b"AAAA").await;
    let b = start_put(addr_two, &put.url, 8, b"BBBB").await;
    until_being_written(dir.path(), 2).await;
    let (a, b) = tokio::join!(finish_put(a, b"aaaa"), finish_put(b, b"bbbb"));
    let won = |answer: &str| answer.starts_with("HTTP/1.1 200 ");
    assert!(won(&a) != won(&b), "one wins: {a} / {b}");
    let loser = if won(&a) { &b } else { &a };
    assert!(loser.starts_with("HTTP/1.1 409 "), "{loser}");
    let stored = std::fs::read(dir.path().join("uploads/shared")).unwrap();
    assert_eq!(stored, if won(&a) { b"AAAAaaaa" } else { b"BBBBbbbb" });
    assert_eq!(being_written(dir.path()), 0, "no temporary file is left");
}

/// A PUT that stops sending without closing its connection is given up after a minute of
/// silence (400) and leaves no file, and the link can be used again at once. Before, the
/// silent sender held the link's one turn to be written until the write deadline, an hour and
/// more after the link's expiry.
#[tokio::test(start_paused = true)]
async fn a_put_that_stops_sending_is_given_up_after_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(LocalObjects::new(dir.path(), b"k"));
    let addr = serve(objects.clone()).await;
    let body = b"twenty bytes of text".to_vec();
    let put = objects
        .presign_put(
            "uploads/stalled",
            "text/plain",
            body.len() as i64,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut stalled = start_put(addr, &put.url, body.len(), &body[..10]).await;
    // Nothing more is sent. The test's clock is paused: it moves on whenever both sides wait.
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("no bytes arrived"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(120),
        "{waited:?}"
    );
    assert_eq!(being_written(dir.path()), 0, "no temporary file left");
    assert_eq!(objects.head("uploads/stalled").await.unwrap(), None);

    let status = put_in_two_halves(addr, &put.url, &body, Duration::ZERO).await;
    assert!(status.contains(" 200 "), "{status}");
}
