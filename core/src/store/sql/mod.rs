//! The SQL implementations of the store.
//!
//! The queries are written once, in portable SQL (`$n` placeholders, `RETURNING`, no engine
//! functions; timestamps are bound from Rust), and compiled twice: the files below are
//! `include!`d into one module per engine, each defining `Db`, `ENGINE`, the migrator and the
//! few statements that really differ. So both engines run the same code, type-checked against
//! their own driver, with no runtime dispatch inside a query.

mod rows;

/// PostgreSQL.
pub mod postgres {
    include!("prelude.rs");

    type Db = sqlx::Postgres;
    const ENGINE: crate::store::Engine = crate::store::Engine::Postgres;
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

    /// Serialises membership changes of one organization (last-admin checks) across
    /// concurrent transactions.
    async fn lock_org(
        tx: &mut sqlx::Transaction<'_, Db>,
        org_id: i64,
    ) -> Result<bool, sqlx::Error> {
        let found = sqlx::query("SELECT id FROM orgs WHERE id = $1 FOR UPDATE")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(found.is_some())
    }

    include!("store.rs");
    include!("users.rs");
    include!("sessions.rs");
    include!("orgs.rs");
    include!("outbox.rs");
    include!("rooms.rs");
    include!("messages.rs");
}

/// SQLite.
pub mod sqlite {
    include!("prelude.rs");

    type Db = sqlx::Sqlite;
    const ENGINE: crate::store::Engine = crate::store::Engine::Sqlite;
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

    /// Write transactions already run one at a time on the single writer connection, so only
    /// the existence check is needed.
    async fn lock_org(
        tx: &mut sqlx::Transaction<'_, Db>,
        org_id: i64,
    ) -> Result<bool, sqlx::Error> {
        let found = sqlx::query("SELECT id FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(found.is_some())
    }

    include!("store.rs");
    include!("users.rs");
    include!("sessions.rs");
    include!("orgs.rs");
    include!("outbox.rs");
    include!("rooms.rs");
    include!("messages.rs");
}
