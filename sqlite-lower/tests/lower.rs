//! `lower()` on connections opened after `register`, through rusqlite's public API.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use rusqlite::Connection;

fn lowered(conn: &Connection, sql: &str) -> Option<String> {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn connections_opened_afterwards_lowercase_every_alphabet() {
    sqlite_lower::register().unwrap();
    // Twice is fine: the first answer stands.
    sqlite_lower::register().unwrap();
    let conn = Connection::open_in_memory().unwrap();
    assert_eq!(
        lowered(&conn, "SELECT lower('Élodie ØSTERGAARD, ΣΟΦΊΑΣ, Дмитрий')").as_deref(),
        Some("élodie østergaard, σοφίασ, дмитрий"),
        "character by character, as the store lowercases a prefix: a final Σ is σ"
    );
    assert_eq!(
        lowered(&conn, "SELECT lower('MiXeD@Example.COM')").as_deref(),
        Some("mixed@example.com")
    );
    assert_eq!(lowered(&conn, "SELECT lower(NULL)"), None);
    // A number comes back as text, as from SQLite's own.
    assert_eq!(lowered(&conn, "SELECT lower(42)").as_deref(), Some("42"));
    let same: bool = conn
        .query_row("SELECT lower(42) = '42'", [], |row| row.get(0))
        .unwrap();
    assert!(same);
    // What the store's lookups do: a lowercased prefix against lower(column).
    conn.execute_batch(
        "CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('Élodie'), ('Émile'), ('Eve');",
    )
    .unwrap();
    let mut found = conn
        .prepare("SELECT name FROM people WHERE lower(name) LIKE 'él%' ORDER BY name")
        .unwrap();
    let names: Vec<String> = found
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["Élodie"]);
}
