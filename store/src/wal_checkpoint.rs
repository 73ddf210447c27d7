//! WAL checkpoints for SQLite, off the write path.
//!
//! By default SQLite copies the WAL back into the database file inside whichever commit takes the
//! WAL past 1,000 pages, and that commit waits for the copy and two `fsync`s: tens of
//! milliseconds, for one post and every post queued behind it. Instead this task checkpoints from
//! a connection of its own a few times a second, in `PASSIVE` mode: it never takes the write lock,
//! so it neither waits for nor blocks the writer or the readers. It is also what syncs the WAL to
//! disk under `synchronous=NORMAL`.
//!
//! A passive checkpoint cannot finish while writes keep coming, and SQLite only starts the WAL
//! over once one has. So once the WAL has grown past [`FINISH_AT_FRAMES`], the task finishes the
//! copy on the writer's own connection, between two of its transactions: nothing can be
//! committed meanwhile, and what is left is only what arrived since the passive checkpoint just
//! before (a few milliseconds of commits: synced and copied in 3 to 6 ms under fan-out load).
//! The next write then starts the WAL over. That step still holds posts back (its three
//! `fsync`s take 2 to 7 ms), so it waits for 64 MiB of WAL: at 1,000 posts a second, once every
//! two seconds instead of twice a second (BENCHMARKS.md, "The writer's checkpoint stalls").
//!
//! Before the task, the writer's automatic checkpoint did that finishing step inside a commit,
//! with up to 250 ms of unsynced WAL to flush: every post in flight stalled 8 to 10 ms, every
//! second and a half (BENCHMARKS.md). That automatic checkpoint stays, at
//! [`WRITER_CHECKPOINT_PAGES`], for when readers keep the finishing step from completing (a
//! reader on an old snapshot holds back the copy).

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

use crate::sqlite_connections::SqliteConnections;

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(250);
/// WAL frames (4 KiB pages) past which a checkpoint is finished on the writer's connection:
/// 64 MiB.
const FINISH_AT_FRAMES: u32 = 16_384;
/// The writer connection's `wal_autocheckpoint` (256 MiB of 4 KiB pages): well above
/// [`FINISH_AT_FRAMES`], so that it only acts when the finishing step cannot.
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 4 * FINISH_AT_FRAMES;

/// Stops the checkpoint task when dropped (with the store that owns it).
pub(crate) struct Checkpointer(JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    /// Starts checkpointing the database `options` opens, whose writes go through `writer`.
    pub(crate) fn start(options: SqliteConnectOptions, writer: SqliteConnections) -> Self {
        Self(tokio::spawn(run(options, writer)))
    }
}

async fn run(options: SqliteConnectOptions, writer: SqliteConnections) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection = None;
    loop {
        tick.tick().await;
        let conn = match &mut connection {
            Some(conn) => conn,
            None => match options.connect().await {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a connection for WAL checkpoints");
                    continue;
                }
            },
        };
        let frames = match checkpoint(&mut *conn).await {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                if let Some(conn) = connection.take() {
                    let _ = conn.close().await;
                }
                continue;
            }
        };
        if frames >= i64::from(FINISH_AT_FRAMES) {
            if let Err(e) = checkpoint(&writer).await {
                tracing::warn!(error = %e, "finishing a WAL checkpoint on the writer failed");
            }
        }
    }
}

/// One passive checkpoint on `executor`; returns the frames in the WAL. Run on the writer's
/// connection, no commit lands in between, so the copy completes (readers permitting) and the
/// next write starts the WAL over.
#[tracing::instrument(level = "trace", skip_all)]
async fn checkpoint<'c>(executor: impl sqlx::SqliteExecutor<'c>) -> sqlx::Result<i64> {
    // (busy, frames in the WAL, frames copied)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(executor)
        .await?;
    Ok(frames)
}
