//! A fresh database of either engine for one test.
//!
//! PostgreSQL tests read `DATABASE_URL` (a postgres:// URL of a server where the user may create
//! databases); each test gets its own database, dropped afterwards. When it is unset the
//! PostgreSQL variant prints a note and is skipped, unless `CHATBOARD_REQUIRE_SERVICES=1` (set
//! by `.ci/run`), which turns the skip into a failure.

use sqlx::Connection;

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh database and its URL; `None` when the engine is not available (skip).
    pub async fn create(engine: TestEngine) -> Option<(Self, String)> {
        match engine {
            TestEngine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some((TestDb::Sqlite(dir), url))
            }
            TestEngine::Postgres => {
                let admin_url = postgres_url()?;
                let name = format!("chatboard_test_{}", uuid_like());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to DATABASE_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let url = with_database(&admin_url, &name);
                Some((TestDb::Postgres { admin_url, name }, url))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async context; use a private runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// 64 random bits in hex: a name no other test picks.
pub(crate) fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// Runs one SQL statement on the database at `url` (either engine), behind the store's back: for
/// tests that make drift or set what only another service writes.
pub async fn execute_sql(url: &str, statement: &str) {
    SqlSession::open(url).await.execute(statement).await;
}

/// The first column (text) of every row `statement` returns, on the database at `url`: for
/// tests that check what the store keeps where no interface shows it.
pub async fn query_texts(url: &str, statement: &str) -> Vec<String> {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(statement)
            .fetch_all(&mut conn)
            .await
            .expect("query")
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(statement)
            .fetch_all(&mut conn)
            .await
            .expect("query")
    }
}

/// One connection to the database at `url` kept open, for tests that run many statements in a
/// row (a connection per statement would set their pace).
pub enum SqlSession {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl SqlSession {
    /// Connects to `url` (either engine).
    pub async fn open(url: &str) -> Self {
        if url.starts_with("postgres") {
            Self::Postgres(sqlx::PgConnection::connect(url).await.expect("connect"))
        } else {
            Self::Sqlite(sqlx::SqliteConnection::connect(url).await.expect("connect"))
        }
    }

    /// Runs one statement.
    pub async fn execute(&mut self, statement: &str) {
        let done = match self {
            Self::Sqlite(conn) => sqlx::query(statement).execute(conn).await.map(drop),
            Self::Postgres(conn) => sqlx::query(statement).execute(conn).await.map(drop),
        };
        done.expect("statement");
    }
}

/// A transaction that keeps every new message from being stored until it is released: what a
/// long commit looks like to the writers (SQLite: the database's write lock; PostgreSQL: the
/// messages table, locked against writes).
pub enum HeldWrites {
    Sqlite(sqlx::SqliteConnection),
    Postgres(HeldLocks),
}

impl HeldWrites {
    /// Takes the lock on the database at `url`; returns once it is held.
    pub async fn take(url: &str) -> Self {
        if url.starts_with("postgres") {
            Self::Postgres(HeldLocks::take(url, "LOCK TABLE messages IN EXCLUSIVE MODE").await)
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("lock");
            Self::Sqlite(conn)
        }
    }

    /// Lets the writers go on.
    pub async fn release(self) {
        match self {
            Self::Postgres(held) => held.release().await,
            Self::Sqlite(mut conn) => {
                sqlx::raw_sql("COMMIT")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
            }
        }
    }
}

/// PostgreSQL locks held by a transaction left open (`statement` runs inside it, e.g. a
/// `SELECT ... FOR NO KEY UPDATE` or a `LOCK TABLE`): writers that need them wait until it is
/// released, while everything else goes on.
pub struct HeldLocks(sqlx::PgConnection);

impl HeldLocks {
    /// Opens the transaction and runs `statement` in it; returns once the locks are held.
    pub async fn take(url: &str, statement: &str) -> Self {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql(&format!("BEGIN; {statement}"))
            .execute(&mut conn)
            .await
            .expect("lock");
        Self(conn)
    }

    /// Commits the transaction: what it wrote stands, and the waiting writers go on.
    pub async fn commit(mut self) {
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.0)
            .await
            .expect("commit");
    }

    /// Ends the transaction: the waiting writers go on.
    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
    }
}

/// How many sessions of the PostgreSQL database at `url` wait for a lock right now.
pub async fn waiting_for_locks(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_activity")
}

/// `DATABASE_URL` when it names PostgreSQL; otherwise skip (or fail under CI).
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(url),
        _ => crate::skip("DATABASE_URL is not a postgres:// URL; PostgreSQL variants are skipped"),
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
