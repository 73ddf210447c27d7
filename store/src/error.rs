//! What a store call can fail with.

use chatboard_core::error_code::ErrorCode;

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule that needs the database to check refused the change: a unique value taken
    /// (`email_taken`, `invite_pending`), an object owned by the operator, a quota reached,
    /// the last ADMIN, ...
    #[error("conflict: {0}")]
    Conflict(ErrorCode),
    /// The object does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// The organization takes no changes now (`org_suspended`, `org_archived`).
    #[error("forbidden: {0}")]
    Forbidden(ErrorCode),
    /// The invitation was issued to another address.
    #[error("this invitation was issued to another email address")]
    InviteEmailMismatch,
    /// The database is unreachable or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A statement SQLite's writer thread ran itself (not through sqlx) failed.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement ran past its connection's time limit and was cancelled (searches, on
    /// PostgreSQL: `CHATBOARD_SEARCH_TIMEOUT_MS`).
    #[error("the statement took too long: {0}")]
    TookTooLong(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::RowNotFound => StoreError::NotFound,
            // PostgreSQL's query_canceled: a statement_timeout ran out.
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("57014") => {
                StoreError::TookTooLong(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;
