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
    /// Claiming deliveries skips rows another worker is claiming at that moment.
    const CLAIM_LOCK: &str = "FOR UPDATE OF d SKIP LOCKED";
    /// Claiming emails skips rows another worker is claiming at that moment.
    const EMAIL_CLAIM_LOCK: &str = "FOR UPDATE SKIP LOCKED";

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
                 AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = rooms.org_id AND NOT o.suspended AND o.archived_at IS NULL) \
                 AND ($4::text IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $4)) \
               RETURNING org_id, last_seq, last_msg_id), \
             m AS ( \
               INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at, \
                 file_id, file_name, file_type, file_size) \
               OVERRIDING SYSTEM VALUE \
               SELECT last_msg_id, $1, org_id, last_seq, $2, $3, $4, $5, $9, $10, $11, $12 FROM slot \
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
            .bind(msg.file.as_ref().map(|f| f.id.as_str()))
            .bind(msg.file.as_ref().map(|f| f.filename.as_str()))
            .bind(msg.file.as_ref().map(|f| f.content_type.as_str()))
            .bind(msg.file.as_ref().map(|f| f.size))
            .fetch_optional(write)
            .await
    }

    /// Stores several posts to one room in one transaction (see `post_queue.rs`): the room's
    /// lock first, then the posts that may go in, their ids allocated under the lock and their
    /// seqs in id order, their events, and the room's counters. One answer per post, in order:
    /// the row, or `None` for a sender without a seat or an already used `client_msg_id`.
    async fn insert_batch_atomic(
        write: &sqlx::Pool<Db>,
        room_id: i64,
        batch: &[PendingPost],
    ) -> Result<Vec<Option<super::rows::MessageRow>>, sqlx::Error> {
        let none = || batch.iter().map(|_| None).collect::<Vec<_>>();
        let mut tx = write.begin().await?;
        let room: Option<(i64, i64)> =
            sqlx::query_as("SELECT org_id, last_seq FROM rooms WHERE id = $1 FOR UPDATE")
                .bind(room_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((org_id, last_seq)) = room else {
            return Ok(none());
        };
        // A suspended or archived organization takes no posts (each then learns why alone).
        let writable: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM orgs WHERE id = $1 AND NOT suspended AND archived_at IS NULL",
        )
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        if writable.is_none() {
            return Ok(none());
        }
        let senders: Vec<i64> = batch.iter().map(|p| p.msg.sender_id).collect();
        let client_ids: Vec<Option<String>> =
            batch.iter().map(|p| p.msg.client_msg_id.clone()).collect();
        let allowed: Vec<(i64,)> = sqlx::query_as(
            "SELECT t.n FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY AS t(sender_id, client_msg_id, n) \
             WHERE EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = $1 AND rm.user_id = t.sender_id) \
               AND (t.client_msg_id IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM messages m WHERE m.room_id = $1 AND m.sender_id = t.sender_id \
                   AND m.client_msg_id = t.client_msg_id))",
        )
        .bind(room_id)
        .bind(&senders)
        .bind(&client_ids)
        .fetch_all(&mut *tx)
        .await?;
        // A retry queued in the same batch as its original goes no further than the original.
        let mut seen = std::collections::HashSet::new();
        let chosen: Vec<usize> = allowed
            .into_iter()
            .filter_map(|(n,)| usize::try_from(n - 1).ok())
            .filter(|&i| i < batch.len())
            .filter(|&i| match &batch[i].msg.client_msg_id {
                Some(id) => seen.insert((batch[i].msg.sender_id, id.clone())),
                None => true,
            })
            .collect();
        if chosen.is_empty() {
            tx.rollback().await?;
            return Ok(none());
        }
        let pick = |f: &dyn Fn(&PendingPost) -> String| {
            chosen.iter().map(|&i| f(&batch[i])).collect::<Vec<_>>()
        };
        let senders: Vec<i64> = chosen.iter().map(|&i| batch[i].msg.sender_id).collect();
        let client_ids: Vec<Option<String>> = chosen
            .iter()
            .map(|&i| batch[i].msg.client_msg_id.clone())
            .collect();
        let bodies = pick(&|p| p.msg.body.clone());
        let event_ids = pick(&|p| p.event_id.clone());
        let payloads = pick(&|p| p.payload.clone());
        let times: Vec<chrono::DateTime<chrono::Utc>> =
            chosen.iter().map(|&i| batch[i].now).collect();
        let sql = format!(
            "WITH t AS MATERIALIZED ( \
               SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, u.* \
               FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[]) \
                 WITH ORDINALITY AS u(sender_id, body, client_msg_id, event_id, payload, created_at, n)), \
             m AS ( \
               INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at) \
               OVERRIDING SYSTEM VALUE \
               SELECT t.id, $1, $2, $3 + row_number() OVER (ORDER BY t.id), t.sender_id, t.body, \
                      t.client_msg_id, t.created_at FROM t \
               RETURNING {cols}), \
             e AS ( \
               INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) \
               SELECT t.event_id, $10, m.org_id, m.room_id, \
                 (t.payload::jsonb || jsonb_build_object('id', m.id, 'org', m.org_id))::text, t.created_at \
               FROM m JOIN t ON t.id = m.id) \
             SELECT m.id, m.room_id, m.org_id, m.seq, m.sender_id, m.body, m.client_msg_id, \
                    m.is_deleted, m.created_at, m.edited_at, m.file_id, m.file_name, m.file_type, \
                    m.file_size, t.n FROM m JOIN t ON t.id = m.id",
            cols = super::rows::MESSAGE_COLUMNS
        );
        let rows: Vec<super::rows::BatchRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(org_id)
            .bind(last_seq)
            .bind(&senders)
            .bind(&bodies)
            .bind(&client_ids)
            .bind(&event_ids)
            .bind(&payloads)
            .bind(&times)
            .bind(crate::events::EventType::MessageCreated.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let newest = rows.iter().map(|r| r.message.id).max();
        sqlx::query("UPDATE rooms SET last_seq = last_seq + $2, last_msg_id = $3 WHERE id = $1")
            .bind(room_id)
            .bind(rows.len() as i64)
            .bind(newest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut answers = none();
        for row in rows {
            // n numbers the chosen posts from 1; map it back to the batch.
            if let Some(&i) = usize::try_from(row.n - 1).ok().and_then(|k| chosen.get(k)) {
                answers[i] = Some(row.message);
            }
        }
        Ok(answers)
    }

    /// One answer per post of the batch, stored together when possible. If the transaction fails
    /// as a whole (say, a retry on another replica won a unique-index race), nothing of it was
    /// stored, and the posts go one by one so each gets its own answer.
    async fn insert_batch(
        write: &sqlx::Pool<Db>,
        room_id: i64,
        batch: &[PendingPost],
    ) -> Vec<Result<Option<super::rows::MessageRow>, sqlx::Error>> {
        // The batched statement carries no attachments: a batch with one goes post by post.
        if batch.iter().any(|p| p.msg.file.is_some()) {
            return insert_each(write, batch).await;
        }
        match insert_batch_atomic(write, room_id, batch).await {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::warn!(error = %e, room_id, posts = batch.len(), "batched post failed; posting one by one");
                insert_each(write, batch).await
            }
        }
    }

    include!("store.rs");
    include!("users.rs");
    include!("sessions.rs");
    include!("orgs.rs");
    include!("outbox.rs");
    include!("rooms.rs");
    include!("messages.rs");
    include!("post_queue.rs");
    include!("webhooks.rs");
    include!("email.rs");
    include!("uploads.rs");
    include!("tenants.rs");
}

/// SQLite.
pub mod sqlite {
    include!("prelude.rs");

    type Db = sqlx::Sqlite;
    const ENGINE: crate::store::Engine = crate::store::Engine::Sqlite;
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
    /// The single writer already serialises claims.
    const CLAIM_LOCK: &str = "";
    /// The single writer already serialises claims.
    const EMAIL_CLAIM_LOCK: &str = "";

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
               AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = rooms.org_id AND o.suspended = 0 AND o.archived_at IS NULL) \
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
            "INSERT INTO messages (room_id, org_id, seq, sender_id, body, client_msg_id, created_at, \
               file_id, file_name, file_type, file_size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {}",
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
            .bind(msg.file.as_ref().map(|f| f.id.as_str()))
            .bind(msg.file.as_ref().map(|f| f.filename.as_str()))
            .bind(msg.file.as_ref().map(|f| f.content_type.as_str()))
            .bind(msg.file.as_ref().map(|f| f.size))
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

    /// SQLite's single writer already serialises every write, so a batch is just its posts in
    /// turn; see the PostgreSQL version for what the answers mean.
    async fn insert_batch(
        write: &sqlx::Pool<Db>,
        _room_id: i64,
        batch: &[PendingPost],
    ) -> Vec<Result<Option<super::rows::MessageRow>, sqlx::Error>> {
        insert_each(write, batch).await
    }

    include!("store.rs");
    include!("users.rs");
    include!("sessions.rs");
    include!("orgs.rs");
    include!("outbox.rs");
    include!("rooms.rs");
    include!("messages.rs");
    include!("post_queue.rs");
    include!("webhooks.rs");
    include!("email.rs");
    include!("uploads.rs");
    include!("tenants.rs");
}
