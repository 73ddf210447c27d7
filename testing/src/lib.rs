//! What every crate's tests share, so each fixture is written once:
//!
//! - [`db`]: a fresh database of either engine for one test, and [`both_engines!`];
//! - [`nats`]: the NATS server tests use, and names no other test uses, or a server of a
//!   test's own to stop and start;
//! - [`http`]: the API server on a loopback port with the HTTP fixtures (users, orgs, rooms,
//!   messages) tests build on;
//! - [`process`]: service binaries started as a user would, their banners read, their
//!   `/metrics` scraped;
//! - [`jobs`]: the worker's event jobs in-process (search indexing on PostgreSQL);
//! - [`smtp`]: an SMTP sink; [`s3`]: an S3-compatible server;
//! - [`slow_client`]: a client that sends half a request and waits to be hung up on;
//! - [`refused_port`]: a port that refuses connections and that no other test is given.
//!
//! A test that needs PostgreSQL or NATS is skipped with a printed note when `DATABASE_URL` /
//! `NATS_URL` is unset, unless `CHATBOARD_REQUIRE_SERVICES=1` (set by `.ci/run`), which turns
//! the skip into a failure.

// Test helpers fail loudly by design.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod db;
pub mod http;
pub mod jobs;
pub mod nats;
pub mod process;
pub mod refused_port;
pub mod s3;
pub mod slow_client;
pub mod smtp;

pub use db::{
    execute_sql, postgres_url, query_texts, waiting_for_locks, HeldLocks, HeldWrites, SqlSession,
    TestDb, TestEngine,
};
pub use nats::{nats_url, unique_prefix, NatsCluster, OwnNats};
pub use refused_port::RefusedPort;

/// Skips a test for want of a service: `None`, after a note (once per note and test binary)
/// written past the harness's output capture so a developer sees it without `--nocapture`.
/// Under `CHATBOARD_REQUIRE_SERVICES=1` the skip is a failure instead.
pub fn skip<T>(note: &'static str) -> Option<T> {
    if std::env::var("CHATBOARD_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("CHATBOARD_REQUIRE_SERVICES=1 but {note}");
    }
    static NOTED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut noted = NOTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !noted.contains(&note) {
        noted.push(note);
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "note: {note}");
    }
    None
}

/// Runs each named `async fn(TestEngine)` as one test per engine: `sqlite::$name` and
/// `postgres::$name` (skipped without PostgreSQL, see [`postgres_url`]).
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::TestEngine::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::TestEngine::Postgres).await } )*
        }
    };
}

/// The repository's root, found at run time from the package under test (cargo sets
/// `CARGO_MANIFEST_DIR` for test processes). Not `env!`: a test binary reused from another
/// checkout that shares the target directory would read that checkout's files.
pub fn repo_root() -> std::path::PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into());
    std::path::PathBuf::from(package).join("..")
}
