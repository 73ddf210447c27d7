//! Threads: a reply's effect on its root and followers (inside the post's transaction), follows,
//! read pointers and the list of followed threads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqlStore, Tx};
use crate::sql::rows::{message_columns_of, repliers_after, MessageRow, MESSAGE_COLUMNS};
use crate::{FollowedThread, OpenedThread, StoreError, StoreResult, ThreadFollow, ThreadStore};
use chatboard_core::events::{DomainEvent, ThreadUpdated};
use chatboard_core::model::Message;

/// Moves the counters of the root `reply` answers and has its sender follow the thread (read up
/// to the reply), and the root's sender too unless they unfollowed it; part of the reply's
/// transaction. Returns the `thread.updated` event to record with it; nothing for a message
/// that is not a reply. `NotFound` when the root is not a root of the reply's room.
pub(super) async fn record_reply(
    tx: &mut Tx<'_>,
    reply: &Message,
    now: DateTime<Utc>,
) -> StoreResult<Option<DomainEvent>> {
    let Some(root_id) = reply.parent_id else {
        return Ok(None);
    };
    let stored: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT last_repliers FROM messages WHERE room_id = $1 AND id = $2 AND parent_id IS NULL",
    )
    .bind(reply.room)
    .bind(root_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (stored,) = stored.ok_or(StoreError::NotFound)?;
    let repliers = match reply.sender {
        Some(sender) => repliers_after(stored.as_deref(), sender),
        None => stored.unwrap_or_default(),
    };
    let sql = format!(
        "UPDATE messages SET reply_count = reply_count + 1, last_reply_at = $3, \
           last_reply_id = $4, last_repliers = $5 \
         WHERE room_id = $1 AND id = $2 RETURNING {MESSAGE_COLUMNS}"
    );
    let root: MessageRow = sqlx::query_as(&sql)
        .bind(reply.room)
        .bind(root_id)
        .bind(now)
        .bind(reply.id)
        .bind(repliers)
        .fetch_one(&mut **tx)
        .await?;
    let root = Message::from(root);
    // The root sits on an older page of the timeline: cached pages must not keep its counters.
    SqlStore::bump_edit_version(tx, reply.room).await?;
    if let Some(sender) = reply.sender {
        // Replying follows the thread again even after an unfollow, read up to one's own reply.
        sqlx::query(
            "INSERT INTO thread_follows (user_id, room_id, root_id, following, unfollowed, last_read_id) \
             VALUES ($1, $2, $3, TRUE, FALSE, $4) \
             ON CONFLICT (user_id, root_id) DO UPDATE SET following = TRUE, unfollowed = FALSE, \
               last_read_id = CASE WHEN thread_follows.last_read_id IS NULL \
                 OR thread_follows.last_read_id < excluded.last_read_id \
                 THEN excluded.last_read_id ELSE thread_follows.last_read_id END",
        )
        .bind(sender)
        .bind(reply.room)
        .bind(root_id)
        .bind(reply.id)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(author) = root.sender.filter(|&a| Some(a) != reply.sender) {
        follow_automatically(tx, author, reply.room, root_id).await?;
    }
    Ok(Some(DomainEvent::ThreadUpdated(ThreadUpdated::of(&root))))
}

/// Follows a thread for `user_id` on their behalf (the root's author when someone answers),
/// unless they unfollowed it.
pub(super) async fn follow_automatically(
    tx: &mut Tx<'_>,
    user_id: i64,
    room_id: i64,
    root_id: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO thread_follows (user_id, room_id, root_id, following, unfollowed, last_read_id) \
         VALUES ($1, $2, $3, TRUE, FALSE, NULL) \
         ON CONFLICT (user_id, root_id) DO UPDATE SET following = TRUE \
         WHERE NOT thread_follows.unfollowed",
    )
    .bind(user_id)
    .bind(room_id)
    .bind(root_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct FollowedRow {
    #[sqlx(flatten)]
    root: MessageRow,
    thread_last_read_id: Option<i64>,
    activity: i64,
    unread_replies: i64,
}

#[async_trait]
impl ThreadStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_following(
        &self,
        room_id: i64,
        root_id: i64,
        user_id: i64,
        following: bool,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let root: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM messages WHERE room_id = $1 AND id = $2 AND parent_id IS NULL",
        )
        .bind(room_id)
        .bind(root_id)
        .fetch_optional(&mut *tx)
        .await?;
        if root.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO thread_follows (user_id, room_id, root_id, following, unfollowed, last_read_id) \
             VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (user_id, root_id) DO UPDATE SET following = excluded.following, \
               unfollowed = excluded.unfollowed",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(root_id)
        .bind(following)
        .bind(!following)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mark_thread_read(
        &self,
        room_id: i64,
        root_id: i64,
        user_id: i64,
        msg_id: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.write.begin().await?;
        let part: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM messages WHERE room_id = $1 AND id = $3 \
               AND ((id = $2 AND parent_id IS NULL) OR parent_id = $2)",
        )
        .bind(room_id)
        .bind(root_id)
        .bind(msg_id)
        .fetch_optional(&mut *tx)
        .await?;
        if part.is_none() {
            return Err(StoreError::NotFound);
        }
        // Reading keeps the pointer without following (a row that does not follow).
        let (at,): (Option<i64>,) = sqlx::query_as(
            "INSERT INTO thread_follows (user_id, room_id, root_id, following, unfollowed, last_read_id) \
             VALUES ($1, $2, $3, FALSE, FALSE, $4) \
             ON CONFLICT (user_id, root_id) DO UPDATE SET \
               last_read_id = CASE WHEN thread_follows.last_read_id IS NULL \
                 OR thread_follows.last_read_id < excluded.last_read_id \
                 THEN excluded.last_read_id ELSE thread_follows.last_read_id END \
             RETURNING last_read_id",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(root_id)
        .bind(msg_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(at.unwrap_or(msg_id))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn open_thread(
        &self,
        room_id: i64,
        msg_id: i64,
        reader: i64,
    ) -> StoreResult<Option<OpenedThread>> {
        // The seat, the root (through the reply when `msg_id` is one) and the follow record in
        // one statement: a thread page is read far more often than anything here changes.
        let sql = format!(
            "SELECT {}, f.following, f.last_read_id \
             FROM messages x \
               JOIN messages m ON m.room_id = x.room_id AND m.id = COALESCE(x.parent_id, x.id) \
               LEFT JOIN thread_follows f ON f.user_id = $3 AND f.root_id = m.id \
             WHERE x.room_id = $1 AND x.id = $2 \
               AND EXISTS (SELECT 1 FROM room_members s WHERE s.room_id = $1 AND s.user_id = $3)",
            message_columns_of("m")
        );
        let row: Option<OpenedThreadRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .bind(reader)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|row| OpenedThread {
            root: Message::from(row.message),
            follow: ThreadFollow {
                following: row.following.unwrap_or(false),
                last_read_id: row.last_read_id,
            },
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn followed_threads(
        &self,
        user_id: i64,
        org: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<FollowedThread>> {
        let columns = message_columns_of("m");
        let below = if before.is_some() {
            "AND COALESCE(m.last_reply_id, m.id) < $3"
        } else {
            ""
        };
        let in_org = match org {
            None => String::new(),
            Some(_) => format!("AND m.org_id = ${}", if before.is_some() { 4 } else { 3 }),
        };
        // Unread replies are counted per thread through `messages_thread`: a thread's replies
        // after the pointer, which are few once the reader keeps up.
        let sql = format!(
            "SELECT {columns}, f.last_read_id AS thread_last_read_id, \
               COALESCE(m.last_reply_id, m.id) AS activity, \
               (SELECT COUNT(*) FROM messages r WHERE r.room_id = f.room_id \
                  AND r.parent_id = f.root_id AND r.id > COALESCE(f.last_read_id, 0) \
                  AND NOT r.is_deleted AND (r.sender_id IS NULL OR r.sender_id <> f.user_id)) \
                 AS unread_replies \
             FROM thread_follows f \
             JOIN messages m ON m.room_id = f.room_id AND m.id = f.root_id \
             JOIN room_members rm ON rm.room_id = f.room_id AND rm.user_id = f.user_id \
             WHERE f.user_id = $1 AND f.following {below} {in_org} \
             ORDER BY activity DESC LIMIT $2"
        );
        let mut query = sqlx::query_as::<_, FollowedRow>(&sql)
            .bind(user_id)
            .bind(i64::from(limit));
        if let Some(before) = before {
            query = query.bind(before);
        }
        if let Some(org) = org {
            query = query.bind(org);
        }
        let rows = query.fetch_all(&self.read).await?;
        Ok(rows
            .into_iter()
            .map(|r| FollowedThread {
                root: Message::from(r.root),
                unread_replies: r.unread_replies,
                last_read_id: r.thread_last_read_id,
                activity: r.activity,
            })
            .collect())
    }
}

/// A thread's root with the reader's follow record, which may be missing.
#[derive(sqlx::FromRow)]
struct OpenedThreadRow {
    #[sqlx(flatten)]
    message: MessageRow,
    following: Option<bool>,
    last_read_id: Option<i64>,
}
