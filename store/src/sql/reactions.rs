//! Reactions: the rows, the counts on the message (kept under its row lock) and the events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::outbox::write_event;
use super::{SqlStore, Tx, MESSAGE_LOCK};
use crate::sql::rows::{
    encode_reactions, parse_reactions, placeholders, MessageRow, MESSAGE_COLUMNS,
};
use crate::{ReactionOutcome, ReactionStore, StoreError, StoreResult};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, ReactionChanged};
use chatboard_core::model::{Message, ReactionCount};

/// Most message ids one `reactions_by` statement names.
const IDS_PER_STATEMENT: usize = 500;

/// The message about to be reacted to, locked until the transaction ends (PostgreSQL; the
/// single writer already serialises SQLite): whether it is deleted, and its counts.
async fn lock_message(
    tx: &mut Tx<'_>,
    room_id: i64,
    msg_id: i64,
) -> StoreResult<(bool, Vec<ReactionCount>)> {
    let sql = format!(
        "SELECT is_deleted, reactions FROM messages WHERE room_id = $1 AND id = $2{MESSAGE_LOCK}"
    );
    let row: Option<(bool, Option<String>)> = sqlx::query_as(&sql)
        .bind(room_id)
        .bind(msg_id)
        .fetch_optional(&mut **tx)
        .await?;
    let (deleted, stored) = row.ok_or(StoreError::NotFound)?;
    Ok((deleted, parse_reactions(stored.as_deref())))
}

/// Stores the new counts and the event, and makes cached pages of the room stale.
async fn record_change(
    tx: &mut Tx<'_>,
    room_id: i64,
    msg_id: i64,
    counts: &[ReactionCount],
    event: impl FnOnce(i64) -> DomainEvent,
    now: DateTime<Utc>,
) -> StoreResult<Message> {
    let sql = format!(
        "UPDATE messages SET reactions = $3 WHERE room_id = $1 AND id = $2 RETURNING {MESSAGE_COLUMNS}"
    );
    let row: MessageRow = sqlx::query_as(&sql)
        .bind(room_id)
        .bind(msg_id)
        .bind(encode_reactions(counts))
        .fetch_one(&mut **tx)
        .await?;
    let message = Message::from(row);
    SqlStore::bump_edit_version(tx, room_id).await?;
    write_event(tx, message.org, &event(message.org), now).await?;
    Ok(message)
}

/// The count of `emoji` among `counts` (0 when absent).
fn count_of(counts: &[ReactionCount], emoji: &str) -> i64 {
    counts
        .iter()
        .find(|c| c.emoji == emoji)
        .map_or(0, |c| c.count)
}

/// The message as it stands, for a call that changed nothing.
async fn unchanged(tx: &mut Tx<'_>, room_id: i64, msg_id: i64) -> StoreResult<Message> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2");
    let row: MessageRow = sqlx::query_as(&sql)
        .bind(room_id)
        .bind(msg_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Message::from(row))
}

#[async_trait]
impl ReactionStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        max_distinct: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome> {
        let mut tx = self.write.begin().await?;
        let (deleted, mut counts) = lock_message(&mut tx, room_id, msg_id).await?;
        if deleted {
            return Err(StoreError::Conflict(ErrorCode::MessageDeleted));
        }
        let known = counts.iter().any(|c| c.emoji == emoji);
        if !known && counts.len() >= max_distinct {
            return Err(StoreError::Conflict(ErrorCode::TooManyReactions));
        }
        let added = sqlx::query(
            "INSERT INTO reactions (room_id, message_id, emoji, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(msg_id)
        .bind(emoji)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !added {
            let message = unchanged(&mut tx, room_id, msg_id).await?;
            tx.rollback().await?;
            let count = count_of(&message.reactions, emoji);
            return Ok(ReactionOutcome {
                message,
                changed: false,
                count,
            });
        }
        match counts.iter_mut().find(|c| c.emoji == emoji) {
            Some(entry) => entry.count += 1,
            None => counts.push(ReactionCount {
                emoji: emoji.to_owned(),
                count: 1,
                me: false,
            }),
        }
        let count = count_of(&counts, emoji);
        let changed = |_org| {
            DomainEvent::ReactionAdded(ReactionChanged {
                room: room_id,
                message_id: msg_id,
                emoji: emoji.to_owned(),
                user_id,
                count,
                at: now,
            })
        };
        let message = record_change(&mut tx, room_id, msg_id, &counts, changed, now).await?;
        tx.commit().await?;
        Ok(ReactionOutcome {
            message,
            changed: true,
            count,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_reaction(
        &self,
        room_id: i64,
        msg_id: i64,
        user_id: i64,
        emoji: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReactionOutcome> {
        let mut tx = self.write.begin().await?;
        let (_, mut counts) = lock_message(&mut tx, room_id, msg_id).await?;
        let removed = sqlx::query(
            "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
        )
        .bind(msg_id)
        .bind(emoji)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !removed {
            let message = unchanged(&mut tx, room_id, msg_id).await?;
            tx.rollback().await?;
            let count = count_of(&message.reactions, emoji);
            return Ok(ReactionOutcome {
                message,
                changed: false,
                count,
            });
        }
        for entry in counts.iter_mut().filter(|c| c.emoji == emoji) {
            entry.count -= 1;
        }
        counts.retain(|c| c.count > 0);
        let count = count_of(&counts, emoji);
        let changed = |_org| {
            DomainEvent::ReactionRemoved(ReactionChanged {
                room: room_id,
                message_id: msg_id,
                emoji: emoji.to_owned(),
                user_id,
                count,
                at: now,
            })
        };
        let message = record_change(&mut tx, room_id, msg_id, &counts, changed, now).await?;
        tx.commit().await?;
        Ok(ReactionOutcome {
            message,
            changed: true,
            count,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn reactions_by(
        &self,
        user_id: i64,
        message_ids: &[i64],
    ) -> StoreResult<Vec<(i64, String)>> {
        let mut found = Vec::new();
        for chunk in message_ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT message_id, emoji FROM reactions WHERE user_id = $1 AND message_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, String)>(&sql).bind(user_id);
            for id in chunk {
                query = query.bind(*id);
            }
            found.extend(query.fetch_all(&self.read).await?);
        }
        Ok(found)
    }
}
