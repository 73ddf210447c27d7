//! SQLite's one writer connection, held by the store instead of lent out by a pool.
//!
//! sqlx's pool pings every connection it gets back ("test on release"), and has no switch for
//! it. On SQLite a ping is a round trip to the connection's thread: after every write the thread
//! woke once more, a task was spawned to wait for it, and meanwhile the only writer connection
//! served no one (BENCHMARKS.md, "The pool's ping after every write"). SQLite takes one writer
//! at a time anyway, so the store keeps that connection behind an async mutex: writes wait their
//! turn in the mutex's queue as they waited in the pool's, with the same time limit.
//!
//! [`SqliteWriter`] runs statements like a pool (`query.execute(&writer)`) and begins
//! transactions ([`WriteTx`], rolled back when dropped unfinished, as sqlx's are). An in-memory
//! database is one connection that reads must share, so there the writer stays a pool.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteQueryResult, SqliteRow, SqliteStatement};
use sqlx::{Connection, Database, Describe, Either, Execute, Executor, Sqlite, TransactionManager};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

/// The store's writes on SQLite: one connection, taken in turn.
#[derive(Clone)]
pub(crate) struct SqliteWriter(Source);

#[derive(Clone)]
enum Source {
    /// A file database's writer connection; `None` once closed.
    Held(Arc<Held>),
    /// An in-memory database: its only connection, pooled, shared with the reads.
    Pooled(SqlitePool),
}

/// The held connection and what goes with it.
pub(crate) struct Held {
    conn: Arc<Mutex<Option<SqliteConnection>>>,
    /// How long a write waits for the connection before the store reports it unavailable.
    acquire_timeout: Duration,
    /// Set when a transaction opened in SQL text (unknown to sqlx) may have been left open by a
    /// caller that went away: the next user rolls it back first.
    dirty: AtomicBool,
}

/// The writer connection, taken: the holder's until dropped.
pub(crate) enum WriterConn {
    /// The held connection, and whom it is held by.
    Held(
        OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>,
        Arc<Held>,
    ),
    /// The in-memory database's pooled connection.
    Pooled(PoolConnection<Sqlite>),
}

impl SqliteWriter {
    /// Holds `conn` as the database's writer.
    pub(crate) fn held(conn: SqliteConnection, acquire_timeout: Duration) -> Self {
        Self(Source::Held(Arc::new(Held {
            conn: Arc::new(Mutex::new(Some(conn))),
            acquire_timeout,
            dirty: AtomicBool::new(false),
        })))
    }

    /// Writes through `pool` (an in-memory database's only connection).
    pub(crate) fn pooled(pool: SqlitePool) -> Self {
        Self(Source::Pooled(pool))
    }

    /// Takes the connection, waiting for earlier writes; `PoolTimedOut` after the time limit,
    /// `PoolClosed` once closed.
    pub(crate) async fn acquire(&self) -> Result<WriterConn, sqlx::Error> {
        let held = match &self.0 {
            Source::Pooled(pool) => return Ok(WriterConn::Pooled(pool.acquire().await?)),
            Source::Held(held) => held,
        };
        let guard = tokio::time::timeout(held.acquire_timeout, held.conn.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let mut conn = OwnedMutexGuard::try_map(guard, Option::as_mut)
            .map(|conn| WriterConn::Held(conn, held.clone()))
            .map_err(|_| sqlx::Error::PoolClosed)?;
        if held.dirty.swap(false, Ordering::AcqRel) {
            // Fails harmlessly when the transaction had ended after all.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        }
        Ok(conn)
    }

    /// Begins a transaction on the connection, which it keeps until it ends.
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        <Sqlite as Database>::TransactionManager::begin(&mut conn, None).await?;
        Ok(WriteTx { conn, open: true })
    }

    /// Closes the connection once the writes before have finished; later writes fail.
    pub(crate) async fn close(&self) {
        match &self.0 {
            Source::Pooled(pool) => pool.close().await,
            Source::Held(held) => {
                if let Some(conn) = held.conn.lock().await.take() {
                    if let Err(error) = conn.close().await {
                        tracing::warn!(%error, "closing the SQLite writer connection failed");
                    }
                }
            }
        }
    }
}

impl fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl WriterConn {
    /// Marks the connection as possibly inside a transaction begun in SQL text that its holder
    /// is abandoning: the next [`SqliteWriter::acquire`] rolls it back. A pooled connection is
    /// closed instead when dropped, which discards the transaction (the pool opens another).
    pub(crate) fn roll_back_on_release(&mut self) {
        match self {
            Self::Held(_, held) => held.dirty.store(true, Ordering::Release),
            Self::Pooled(conn) => conn.close_on_drop(),
        }
    }
}

impl Deref for WriterConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Held(conn, _) => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

impl DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Held(conn, _) => conn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// A transaction on the writer connection: committed or rolled back explicitly, rolled back
/// (queued for the connection's next use) when dropped while open.
pub(crate) struct WriteTx {
    conn: WriterConn,
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

/// Statements run on the writer as on a pool: the connection is taken for each and given back
/// after it, with no ping in between.
impl<'w> Executor<'w> for &'_ SqliteWriter {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let writer = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = writer.acquire().await?;
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
        let writer = self.clone();
        Box::pin(async move { writer.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [<Sqlite as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'w: 'e,
    {
        let writer = self.clone();
        Box::pin(async move { writer.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'w: 'e,
    {
        let writer = self.clone();
        Box::pin(async move { writer.acquire().await?.describe(sql).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::ConnectOptions;

    /// A writer on a new database file with table `t`, and the options to open it again.
    async fn writer(
        dir: &tempfile::TempDir,
        timeout: Duration,
    ) -> (SqliteWriter, SqliteConnectOptions) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let conn = options.connect().await.expect("open");
        let writer = SqliteWriter::held(conn, timeout);
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&writer)
            .await
            .expect("create");
        (writer, options)
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
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        drop(tx);
        let mut tx = writer
            .begin()
            .await
            .expect("begin after a dropped transaction");
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&writer)
            .await
            .expect("insert");
        assert_eq!(rows(&options).await, [2, 3]);
    }

    #[tokio::test]
    async fn a_transaction_begun_in_sql_and_abandoned_is_rolled_back_before_the_next_use() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, options) = writer(&dir, Duration::from_secs(5)).await;
        let mut conn = writer.acquire().await.expect("acquire");
        sqlx::raw_sql("BEGIN; INSERT INTO t VALUES (1)")
            .execute(&mut *conn)
            .await
            .expect("insert");
        conn.roll_back_on_release();
        drop(conn);
        // Without the rollback this would join the open transaction and never be committed.
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&writer)
            .await
            .expect("insert");
        assert_eq!(rows(&options).await, [2]);
        // And an abandoned connection whose transaction did end is no trouble either.
        let mut conn = writer.acquire().await.expect("acquire");
        sqlx::raw_sql("BEGIN; INSERT INTO t VALUES (3); COMMIT")
            .execute(&mut *conn)
            .await
            .expect("insert");
        conn.roll_back_on_release();
        drop(conn);
        sqlx::query("INSERT INTO t VALUES (4)")
            .execute(&writer)
            .await
            .expect("insert");
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
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *held)
            .await
            .expect("insert");
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
}
