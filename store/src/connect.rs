//! Opening a store from a `DATABASE_URL`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::sqlite_connections::SqliteConnections;
use crate::sqlite_direct_writer::{DirectSettings, DirectWriter};
use crate::wal_checkpoint::{self, Checkpointer};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::{postgres, sqlite};
use super::{Store, StoreError, StoreResult};
use chatboard_core::config::settings::PoolSettings;
use chatboard_core::config::{redact_url, DatabaseConfig};

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL: the scale-out shape.
    Postgres,
    /// SQLite: the single-node embedded default.
    Sqlite,
}

impl Engine {
    /// The engine a URL names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else {
            None
        }
    }
}

/// How long a write may queue for SQLite's single writer connection: waiting there is queueing
/// behind this process's own writes, not an outage.
const SQLITE_WRITER_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("database {url}: {source}")]
pub struct OpenError {
    /// The URL, without its password.
    pub url: String,
    /// What failed.
    #[source]
    pub source: StoreError,
}

impl OpenError {
    /// `source` as an error naming `database` (its password hidden).
    pub fn new(database: &DatabaseConfig, source: StoreError) -> Self {
        Self {
            url: redact_url(&database.database_url),
            source,
        }
    }
}

/// Opens the configured database (migrations are not applied; see [`Store::migrate`]).
pub async fn open(database: &DatabaseConfig) -> Result<Arc<dyn Store>, OpenError> {
    connect_with(&database.database_url, &database.pool)
        .await
        .map_err(|source| OpenError::new(database, source))
}

/// Opens the database named by `url` with at most `max_connections` connections. Migrations are
/// not applied here; call [`Store::migrate`].
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    connect_with(url, &PoolSettings::with_max_connections(max_connections)).await
}

/// As [`connect`], with the time a request may wait for a pooled connection before the store
/// reports unavailable (`CHATBOARD_DB_ACQUIRE_TIMEOUT_MS`) and, on PostgreSQL, how many write
/// queues posts and reactions spread over (`CHATBOARD_DB_WRITE_QUEUES`).
pub async fn connect_with_timeout(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    write_queues: u32,
) -> StoreResult<Arc<dyn Store>> {
    let settings = PoolSettings {
        db_acquire_timeout: acquire_timeout,
        db_write_queues: write_queues,
        ..PoolSettings::with_max_connections(max_connections)
    };
    connect_with(url, &settings).await
}

/// Opens the database named by `url` with the pool `pool` describes.
pub async fn connect_with(url: &str, settings: &PoolSettings) -> StoreResult<Arc<dyn Store>> {
    let (max_connections, acquire_timeout, write_queues) = (
        settings.db_max_connections,
        settings.db_acquire_timeout,
        settings.db_write_queues,
    );
    match Engine::of_url(url) {
        Some(Engine::Postgres) => {
            // JIT compilation pays off for long analytic queries, not for ours: it once turned a
            // 10 ms unread-counts query into 400 ms because the planner's cost estimate crossed
            // the JIT threshold. Every statement here is short, so it is off for our sessions.
            let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(options.clone())
                .await?;
            // Searches have connections of their own, as many as the chat lets search at once,
            // which run every statement on its generic plan: each search statement is written
            // for one choice of index (made from the word statistics), and planning one with
            // its words took a fifth to a third of its time. One worker per statement: a
            // generic plan's row guesses had PostgreSQL start two parallel workers for a 0.3 ms
            // lookup.
            // And a time limit: a search of words in most of a large organization's messages
            // (or filtered down to nothing) is cancelled rather than read to its end.
            let search_timeout = settings.db_search_timeout.as_millis().max(1).to_string();
            let search = PgPoolOptions::new()
                .max_connections(u32::try_from(search_concurrency()).unwrap_or(u32::MAX))
                .acquire_timeout(acquire_timeout)
                .connect_lazy_with(options.options([
                    ("plan_cache_mode", "force_generic_plan"),
                    ("max_parallel_workers_per_gather", "0"),
                    ("statement_timeout", search_timeout.as_str()),
                ]));
            Ok(Arc::new(
                postgres::SqlStore::new(pool.clone(), pool)
                    .with_search_pool(search)
                    .with_write_queues(write_queues),
            ))
        }
        Some(Engine::Sqlite) => {
            unicode_lower();
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .row_buffer_size(SQLITE_RESULTS_IN_FLIGHT);
            // SQLite allows one writer at a time. Funnelling every write transaction through a
            // single connection queues writers in-process instead of failing them with
            // SQLITE_BUSY, while WAL lets the readers run alongside.
            if url.contains(":memory:") {
                // No ping before each use (sqlx's default): an SQLite connection is a file
                // handle in this process and cannot have gone away, and every ping is one more
                // round trip to the connection's thread, as costly as a statement.
                // Its one connection is the database: reads share the writer's.
                let only = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(SQLITE_WRITER_TIMEOUT)
                    .connect_with(options)
                    .await?;
                let shared = SqliteConnections::pooled(only);
                return Ok(Arc::new(sqlite::SqlStore::new(shared.clone(), shared)));
            }
            // Checkpoints run beside the writer, not inside its commits (see wal_checkpoint.rs).
            let mut writer_options = options.clone().pragma(
                "wal_autocheckpoint",
                wal_checkpoint::WRITER_CHECKPOINT_PAGES.to_string(),
            );
            let writer_vfs = wal_merging_vfs();
            if let Some(vfs) = writer_vfs {
                writer_options = writer_options.vfs(vfs);
            }
            // Held by the store, not pooled by sqlx, whose pool pings each connection given back
            // to it: a round trip to the connection's thread after every statement.
            let writer =
                SqliteConnections::open(writer_options.clone(), 1, SQLITE_WRITER_TIMEOUT).await?;
            // Opened after the writer, which creates the file and puts it in WAL mode.
            let direct = DirectWriter::open(
                writer_options.get_filename(),
                &DirectSettings {
                    busy_timeout: SQLITE_BUSY_TIMEOUT,
                    wal_autocheckpoint: wal_checkpoint::WRITER_CHECKPOINT_PAGES,
                    vfs: writer_vfs,
                },
            )
            .map_err(|e| StoreError::Database(sqlx::Error::Configuration(e.into())))?;
            let writer = writer.with_direct_writer(direct);
            let max_readers = usize::try_from(max_connections).unwrap_or(usize::MAX);
            let reader = SqliteConnections::open(
                options.clone().read_only(true),
                max_readers,
                acquire_timeout,
            )
            .await?;
            let checkpointer = Checkpointer::start(options, writer.clone());
            let store = sqlite::SqlStore::new(reader, writer).with_checkpointer(checkpointer);
            Ok(Arc::new(store))
        }
        None => Err(StoreError::Database(sqlx::Error::Configuration(
            "DATABASE_URL must start with postgres:// or sqlite:".into(),
        ))),
    }
}

/// The VFS the writers open the database through: SQLite's default, except that a commit's
/// write-ahead log frames reach the file in one write instead of two per page
/// (`sqlite-wal-merge`). `None`, with a warning, where it cannot be registered.
fn wal_merging_vfs() -> Option<&'static str> {
    match sqlite_wal_merge::register() {
        Ok(name) => Some(name),
        Err(e) => {
            tracing::warn!(error = %e, "writing SQLite's log through the default VFS instead");
            None
        }
    }
}

/// Gives the SQLite connections opened from here on a `lower()` for every alphabet
/// (`sqlite-lower`), as PostgreSQL's in a UTF-8 locale: the lookups by name compare
/// `lower(column)` with a prefix lowercased in Rust. Only warns where it cannot be registered
/// (the lookups then fold ASCII letters alone).
fn unicode_lower() {
    if let Err(e) = sqlite_lower::register() {
        tracing::warn!(error = %e, "SQLite lookups by name will fold ASCII letters only");
    }
}

/// How long an SQLite connection waits for a lock held by another (the checkpointer's).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Results (rows, and one per statement run) an SQLite connection's thread hands over before
/// it waits for the task to take them. With sqlx's 50, a batch of posts (three results each)
/// filled the channel, and from then on the thread and the task woke each other for every row:
/// under fan-out, where the task waits behind the runtime's other work for each wake-up, a post
/// cost a millisecond (BENCHMARKS.md). Room for the largest batch, and for a page of messages.
const SQLITE_RESULTS_IN_FLIGHT: usize = 1024;

/// Searches a process runs at once at most, however many cores it has: each holds a
/// connection of the search pool, and pods of an API on large nodes (32 cores, no CPU limit)
/// would otherwise open 64 connections each beside their chat pools.
const SEARCH_CONCURRENCY_MAX: usize = 8;

/// How many searches a process runs at once: two per core it may use, at most
/// [`SEARCH_CONCURRENCY_MAX`]. A search keeps the database busy for a millisecond or two
/// (hundreds for words in a large share of messages), and more at once on a small database
/// server only share its cores more finely.
pub fn search_concurrency() -> usize {
    (2 * std::thread::available_parallelism().map_or(1, usize::from)).min(SEARCH_CONCURRENCY_MAX)
}
