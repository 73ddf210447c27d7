//! Commits written through the VFS, read by connections of the default VFS: at once, after the
//! log starts over, after large and abandoned transactions, and after the writing process dies.
#![allow(clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::{params, Connection, OpenFlags};

/// A connection writing through the VFS, set up as ChatBoard's writers are.
fn merged(path: &Path) -> Connection {
    let vfs = sqlite_wal_merge::register().expect("register the VFS");
    let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs)
        .expect("open through the VFS");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
    )
    .expect("pragmas");
    conn
}

/// A connection of the default VFS.
fn plain(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

/// A new database in a directory of its own (removed when the guard is dropped), its schema
/// created, and its writer.
fn new_database() -> (tempfile::TempDir, PathBuf, Connection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    let writer = merged(&path);
    writer.execute_batch(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, room INTEGER NOT NULL, body BLOB NOT NULL);
         CREATE INDEX posts_room ON posts (room, id);",
    )
    .expect("schema");
    (dir, path, writer)
}

/// Inserts `n` posts of 700 bytes, in rooms 0 to 4.
fn insert_posts(conn: &Connection, n: i64) {
    for k in 0..n {
        conn.execute(
            "INSERT INTO posts (room, body) VALUES (?1, ?2)",
            params![k % 5, vec![b'y'; 700]],
        )
        .expect("insert");
    }
}

/// (rows, total body length) as `conn` sees them.
fn totals(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM posts",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("totals")
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check")
}

#[test]
fn every_commit_is_read_by_another_connection_at_once() {
    let (_dir, path, writer) = new_database();
    let reader = plain(&path);
    let (mut rows, mut bytes) = (0i64, 0i64);
    for i in 0..600i64 {
        // One post, or a batch of up to seven, of sizes from a few bytes to over a page.
        let batch = 1 + i % 7;
        let tx = writer.unchecked_transaction().expect("begin");
        for j in 0..batch {
            let len = usize::try_from((i * 37 + j * 911) % 5000 + 1).expect("length");
            tx.execute(
                "INSERT INTO posts (room, body) VALUES (?1, ?2)",
                params![(i + j) % 13, vec![b'x'; len]],
            )
            .expect("insert");
            rows += 1;
            bytes += i64::try_from(len).expect("length");
        }
        tx.commit().expect("commit");
        assert_eq!(totals(&reader), (rows, bytes), "after commit {i}");
        if i % 97 == 96 {
            // The log starts over at the next commit: its header is written again at 0.
            reader
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .expect("checkpoint");
        }
    }
    assert_eq!(integrity(&reader), "ok");
}

#[test]
fn large_and_abandoned_transactions_leave_only_commits() {
    let (_dir, path, writer) = new_database();
    // A tiny page cache: a large transaction spills frames into the log before its commit, and
    // pages it changes again are written over their frames (SQLite then rewrites checksums).
    writer
        .execute_batch("PRAGMA cache_size = 10")
        .expect("cache size");
    let reader = plain(&path);

    let tx = writer.unchecked_transaction().expect("begin");
    insert_posts(&tx, 3000);
    tx.rollback().expect("rollback");
    assert_eq!(totals(&reader), (0, 0));

    let tx = writer.unchecked_transaction().expect("begin");
    insert_posts(&tx, 2000);
    tx.execute("UPDATE posts SET body = X'00' WHERE id % 3 = 0", [])
        .expect("update");
    insert_posts(&tx, 500);
    tx.commit().expect("commit");
    let changed: i64 = reader
        .query_row("SELECT COUNT(*) FROM posts WHERE body = X'00'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(changed, 666);
    assert_eq!(totals(&reader).0, 2500);

    // Small commits after the large ones, read at once as before.
    for n in 1..=50 {
        writer
            .execute("INSERT INTO posts (room, body) VALUES (1, 'z')", [])
            .expect("insert");
        assert_eq!(totals(&reader).0, 2500 + n);
    }
    assert_eq!(integrity(&reader), "ok");
}

/// Set for the child process of `commits_survive_the_writer_dying`: where it writes.
const CHILD_DB: &str = "WAL_MERGE_TEST_CHILD_DB";
/// How many one-post commits the child makes.
const CHILD_COMMITS: i64 = 300;
/// The posts of the child's last commit, a large one.
const CHILD_LAST_POSTS: i64 = 2000;

#[test]
fn commits_survive_the_writer_dying() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        // The child: commit, then die without closing anything (no destructor, no flush).
        let writer = merged(Path::new(&path));
        for i in 0..CHILD_COMMITS {
            writer
                .execute(
                    "INSERT INTO posts (room, body) VALUES (?1, 'last words')",
                    [i],
                )
                .expect("insert");
        }
        // Last, a transaction that spills and then changes spilled pages again: at its commit
        // SQLite rewrites frame headers (new checksums), the commit's own last. Recovery, which
        // the next opening of the database runs, checks those checksums. (No automatic
        // checkpoint, whose reads of the log would write everything out first.)
        writer
            .execute_batch("PRAGMA cache_size = 10; PRAGMA wal_autocheckpoint = 0")
            .expect("cache size");
        let tx = writer.unchecked_transaction().expect("begin");
        insert_posts(&tx, CHILD_LAST_POSTS);
        tx.execute("UPDATE posts SET body = X'00' WHERE id % 3 = 0", [])
            .expect("update");
        tx.commit().expect("commit");
        std::process::abort();
    }
    let (_dir, path, writer) = new_database();
    drop(writer);
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "commits_survive_the_writer_dying", "--nocapture"])
        .env(CHILD_DB, &path)
        .status()
        .expect("run the child");
    assert!(!status.success(), "the child should have died");
    let reader = plain(&path);
    assert_eq!(totals(&reader).0, CHILD_COMMITS + CHILD_LAST_POSTS);
    assert_eq!(integrity(&reader), "ok");
}
