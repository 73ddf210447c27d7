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
//! over once one has; so the writer keeps its own automatic checkpoint at a high mark
//! ([`WRITER_CHECKPOINT_PAGES`]). Under sustained load a commit crossing it finishes the copy
//! (most of the WAL is already copied by then) and the WAL starts over: the file stays bounded
//! without a `RESTART` checkpoint, which would hold the write lock while it waits for readers.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(250);
/// The writer connection's `wal_autocheckpoint`: 64 MiB of 4 KiB pages.
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// Stops the checkpoint task when dropped (with the store that owns it).
pub(crate) struct Checkpointer(JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    /// Starts checkpointing the database `options` opens.
    pub(crate) fn start(options: SqliteConnectOptions) -> Self {
        Self(tokio::spawn(run(options)))
    }
}

async fn run(options: SqliteConnectOptions) {
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
        if let Err(e) = checkpoint(conn).await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
            if let Some(conn) = connection.take() {
                let _ = conn.close().await;
            }
        }
    }
}

/// One passive checkpoint.
#[tracing::instrument(level = "trace", skip_all)]
async fn checkpoint(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<()> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
