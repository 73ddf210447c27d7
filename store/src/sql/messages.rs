//! Messages: posting with its event, cursor pages, edits and soft deletes.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use super::mentions::record_mentions;
use super::outbox::{write_event, write_events};
use super::post_queue::PendingPost;
use super::write_queue::answer_of;
use super::{words_changed, words_removed, SqlStore, Tx};
use crate::sql::rows::{
    encode_ids, is_unique_violation, read_only_code, MessageRow, MESSAGE_COLUMNS,
};
use crate::{
    Mentioned, MessageStore, NewMessage, PageCursor, PageVersion, QueuedMessage, StoreError,
    StoreResult, Timeline,
};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::DomainEvent;
use chatboard_core::model::Message;

/// An org's `suspended` and `archived_at`.
type SuspendedArchived = (bool, Option<DateTime<Utc>>);

impl SqlStore {
    /// The message the sender already posted with this `client_msg_id`, while still a member.
    async fn earlier_send(&self, msg: &NewMessage) -> StoreResult<(Message, bool)> {
        let Some(client_id) = &msg.client_msg_id else {
            return Err(StoreError::NotFound);
        };
        self.sent_before(msg.room_id, msg.sender_id, client_id)
            .await?
            .map(|message| (message, false))
            .ok_or(StoreError::NotFound)
    }

    /// Why a post was refused: its organization takes no messages (`Forbidden`), or the sender
    /// has no seat (`NotFound`).
    async fn why_not_posted(&self, room_id: i64, sender: i64) -> StoreError {
        // Only someone seated in the room may learn its organization's state; to anyone else
        // the room does not exist.
        let org: Result<Option<SuspendedArchived>, _> = sqlx::query_as(
            "SELECT o.suspended, o.archived_at FROM rooms r JOIN orgs o ON o.id = r.org_id \
             JOIN room_members m ON m.room_id = r.id AND m.user_id = $2 WHERE r.id = $1",
        )
        .bind(room_id)
        .bind(sender)
        .fetch_optional(&self.write)
        .await;
        match org {
            Ok(Some((suspended, archived_at))) => {
                match read_only_code(suspended, archived_at.is_some()) {
                    Some(code) => StoreError::Forbidden(code),
                    None => StoreError::NotFound,
                }
            }
            Ok(None) => StoreError::NotFound,
            Err(e) => e.into(),
        }
    }

    /// Marks every cached page of the room as possibly stale. Writes that change a message
    /// call it before touching the message: on PostgreSQL every transaction that locks a room's
    /// row and one of its messages takes the room first (a reply holds its room while it
    /// updates its root), or two of them can wait on each other.
    pub(super) async fn bump_edit_version(tx: &mut Tx<'_>, room_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE rooms SET edit_version = edit_version + 1 WHERE id = $1")
            .bind(room_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Refuses a change to a room whose organization has become read-only since the caller
    /// checked it on a read: read inside the change's transaction once its room's row is held,
    /// as a post reads it, so a suspension committed before that stops the change.
    pub(super) async fn ensure_room_writable(tx: &mut Tx<'_>, room_id: i64) -> StoreResult<()> {
        let org: Option<SuspendedArchived> = sqlx::query_as(
            "SELECT o.suspended, o.archived_at FROM rooms r JOIN orgs o ON o.id = r.org_id \
             WHERE r.id = $1",
        )
        .bind(room_id)
        .fetch_optional(&mut **tx)
        .await?;
        let (suspended, archived_at) = org.ok_or(StoreError::NotFound)?;
        match read_only_code(suspended, archived_at.is_some()) {
            Some(code) => Err(StoreError::Forbidden(code)),
            None => Ok(()),
        }
    }

    async fn message_in(
        tx: &mut Tx<'_>,
        room_id: i64,
        msg_id: i64,
    ) -> StoreResult<Option<Message>> {
        // Not a deleted room's, whose messages wait to be purged (`erased_rooms`).
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2 \
             AND NOT EXISTS (SELECT 1 FROM erased_rooms WHERE room_id = $1)"
        );
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(Message::from))
    }
}

#[async_trait]
impl MessageStore for SqlStore {
    fn queue_message(&self, msg: NewMessage, now: DateTime<Utc>) -> QueuedMessage {
        // Timestamps are stored to the microsecond; the event must say the same.
        let now = now.trunc_subsecs(6);
        let post = PendingPost {
            queue: self.queue_of(msg.room_id),
            msg: msg.clone(),
            now,
        };
        QueuedMessage {
            msg,
            answer: self.post_queues.queue(&self.write, post),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn queued_message(&self, queued: QueuedMessage) -> StoreResult<(Message, bool)> {
        let QueuedMessage { msg, answer } = queued;
        match answer_of(answer).await {
            Ok(Some(message)) => Ok((message, true)),
            // Not a member, or a repeated send; a retry racing the original loses on the unique
            // index and lands here too. Either way the earlier message answers, if there is one.
            Ok(None) => match self.earlier_send(&msg).await {
                Err(StoreError::NotFound) => {
                    Err(self.why_not_posted(msg.room_id, msg.sender_id).await)
                }
                answer => answer,
            },
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                self.earlier_send(&msg).await
            }
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn sent_before(
        &self,
        room_id: i64,
        sender: i64,
        client_msg_id: &str,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3 \
               AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)"
        );
        // The writer's pool: a repeat right after the original must see its commit.
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(sender)
            .bind(client_msg_id)
            .fetch_optional(&self.write)
            .await?;
        Ok(row.map(Message::from))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_messages(
        &self,
        room_id: i64,
        reader: i64,
        timeline: Timeline,
        cursor: PageCursor,
        limit: u32,
    ) -> StoreResult<Option<Vec<Message>>> {
        let (condition, order, bound) = match cursor {
            PageCursor::Newest => ("", "DESC", None),
            PageCursor::Before(id) => ("AND id < $4", "DESC", Some(id)),
            PageCursor::After(id) => ("AND id > $4", "ASC", Some(id)),
        };
        // Each filter matches a partial index's predicate (`messages_roots`, `messages_thread`).
        let (filter, root) = match timeline {
            Timeline::All => ("", None),
            Timeline::Roots => ("AND parent_id IS NULL", None),
            Timeline::Thread(root) if bound.is_some() => ("AND parent_id = $5", Some(root)),
            Timeline::Thread(root) => ("AND parent_id = $4", Some(root)),
        };
        // The membership test rides along as a one-time filter, so a member's page is one round
        // trip; only an empty page needs a second look to tell "no messages" from "no seat".
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 {filter} {condition} \
               AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2) \
             ORDER BY id {order} LIMIT $3"
        );
        let mut query = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(room_id)
            .bind(reader)
            .bind(i64::from(limit));
        if let Some(id) = bound {
            query = query.bind(id);
        }
        if let Some(root) = root {
            query = query.bind(root);
        }
        let rows = query.fetch_all(&self.read).await?;
        if rows.is_empty() {
            let seat: Option<(i64,)> = sqlx::query_as(
                "SELECT user_id FROM room_members WHERE room_id = $1 AND user_id = $2",
            )
            .bind(room_id)
            .bind(reader)
            .fetch_optional(&self.read)
            .await?;
            if seat.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(rows.into_iter().map(Message::from).collect()))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn page_version(&self, room_id: i64, reader: i64) -> StoreResult<Option<PageVersion>> {
        let row: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT r.last_msg_id, r.edit_version, r.last_seq FROM rooms r WHERE r.id = $1 \
               AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)",
        )
        .bind(room_id)
        .bind(reader)
        .fetch_optional(&self.read)
        .await?;
        Ok(
            row.map(|(last_msg_id, edit_version, last_seq)| PageVersion {
                last_msg_id,
                edit_version,
                last_seq,
            }),
        )
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn message(&self, room_id: i64, msg_id: i64) -> StoreResult<Option<Message>> {
        // Not a deleted room's, whose messages wait to be purged (`erased_rooms`).
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2 \
             AND NOT EXISTS (SELECT 1 FROM erased_rooms WHERE room_id = $1)"
        );
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(Message::from))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn edit_message(
        &self,
        room_id: i64,
        msg_id: i64,
        body: &str,
        mentions: &Mentioned,
        now: DateTime<Utc>,
    ) -> StoreResult<(Message, Vec<i64>)> {
        let mut tx = self.write.begin().await?;
        // The room's row first, as posts take it (see `bump_edit_version`).
        Self::bump_edit_version(&mut tx, room_id).await?;
        Self::ensure_room_writable(&mut tx, room_id).await?;
        // The NOT is_deleted guard makes edit-after-delete impossible even when the two race;
        // the seat's, an edit by a sender removed since the caller's check.
        let sql = format!(
            "UPDATE messages SET body = $3, edited_at = $4, mention_ids = $5 \
             WHERE room_id = $1 AND id = $2 AND NOT is_deleted \
               AND EXISTS (SELECT 1 FROM room_members rm \
                 WHERE rm.room_id = $1 AND rm.user_id = messages.sender_id) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .bind(body)
            .bind(now)
            .bind(encode_ids(&mentions.named))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return match Self::message_in(&mut tx, room_id, msg_id).await? {
                Some(message) if message.is_deleted => {
                    Err(StoreError::Conflict(ErrorCode::MessageDeleted))
                }
                // Gone, or its sender no longer sits in the room.
                _ => Err(StoreError::NotFound),
            };
        };
        let message = Message::from(row);
        words_changed(&mut tx, room_id, msg_id).await?;
        write_event(
            &mut tx,
            message.org,
            &DomainEvent::MessageUpdated(message.clone()),
            now,
        )
        .await?;
        let mentioned = record_mentions(&mut tx, &message, &mentions.everyone, now).await?;
        write_events(&mut tx, message.org, &mentioned).await?;
        tx.commit().await?;
        let newly = mentioned
            .iter()
            .filter_map(|(event, _)| match event {
                DomainEvent::MessageMentioned(m) => Some(m.user_id),
                _ => None,
            })
            .collect();
        Ok((message, newly))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_message(
        &self,
        room_id: i64,
        msg_id: i64,
        actor: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Message> {
        let mut tx = self.write.begin().await?;
        // The room's row first, as posts take it (see `bump_edit_version`).
        Self::bump_edit_version(&mut tx, room_id).await?;
        Self::ensure_room_writable(&mut tx, room_id).await?;
        // The caller checked the actor on a read; a seat lost or a demotion since refuses it.
        let allowed = "EXISTS (SELECT 1 FROM org_members m JOIN rooms r \
               ON r.org_id = m.org_id WHERE r.id = $1 AND m.user_id = $3 AND m.role = 'ADMIN') \
             OR (messages.sender_id = $3 AND EXISTS (SELECT 1 FROM room_members rm \
               WHERE rm.room_id = $1 AND rm.user_id = $3))";
        let sql = format!(
            "UPDATE messages SET body = '', is_deleted = TRUE, reactions = NULL, mention_ids = NULL, \
               file_id = NULL, file_name = NULL, file_type = NULL, file_size = NULL \
             WHERE room_id = $1 AND id = $2 AND NOT is_deleted AND ({allowed}) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // Already deleted (the same outcome, and no second event), not there at all, or no
            // longer the actor's to delete.
            return match Self::message_in(&mut tx, room_id, msg_id).await? {
                Some(message) if message.is_deleted => Ok(message),
                _ => Err(StoreError::NotFound),
            };
        };
        let message = Message::from(row);
        // A deleted message keeps nothing of what it said, reactions and mentions included.
        for dependent in [
            "DELETE FROM reactions WHERE message_id = $1",
            "DELETE FROM mentions WHERE message_id = $1",
        ] {
            sqlx::query(dependent)
                .bind(msg_id)
                .execute(&mut *tx)
                .await?;
        }
        words_removed(&mut tx, room_id, msg_id).await?;
        write_event(
            &mut tx,
            message.org,
            &DomainEvent::MessageDeleted(message.clone()),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(message)
    }
}
