//! The store for one engine: a reader pool and a writer pool (the same pool on PostgreSQL), and
//! the pool searches run on.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::post_queue::PendingPost;
use super::reactions::PendingReaction;
use super::write_queue::WriteQueues;
use super::{Db, ReadPool, WordStats, WritePool, ENGINE, MIGRATOR};
use crate::wal_checkpoint::Checkpointer;
use crate::{Engine, Store, StoreResult};

/// The SQL store for this engine.
pub struct SqlStore {
    pub(super) read: ReadPool,
    pub(super) write: WritePool,
    /// Searches' connections (see [`SqlStore::with_search_pool`]); the reader pool unless set.
    pub(super) search: ReadPool,
    /// Posts waiting for their group commit.
    pub(super) post_queues: WriteQueues<PendingPost>,
    /// Reactions waiting for their group commit.
    pub(super) reaction_queues: WriteQueues<PendingReaction>,
    /// How many write queues posts and reactions spread over, by room (see `write_queue`).
    write_queues: i64,
    /// How frequent words are, for searches (PostgreSQL).
    pub(super) word_stats: WordStats,
    /// SQLite's WAL checkpoints, stopped with the store.
    _checkpointer: Option<Checkpointer>,
}

impl SqlStore {
    /// Whether every migration of this binary is recorded as applied, with its checksum (an
    /// edited migration goes on to sqlx, which refuses it). No record table yet: not applied.
    async fn all_migrations_applied(&self) -> bool {
        let Ok(applied) = sqlx::query_as::<_, (i64, Vec<u8>)>(
            "SELECT version, checksum FROM _sqlx_migrations WHERE success",
        )
        .fetch_all(&self.read)
        .await
        else {
            return false;
        };
        let applied: std::collections::HashMap<i64, Vec<u8>> = applied.into_iter().collect();
        MIGRATOR.iter().all(|migration| {
            applied
                .get(&migration.version)
                .is_some_and(|checksum| checksum.as_slice() == migration.checksum.as_ref())
        })
    }

    /// Wraps the pools; reads go to `read`, transactions and writes to `write`.
    pub fn new(read: ReadPool, write: WritePool) -> Self {
        Self {
            search: read.clone(),
            read,
            write,
            post_queues: WriteQueues::default(),
            reaction_queues: WriteQueues::default(),
            write_queues: 1,
            word_stats: WordStats::new(),
            _checkpointer: None,
        }
    }

    /// The same store, searching on connections of their own (PostgreSQL): few, so that searches
    /// never take the chat's connections, and set up for the search statements (generic plans,
    /// no parallel workers; see `candidate_hits`).
    #[allow(
        dead_code,
        reason = "compiled for both engines; only PostgreSQL searches on a pool of its own"
    )]
    pub(crate) fn with_search_pool(mut self, search: ReadPool) -> Self {
        self.search = search;
        self
    }

    /// The same store, its posts and reactions spread over `queues` writers by room
    /// (PostgreSQL, `CHATBOARD_DB_WRITE_QUEUES`; SQLite has one writer, so one queue).
    #[allow(
        dead_code,
        reason = "compiled for both engines; only PostgreSQL writes rooms in parallel"
    )]
    pub(crate) fn with_write_queues(mut self, queues: u32) -> Self {
        self.write_queues = i64::from(queues.max(1));
        self
    }

    /// The write queue of a room's posts and reactions: always the same one, which keeps a
    /// room's seqs in commit order without waiting on its lock.
    pub(super) fn queue_of(&self, room_id: i64) -> i64 {
        room_id.rem_euclid(self.write_queues)
    }

    /// The id of `table`'s first row made at `before` or later (`created_at`), or one past its
    /// last: ids grow with time, so it bounds the older rows. Found by reading the old rows in
    /// id order, once, with no index on the time (which every insert would pay for). `None`
    /// for an empty table.
    pub(super) async fn first_id_since(
        &self,
        table: &str,
        before: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let sql = format!(
            "SELECT COALESCE( \
               (SELECT y.id FROM {table} y WHERE y.created_at >= $1 ORDER BY y.id LIMIT 1), \
               (SELECT MAX(z.id) + 1 FROM {table} z))"
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(before)
            .fetch_one(&self.write)
            .await?)
    }

    /// Runs `statement`, a deletion of at most `batch` rows below `bound` (an id, or a time:
    /// bound as `$1`, the batch as `$2`), until it takes fewer: old rows go a batch per
    /// transaction, never holding the writer for long. How many went.
    pub(super) async fn delete_in_batches<T>(
        &self,
        statement: &str,
        bound: T,
        batch: u32,
    ) -> StoreResult<u64>
    where
        T: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db> + Copy + Send + 'static,
    {
        let mut total = 0;
        loop {
            let done = sqlx::query(statement)
                .bind(bound)
                .bind(i64::from(batch))
                .execute(&self.write)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < u64::from(batch) {
                return Ok(total);
            }
        }
    }

    /// The same store, with the task that checkpoints its WAL (SQLite).
    #[allow(
        dead_code,
        reason = "compiled for both engines; only SQLite has a WAL to checkpoint"
    )]
    pub(crate) fn with_checkpointer(mut self, checkpointer: Checkpointer) -> Self {
        self._checkpointer = Some(checkpointer);
        self
    }
}

#[async_trait]
impl Store for SqlStore {
    fn engine(&self) -> Engine {
        ENGINE
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        // Nothing to apply, nothing to lock: a migration Job of a newer release holds sqlx's
        // lock (on PostgreSQL) for as long as its migration runs, and a pod of this release
        // started meanwhile (rescheduled, scaled up) would wait for it instead of serving.
        if self.all_migrations_applied().await {
            return Ok(());
        }
        // Migrations recorded in the database but unknown to this binary are tolerated: during a
        // rolling upgrade (or a rollback) an older release starts against a schema a newer one
        // has already migrated. Migrations only add, so the older code still works on it.
        let migrator = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Borrowed(MIGRATOR.migrations.as_ref()),
            ignore_missing: true,
            locking: MIGRATOR.locking,
            no_tx: MIGRATOR.no_tx,
        };
        // On the writer's connection, whatever holds it on this engine (`run` takes a pool;
        // `run_direct` is sqlx's way around `Acquire` in an async trait method).
        let mut conn = self.write.acquire().await?;
        migrator.run_direct(&mut *conn).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
        self.search.close().await;
    }
}
