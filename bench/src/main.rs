//! `chatboard-bench`: seeds a benchmark data set and drives a running ChatBoard API with HTTP
//! load, printing latency percentiles and throughput. BENCHMARKS.md records its figures and the
//! exact commands.

mod load;
mod seed;

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
    /// (PostgreSQL only) and writes what the load runs need to a state file.
    Seed {
        /// Base URL of the API, e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The PostgreSQL database the API serves.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
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
    /// Runs one scenario (or all) against a seeded API and prints a Markdown table row per run.
    Run {
        /// State file written by `seed`.
        #[arg(long, default_value = "bench-state.json")]
        state: PathBuf,
        /// list-first, list-deep, post, post-spread, unread, or all.
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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed {
            api,
            database_url,
            messages,
            rooms,
            per_room,
            state,
        } => {
            let seeded = seed::seed(&api, &database_url, messages, rooms, per_room).await?;
            std::fs::write(&state, serde_json::to_vec_pretty(&seeded)?)?;
            println!("state written to {}", state.display());
        }
        Command::Run {
            state,
            scenario,
            requests,
            concurrency,
            seconds,
        } => {
            let seeded: seed::Seeded = serde_json::from_slice(&std::fs::read(&state)?)?;
            let scenarios = load::Scenario::select(&scenario)?;
            load::print_header();
            for scenario in scenarios {
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
    }
    Ok(())
}
