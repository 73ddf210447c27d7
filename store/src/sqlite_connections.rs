//! SQLite's connections, held by the store instead of lent out by sqlx's pool.
//!
//! sqlx's pool pings every connection it gets back ("test on release"), and has no switch for
//! it. On SQLite a ping is a round trip to the connection's thread: after every statement that
//! thread woke once more and a task was spawned on the runtime to wait for it, and on the one
//! writer connection nothing else could be written meanwhile (BENCHMARKS.md, "The pool's ping
//! after every write"). An SQLite connection is a file handle in this process and cannot go away
//! under us, so the store keeps its own: [`SqliteConnections`] holds up to a fixed number (one
//! for the writer, the reader pool's size for reads), each behind an async mutex, opened on first
//! use. Callers take one in turn, with a time limit, and get the same errors as from a pool
//! (`PoolTimedOut`; `PoolClosed` once closed).
//!
//! They run statements like a pool (`query.execute(&connections)`) and begin transactions
//! ([`WriteTx`]) that roll back when dropped unfinished, as sqlx's do. An in-memory database is
//! one connection that reads and writes must share, so there it stays an sqlx pool.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqliteQueryResult, SqliteRow,
    SqliteStatement,
};
use sqlx::{
    ConnectOptions, Connection, Database, Describe, Either, Execute, Executor, Sqlite,
    TransactionManager,
};
use tokio::sync::{
    Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, TryAcquireError,
};

use crate::sqlite_direct_writer::DirectWriter;

/// A wait for a connection this long is logged (sqlx's pool warns at the same mark).
const SLOW_ACQUIRE: Duration = Duration::from_secs(2);

/// Some SQLite connections of the store's own, taken one at a time by each caller.
#[derive(Clone)]
pub(crate) struct SqliteConnections {
    source: Source,
    /// The writer's: a connection driven on a thread of its own, for work that its holder of a
    /// connection here may hand over (see `sqlite_direct_writer`).
    direct: Option<DirectWriter>,
}

#[derive(Clone)]
enum Source {
    /// A file database's connections.
    Held(Arc<Held>),
    /// An in-memory database: its only connection, pooled, shared by reads and writes.
    Pooled(SqlitePool),
}

/// The held connections and what goes with them.
struct Held {
    slots: Vec<Slot>,
    /// One per slot: a caller with a permit finds a slot free. Closed with the connections.
    permits: Arc<Semaphore>,
    /// How a slot opens its connection.
    options: SqliteConnectOptions,
    /// How long a caller waits for a connection before the store reports it unavailable.
    acquire_timeout: Duration,
}

/// Room for one connection: `None` until first used, and again once closed.
#[derive(Default)]
struct Slot {
    conn: Arc<Mutex<Option<SqliteConnection>>>,
    /// Set when a transaction begun in SQL text (unknown to sqlx) may have been left open by a
    /// caller that went away: the next caller rolls it back first.
    dirty: Arc<AtomicBool>,
}

/// The direct connection's turn: a connection of these is held until dropped, so the direct
/// one is the only writer meanwhile.
pub(crate) struct DirectTurn<'a> {
    _held: TakenConn,
    direct: &'a DirectWriter,
}

impl DirectTurn<'_> {
    /// The direct connection, to hand work to during this turn.
    pub(crate) fn writer(&self) -> &DirectWriter {
        self.direct
    }
}

/// A connection, taken: the holder's until dropped.
pub(crate) enum TakenConn {
    /// A held connection.
    Held {
        conn: OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>,
        /// Its slot's flag for a transaction to roll back.
        dirty: Arc<AtomicBool>,
        /// Given back after the slot is unlocked (fields drop in order).
        _permit: OwnedSemaphorePermit,
    },
    /// The in-memory database's pooled connection.
    Pooled(PoolConnection<Sqlite>),
}

impl SqliteConnections {
    /// Up to `max` connections (at least one) opened with `options`; the first is opened now,
    /// so that a database that cannot be opened fails here.
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        max: usize,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let slots: Vec<Slot> = (0..max.max(1)).map(|_| Slot::default()).collect();
        let first = options.connect().await?;
        if let Some(slot) = slots.first() {
            *slot.conn.lock().await = Some(first);
        }
        Ok(Self {
            source: Source::Held(Arc::new(Held {
                permits: Arc::new(Semaphore::new(slots.len())),
                slots,
                options,
                acquire_timeout,
            })),
            direct: None,
        })
    }

    /// These connections with `direct` beside them, for their holders to hand work to.
    pub(crate) fn with_direct_writer(self, direct: DirectWriter) -> Self {
        Self {
            direct: Some(direct),
            ..self
        }
    }

    /// When these connections have a direct one beside them: takes a connection (waiting as
    /// `acquire` does), so that nothing else writes while the direct one is used.
    pub(crate) async fn direct_turn(&self) -> Result<Option<DirectTurn<'_>>, sqlx::Error> {
        let Some(direct) = &self.direct else {
            return Ok(None);
        };
        Ok(Some(DirectTurn {
            _held: self.acquire().await?,
            direct,
        }))
    }

    /// Goes through `pool` (an in-memory database's only connection).
    pub(crate) fn pooled(pool: SqlitePool) -> Self {
        Self {
            source: Source::Pooled(pool),
            direct: None,
        }
    }

    /// Takes a connection, waiting for one to be free; `PoolTimedOut` after the time limit,
    /// `PoolClosed` once closed.
    pub(crate) async fn acquire(&self) -> Result<TakenConn, sqlx::Error> {
        let held = match &self.source {
            Source::Pooled(pool) => return Ok(TakenConn::Pooled(pool.acquire().await?)),
            Source::Held(held) => held,
        };
        let permit = match held.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Every statement comes here: only one that must wait pays for a timer.
            Err(TryAcquireError::NoPermits) => held.wait_for_permit().await?,
            Err(TryAcquireError::Closed) => return Err(sqlx::Error::PoolClosed),
        };
        // With a permit, some slot is free: slots are unlocked before their permit goes back.
        let (slot, mut guard) = held
            .slots
            .iter()
            .find_map(|slot| {
                slot.conn
                    .clone()
                    .try_lock_owned()
                    .ok()
                    .map(|guard| (slot, guard))
            })
            .ok_or(sqlx::Error::PoolTimedOut)?;
        // Checked with the slot locked: `close` closes the permits before it takes any slot's
        // connection, so a slot found open here is not taken until this caller is done.
        if held.permits.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        if guard.is_none() {
            *guard = Some(held.options.connect().await?);
        }
        let mut conn = OwnedMutexGuard::try_map(guard, Option::as_mut)
            .map(|conn| TakenConn::Held {
                conn,
                dirty: slot.dirty.clone(),
                _permit: permit,
            })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        if slot.dirty.swap(false, Ordering::AcqRel) {
            // Fails harmlessly when the transaction had ended after all.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        }
        Ok(conn)
    }

    /// Begins a transaction on a connection, which it keeps until it ends.
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        <Sqlite as Database>::TransactionManager::begin(&mut conn, None).await?;
        Ok(WriteTx { conn, open: true })
    }

    /// Closes the connections once their holders are done; later callers fail.
    pub(crate) async fn close(&self) {
        match &self.source {
            Source::Pooled(pool) => pool.close().await,
            Source::Held(held) => {
                // Callers waiting for a connection, and those after, fail at once.
                held.permits.close();
                for slot in &held.slots {
                    if let Some(conn) = slot.conn.lock().await.take() {
                        if let Err(error) = conn.close().await {
                            tracing::warn!(%error, "closing an SQLite connection failed");
                        }
                    }
                }
                if let Some(direct) = &self.direct {
                    direct.close().await;
                }
            }
        }
    }
}

impl Held {
    /// Waits for a free connection, up to the time limit; a long wait is logged.
    async fn wait_for_permit(&self) -> Result<OwnedSemaphorePermit, sqlx::Error> {
        let asked = Instant::now();
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        let waited = asked.elapsed();
        if waited >= SLOW_ACQUIRE {
            // As sqlx's pool reports it: the connections are the bottleneck.
            tracing::warn!(
                waited_ms = waited.as_millis(),
                "waited long for an SQLite connection"
            );
        }
        Ok(permit)
    }
}

impl fmt::Debug for SqliteConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteConnections")
    }
}

impl TakenConn {
    /// Marks the connection as possibly inside a transaction begun in SQL text that its holder
    /// is abandoning: the next caller to take it rolls it back. A pooled connection is closed
    /// instead when dropped, which discards the transaction (the pool opens another).
    pub(crate) fn roll_back_on_release(&mut self) {
        match self {
            Self::Held { dirty, .. } => dirty.store(true, Ordering::Release),
            Self::Pooled(conn) => conn.close_on_drop(),
        }
    }
}

impl Deref for TakenConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Held { conn, .. } => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

impl DerefMut for TakenConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Held { conn, .. } => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// A transaction on one of the connections: committed or rolled back explicitly, rolled back
/// (queued for the connection's next use) when dropped while open.
pub(crate) struct WriteTx {
    conn: TakenConn,
    open: bool,
}

impl WriteTx {
    /// Commits the transaction.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        <Sqlite as Database>::TransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    /// Rolls the transaction back.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        <Sqlite as Database>::TransactionManager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            <Sqlite as Database>::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// Statements run as on a pool: a connection is taken for each and given back after it, with no
/// ping in between.
impl<'w> Executor<'w> for &'_ SqliteConnections {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let connections = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = connections.acquire().await?;
            let mut results = conn.fetch_many(query);
            while let Some(result) = results.try_next().await? {
                yield result;
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let connections = self.clone();
        Box::pin(async move { connections.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [<Sqlite as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'w: 'e,
    {
        let connections = self.clone();
        Box::pin(async move {
            connections
                .acquire()
                .await?
                .prepare_with(sql, parameters)
                .await
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'w: 'e,
    {
        let connections = self.clone();
        Box::pin(async move { connections.acquire().await?.describe(sql).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer (one connection) on a new database file with table `t`, and the options to open
    /// it again.
    async fn writer(
        dir: &tempfile::TempDir,
        timeout: Duration,
    ) -> (SqliteConnections, SqliteConnectOptions) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let writer = SqliteConnections::open(options.clone(), 1, timeout)
            .await
            .expect("open");
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&writer)
            .await
            .expect("create");
        (writer, options)
    }

    /// Writes `n` into `t`.
    async fn insert<'c>(executor: impl sqlx::SqliteExecutor<'c>, n: i64) {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(n)
            .execute(executor)
            .await
            .expect("insert");
    }

    /// The rows of `t`, read on a connection of its own (what a reader sees).
    async fn rows(options: &SqliteConnectOptions) -> Vec<i64> {
        let mut reader = options.connect().await.expect("open");
        sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&mut reader)
            .await
            .expect("read")
    }

    #[tokio::test]
    async fn a_transaction_commits_or_leaves_nothing_when_dropped_unfinished() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_secs(5)).await;
        let mut tx = writer.begin().await.expect("begin");
        insert(&mut *tx, 1).await;
        drop(tx);
        let mut tx = writer
            .begin()
            .await
            .expect("begin after a dropped transaction");
        insert(&mut *tx, 2).await;
        tx.commit().await.expect("commit");
        insert(&writer, 3).await;
        assert_eq!(rows(&options).await, [2, 3]);
    }

    #[tokio::test]
    async fn a_transaction_begun_in_sql_and_abandoned_is_rolled_back_before_the_next_use() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_secs(5)).await;
        // Runs `sql` on the writer and gives the connection back marked for a rollback, as an
        // abandoned plain post does.
        let abandon = |sql: &'static str| async {
            let mut conn = writer.acquire().await.expect("acquire");
            sqlx::raw_sql(sql)
                .execute(&mut *conn)
                .await
                .expect("statements");
            conn.roll_back_on_release();
        };
        abandon("BEGIN; INSERT INTO t VALUES (1)").await;
        // Without the rollback this would join the open transaction and never be committed.
        insert(&writer, 2).await;
        assert_eq!(rows(&options).await, [2]);
        // And an abandoned connection whose transaction did end is no trouble either.
        abandon("BEGIN; INSERT INTO t VALUES (3); COMMIT").await;
        insert(&writer, 4).await;
        assert_eq!(rows(&options).await, [2, 3, 4]);
    }

    #[tokio::test]
    async fn a_write_waits_for_the_one_before_and_goes_once_it_is_done() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_secs(30)).await;
        let mut held = writer.begin().await.expect("begin");
        let waiting = tokio::spawn({
            let writer = writer.clone();
            async move {
                sqlx::query("INSERT INTO t VALUES (2)")
                    .execute(&writer)
                    .await
            }
        });
        insert(&mut *held, 1).await;
        held.commit().await.expect("commit");
        waiting.await.expect("task").expect("the waiting write");
        assert_eq!(rows(&options).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_write_fails_as_timed_out_past_the_limit_and_as_closed_after_closing() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_millis(100)).await;
        let held = writer.acquire().await.expect("acquire");
        let timed_out = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&writer)
            .await;
        assert!(
            matches!(timed_out, Err(sqlx::Error::PoolTimedOut)),
            "{timed_out:?}"
        );
        drop(held);
        writer.close().await;
        let closed = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&writer)
            .await;
        assert!(matches!(closed, Err(sqlx::Error::PoolClosed)), "{closed:?}");
        assert!(rows(&options).await.is_empty());
    }

    #[tokio::test]
    async fn a_write_waiting_when_the_connections_close_fails_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, _options) = writer(&dir, Duration::from_secs(600)).await;
        let held = writer.acquire().await.expect("acquire");
        let waiting = tokio::spawn({
            let writer = writer.clone();
            async move {
                sqlx::query("INSERT INTO t VALUES (1)")
                    .execute(&writer)
                    .await
            }
        });
        // Closing waits for the connection held; the waiting write must not wait with it.
        let fails = async {
            let waited = waiting.await.expect("task");
            drop(held);
            waited
        };
        let ((), waited) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(writer.close(), fails)
        })
        .await
        .expect("the waiting write fails long before its 600 s limit");
        assert!(matches!(waited, Err(sqlx::Error::PoolClosed)), "{waited:?}");
    }

    #[tokio::test]
    async fn readers_take_connections_side_by_side_up_to_their_number() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_secs(30)).await;
        insert(&writer, 1).await;
        let readers =
            SqliteConnections::open(options.read_only(true), 2, Duration::from_millis(100))
                .await
                .expect("open");
        // Two at once, the second opened on first use; a third waits past the limit.
        let first = readers.acquire().await.expect("first");
        let mut second = readers.acquire().await.expect("second");
        let read: i64 = sqlx::query_scalar("SELECT n FROM t")
            .fetch_one(&mut *second)
            .await
            .expect("read");
        assert_eq!(read, 1);
        let third = sqlx::query_scalar::<_, i64>("SELECT n FROM t")
            .fetch_all(&readers)
            .await;
        assert!(matches!(third, Err(sqlx::Error::PoolTimedOut)), "{third:?}");
        drop(first);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t")
            .fetch_all(&readers)
            .await
            .expect("read once one is free");
        assert_eq!(rows, [1]);
        let written = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&readers)
            .await;
        assert!(written.is_err(), "readers are read-only");
    }
}
