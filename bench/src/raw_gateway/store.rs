//! `raw-gateway --store`: the floor with storage. Each message is inserted into an SQLite
//! database (WAL, `synchronous=NORMAL`, one commit per message, SQLite's default VFS) before its
//! fan-out, by the sender's task on the runtime's thread: the least a broadcaster that keeps
//! what it delivers does. Against it, what the node spends beyond storing is its gateway logic.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{params, Connection};

/// The messages' table, one row per message, and its room's index (a chat reads a room's
/// messages in order).
const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        room INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id);
";

/// One connection, shared by every sender's task.
pub(super) struct Store(Mutex<Connection>);

impl Store {
    /// Opens (creating) the database at `path`.
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open the raw store at {}", path.display()))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self(Mutex::new(connection)))
    }

    /// Stores message `id` of `room`, committed when this returns.
    pub(super) fn insert(&self, id: i64, room: i64, body: &str) -> anyhow::Result<()> {
        let connection = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        connection
            .prepare_cached(
                "INSERT INTO messages (id, room, body, created_at) VALUES (?, ?, ?, ?)",
            )?
            .execute(params![id, room, body, chrono::Utc::now().to_rfc3339()])?;
        Ok(())
    }
}
