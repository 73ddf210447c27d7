//! Reactions: the rows, the counts on the message (kept under its row lock) and the events.
//!
//! A change is three round trips inside its transaction: lock and read the message with the
//! reactor's own emoji, decide in Rust, then write everything (`record_reaction`, one statement
//! on PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::outbox::EventRow;
use super::{record_reaction, SqlStore, Tx, MESSAGE_LOCK};
use crate::sql::rows::{encode_reactions, placeholders, MessageRow, MESSAGE_COLUMNS};
use crate::{ReactionOutcome, ReactionStore, StoreError, StoreResult};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, ReactionChanged};
use chatboard_core::model::{Message, ReactionCount};

/// Most message ids one `reactions_by` statement names.
const IDS_PER_STATEMENT: usize = 500;

/// One person adding or removing one emoji on one message.
pub(super) struct ReactionChange<'a> {
    pub(super) room_id: i64,
    pub(super) msg_id: i64,
    pub(super) user_id: i64,
    pub(super) emoji: &'a str,
    pub(super) add: bool,
    pub(super) now: DateTime<Utc>,
}

impl ReactionChange<'_> {
    /// The statement that adds or removes the reaction's row, and how many values it takes:
    /// `$1` (room), `$2` (message), `$3` (emoji), `$4` (user) and `$5` (time, adding only).
    pub(super) fn row_statement(&self) -> (&'static str, usize) {
        if self.add {
            (
                "INSERT INTO reactions (room_id, message_id, emoji, user_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
                5,
            )
        } else {
            (
                "DELETE FROM reactions WHERE room_id = $1 AND message_id = $2 AND emoji = $3 \
                 AND user_id = $4",
                4,
            )
        }
    }

    /// Binds [`ReactionChange::row_statement`]'s values.
    pub(super) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments<'q>> {
        let query = query
            .bind(self.room_id)
            .bind(self.msg_id)
            .bind(self.emoji)
            .bind(self.user_id);
        if self.add {
            query.bind(self.now)
        } else {
            query
        }
    }
}

/// A message with the emoji one person has on it (space-separated).
#[derive(sqlx::FromRow)]
struct LockedRow {
    #[sqlx(flatten)]
    message: MessageRow,
    own: String,
}

/// The message about to be reacted to, locked until the transaction ends (PostgreSQL; the
/// single writer already serialises SQLite), and the emoji `user_id` has on it: under the lock
/// nobody else changes either.
async fn lock_message(
    tx: &mut Tx<'_>,
    room_id: i64,
    msg_id: i64,
    user_id: i64,
) -> StoreResult<(Message, Vec<String>)> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, COALESCE((SELECT string_agg(r.emoji, ' ') FROM reactions r \
           WHERE r.message_id = messages.id AND r.user_id = $3), '') AS own \
         FROM messages WHERE room_id = $1 AND id = $2{MESSAGE_LOCK}"
    );
    let row: Option<LockedRow> = sqlx::query_as(&sql)
        .bind(room_id)
        .bind(msg_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    let row = row.ok_or(StoreError::NotFound)?;
    let own = row.own.split_whitespace().map(str::to_owned).collect();
    Ok((Message::from(row.message), own))
}

/// The count of `emoji` among `counts` (0 when absent).
fn count_of(counts: &[ReactionCount], emoji: &str) -> i64 {
    counts
        .iter()
        .find(|c| c.emoji == emoji)
        .map_or(0, |c| c.count)
}

/// `counts` after one person added (`add`) or removed `emoji`.
fn apply(counts: &mut Vec<ReactionCount>, emoji: &str, add: bool) {
    match counts.iter_mut().find(|c| c.emoji == emoji) {
        Some(entry) if add => entry.count += 1,
        Some(entry) => entry.count -= 1,
        None if add => counts.push(ReactionCount {
            emoji: emoji.to_owned(),
            count: 1,
            me: false,
        }),
        None => {}
    }
    counts.retain(|c| c.count > 0);
}

/// The outcome as the reactor sees it: `me` set on their own emoji.
fn outcome(mut message: Message, own: &[String], emoji: &str, changed: bool) -> ReactionOutcome {
    for reaction in &mut message.reactions {
        reaction.me = own.contains(&reaction.emoji);
    }
    let count = count_of(&message.reactions, emoji);
    ReactionOutcome {
        message,
        changed,
        count,
    }
}

impl SqlStore {
    /// Adds or removes one reaction under the message's lock (see [`ReactionStore`]); adding
    /// refuses a deleted message and a new emoji beyond `max_distinct`.
    async fn change_reaction(
        &self,
        change: ReactionChange<'_>,
        max_distinct: usize,
    ) -> StoreResult<ReactionOutcome> {
        let emoji = change.emoji;
        let mut tx = self.write.begin().await?;
        let (mut message, mut own) =
            lock_message(&mut tx, change.room_id, change.msg_id, change.user_id).await?;
        if change.add {
            if message.is_deleted {
                return Err(StoreError::Conflict(ErrorCode::MessageDeleted));
            }
            let known = message.reactions.iter().any(|c| c.emoji == emoji);
            if !known && message.reactions.len() >= max_distinct {
                return Err(StoreError::Conflict(ErrorCode::TooManyReactions));
            }
        }
        let had = own.iter().any(|e| e == emoji);
        if had == change.add {
            tx.rollback().await?;
            return Ok(outcome(message, &own, emoji, false));
        }
        apply(&mut message.reactions, emoji, change.add);
        if change.add {
            own.push(emoji.to_owned());
        } else {
            own.retain(|e| e != emoji);
        }
        let changed = ReactionChanged {
            room: change.room_id,
            message_id: change.msg_id,
            emoji: emoji.to_owned(),
            user_id: change.user_id,
            count: count_of(&message.reactions, emoji),
            at: change.now,
        };
        let event = if change.add {
            DomainEvent::ReactionAdded(changed)
        } else {
            DomainEvent::ReactionRemoved(changed)
        };
        let event = EventRow::new(message.org, &event, change.now)?;
        let counts = encode_reactions(&message.reactions);
        record_reaction(&mut tx, &change, counts, &event).await?;
        tx.commit().await?;
        Ok(outcome(message, &own, emoji, true))
    }
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
        let change = ReactionChange {
            room_id,
            msg_id,
            user_id,
            emoji,
            add: true,
            now,
        };
        self.change_reaction(change, max_distinct).await
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
        let change = ReactionChange {
            room_id,
            msg_id,
            user_id,
            emoji,
            add: false,
            now,
        };
        self.change_reaction(change, usize::MAX).await
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
