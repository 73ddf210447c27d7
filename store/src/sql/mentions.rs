//! Mentions: the rows written with a message (and rewritten by an edit), the member lookup, and
//! the reader's mentions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqlStore, Tx};
use crate::sql::rows::{
    like_prefix, message_columns_of, placeholders, user_name_starts, MessageRow, RoomMemberRow,
};
use crate::{MentionStore, StoreResult};
use chatboard_core::events::{DomainEvent, MessageMentioned};
use chatboard_core::model::{Message, RoomMember};

/// Rows one insert statement takes at most (three parameters each).
const ROWS_PER_STATEMENT: usize = 300;
/// Addresses one lookup statement names at most.
const EMAILS_PER_STATEMENT: usize = 500;

/// Records who `message` mentions (`everyone`), replacing what an earlier version of it
/// mentioned, as part of `tx`; returns a `message.mentioned` event for each person not
/// mentioned before.
pub(super) async fn record_mentions(
    tx: &mut Tx<'_>,
    message: &Message,
    everyone: &[i64],
    now: DateTime<Utc>,
) -> StoreResult<Vec<(DomainEvent, DateTime<Utc>)>> {
    let before: Vec<(i64,)> =
        sqlx::query_as("DELETE FROM mentions WHERE message_id = $1 RETURNING user_id")
            .bind(message.id)
            .fetch_all(&mut **tx)
            .await?;
    for chunk in everyone.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * 3 + 1, 3)))
            .collect();
        let sql = format!(
            "INSERT INTO mentions (message_id, room_id, user_id) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for user_id in chunk {
            query = query.bind(message.id).bind(message.room).bind(*user_id);
        }
        query.execute(&mut **tx).await?;
    }
    // A set: an edit of a message that mentioned thousands compared each with each.
    let before: std::collections::HashSet<i64> = before.into_iter().map(|(was,)| was).collect();
    Ok(everyone
        .iter()
        .filter(|&&user_id| !before.contains(&user_id))
        .map(|&user_id| {
            let event = DomainEvent::MessageMentioned(MessageMentioned {
                user_id,
                message: message.clone(),
            });
            (event, now)
        })
        .collect())
}

#[async_trait]
impl MentionStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn member_ids(&self, room_id: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY user_id",
        )
        .bind(room_id)
        .fetch_all(&self.read)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mentioned_by(&self, message_id: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM mentions WHERE message_id = $1 ORDER BY user_id",
        )
        .bind(message_id)
        .fetch_all(&self.read)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn members_by_email(
        &self,
        room_id: i64,
        emails: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut found = Vec::new();
        for chunk in emails.chunks(EMAILS_PER_STATEMENT) {
            // Addresses are stored lower-cased (registration normalises them), so the lookup
            // goes through the unique index on `email` instead of every member of the room.
            let sql = format!(
                "SELECT u.email, u.id FROM users u \
                 JOIN room_members rm ON rm.user_id = u.id AND rm.room_id = $1 \
                 WHERE u.email IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, i64)>(&sql).bind(room_id);
            for email in chunk {
                query = query.bind(email);
            }
            found.extend(query.fetch_all(&self.read).await?);
        }
        Ok(found)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn search_members(
        &self,
        room_id: i64,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<RoomMember>> {
        let sql = format!(
            "SELECT rm.user_id, u.email, u.first_name, u.last_name, om.role AS org_role, \
                    rm.last_read_msg_id, rm.joined_at \
             FROM room_members rm \
             JOIN users u ON u.id = rm.user_id \
             JOIN rooms r ON r.id = rm.room_id \
             LEFT JOIN org_members om ON om.org_id = r.org_id AND om.user_id = rm.user_id \
             WHERE rm.room_id = $1 AND ({}) \
             ORDER BY lower(u.email) LIMIT $3",
            user_name_starts("$2")
        );
        let rows: Vec<RoomMemberRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(like_prefix(prefix))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(RoomMember::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mentions_of(
        &self,
        user_id: i64,
        org: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let columns = message_columns_of("m");
        let below = if before.is_some() {
            "AND mn.message_id < $2"
        } else {
            ""
        };
        let in_org = match (org, before) {
            (None, _) => String::new(),
            (Some(_), before) => format!(
                "AND rm.room_id IN (SELECT r.id FROM rooms r WHERE r.org_id = ${})",
                if before.is_some() { 3 } else { 2 }
            ),
        };
        // The page of mention keys first (newest first through `mentions_reader`, seats
        // checked), then their messages: joined the other way round, PostgreSQL misjudged how
        // many rows the seat check keeps and read every mention's message before sorting
        // (15 ms instead of 0.4 with 2,500 mentions). The limit is written into the statement
        // (a number, one statement per page size): as a parameter, PostgreSQL kept planning
        // the statement anew on every call rather than trust a plan for any limit, which
        // halved the page's throughput.
        let sql = format!(
            "SELECT {columns} FROM ( \
               SELECT mn.room_id, mn.message_id FROM mentions mn \
               WHERE mn.user_id = $1 {below} \
                 AND mn.room_id IN (SELECT rm.room_id FROM room_members rm \
                                    WHERE rm.user_id = $1 {in_org}) \
               ORDER BY mn.message_id DESC LIMIT {limit}) x \
             JOIN messages m ON m.room_id = x.room_id AND m.id = x.message_id \
             ORDER BY x.message_id DESC"
        );
        let mut query = sqlx::query_as::<_, MessageRow>(&sql).bind(user_id);
        if let Some(before) = before {
            query = query.bind(before);
        }
        if let Some(org) = org {
            query = query.bind(org);
        }
        let rows = query.fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(Message::from).collect())
    }
}
