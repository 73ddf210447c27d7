//! A second connection to SQLite's writer, driven directly on a thread of its own.
//!
//! sqlx runs each SQLite connection on a thread and hands every result back to the calling task
//! separately (one per row and one per statement), each a wake-up on both sides; for a post, most
//! of the node's wake-ups (BENCHMARKS.md, "Who wakes whom on the single node's posting side").
//! Work sent here instead runs to its end on this thread, through the SQLite library itself, and
//! answers once.
//!
//! It writes to the same database as the store's writer connection and is only reachable while
//! its caller holds that connection (`SqliteConnections::direct_turn`): SQLite takes one writer
//! at a time, and the store's rule is that writes queue in the process rather than wait on
//! SQLite's lock. Each piece of work runs whole (a transaction begun in it ends in it), whether
//! or not its caller still waits.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

/// Work for the thread: run on its connection, answering through its own channel.
type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// What the thread is sent.
enum Request {
    /// Run this.
    Work(Work),
    /// Close the connection and stop; answered once closed.
    Close(oneshot::Sender<()>),
}

/// Statements each connection keeps prepared (a few post batch shapes and their outbox rows).
const PREPARED_STATEMENTS: usize = 32;

/// How the connection is set up: as the store's writer connection is (`connect.rs`).
pub(crate) struct DirectSettings {
    /// `PRAGMA busy_timeout`.
    pub(crate) busy_timeout: Duration,
    /// `PRAGMA wal_autocheckpoint`, in pages.
    pub(crate) wal_autocheckpoint: u32,
    /// The VFS to open the database through (`None`: SQLite's default).
    pub(crate) vfs: Option<&'static str>,
}

/// Why work sent to the thread got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DirectError {
    /// The thread has stopped (its connection failed to open, or the store is closing).
    #[error("the SQLite writer thread has stopped")]
    Stopped,
    /// SQLite refused a statement.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl From<DirectError> for crate::StoreError {
    fn from(e: DirectError) -> Self {
        match e {
            DirectError::Stopped => Self::Database(sqlx::Error::WorkerCrashed),
            DirectError::Sqlite(e) => Self::Sqlite(e),
        }
    }
}

/// The thread's handle: sends it work. The thread ends when closed or once every handle is
/// dropped.
#[derive(Clone)]
pub(crate) struct DirectWriter {
    requests: mpsc::Sender<Request>,
}

impl DirectWriter {
    /// Opens the database at `path` (which must exist, in WAL mode) on a new thread.
    pub(crate) fn open(path: &Path, settings: &DirectSettings) -> Result<Self, DirectError> {
        let mut conn = match settings.vfs {
            Some(vfs) => Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs)?,
            None => Connection::open(path)?,
        };
        conn.busy_timeout(settings.busy_timeout)?;
        // `synchronous` and `foreign_keys` are the connection's own, not the file's.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = {};",
            settings.wal_autocheckpoint
        ))?;
        conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        let (requests, queue) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("sqlite-direct-writer".into())
            .spawn(move || {
                while let Ok(request) = queue.recv() {
                    match request {
                        Request::Work(work) => {
                            // A panic in one piece of work fails that piece alone (its caller
                            // sees the thread as stopped), not every write after it.
                            let ran = panic::catch_unwind(AssertUnwindSafe(|| work(&mut conn)));
                            if ran.is_err() && !conn.is_autocommit() {
                                roll_back(&conn);
                            }
                        }
                        Request::Close(closed) => {
                            if let Err((_, e)) = conn.close() {
                                tracing::warn!(error = %e, "closing the SQLite writer's direct connection failed");
                            }
                            let _ = closed.send(());
                            return;
                        }
                    }
                }
            })
            .map_err(|_| DirectError::Stopped)?;
        Ok(Self { requests })
    }

    /// Closes the connection once the work sent before is done; later work gets
    /// [`DirectError::Stopped`].
    pub(crate) async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.requests.send(Request::Close(closed)).is_ok() {
            let _ = done.await;
        }
    }

    /// Runs `work` on the thread's connection and returns what it returns.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, DirectError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Work = Box::new(move |conn| {
            let _ = answer.send(work(conn));
        });
        self.requests
            .send(Request::Work(job))
            .map_err(|_| DirectError::Stopped)?;
        Ok(answered.await.map_err(|_| DirectError::Stopped)??)
    }
}

/// Runs `work` in a transaction on `conn`: committed when it succeeds, rolled back when not.
/// `BEGIN` and `COMMIT` are prepared once, like the work's statements, not parsed every time.
pub(crate) fn in_transaction<T>(
    conn: &mut Connection,
    work: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let done = work(conn).and_then(|done| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(done)
    });
    // SQLite ends some failed transactions itself; what is left open is rolled back here.
    if done.is_err() && !conn.is_autocommit() {
        roll_back(conn);
    }
    done
}

/// Rolls back the transaction open on `conn`.
fn roll_back(conn: &Connection) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "rolling back on the SQLite writer's direct connection failed");
    }
}
