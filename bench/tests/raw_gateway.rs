//! The raw broadcaster speaks the part of the gateway's protocol the fan-out benchmark uses, in
//! each of its fan-outs: a greeting per socket, each message to every socket of its room (and
//! no other) in a frame with the gateway's fields, and an `ack` to its sender.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatboard_core::bus::BusEvent;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Long enough for a loaded machine; only reached when a frame never comes.
const PATIENCE: Duration = Duration::from_secs(20);

/// The server's process, killed when the test ends (however it ends).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `raw-gateway --fanout FANOUT` on a free port; returns it with its ws:// address.
fn start(fanout: &str) -> (Server, String) {
    start_with(&["--fanout", fanout])
}

/// `raw-gateway` on a free port with these arguments, not yet run.
fn raw_gateway(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatboard-bench"));
    command
        .args(["raw-gateway", "--listen", "127.0.0.1:0"])
        .args(args);
    command
}

/// Starts `raw-gateway` with these arguments on a free port; returns it with its address.
fn start_with(args: &[&str]) -> (Server, String) {
    let mut child = raw_gateway(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("raw-gateway starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let server = Server(child);
    // The first line comes once it listens (or never, if it fails: then read_line ends empty).
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("stdout is readable");
    // "raw gateway at ws://127.0.0.1:PORT (pid ..., fan-out by ...)"
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (server, url)
}

/// The next text frame's JSON.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame within the patience")
            .expect("the socket stays open")
            .expect("a well-formed frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

/// A socket in `room`, past its greeting.
async fn join(url: &str, room: i64) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/ws/rooms/{room}/"))
        .await
        .expect("the handshake succeeds");
    let greeting = next_json(&mut socket).await;
    assert_eq!(greeting["type"], "connection");
    assert_eq!(greeting["room"], room);
    socket
}

/// A frame's field names.
fn keys(frame: &Value) -> Vec<String> {
    let mut keys: Vec<String> = frame
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// The field names of the gateway's `message` frame (as its hub encodes a `BusEvent`).
fn gateway_message_keys() -> Vec<String> {
    let event = BusEvent::Message {
        message: chatboard_core::model::Message::default(),
        seq: 1,
    };
    keys(&serde_json::to_value(&event).expect("an event encodes"))
}

async fn delivers_to_the_room_and_answers_the_sender(fanout: &str) {
    let (_server, url) = start(fanout);
    let mut alice = join(&url, 7).await;
    let mut bob = join(&url, 7).await;
    let mut carol = join(&url, 8).await;
    for (n, body) in ["first", "second"].into_iter().enumerate() {
        let sent = json!({"type": "message", "body": body, "client_msg_id": format!("m{n}")});
        alice
            .send(Message::Text(sent.to_string().into()))
            .await
            .expect("alice sends");
        let to_bob = next_json(&mut bob).await;
        assert_eq!(to_bob["type"], "message");
        assert_eq!(to_bob["body"], body);
        assert_eq!(to_bob["room"], 7);
        assert_eq!(
            keys(&to_bob),
            gateway_message_keys(),
            "the floor's frame carries the gateway's fields"
        );
        // Alice is in the room too: her own message and her answer, in either order.
        let mut to_alice = [next_json(&mut alice).await, next_json(&mut alice).await];
        to_alice.sort_by_key(|frame| frame["type"] == "message");
        let [ack, own] = to_alice;
        assert_eq!(own["type"], "message");
        assert_eq!(own["body"], body);
        assert_eq!(ack["type"], "ack");
        assert_eq!(ack["client_msg_id"], format!("m{n}"));
        assert_eq!(ack["id"], to_bob["id"]);
    }
    // Carol, in room 8, got nothing of room 7's: her next frames are her own message and its
    // answer.
    let sent = json!({"type": "message", "body": "elsewhere", "client_msg_id": "c"});
    carol
        .send(Message::Text(sent.to_string().into()))
        .await
        .expect("carol sends");
    let mut to_carol = [next_json(&mut carol).await, next_json(&mut carol).await];
    to_carol.sort_by_key(|frame| frame["type"] == "message");
    let [ack, own] = to_carol;
    assert_eq!(ack["client_msg_id"], "c");
    assert_eq!(own["body"], "elsewhere");
    assert_eq!(own["room"], 8);
}

#[tokio::test]
async fn tasks_deliver_to_the_room_and_answer_the_sender() {
    delivers_to_the_room_and_answers_the_sender("tasks").await;
}

#[tokio::test]
async fn sends_deliver_to_the_room_and_answer_the_sender() {
    delivers_to_the_room_and_answers_the_sender("sends").await;
}

#[tokio::test]
async fn uring_delivers_to_the_room_and_answers_the_sender() {
    delivers_to_the_room_and_answers_the_sender("uring").await;
}

/// With `--store`, each message is in the database, under the id its sockets saw, by the time
/// its sender has the answer.
#[tokio::test]
async fn a_store_keeps_each_message_before_the_answer() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("messages.db");
    let (_server, url) = start_with(&["--fanout", "sends", "--store", path.to_str().unwrap()]);
    let mut alice = join(&url, 7).await;
    let sent = json!({"type": "message", "body": "kept", "client_msg_id": "k"});
    alice
        .send(Message::Text(sent.to_string().into()))
        .await
        .expect("alice sends");
    let frames = [next_json(&mut alice).await, next_json(&mut alice).await];
    let ack = frames
        .iter()
        .find(|frame| frame["type"] == "ack")
        .expect("an ack");
    let id = ack["id"].as_i64().expect("an id");
    let stored: (i64, String) = rusqlite::Connection::open(&path)
        .expect("the store opens")
        .query_row(
            "SELECT room, body FROM messages WHERE id = ?",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the message is stored");
    assert_eq!(stored, (7, "kept".to_owned()));
}

/// The task-per-socket fan-out has no store: asking for one is refused at the start.
#[test]
fn a_store_needs_a_direct_fan_out() {
    let run = raw_gateway(&[
        "--fanout",
        "tasks",
        "--store",
        "/nonexistent/never-opened.db",
    ])
    .output()
    .expect("raw-gateway runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--store needs --fanout sends or uring"),
        "{stderr}"
    );
}

/// `ws-fanout` with a warm-up: every message sent is delivered and counted as such, but the
/// rate (and with it latency and CPU) covers only the messages sent after the warm-up.
#[test]
fn a_fan_out_run_leaves_its_warm_up_out_of_the_rate() {
    let (_server, url) = start("sends");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let state = scratch.path().join("ws-state.json");
    let rooms = json!({"rooms": [
        {"id": 1, "tokens": ["a", "b", "c"]},
        {"id": 2, "tokens": ["d", "e", "f"]},
    ]});
    std::fs::write(&state, rooms.to_string()).expect("state written");
    let run = Command::new(env!("CARGO_BIN_EXE_chatboard-bench"))
        .args(["ws-fanout", "--ws", &url, "--rate", "20", "--seconds", "1"])
        .args(["--warmup-seconds", "2", "--state"])
        .arg(&state)
        .output()
        .expect("ws-fanout runs");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{report}");
    assert!(report.contains("measuring for 1 s"), "{report}");
    // | sent | failed sends | expected | delivered | lost | delivered/s | ...
    let row: Vec<u64> = report
        .lines()
        .skip_while(|line| !line.starts_with("|---"))
        .nth(1)
        .unwrap_or_else(|| panic!("no result row in {report}"))
        .split('|')
        .skip(1)
        .take(6)
        .map(|cell| cell.trim().parse().expect("a number"))
        .collect();
    let [sent, failed, expected, delivered, lost, rate] = row[..] else {
        panic!("short row in {report}")
    };
    assert!(sent > 0 && failed == 0 && lost == 0, "{report}");
    assert_eq!((expected, delivered), (sent * 3, sent * 3), "{report}");
    // Three seconds of sending delivered; the rate counts the last one only.
    assert!(rate > 0 && rate < delivered, "{report}");
}
