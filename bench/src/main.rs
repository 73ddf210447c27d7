//! `chatboard-bench`: seeds a benchmark data set and drives a running ChatBoard API with HTTP
//! load, printing latency percentiles and throughput. BENCHMARKS.md records its figures and the
//! exact commands.

mod depth_seed;
mod load;
mod memory;
mod raw_gateway;
mod seed;
mod timeline;
mod webhooks;
mod ws_client;
mod ws_load;
mod ws_receipts;
mod ws_seed;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Benchmarks for the ChatBoard API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates users, an org and rooms through the API, then bulk-loads messages with SQL
    /// (PostgreSQL only; without a database URL the rooms stay empty, enough for the post
    /// scenarios on a single node) and writes what the load runs need to a state file.
    Seed {
        /// Base URL of the API, e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The PostgreSQL database the API serves.
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// Messages in the big room.
        #[arg(long, default_value_t = 1_000_000)]
        messages: i64,
        /// Rooms the reading user is in (the big room included).
        #[arg(long, default_value_t = 500)]
        rooms: usize,
        /// Messages in each of the other rooms.
        #[arg(long, default_value_t = 20)]
        per_room: i64,
        /// Where to write the state.
        #[arg(long, default_value = "bench-state.json")]
        state: PathBuf,
    },
    /// Seeds issue 20's data set (PostgreSQL only): `messages` messages over `rooms` rooms of
    /// one org, the reader seated in `seated`, a word in every message and one in a single
    /// message, a thread of `replies` replies, mentions of the reader; then writes the state
    /// for the depth scenarios (search-common, search-rare, thread, mentions, react).
    DepthSeed {
        /// Base URL of the API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The PostgreSQL database the API serves.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Messages in all.
        #[arg(long, default_value_t = 1_000_000)]
        messages: i64,
        /// Rooms.
        #[arg(long, default_value_t = 200)]
        rooms: usize,
        /// Rooms the reader sits in.
        #[arg(long, default_value_t = 50)]
        seated: usize,
        /// Replies in the thread.
        #[arg(long, default_value_t = 500)]
        replies: i64,
        /// Where to write the state.
        #[arg(long, default_value = "depth-state.json")]
        state: PathBuf,
    },
    /// Runs one scenario (or all) against a seeded API and prints a Markdown table row per run.
    Run {
        /// State file written by `seed`.
        #[arg(long, default_value = "bench-state.json")]
        state: PathBuf,
        /// list-first, list-deep, post, post-spread, unread, room, rooms, or all (the first
        /// five); with a depth-seed state also search-common, search-rare, thread, mentions,
        /// react, or depth (those five).
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Requests measured one at a time for the latency percentiles.
        #[arg(long, default_value_t = 2000)]
        requests: u64,
        /// Concurrent clients for the throughput run.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Length of each throughput run, seconds.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Instead of the closed-loop runs, send this many requests per second for `seconds`
        /// (open loop: latency counts from when each request was due).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Creates `rooms` orgs of `members` users, each org with one PUBLIC room seating all of
    /// them, straight through the store, and writes the rooms and minted access tokens to a
    /// state file. The platform's database and key come from `--data-dir` (single node) or
    /// from DATABASE_URL and CHATBOARD_JWT_SECRET (scale-out).
    WsSeed {
        /// The single-node binary's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Rooms (one org each).
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Members per room.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Where to write the state.
        #[arg(long, default_value = "ws-state.json")]
        state: PathBuf,
    },
    /// Opens `connections` idle authenticated WebSockets (members of the seeded rooms, from
    /// source addresses 127.0.0.2, .3, ... on loopback), holds them, and prints the gateway's
    /// resident memory per connection.
    WsIdle {
        /// The gateway, ws://host:port.
        #[arg(long, default_value = "ws://127.0.0.1:8080")]
        ws: String,
        /// State file written by `ws-seed`.
        #[arg(long, default_value = "ws-state.json")]
        state: PathBuf,
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Number of the first connection: several generators (each under its own open-files
        /// limit) take disjoint members and source addresses with different values.
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// The gateway's process id, to read its memory from /proc.
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// Seconds to hold the connections before measuring.
        #[arg(long, default_value_t = 5)]
        hold: u64,
    },
    /// Connects every member of every seeded room, sends `rate` messages/s spread over the
    /// rooms for `seconds`, and prints deliveries, losses and post-to-delivery latency.
    WsFanout {
        /// The gateway, ws://host:port.
        #[arg(long, default_value = "ws://127.0.0.1:8080")]
        ws: String,
        /// The API, http://host:port (needed with --via rest).
        #[arg(long)]
        api: Option<String>,
        /// State file written by `ws-seed`.
        #[arg(long, default_value = "ws-state.json")]
        state: PathBuf,
        /// Messages per second, over all rooms.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds of sending measured.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds of sending before that, at the same rate, whose latency and CPU are left
        /// out of the figures (the whole run's p99 is printed too).
        #[arg(long, default_value_t = 0)]
        warmup_seconds: u64,
        /// ws (message frames) or rest (POST).
        #[arg(long, default_value = "ws")]
        via: String,
        /// The gateway's process id, to read its memory from /proc.
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// The gateway's metrics (http://host:port/metrics): also print the share of
        /// deliveries its own histogram counted as late over the measured seconds.
        #[arg(long)]
        metrics_url: Option<String>,
        /// Also print deliveries by send time in windows of this many milliseconds (how many,
        /// how many over 10 ms, the worst): where in the run the tail was.
        #[arg(long)]
        timeline_ms: Option<u64>,
        /// Also split each measured delivery's latency at the message's `created_at` (the
        /// server's clock, the same machine's): before it (the sender's frame on its way in)
        /// and after it (storing, the fan-out and the client's read). Costs the client a
        /// timestamp parse per frame.
        #[arg(long)]
        split: bool,
    },
    /// Connects every member of every seeded room, posts one message into each room, then has
    /// every member mark it read at once, and prints how many `read` frames reached the sockets
    /// and what the storm cost the gateway.
    WsReceipts {
        /// The gateway, ws://host:port.
        #[arg(long, default_value = "ws://127.0.0.1:8080")]
        ws: String,
        /// State file written by `ws-seed`.
        #[arg(long, default_value = "ws-state.json")]
        state: PathBuf,
        /// The gateway's process id, to read its CPU time from /proc.
        #[arg(long)]
        gateway_pid: Option<u32>,
    },
    /// A minimal broadcaster speaking just enough of the gateway's protocol for `ws-fanout`
    /// (no authentication, storage, presence or limits): the floor the gateway is measured
    /// against. Runs until killed.
    RawGateway {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
        /// How a message reaches its room's sockets: a task per socket (`tasks`), or the
        /// sender's task sending to each (`sends`) or to all in one io_uring submission (`uring`).
        #[arg(long, value_enum, default_value = "tasks")]
        fanout: raw_gateway::Fanout,
        /// Store each message in the SQLite database at this path before its fan-out (one
        /// commit per message; `sends` and `uring` only): the floor with storage.
        #[arg(long)]
        store: Option<std::path::PathBuf>,
    },
    /// Resident memory of a running server (`--pid`) through a burst of sign-ups and sign-ins
    /// and then posts into one room, and after a quiet spell. Start the server with rate limits
    /// off (CHATBOARD_RATE_LIMIT_PER_USER=0, CHATBOARD_RATE_LIMIT_PER_IP=0,
    /// CHATBOARD_INVITES_PER_HOUR=0).
    Memory {
        /// The API, http://host:port.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The server's process id.
        #[arg(long)]
        pid: u32,
        /// Accounts registered (each then signs in once).
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Messages posted.
        #[arg(long, default_value_t = 10_000)]
        posts: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Webhook delivery throughput: `webhooks` webhooks of one org pointing at a receiver in
    /// this process, `messages` messages posted through the store of a scratch database, and
    /// the worker's pipeline (in-process, or through JetStream with --nats-url) delivering them.
    Webhooks {
        /// sqlite (scratch file) or postgres (scratch database on DATABASE_URL's server).
        #[arg(long, default_value = "sqlite")]
        engine: String,
        /// Deliver through JetStream (the scale-out worker's pipeline).
        #[arg(long)]
        nats_url: Option<String>,
        /// Webhooks subscribed to message.created.
        #[arg(long, default_value_t = 100)]
        webhooks: usize,
        /// Messages posted.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Messages per second while the worker runs; without it, all are posted first.
        #[arg(long)]
        rate: Option<f64>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::RawGateway {
            listen,
            fanout,
            store,
        } => raw_gateway::serve(listen, fanout, store).await?,
        Command::Memory {
            api,
            pid,
            users,
            posts,
            concurrency,
        } => memory::run(&api, pid, users, posts, concurrency).await?,
        Command::Seed {
            api,
            database_url,
            messages,
            rooms,
            per_room,
            state,
        } => {
            let seeded =
                seed::seed(&api, database_url.as_deref(), messages, rooms, per_room).await?;
            std::fs::write(&state, serde_json::to_vec_pretty(&seeded)?)?;
            println!("state written to {}", state.display());
        }
        Command::DepthSeed {
            api,
            database_url,
            messages,
            rooms,
            seated,
            replies,
            state,
        } => {
            let seeded =
                depth_seed::seed(&api, &database_url, messages, rooms, seated, replies).await?;
            std::fs::write(&state, serde_json::to_vec_pretty(&seeded)?)?;
            println!("state written to {}", state.display());
        }
        Command::Run {
            state,
            scenario,
            requests,
            concurrency,
            seconds,
            rate,
        } => {
            let seeded: seed::Seeded = serde_json::from_slice(&std::fs::read(&state)?)?;
            let scenarios = load::Scenario::select(&scenario)?;
            load::print_header();
            for scenario in scenarios {
                if let Some(rate) = rate {
                    let paced =
                        load::paced(&seeded, scenario, rate, Duration::from_secs(seconds)).await?;
                    load::print_row(scenario, 0, &paced);
                    continue;
                }
                let serial = load::run(&seeded, scenario, 1, load::Stop::After(requests)).await?;
                load::print_row(scenario, 1, &serial);
                let loaded = load::run(
                    &seeded,
                    scenario,
                    concurrency,
                    load::Stop::Within(Duration::from_secs(seconds)),
                )
                .await?;
                load::print_row(scenario, concurrency, &loaded);
            }
        }
        Command::WsSeed {
            data_dir,
            rooms,
            members,
            state,
        } => {
            let config = ws_seed::platform_config(data_dir.as_deref())?;
            let started = std::time::Instant::now();
            let seeded = ws_seed::seed(&config, rooms, members).await?;
            std::fs::write(&state, serde_json::to_vec(&seeded)?)?;
            println!(
                "{rooms} rooms x {members} members seeded in {:.1} s; state written to {}",
                started.elapsed().as_secs_f64(),
                state.display()
            );
        }
        Command::WsIdle {
            ws,
            state,
            connections,
            first,
            gateway_pid,
            hold,
        } => {
            let seeded: ws_seed::WsSeeded = serde_json::from_slice(&std::fs::read(&state)?)?;
            let target = ws_load::Target::new(&ws, None, gateway_pid, None)?;
            let range = first..first + connections;
            ws_load::idle(&target, &seeded, range, Duration::from_secs(hold)).await?;
        }
        Command::WsReceipts {
            ws,
            state,
            gateway_pid,
        } => {
            let seeded: ws_seed::WsSeeded = serde_json::from_slice(&std::fs::read(&state)?)?;
            let target = ws_load::Target::new(&ws, None, gateway_pid, None)?;
            ws_receipts::storm(&target, &seeded).await?;
        }
        Command::WsFanout {
            ws,
            api,
            state,
            rate,
            seconds,
            warmup_seconds,
            via,
            gateway_pid,
            metrics_url,
            timeline_ms,
            split,
        } => {
            let via = match via.as_str() {
                "ws" => ws_load::SendVia::WebSocket,
                "rest" if api.is_some() => ws_load::SendVia::Rest,
                "rest" => anyhow::bail!("--via rest needs --api"),
                other => anyhow::bail!("--via: ws or rest, not {other}"),
            };
            let seeded: ws_seed::WsSeeded = serde_json::from_slice(&std::fs::read(&state)?)?;
            let target = ws_load::Target::new(&ws, api, gateway_pid, metrics_url)?;
            ws_load::fanout(
                &target,
                &seeded,
                rate,
                seconds,
                Duration::from_secs(warmup_seconds),
                via,
                timeline_ms.map(Duration::from_millis),
                split,
            )
            .await?;
        }
        Command::Webhooks {
            engine,
            nats_url,
            webhooks,
            messages,
            rate,
            concurrency,
        } => {
            let engine = match engine.as_str() {
                "sqlite" => testing::TestEngine::Sqlite,
                "postgres" => testing::TestEngine::Postgres,
                other => anyhow::bail!("--engine: sqlite or postgres, not {other}"),
            };
            webhooks::run(webhooks::Plan {
                engine,
                nats_url,
                webhooks,
                messages,
                rate,
                concurrency,
            })
            .await?;
        }
    }
    Ok(())
}
