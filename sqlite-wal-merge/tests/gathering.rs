//! The VFS's point: a commit's frames go to the log in one write. In a test binary of its own,
//! because the counts are the process's.
#![allow(clippy::expect_used)] // tests fail loudly by design

use rusqlite::{Connection, OpenFlags};

#[test]
fn a_commit_is_one_write_to_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    let vfs = sqlite_wal_merge::register().expect("register the VFS");
    let conn = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), vfs)
        .expect("open through the VFS");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE posts (id INTEGER PRIMARY KEY, room INTEGER, body TEXT);
         CREATE INDEX posts_room ON posts (room, id);
         CREATE INDEX posts_body ON posts (body);",
    )
    .expect("schema");
    let before = sqlite_wal_merge::stats();
    for i in 0..200 {
        conn.execute(
            "INSERT INTO posts (room, body) VALUES (?1, 'hello')",
            [i % 9],
        )
        .expect("insert");
    }
    let after = sqlite_wal_merge::stats();
    let received = after.received - before.received;
    let written = after.written - before.written;
    // Each commit changes three pages or more: six writes from SQLite, one to the file.
    assert!(received >= 200 * 6, "SQLite wrote {received} times");
    assert_eq!(
        written, 200,
        "{received} writes from SQLite became {written}"
    );
}
