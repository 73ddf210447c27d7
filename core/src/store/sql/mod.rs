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

    /// Stores a message and its `message.created` event in one statement, so one round trip
    /// holds the room's row lock only as long as the statement runs. The `UPDATE` on the room
    /// takes the next seq and allocates the id while holding that lock, which keeps ids in commit
    /// order within the room; it matches nothing (and the result is empty) when the sender is
    /// not a member or already sent this `client_msg_id`. The event payload is the message as
    /// Rust serialises it, completed with the id and org the database assigned.
    async fn insert_message(
        write: &sqlx::Pool<Db>,
        msg: &crate::store::NewMessage,
        payload: &str,
        event_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<super::rows::MessageRow>, sqlx::Error> {
        let sql = format!(
            "WITH slot AS ( \
               UPDATE rooms SET last_seq = last_seq + 1, \
                 last_msg_id = nextval(pg_get_serial_sequence('messages', 'id')) \
               WHERE id = $1 \
                 AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2) \
                 AND ($4::text IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $4)) \
               RETURNING org_id, last_seq, last_msg_id), \
             m AS ( \
               INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at) \
               OVERRIDING SYSTEM VALUE \
               SELECT last_msg_id, $1, org_id, last_seq, $2, $3, $4, $5 FROM slot \
               RETURNING {cols}), \
             e AS ( \
               INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) \
               SELECT $6, $7, m.org_id, m.room_id, \
                 ($8::jsonb || jsonb_build_object('id', m.id, 'org', m.org_id))::text, $5 FROM m) \
             SELECT {cols} FROM m",
            cols = super::rows::MESSAGE_COLUMNS
        );
        sqlx::query_as(&sql)
            .bind(msg.room_id)
            .bind(msg.sender_id)
            .bind(&msg.body)
            .bind(&msg.client_msg_id)
            .bind(now)
            .bind(event_id)
            .bind(crate::events::EventType::MessageCreated.as_str())
            .bind(payload)
            .fetch_optional(write)
            .await
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

    /// Stores a message and its `message.created` event in one transaction on the single
    /// writer connection, which already orders every write; see the PostgreSQL version for the
    /// rules. Returns nothing when the sender is not a member or already sent this
    /// `client_msg_id`.
    async fn insert_message(
        write: &sqlx::Pool<Db>,
        msg: &crate::store::NewMessage,
        payload: &str,
        event_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<super::rows::MessageRow>, sqlx::Error> {
        let mut tx = write.begin().await?;
        let slot: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE rooms SET last_seq = last_seq + 1 \
             WHERE id = $1 \
               AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2) \
               AND ($3 IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3)) \
             RETURNING org_id, last_seq",
        )
        .bind(msg.room_id)
        .bind(msg.sender_id)
        .bind(&msg.client_msg_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((org_id, seq)) = slot else {
            return Ok(None);
        };
        let sql = format!(
            "INSERT INTO messages (room_id, org_id, seq, sender_id, body, client_msg_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {}",
            super::rows::MESSAGE_COLUMNS
        );
        let row: super::rows::MessageRow = sqlx::query_as(&sql)
            .bind(msg.room_id)
            .bind(org_id)
            .bind(seq)
            .bind(msg.sender_id)
            .bind(&msg.body)
            .bind(&msg.client_msg_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let id = row.id;
        sqlx::query("UPDATE rooms SET last_msg_id = $2 WHERE id = $1")
            .bind(msg.room_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) \
             VALUES ($1, $2, $3, $4, json_patch($5, json_object('id', $6, 'org', $3)), $7)",
        )
        .bind(event_id)
        .bind(crate::events::EventType::MessageCreated.as_str())
        .bind(org_id)
        .bind(msg.room_id)
        .bind(payload)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    include!("store.rs");
    include!("users.rs");
    include!("sessions.rs");
    include!("orgs.rs");
    include!("outbox.rs");
    include!("rooms.rs");
    include!("messages.rs");
}
