//! What the Unicode `lower()` costs against SQLite's own where the store calls it most: the
//! single node's search scores each of up to 200 candidate messages by counting a word in
//! `lower(body)` (twice per word). `cargo bench -p sqlite-lower` runs SQLite's own, then this
//! crate's, in two processes (the registration is for the whole process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::process::Command;
use std::time::Instant;

use rusqlite::Connection;

const CANDIDATES: usize = 200;
const ROUNDS: u32 = 5000;

/// Microseconds per scoring of the candidates, with this process's `lower()`.
fn score_cost() -> f64 {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE messages (body TEXT)")
        .unwrap();
    for i in 0..CANDIDATES {
        conn.execute(
            "INSERT INTO messages VALUES (?1)",
            [format!(
                "Message {i}: the Common word appears here, with a Plan for lunch and a few more \
                 words, about as long as a chat line."
            )],
        )
        .unwrap();
    }
    let mut score = conn
        .prepare(
            "SELECT sum((length(lower(body)) - length(replace(lower(body), 'common', ''))) \
             * 1.0 / 6) FROM messages",
        )
        .unwrap();
    let mut run = || {
        let _: f64 = score.query_row([], |row| row.get(0)).unwrap();
    };
    for _ in 0..200 {
        run();
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        run();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

fn main() {
    match std::env::var("LOWER_COST_ONE").as_deref() {
        Ok("ours") => {
            sqlite_lower::register().unwrap();
            println!("{:.1}", score_cost());
        }
        Ok(_) => println!("{:.1}", score_cost()),
        Err(_) => {
            let me = std::env::current_exe().unwrap();
            let one = |which: &str| -> f64 {
                let out = Command::new(&me)
                    .env("LOWER_COST_ONE", which)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            };
            for round in 1..=3 {
                let (builtin, ours) = (one("builtin"), one("ours"));
                println!(
                    "round {round}: one word scored over {CANDIDATES} messages: SQLite's lower() \
                     {builtin:.1} µs, sqlite-lower's {ours:.1} µs ({:.2}×)",
                    ours / builtin
                );
            }
        }
    }
}
