//! The WebSocket load generator: many connections from many source addresses, messages sent
//! at a fixed rate over WebSocket or REST, and what arrives measured at every receiver.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;

use crate::timeline::Timeline;
use crate::ws_client;
use crate::ws_seed::WsSeeded;

/// A client connection to the gateway.
pub(crate) type Socket = WebSocketStream<tokio::net::TcpStream>;

/// Connections per source address (the ephemeral port range holds about 28,000).
const PER_SOURCE: usize = 20_000;
/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 128;
/// How long the connections must have been quiet before sending starts.
const QUIET: Duration = Duration::from_secs(2);
/// Longest wait for that.
const MAX_SETTLE: Duration = Duration::from_secs(300);
/// Frames per second one connection may send (the gateway allows 20).
const SEND_PER_CONNECTION: f64 = 15.0;
/// A delivery slower than this counts as slow in the timeline.
const SLOW: Duration = Duration::from_millis(10);

/// Where the gateway listens.
pub struct Target {
    /// `ws://host:port`
    pub ws: String,
    addr: SocketAddr,
    /// `http://host:port` of the API, for sending over REST.
    pub api: Option<String>,
    /// The gateway's process id, to read its memory.
    pub gateway_pid: Option<u32>,
    /// The gateway's `/metrics`, to read its own count of late deliveries.
    pub metrics: Option<String>,
}

impl Target {
    /// Resolves the gateway's address.
    pub fn new(
        ws: &str,
        api: Option<String>,
        gateway_pid: Option<u32>,
        metrics: Option<String>,
    ) -> anyhow::Result<Self> {
        let hostport = ws
            .strip_prefix("ws://")
            .context("--ws must be ws://host:port")?
            .trim_end_matches('/');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
            .find(SocketAddr::is_ipv4)
            .context("--ws does not resolve to an IPv4 address")?;
        Ok(Self {
            ws: format!("ws://{hostport}"),
            addr,
            api,
            gateway_pid,
            metrics,
        })
    }

    /// The gateway's own fan-out histogram (a post's creation to its write on a socket): how
    /// many live deliveries it counted in all, and within 5 and 10 ms.
    async fn fanout_counts(&self, http: &reqwest::Client) -> Option<FanoutCounts> {
        let text = http
            .get(self.metrics.as_deref()?)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        const COUNT: &str = "chatboard_ws_fanout_seconds_count";
        if !text.contains(COUNT) {
            return None; // not a ChatBoard gateway
        }
        let value = |name: &str| testing::process::series(&text, name) as u64;
        Some(FanoutCounts {
            all: value(COUNT),
            within_5ms: value("chatboard_ws_fanout_seconds_bucket{le=\"0.005\"}"),
            within_10ms: value("chatboard_ws_fanout_seconds_bucket{le=\"0.01\"}"),
            // Builds before the counter have none: no share is printed for them.
            queued: text
                .contains("chatboard_ws_queued_deliveries_total")
                .then(|| value("chatboard_ws_queued_deliveries_total")),
        })
    }

    /// Opens the per-room endpoint as one member, from source address number `n`.
    pub(crate) async fn connect(&self, room: i64, token: &str, n: usize) -> anyhow::Result<Socket> {
        let stream = self.tcp(n).await?;
        let url = format!("{}/ws/rooms/{room}/?token={token}", self.ws);
        // Small buffers: the client side holds as many connections as the gateway.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
        Ok(socket)
    }

    /// The same with the lean client, once the server's greeting has arrived.
    async fn connect_lean(
        &self,
        room: i64,
        token: &str,
        n: usize,
    ) -> anyhow::Result<(ws_client::Reader, ws_client::Writer)> {
        let stream = self.tcp(n).await?;
        let host = self.ws.trim_start_matches("ws://");
        let path = format!("/ws/rooms/{room}/?token={token}");
        let (mut reader, writer) = ws_client::open(stream, host, &path).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), reader.next_text()).await {
                Ok(Ok(Some(text))) if ws_client::find(text, b"\"connection\"").is_some() => {
                    return Ok((reader, writer))
                }
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => bail!("closed before the greeting"),
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("no greeting within 30 s"),
            }
        }
    }

    /// A TCP connection to the gateway from source address number `n`.
    async fn tcp(&self, n: usize) -> anyhow::Result<tokio::net::TcpStream> {
        let source = if self.addr.ip().is_loopback() {
            // 127.0.0.2, 127.0.0.3, ...: each its own range of ephemeral ports.
            let k = u8::try_from(2 + n / PER_SOURCE).context("too many connections")?;
            Ipv4Addr::new(127, 0, 0, k)
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// CPU time the gateway process has used so far, when its pid is known.
    pub(crate) fn gateway_cpu(&self) -> Option<Duration> {
        process_cpu(&self.gateway_pid?.to_string())
    }

    /// The gateway's resident memory in KiB, when its pid is known.
    fn gateway_rss_kib(&self) -> Option<u64> {
        crate::memory::rss_kib(self.gateway_pid?).ok()
    }
}

/// CPU time process `pid` (a number or `self`) has used so far.
fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in USER_HZ, 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Counts of the gateway's fan-out histogram (see [`Target::fanout_counts`]).
#[derive(Clone, Copy)]
struct FanoutCounts {
    all: u64,
    within_5ms: u64,
    within_10ms: u64,
    /// Of `all`, those the connections' own tasks wrote rather than the hub (when counted).
    queued: Option<u64>,
}

impl FanoutCounts {
    /// What was counted between `before` and `self`, as a line for the report.
    fn since(self, before: Self) -> String {
        let all = self.all.saturating_sub(before.all);
        let share = |within: u64, was: u64| {
            100.0 * all.saturating_sub(within.saturating_sub(was)) as f64 / all.max(1) as f64
        };
        let queued = match (self.queued, before.queued) {
            (Some(now), Some(was)) => format!(
                ", {:.2}% written by the connections' own tasks",
                100.0 * now.saturating_sub(was) as f64 / all.max(1) as f64
            ),
            _ => String::new(),
        };
        format!(
            "gateway's own count (post created to socket write): {all} deliveries, {:.2}% over 5 ms, {:.2}% over 10 ms{queued}",
            share(self.within_5ms, before.within_5ms),
            share(self.within_10ms, before.within_10ms),
        )
    }
}

/// Waits for the first text frame (the `connection` greeting): the connection is authenticated.
async fn greeted(socket: &mut Socket) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Ws::Text(text)))) if text.as_str().contains("\"connection\"") => {
                return Ok(())
            }
            Ok(Some(Ok(Ws::Close(frame)))) => bail!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("closed before the greeting"),
            Err(_) => bail!("no greeting within 30 s"),
        }
    }
}

/// Holds the idle authenticated connections numbered `range` (member and source address follow
/// from the number) and reports the gateway's memory.
pub async fn idle(
    target: &Target,
    seeded: &WsSeeded,
    range: std::ops::Range<usize>,
    hold: Duration,
) -> anyhow::Result<()> {
    let connections = range.len();
    let members = seeded.members()?;
    let before = target.gateway_rss_kib();
    let started = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let open = Arc::new(AtomicU64::new(0));
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(range)
        .map(|n| {
            let (room, token) = members[n % members.len()];
            let (open, mut stop) = (open.clone(), stop.clone());
            async move {
                let mut socket = target.connect(room, token, n).await?;
                greeted(&mut socket).await?;
                open.fetch_add(1, Ordering::Relaxed);
                // Keep reading, so pings are answered, until told to stop.
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            frame = socket.next() => if !matches!(frame, Some(Ok(_))) { break },
                        }
                    }
                    let _ = socket.close(None).await;
                });
                Ok(())
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let opened = open.load(Ordering::Relaxed);
    println!(
        "opened {opened} of {connections} connections in {:.1} s ({} failed{})",
        started.elapsed().as_secs_f64(),
        failed.len(),
        failed
            .first()
            .map(|e| format!(", first: {e:#}"))
            .unwrap_or_default()
    );
    tokio::time::sleep(hold).await;
    let after = target.gateway_rss_kib();
    if let (Some(before), Some(after)) = (before, after) {
        let per = (after.saturating_sub(before)) as f64 / opened.max(1) as f64;
        println!(
            "gateway RSS: {before} KiB before, {after} KiB with {opened} connections: {per:.1} KiB per connection"
        );
    }
    let _ = stop_tx.send(true);
    drop(stop);
    Ok(())
}

/// How `fanout` sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendVia {
    /// `message` frames on the senders' own connections.
    WebSocket,
    /// `POST /api/rooms/{id}/messages/`.
    Rest,
}

/// A room's post-to-delivery latencies in µs: of every delivery, and of the messages sent
/// after the warm-up (the measured ones).
struct RoomLatencies {
    whole: Histogram<u64>,
    measured: Histogram<u64>,
    /// With `--split`, the measured deliveries' time from the send to the message's
    /// `created_at`, and from `created_at` to the receipt.
    before_created: Histogram<u64>,
    after_created: Histogram<u64>,
}

impl RoomLatencies {
    fn new() -> anyhow::Result<Self> {
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3);
        Ok(Self {
            whole: histogram()?,
            measured: histogram()?,
            before_created: histogram()?,
            after_created: histogram()?,
        })
    }

    fn add(&mut self, other: &Self) -> anyhow::Result<()> {
        self.whole.add(&other.whole)?;
        self.measured.add(&other.measured)?;
        self.before_created.add(&other.before_created)?;
        self.after_created.add(&other.after_created)?;
        Ok(())
    }
}

/// The p50 and p99 of `h`, in ms, for a report line.
fn p50_p99(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    )
}

/// Every member of every room connected; `rate` messages/s spread over the rooms for `warmup`
/// and then `seconds`; reports deliveries, losses and post-to-delivery latency. Latency, rate
/// and CPU are of the messages sent after the warm-up (losses of all); the p99 of the whole
/// run is printed beside them.
#[allow(
    clippy::too_many_arguments,
    reason = "the run's parameters, as the CLI takes them"
)]
pub async fn fanout(
    target: &Target,
    seeded: &WsSeeded,
    rate: f64,
    seconds: u64,
    warmup: Duration,
    via: SendVia,
    timeline: Option<Duration>,
    split: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(rate > 0.0, "--rate must be positive");
    // Deliveries by send time, when asked for. Sending stops at the deadline; the extra second
    // holds ticks that a busy machine fires late.
    let timeline = timeline.map(|window| {
        Arc::new(Timeline::new(
            warmup + Duration::from_secs(seconds + 1),
            window,
            SLOW,
        ))
    });
    // Nanoseconds since the epoch from which sent messages count as measured; none until
    // sending starts.
    let measure_from = Arc::new(AtomicU64::new(u64::MAX));
    let epoch = Instant::now();
    // The epoch on the wall clock, in µs, for comparing send times with `created_at`.
    let wall_epoch = split.then(|| chrono::Utc::now().timestamp_micros());
    let (stop_tx, stop) = watch::channel(false);
    let per_room = rate / seeded.rooms.len() as f64;
    let senders_per_room = (per_room / SEND_PER_CONNECTION).ceil().max(1.0) as usize;
    let mut receivers = Vec::new();
    let mut send_sinks = Vec::new();
    let mut n = 0usize;
    let started = Instant::now();
    let mut histograms = Vec::new();
    let last_frame = Arc::new(AtomicU64::new(0));
    for room in &seeded.rooms {
        // One histogram per room, shared by its receivers (one each would cost more memory
        // than the connections themselves).
        let room_latencies = Arc::new(Mutex::new(RoomLatencies::new()?));
        histograms.push(room_latencies.clone());
        anyhow::ensure!(
            room.tokens.len() >= senders_per_room,
            "room {} is too small for the rate",
            room.id
        );
        let sockets: Vec<anyhow::Result<_>> = futures::stream::iter(room.tokens.iter().enumerate())
            .map(|(i, token)| target.connect_lean(room.id, token, n + i))
            .buffered(CONNECT_CONCURRENCY)
            .collect()
            .await;
        n += room.tokens.len();
        for (i, socket) in sockets.into_iter().enumerate() {
            let (stream, sink) = socket?;
            if i < senders_per_room {
                send_sinks.push((
                    room.id,
                    room.tokens[i].clone(),
                    room.tokens.len() as u64,
                    sink,
                ));
            }
            receivers.push(tokio::spawn(receive(
                stream,
                (epoch, wall_epoch),
                stop.clone(),
                room_latencies.clone(),
                measure_from.clone(),
                last_frame.clone(),
                timeline.clone(),
            )));
        }
    }
    let opened = started.elapsed();
    // Everyone arriving is a presence notice to everyone in their room: wait for that storm to
    // pass before measuring.
    let settling = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let quiet_for = epoch
            .elapsed()
            .saturating_sub(Duration::from_nanos(last_frame.load(Ordering::Relaxed)));
        if quiet_for >= QUIET || settling.elapsed() >= MAX_SETTLE {
            break;
        }
    }
    println!(
        "{} connections in {} rooms open in {:.1} s, settled in {:.1} s; sending {rate} msg/s over {} for {:.0} s of warm-up and {seconds} s",
        receivers.len(),
        seeded.rooms.len(),
        opened.as_secs_f64(),
        settling.elapsed().as_secs_f64(),
        if via == SendVia::Rest { "REST" } else { "WebSocket" },
        warmup.as_secs_f64(),
    );
    let expected = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let period = Duration::from_secs_f64(senders_per_room as f64 / per_room);
    let sending_from = tokio::time::Instant::now();
    let deadline = sending_from + warmup + Duration::from_secs(seconds);
    let now = epoch.elapsed();
    measure_from.store((now + warmup).as_nanos() as u64, Ordering::Relaxed);
    if let Some(t) = &timeline {
        t.begin(now.as_nanos() as u64);
    }
    // Unique per run: the same senders' ids from an earlier run would be (rightly) de-duplicated.
    let run = chrono::Utc::now().timestamp_micros();
    let mut senders = Vec::new();
    for (k, (room, token, members, sink)) in send_sinks.into_iter().enumerate() {
        let (expected, sent, failures, http) = (
            expected.clone(),
            sent.clone(),
            failures.clone(),
            http.clone(),
        );
        let api = target.api.clone();
        // Spread the senders' ticks over one period.
        let offset = period.mul_f64((k % 97) as f64 / 97.0);
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0u64;
            loop {
                if tick.tick().await >= deadline {
                    break;
                }
                let body = format!("b{}", epoch.elapsed().as_nanos());
                let ok = match (via, &api) {
                    (SendVia::WebSocket, _) => {
                        let frame = serde_json::json!({"type": "message", "body": body, "client_msg_id": format!("{run}-{k}-{i}")});
                        sink.send_text(&frame.to_string()).await.is_ok()
                    }
                    (SendVia::Rest, Some(api)) => http
                        .post(format!("{api}/api/rooms/{room}/messages/"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"body": body}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                    (SendVia::Rest, None) => false,
                };
                i += 1;
                if ok {
                    sent.fetch_add(1, Ordering::Relaxed);
                    expected.fetch_add(members, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            sink
        }));
    }
    tokio::time::sleep_until(sending_from + warmup).await;
    let cpu_before = target.gateway_cpu();
    let own_cpu_before = process_cpu("self");
    let counts_before = target.fanout_counts(&http).await;
    // Scripts wait for this line to start their own counters.
    println!("measuring for {seconds} s");
    let mut sinks = Vec::new();
    for s in senders {
        sinks.push(s.await?);
    }
    let sending = Duration::from_secs(seconds);
    let rss = target.gateway_rss_kib();
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = match (counts_before, target.fanout_counts(&http).await) {
        (Some(before), Some(after)) => Some(after.since(before)),
        _ => None,
    };
    let cpu = match (cpu_before, target.gateway_cpu()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let own_cpu = match (own_cpu_before, process_cpu("self")) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let _ = stop_tx.send(true);
    let connections = receivers.len();
    let mut total = 0u64;
    for r in receivers {
        total += r.await?;
    }
    let mut latencies = RoomLatencies::new()?;
    for h in &histograms {
        latencies.add(&h.lock().unwrap_or_else(PoisonError::into_inner))?;
    }
    let measured = latencies.measured.len();
    let split = split.then(|| {
        format!(
            "split at created_at: send to created_at {}; created_at to receipt {}",
            p50_p99(&latencies.before_created),
            p50_p99(&latencies.after_created)
        )
    });
    let (whole, latencies) = (latencies.whole, latencies.measured);
    drop(sinks);
    let (sent, expected, failures) = (
        sent.load(Ordering::Relaxed),
        expected.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    println!(
        "| sent | failed sends | deliveries expected | delivered | lost | delivered/s | p50 ms | p99 ms | max ms | gateway RSS MiB | RSS KiB/connection | gateway CPU µs/delivery | p99 ms with warm-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {sent} | {failures} | {expected} | {total} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.1} |",
        expected.saturating_sub(total),
        measured as f64 / sending.as_secs_f64(),
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
        latencies.max() as f64 / 1000.0,
        rss.map(|k| format!("{:.0}", k as f64 / 1024.0)).unwrap_or_else(|| "-".into()),
        rss.map(|k| format!("{:.1}", k as f64 / connections.max(1) as f64))
            .unwrap_or_else(|| "-".into()),
        cpu.map(|c| format!("{:.1}", c.as_secs_f64() * 1e6 / measured.max(1) as f64))
            .unwrap_or_else(|| "-".into()),
        whole.value_at_quantile(0.99) as f64 / 1000.0,
    );
    if let Some(counts) = counts {
        println!("{counts}");
    }
    if let Some(split) = split {
        println!("{split}");
    }
    if let Some(own) = own_cpu {
        // What the client takes from the machine it shares with the gateway.
        println!(
            "load generator's CPU: {:.1} µs per delivery",
            own.as_secs_f64() * 1e6 / measured.max(1) as f64
        );
    }
    if let Some(t) = &timeline {
        t.print();
    }
    Ok(())
}

/// Counts message frames and records their latency (from the send time in the body), in the
/// measured histogram too when sent after the warm-up, until stopped; returns the count. With
/// the epoch's wall-clock time (`--split`), a measured delivery's latency is also recorded in
/// two parts, at the message's `created_at`.
async fn receive(
    mut stream: ws_client::Reader,
    (epoch, wall_epoch): (Instant, Option<i64>),
    mut stop: watch::Receiver<bool>,
    latencies: Arc<Mutex<RoomLatencies>>,
    measure_from: Arc<AtomicU64>,
    last_frame: Arc<AtomicU64>,
    timeline: Option<Arc<Timeline>>,
) -> u64 {
    let mut count = 0;
    let stopped = async move {
        let _ = stop.changed().await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            frame = stream.next_text() => match frame {
                Ok(Some(text)) => {
                    last_frame.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if let Some(sent) = sent_at(text) {
                        count += 1;
                        let now = epoch.elapsed().as_nanos() as u64;
                        let micros = now.saturating_sub(sent) / 1000;
                        let measured = sent >= measure_from.load(Ordering::Relaxed);
                        // µs from the send to `created_at`, and from `created_at` on.
                        let parts = wall_epoch.filter(|_| measured).and_then(|wall| {
                            let created = created_at(text)? - wall;
                            let before = u64::try_from(created - (sent / 1000) as i64).unwrap_or(0);
                            Some((before, (now / 1000).saturating_sub(u64::try_from(created).ok()?)))
                        });
                        let mut h = latencies.lock().unwrap_or_else(PoisonError::into_inner);
                        let _ = h.whole.record(micros.max(1));
                        if measured {
                            let _ = h.measured.record(micros.max(1));
                        }
                        if let Some((before, after)) = parts {
                            let _ = h.before_created.record(before.max(1));
                            let _ = h.after_created.record(after.max(1));
                        }
                        drop(h);
                        if let Some(t) = &timeline {
                            t.record(sent, micros);
                        }
                    }
                }
                _ => return count,
            },
            () = &mut stopped => return count,
        }
    }
}

/// A message frame's `created_at`, in µs since the Unix epoch.
fn created_at(frame: &[u8]) -> Option<i64> {
    let start = ws_client::find(frame, b"\"created_at\":\"")? + 14;
    let rest = &frame[start..];
    let end = rest.iter().position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .timestamp_micros(),
    )
}

/// The send time carried in a message frame's body (`"body":"b<nanos>"`).
fn sent_at(frame: &[u8]) -> Option<u64> {
    if !frame.starts_with(b"{\"type\":\"message\"") {
        return None;
    }
    let start = ws_client::find(frame, b"\"body\":\"b")? + 9;
    let digits = &frame[start..];
    let end = digits.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{created_at, FanoutCounts};

    #[test]
    fn a_frames_created_at_is_read_in_microseconds() {
        let frame =
            br#"{"type":"message","id":7,"created_at":"2026-12-07T15:00:00.123456Z","body":"b5"}"#;
        assert_eq!(created_at(frame), Some(1_796_655_600_123_456));
        assert_eq!(created_at(br#"{"type":"message","body":"b5"}"#), None);
    }

    #[test]
    fn the_servers_late_share_is_of_what_it_counted_between_the_two_readings() {
        let before = FanoutCounts {
            all: 100,
            within_5ms: 90,
            within_10ms: 95,
            queued: Some(10),
        };
        let after = FanoutCounts {
            all: 300,
            within_5ms: 250,
            within_10ms: 290,
            queued: Some(40),
        };
        // 200 deliveries between them: 160 within 5 ms, 195 within 10 ms, 30 queued.
        assert_eq!(
            after.since(before),
            "gateway's own count (post created to socket write): 200 deliveries, 20.00% over 5 ms, 2.50% over 10 ms, 15.00% written by the connections' own tasks"
        );
        // A build without the counter: no share.
        let older = |counts: &FanoutCounts| FanoutCounts {
            queued: None,
            ..*counts
        };
        assert_eq!(
            older(&after).since(older(&before)),
            "gateway's own count (post created to socket write): 200 deliveries, 20.00% over 5 ms, 2.50% over 10 ms"
        );
    }
}
