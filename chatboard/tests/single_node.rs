//! The `chatboard` binary as a user runs it: start, serve, restart on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testing::process::{base_url_in, scrape, Service};

use serde_json::{json, Value};

/// `chatboard` with only `CHATBOARD_DATA_DIR` set, run from that directory, so that neither the
/// caller's environment (a `DATABASE_URL` of CI, say) nor a `.env` file leaks in.
fn bare_command(data_dir: &Path) -> Command {
    let mut cmd = testing::process::bare_command(env!("CARGO_BIN_EXE_chatboard"), data_dir);
    cmd.env("CHATBOARD_DATA_DIR", data_dir);
    cmd
}

/// A running `chatboard` process and the address it serves.
struct Node {
    service: Service,
    base: String,
}

impl Node {
    fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let mut cmd = bare_command(data_dir);
        cmd.envs(env.iter().copied())
            .env("CHATBOARD_ADDR", "127.0.0.1:0")
            .env("CHATBOARD_RATE_LIMIT_PER_IP", "0")
            .stderr(Stdio::inherit());
        let mut service = Service::start(cmd);
        let banner = service.wait_for("its banner", |l| l.starts_with("ChatBoard is running at "));
        let base = base_url_in(&banner).expect("url in banner");
        Node { service, base }
    }

    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        self.service.wait_for("the expected line", pred)
    }

    fn stop(self) {
        // SIGTERM, as a service manager would; the process drains and exits 0.
        let status = self.service.stop();
        assert!(status.success(), "chatboard exited with {status}");
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A GET as `token`'s user: the status and the JSON body.
async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Registers `email` and signs in; returns the access token.
async fn sign_up(client: &reqwest::Client, base: &str, email: &str) -> String {
    let credentials = json!({"email": email, "password": "password123"});
    let (status, _) = post(
        client,
        format!("{base}/auth/register/"),
        None,
        credentials.clone(),
    )
    .await;
    assert_eq!(status, 201, "register {email}");
    let (_, tokens) = post(client, format!("{base}/auth/token/"), None, credentials).await;
    tokens["access"].as_str().unwrap().to_owned()
}

/// Creates an organization named `name` and a PUBLIC room "general" in it; returns both.
async fn org_with_room(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> (Value, Value) {
    let (status, org) = post(
        client,
        format!("{base}/api/orgs/"),
        Some(token),
        json!({"name": name}),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let (status, room) = post(
        client,
        format!("{base}/api/rooms/"),
        Some(token),
        json!({"org": org["id"], "name": "general", "access_level": "PUBLIC"}),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    (org, room)
}

#[tokio::test]
async fn data_and_sessions_survive_a_restart_and_requests_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut node = Node::start(dir.path());
    let (status, user) = post(
        &client,
        format!("{}/auth/register/", node.base),
        None,
        json!({"email": "a@example.com", "password": "password123"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, tokens) = post(
        &client,
        format!("{}/auth/token/", node.base),
        None,
        json!({"email": "a@example.com", "password": "password123"}),
    )
    .await;
    let access = tokens["access"].as_str().unwrap().to_owned();
    let (status, org) = post(
        &client,
        format!("{}/api/orgs/", node.base),
        Some(&access),
        json!({"name": "Persisted"}),
    )
    .await;
    assert_eq!(status, 201);

    // One JSON line per request, with id, route, status, latency and user.
    // (Other lines of the request carry its route too, in their spans.)
    let line = node.wait_for(|l| {
        l.contains("\"target\":\"chatboard::request\"") && l.contains("\"route\":\"/api/orgs\"")
    });
    let log: Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(log["status"], 201);
    assert_eq!(log["method"], "POST");
    assert_eq!(log["user_id"], user["id"]);
    assert!(log["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(log["latency_ms"].is_number());
    node.stop();

    assert!(dir.path().join("chatboard.db").exists());
    assert!(dir.path().join("jwt-secret").exists());
    let node = Node::start(dir.path());
    // The old access token is still valid: the signing key was kept, and so was the data.
    let url = format!("{}/api/orgs/{}/", node.base, org["id"]);
    let (status, org) = get(&client, &url, &access).await;
    assert_eq!(status, 200);
    assert_eq!(org["name"], "Persisted");
    node.stop();
}

/// Started under the 1,024 open files container runtimes commonly give, below a higher hard
/// limit, the node raises its own to the hard limit: otherwise about a thousand sockets would be
/// all it could hold.
#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    // prlimit may be missing, or the hard limit here below the test's.
    let usable = Command::new("prlimit")
        .args(["--nofile=1024:4096", "--", "true"])
        .status()
        .is_ok_and(|status| status.success());
    if !usable {
        eprintln!("skipped: prlimit cannot start a process at 1024:4096 open files here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = testing::process::bare_command("prlimit", dir.path());
    cmd.args(["--nofile=1024:4096", "--", env!("CARGO_BIN_EXE_chatboard")])
        .env("CHATBOARD_DATA_DIR", dir.path())
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .stderr(Stdio::inherit());
    let mut service = Service::start(cmd);
    service.wait_for("its banner", |l| l.starts_with("ChatBoard is running at "));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", service.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(open_files, ["4096", "4096"], "{limits}");
    assert!(service.stop().success());
}

#[test]
fn invalid_configuration_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("CHATBOARD_ADDR", "nonsense"),
        ("CHATBOARD_RATE_LIMIT_PER_USER", "lots"),
        ("DATABASE_URL", "mysql://x"),
    ] {
        let out = bare_command(dir.path()).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} should stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn migrate_subcommand_prepares_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare_command(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("chatboard.db").exists());
}

#[tokio::test]
async fn one_port_serves_the_api_and_the_websocket_gateway() {
    let dir = tempfile::tempdir().unwrap();
    // A connection per request: with a 300 ms idle timeout a pooled one could be closed by
    // the server just as the next request goes out on it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Short HTTP clocks, which must not touch an open WebSocket.
    let node = Node::start_with(
        dir.path(),
        &[
            ("CHATBOARD_HTTP_HEADER_TIMEOUT_MS", "300"),
            ("CHATBOARD_HTTP_IDLE_TIMEOUT_MS", "300"),
        ],
    );
    testing::slow_client::assert_half_a_head_is_hung_up_on(&node.base).await;
    let body = json!({"email": "a@example.com", "password": "password123"});
    post(
        &client,
        format!("{}/auth/register/", node.base),
        None,
        body.clone(),
    )
    .await;
    let (_, tokens) = post(&client, format!("{}/auth/token/", node.base), None, body).await;
    let access = tokens["access"].as_str().unwrap().to_owned();
    let (_, room) = org_with_room(&client, &node.base, &access, "Live").await;
    let ws = node.base.replace("http://", "ws://");
    let url = format!("{ws}/ws/rooms/{}/?token={access}", room["id"]);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "connection");
    // Quiet for longer than the idle and header timeouts: the socket stays open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, sent) = post(
        &client,
        format!("{}/api/rooms/{}/messages/", node.base, room["id"]),
        Some(&access),
        json!({"body": "over the wire"}),
    )
    .await;
    assert_eq!(status, 201);
    let live = next(&mut socket).await;
    assert_eq!(live["type"], "message");
    assert_eq!(live["id"], sent["id"]);
    // The gateway's metrics are on the same /metrics.
    let metrics = scrape(&node.base).await;
    assert!(metrics.contains("chatboard_ws_connections 1"), "{metrics}");
    // SIGTERM closes open sockets with 1012 (reconnect) before the process exits.
    let stopping = tokio::task::spawn_blocking(move || node.stop());
    let closed = loop {
        use futures::StreamExt;
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1012));
    stopping.await.unwrap();
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame of a socket, as JSON.
async fn next(socket: &mut Socket) -> Value {
    use futures::StreamExt;
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(frame.to_text().unwrap()).unwrap()
}

/// A webhook receiver: every request's headers and body, in arrival order.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Vec<u8>)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body.to_vec()));
                "ok"
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

#[tokio::test]
async fn webhooks_are_delivered_signed_by_the_single_node() {
    use hmac::Mac;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let node = Node::start_with(dir.path(), &[("CHATBOARD_WEBHOOK_ALLOW_PRIVATE", "true")]);
    let base = node.base.clone();
    let access = sign_up(&client, &base, "w@example.com").await;
    let (org, room) = org_with_room(&client, &base, &access, "Hooks").await;
    let (url, mut received) = webhook_receiver().await;
    let (status, hook) = post(
        &client,
        format!("{base}/api/webhooks/"),
        Some(&access),
        json!({"org": org["id"], "url": url, "events": ["message.created", "webhook.test"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    let (status, message) = post(
        &client,
        format!("{base}/api/rooms/{}/messages/", room["id"]),
        Some(&access),
        json!({"body": "hello hooks"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, test) = post(
        &client,
        format!("{base}/api/webhooks/{}/test/", hook["id"]),
        Some(&access),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{test}");

    let mut types = Vec::new();
    for _ in 0..2 {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .unwrap()
            .unwrap();
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.", header("x-chatboard-timestamp")).as_bytes());
        mac.update(&body);
        assert_eq!(
            header("x-chatboard-signature"),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(header("x-chatboard-event"), event["type"].as_str().unwrap());
        if event["type"] == "message.created" {
            assert_eq!(event["data"]["id"], message["id"]);
            assert_eq!(event["data"]["body"], "hello hooks");
        } else {
            assert_eq!(
                header("x-chatboard-delivery"),
                test["delivery_id"].to_string()
            );
        }
        types.push(event["type"].as_str().unwrap().to_owned());
    }
    types.sort();
    assert_eq!(types, ["message.created", "webhook.test"]);
    // The log shows both delivered, and the metrics count them.
    let mut delivered = false;
    for _ in 0..100 {
        let url = format!("{base}/api/webhooks/{}/events/", hook["id"]);
        let (_, log) = get(&client, &url, &access).await;
        if log
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["status"] == "delivered")
            .count()
            == 2
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "both deliveries recorded");
    let metrics = scrape(&base).await;
    assert!(
        metrics.contains("chatboard_webhook_attempts_total{result=\"delivered\"} 2"),
        "{metrics}"
    );
    node.stop();
}

#[tokio::test]
async fn without_smtp_invitation_emails_land_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut node = Node::start(dir.path());
    let base = node.base.clone();
    let access = sign_up(&client, &base, "ada@example.com").await;
    let (_, org) = post(
        &client,
        format!("{base}/api/orgs/"),
        Some(&access),
        json!({"name": "Mail"}),
    )
    .await;
    let (status, invite) = post(
        &client,
        format!("{base}/api/orgs/{}/invite/", org["id"]),
        Some(&access),
        json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{invite}");
    let token = invite["token"].as_str().unwrap();

    let line = node.wait_for(|l| l.contains("email (no SMTP server configured)"));
    assert!(line.contains("bob@example.com"), "{line}");
    let emails = dir.path().join("emails");
    let mut written = None;
    for _ in 0..100 {
        // Only whole emails carry the `.eml` name (they are written aside, then renamed).
        let eml = std::fs::read_dir(&emails).ok().and_then(|mut d| {
            d.find_map(|e| {
                e.ok()
                    .map(|e| e.path())
                    .filter(|p| p.extension() == Some("eml".as_ref()))
            })
        });
        if let Some(path) = eml {
            written = Some(std::fs::read_to_string(path).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = written.expect("an .eml file under the data directory");
    assert!(written.contains("To: bob@example.com"), "{written}");
    // The token may be wrapped by the transfer encoding; undo soft line breaks first.
    assert!(written.replace("=\r\n", "").contains(token), "{written}");
    node.stop();
}

#[tokio::test]
async fn uploads_are_kept_under_the_data_directory_and_served_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let node = Node::start(dir.path());
    let base = node.base.clone();
    let access = sign_up(&client, &base, "ada@example.com").await;
    let bytes = b"\x89PNG pretend image".to_vec();
    let (status, presigned) = post(
        &client,
        format!("{base}/api/uploads/presign/"),
        Some(&access),
        json!({"filename": "pic.png", "content_type": "image/png", "size": bytes.len()}),
    )
    .await;
    assert_eq!(status, 201, "{presigned}");
    let id = presigned["id"].as_str().unwrap();
    let url = presigned["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{base}/files/")), "{url}");
    let put = client
        .put(url)
        .header("Content-Type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    assert!(dir.path().join("uploads").join("uploads").join(id).exists());
    let (status, done) = post(
        &client,
        format!("{base}/api/uploads/{id}/complete/"),
        Some(&access),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let got = client
        .get(done["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    node.stop();
}

/// Every id in a room, newest first, following `next`.
async fn all_message_ids(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    room: &Value,
) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut url = format!("{base}/api/rooms/{}/messages/?limit=100", room["id"]);
    loop {
        let (_, page) = get(client, &url, token).await;
        ids.extend(
            page["results"]
                .as_array()
                .unwrap_or_else(|| panic!("{page}"))
                .iter()
                .map(|m| m["id"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(next) if next.starts_with('/') => url = format!("{base}{next}"),
            Some(next) => url = next.to_owned(),
            None => return ids,
        }
    }
}

/// A node without a per-user posting limit, a signed-up user, and a room of theirs to post in.
struct PostingRoom {
    dir: tempfile::TempDir,
    client: reqwest::Client,
    node: Node,
    access: String,
    room: Value,
    /// The room's messages endpoint.
    url: String,
}

impl PostingRoom {
    async fn start(org: &str) -> PostingRoom {
        let dir = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();
        let node = Node::start_with(dir.path(), &[("CHATBOARD_RATE_LIMIT_PER_USER", "0")]);
        let access = sign_up(&client, &node.base, "a@example.com").await;
        let (_, room) = org_with_room(&client, &node.base, &access, org).await;
        let url = format!("{}/api/rooms/{}/messages/", node.base, room["id"]);
        PostingRoom {
            dir,
            client,
            node,
            access,
            room,
            url,
        }
    }

    /// What a task needs to post into the room on its own.
    fn poster(&self) -> Poster {
        Poster {
            client: self.client.clone(),
            url: self.url.clone(),
            access: self.access.clone(),
        }
    }
}

/// Posts into a [`PostingRoom`]'s room as its user.
struct Poster {
    client: reqwest::Client,
    url: String,
    access: String,
}

impl Poster {
    /// Posts `body`; returns the status and the answer.
    async fn post(&self, body: &Value) -> (u16, Value) {
        post(
            &self.client,
            self.url.clone(),
            Some(&self.access),
            body.clone(),
        )
        .await
    }
}

#[tokio::test]
async fn posts_acknowledged_before_a_kill_9_are_all_there_after_a_restart() {
    let posting = PostingRoom::start("Crash").await;

    // 32 posters at once, so that posts share group commits, killed mid-stream: every 201 is a
    // promise that must survive; a post still in flight may land or not.
    let answered = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..32)
        .map(|p| {
            let poster = posting.poster();
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let body = json!({"body": format!("{p}/{i}")});
                    // Not `Poster::post`: once the node is killed, requests fail.
                    let Ok(r) = poster
                        .client
                        .post(&poster.url)
                        .bearer_auth(&poster.access)
                        .json(&body)
                        .send()
                        .await
                    else {
                        break;
                    };
                    assert_eq!(r.status().as_u16(), 201);
                    let Ok(sent) = r.json::<Value>().await else {
                        break;
                    };
                    acknowledged.push(sent["id"].as_i64().unwrap());
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                acknowledged
            })
        })
        .collect();
    while answered.load(Ordering::Relaxed) < 800 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    posting.node.service.kill();
    let mut acknowledged = Vec::new();
    for poster in posters {
        acknowledged.extend(poster.await.unwrap());
    }

    let node = Node::start(posting.dir.path());
    let mut stored =
        all_message_ids(&posting.client, &node.base, &posting.access, &posting.room).await;
    acknowledged.sort_unstable();
    stored.sort_unstable();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // Beyond those, at most the one post each poster had in flight.
    assert!(
        stored.len() <= acknowledged.len() + 32,
        "{} stored, {} acknowledged",
        stored.len(),
        acknowledged.len()
    );
    node.stop();
}

#[tokio::test]
async fn the_wal_reaches_the_database_file_while_the_node_runs() {
    let posting = PostingRoom::start("Checkpoints").await;
    let db_file = posting.dir.path().join("chatboard.db");
    let db_size = || std::fs::metadata(&db_file).map_or(0, |m| m.len());
    let before = db_size();
    // Commits go to the WAL; the checkpointer, not a commit, copies them into the database file.
    let body = json!({"body": "x".repeat(1000)});
    for _ in 0..300 {
        let (status, _) = posting.poster().post(&body).await;
        assert_eq!(status, 201);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db_size() < before + 256 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes (it was {before})",
            db_size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    posting.node.stop();
}

/// The WAL file's header: its size in bytes and its salt-1, which SQLite changes each time it
/// starts the WAL over. `None` before the file has a header.
fn wal_header(path: &Path) -> Option<(u64, u32)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut header = [0u8; 32];
    file.read_exact(&mut header).ok()?;
    let salt = u32::from_be_bytes(header[16..20].try_into().ok()?);
    Some((size, salt))
}

#[tokio::test]
async fn the_wal_starts_over_under_steady_posts_long_before_the_writers_own_mark() {
    let posting = PostingRoom::start("Restarts").await;

    // Posters that never pause, so a passive checkpoint never catches up on its own.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posters: Vec<_> = (0..4)
        .map(|_| {
            let (poster, stop) = (posting.poster(), stop.clone());
            tokio::spawn(async move {
                let body = json!({"body": "x".repeat(1000)});
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = poster.post(&body).await;
                    assert_eq!(status, 201);
                }
            })
        })
        .collect();

    // The node finishes a checkpoint on its writer's connection once the WAL passes 64 MiB (it
    // looks every 250 ms, so the file may grow by what a quarter second writes: 14 to 22 MiB in a
    // debug build), and the next commit starts the WAL over. The writer's own automatic
    // checkpoint would only do that at 256 MiB of frames, the file grown past 258 MiB.
    let wal = posting.dir.path().join("chatboard.db-wal");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (mut largest, mut salt, mut restarts) = (0, None, 0);
    while restarts < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL started over {restarts} times in 120 s (largest file {largest} bytes)"
        );
        if let Some((size, now)) = wal_header(&wal) {
            largest = largest.max(size);
            if salt.is_some_and(|before| before != now) {
                restarts += 1;
            }
            salt = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for poster in posters {
        poster.await.unwrap();
    }
    assert!(
        largest < 160 << 20,
        "the WAL file grew to {largest} bytes before starting over"
    );
    posting.node.stop();
}

/// A SIGTERM as soon as the banner is out drains the node and exits 0. The handler used to be
/// installed by the server's shutdown task once it first ran, which on a busy machine could be
/// after a request had been served: the signal then killed the process outright (CI saw it).
#[test]
fn a_sigterm_right_after_the_banner_drains_the_node() {
    let dir = tempfile::tempdir().unwrap();
    Node::start(dir.path()).stop();
}
