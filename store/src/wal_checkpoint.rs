//! WAL checkpoints for SQLite, off the write path.
//!
//! By default SQLite copies the WAL back into the database file inside whichever commit takes the
//! WAL past 1,000 pages, and that commit waits for the copy and two `fsync`s: tens of
//! milliseconds, for one post and every post queued behind it. The writer connection therefore
//! has automatic checkpoints off, and this task checkpoints from a connection of its own a few
//! times a second, in `PASSIVE` mode (it never waits for, nor blocks, the writer or readers).
//! It is also what syncs the WAL to disk under `synchronous=NORMAL`.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(250);
/// A WAL longer than this many pages (64 MiB of 4 KiB pages) after a passive checkpoint means
/// the writer never let one finish: the next one waits for it (`RESTART`) so the file stays
/// bounded.
const RESTART_ABOVE_PAGES: i64 = 16_384;

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

/// One passive checkpoint, and a restarting one if the WAL has grown too long.
#[tracing::instrument(level = "trace", skip_all)]
async fn checkpoint(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<()> {
    // (busy, pages in the WAL, pages copied back)
    let (_, wal_pages, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    if wal_pages > RESTART_ABOVE_PAGES {
        tracing::info!(wal_pages, "the WAL is long: checkpointing with RESTART");
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
