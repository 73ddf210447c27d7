//! The load runner: `concurrency` clients each send one request after another (closed loop)
//! until a count or a deadline, recording every latency in an HDR histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;

use crate::seed::Seeded;

/// What one request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The newest page of the big room.
    ListFirst,
    /// A page 1,000 messages above the oldest of the big room.
    ListDeep,
    /// A message into the big room (every client the same room).
    Post,
    /// A message into one of the rooms, client i always room i.
    PostSpread,
    /// The reader's unread counts over all their rooms.
    Unread,
    /// Search for a word in every message (depth data set).
    SearchCommon,
    /// Search for a word in one message (depth data set).
    SearchRare,
    /// The newest page of a thread's replies (depth data set).
    Thread,
    /// The reader's mentions page (depth data set).
    Mentions,
    /// A reaction added to a message of the reader's rooms, a new one each time (depth).
    React,
    /// The big room's own answer (`GET /api/rooms/{id}/`): the access check and the room.
    Room,
    /// The reader's rooms (`GET /api/rooms/`).
    Rooms,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::ListFirst,
        Scenario::ListDeep,
        Scenario::Post,
        Scenario::PostSpread,
        Scenario::Unread,
    ];

    /// The depth data set's scenarios (`--scenario depth`).
    const DEPTH: [Scenario; 5] = [
        Scenario::SearchCommon,
        Scenario::SearchRare,
        Scenario::Thread,
        Scenario::Mentions,
        Scenario::React,
    ];

    /// The room reads, by name only (`room`, `rooms`).
    const ROOM_READS: [Scenario; 2] = [Scenario::Room, Scenario::Rooms];

    fn name(self) -> &'static str {
        match self {
            Scenario::Room => "room",
            Scenario::Rooms => "rooms",
            Scenario::SearchCommon => "search-common",
            Scenario::SearchRare => "search-rare",
            Scenario::Thread => "thread",
            Scenario::Mentions => "mentions",
            Scenario::React => "react",
            Scenario::ListFirst => "list-first",
            Scenario::ListDeep => "list-deep",
            Scenario::Post => "post",
            Scenario::PostSpread => "post-spread",
            Scenario::Unread => "unread",
        }
    }

    /// The scenarios a command-line name selects.
    pub fn select(name: &str) -> anyhow::Result<Vec<Scenario>> {
        if name == "all" {
            return Ok(Self::ALL.to_vec());
        }
        if name == "depth" {
            return Ok(Self::DEPTH.to_vec());
        }
        match Self::ALL
            .into_iter()
            .chain(Self::DEPTH)
            .chain(Self::ROOM_READS)
            .find(|s| s.name() == name)
        {
            Some(s) => Ok(vec![s]),
            None => bail!("unknown scenario {name}"),
        }
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests in all.
    After(u64),
    /// After this long.
    Within(Duration),
}

/// What a run measured.
pub struct Outcome {
    /// Latencies in microseconds.
    pub latencies: Histogram<u64>,
    /// Requests that did not answer 2xx.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

pub async fn run(
    seeded: &Seeded,
    scenario: Scenario,
    concurrency: usize,
    stop: Stop,
) -> anyhow::Result<Outcome> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let total = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match stop {
        Stop::Within(d) => Some(started + d),
        Stop::After(_) => None,
    };
    let mut workers = Vec::with_capacity(concurrency);
    for client in 0..concurrency {
        let http = http.clone();
        let (total, sent, errors) = (total.clone(), sent.clone(), errors.clone());
        let target = Target::new(seeded, scenario, client)?;
        workers.push(tokio::spawn(async move {
            let mut mine = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut n: u64 = 0;
            loop {
                if let Stop::After(limit) = stop {
                    if sent.fetch_add(1, Ordering::Relaxed) >= limit {
                        break;
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let begin = Instant::now();
                let ok = target.send(&http, n).await;
                mine.saturating_record(begin.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            total.lock().await.add(&mine)?;
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    let latencies = Arc::try_unwrap(total)
        .map_err(|_| anyhow::anyhow!("histogram still shared"))?
        .into_inner();
    Ok(Outcome {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
    })
}

/// An open-loop run: `rate` requests per second for `length`, each sent when due whatever the
/// earlier ones are doing (so a stall shows in full instead of slowing the sender down).
pub async fn paced(
    seeded: &Seeded,
    scenario: Scenario,
    rate: f64,
    length: Duration,
) -> anyhow::Result<Outcome> {
    if !rate.is_finite() || rate <= 0.0 {
        bail!("--rate must be above zero");
    }
    let http = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (rate * length.as_secs_f64()).round() as u64;
    // Enough distinct clients that `post-spread` still covers every room.
    let targets: Vec<Arc<Target>> = (0..seeded.rooms.len().max(1))
        .map(|client| Target::new(seeded, scenario, client).map(Arc::new))
        .collect::<anyhow::Result<_>>()?;
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..count {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        // Timed from now, not from `due`: the timer wakes up to a millisecond late, and that is
        // the generator's delay, not the server's.
        let begin = Instant::now();
        let (http, errors) = (http.clone(), errors.clone());
        let target = targets[n as usize % targets.len()].clone();
        requests.spawn(async move {
            if !target.send(&http, n).await {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            begin.elapsed()
        });
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(latency) = requests.join_next().await {
        latencies.saturating_record(latency?.as_micros() as u64);
    }
    Ok(Outcome {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// One client's request, prepared once.
struct Target {
    scenario: Scenario,
    url: String,
    token: String,
    tag: String,
    /// React: the client's room and its first message id, and the room's size.
    react_room: (i64, i64, i64),
    /// React: where in the room this client starts (so runs one after another mostly add new
    /// reactions rather than repeat old ones).
    react_start: i64,
}

impl Target {
    fn new(seeded: &Seeded, scenario: Scenario, client: usize) -> anyhow::Result<Self> {
        let api = &seeded.api;
        let big = seeded.big_room;
        let depth = || {
            seeded
                .depth
                .as_ref()
                .context("this scenario needs a state written by depth-seed")
        };
        let mut react_room = (0, 0, 1);
        let (url, token) = match scenario {
            Scenario::SearchCommon | Scenario::SearchRare => {
                let q = if scenario == Scenario::SearchCommon {
                    "common"
                } else {
                    "needle"
                };
                (
                    format!("{api}/api/orgs/{}/search/?q={q}", depth()?.org),
                    &seeded.reader_token,
                )
            }
            Scenario::Thread => {
                let d = depth()?;
                (
                    format!(
                        "{api}/api/rooms/{}/messages/{}/thread/?limit=50",
                        d.thread_room, d.thread_root
                    ),
                    &seeded.reader_token,
                )
            }
            Scenario::Mentions => (format!("{api}/auth/me/mentions/"), &seeded.reader_token),
            Scenario::React => {
                let d = depth()?;
                let (room, first) = d.reader_rooms[client % d.reader_rooms.len()];
                react_room = (room, first, d.per_room);
                (
                    format!("{api}/api/rooms/{room}/messages/"),
                    &seeded.reader_token,
                )
            }
            Scenario::ListFirst => (
                format!("{api}/api/rooms/{big}/messages/?limit=50"),
                &seeded.reader_token,
            ),
            Scenario::ListDeep => (
                format!(
                    "{api}/api/rooms/{big}/messages/?limit=50&before={}",
                    seeded.deep_cursor
                ),
                &seeded.reader_token,
            ),
            Scenario::Post => (
                format!("{api}/api/rooms/{big}/messages/"),
                &seeded.writer_token,
            ),
            Scenario::PostSpread => {
                let room = seeded.rooms[client % seeded.rooms.len()];
                (
                    format!("{api}/api/rooms/{room}/messages/"),
                    &seeded.writer_token,
                )
            }
            Scenario::Unread => (
                format!("{api}/auth/me/unread-counts/"),
                &seeded.reader_token,
            ),
            Scenario::Room => (format!("{api}/api/rooms/{big}/"), &seeded.reader_token),
            Scenario::Rooms => (format!("{api}/api/rooms/"), &seeded.reader_token),
        };
        Ok(Self {
            scenario,
            url,
            token: token.clone(),
            tag: format!("{}-{}-{client}", std::process::id(), scenario.name()),
            react_room,
            react_start: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| i64::from(t.subsec_nanos())),
        })
    }

    /// Sends the n-th request; true on a 2xx answer whose body was read whole.
    async fn send(&self, http: &reqwest::Client, n: u64) -> bool {
        let request = match self.scenario {
            Scenario::React => {
                // Each request a message not reacted to yet by the reader (clients share a room
                // only beyond its count of rooms, and then take other messages).
                let (_, first, count) = self.react_room;
                let msg = first + (self.react_start + (n as i64) * 7) % count.max(1);
                http.post(format!("{}{msg}/reactions/", self.url))
                    .json(&json!({"emoji": "👍"}))
            }
            Scenario::Post | Scenario::PostSpread => http.post(&self.url).json(&json!({
                "body": "Benchmark post: the quick brown fox jumps over the lazy dog.",
                "client_msg_id": format!("{}-{n}", self.tag),
            })),
            _ => http.get(&self.url),
        };
        match request.bearer_auth(&self.token).send().await {
            Ok(response) => {
                let ok = response.status().is_success();
                response.bytes().await.is_ok() && ok
            }
            Err(_) => false,
        }
    }
}

pub fn print_header() {
    println!("| scenario | clients | requests | errors | req/s | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
}

/// A row of the table; `clients` 0 stands for an open-loop (paced) run.
pub fn print_row(scenario: Scenario, clients: usize, outcome: &Outcome) {
    let h = &outcome.latencies;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        scenario.name(),
        if clients == 0 {
            "paced".to_owned()
        } else {
            clients.to_string()
        },
        h.len(),
        outcome.errors,
        h.len() as f64 / outcome.elapsed.as_secs_f64(),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
}
