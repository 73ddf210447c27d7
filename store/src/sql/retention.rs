//! Message retention: one batch of an organization's messages past its retention period,
//! deleted with what hangs off them.
//!
//! Every statement here finds its rows through an index that leads with what it filters on:
//! the candidates through `messages_org_age` (org, age) in its own order, so a batch reads about
//! as many entries as it takes, however large the backlog; the deletions by room and id
//! (PostgreSQL's key is `(room_id, id)`: a filter on `id` alone read the whole table, every
//! tenant's rows included, while the batch held its rooms).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{SqlStore, Tx};
use crate::sql::rows::placeholders;
use crate::StoreResult;

/// The messages retention takes from an org (`$1`) before a time (`$2`), oldest first, at most
/// `$3`, as `(room_id, id)`: a thread's first message stays while its thread has younger replies
/// (they would be left without a root to reply to), and goes only once its replies have gone
/// (older than it, it came first, and a sweep that stopped after its batch left the replies
/// without their thread, whose page answered 404). Ties in age go by id, so that both reads of
/// a batch choose the same messages.
const EXPIRING: &str = "SELECT room_id, id FROM messages WHERE org_id = $1 AND created_at < $2 \
     AND (last_reply_at IS NULL OR (last_reply_at < $2 AND NOT EXISTS (SELECT 1 FROM messages r \
       WHERE r.room_id = messages.room_id AND r.parent_id = messages.id))) \
     ORDER BY created_at, id LIMIT $3";

/// Ids deleted per statement.
const CHUNK: usize = 500;

impl SqlStore {
    /// Deletes up to `limit` messages of `org_id` created before `cutoff`, in one transaction;
    /// returns how many went.
    pub(super) async fn purge_org_batch(
        &self,
        org_id: i64,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.write.begin().await?;
        // Their rooms' rows first, in id order, as posts, replies, edits and reactions take
        // them (room, then message): taken after the messages' rows, they could wait on each
        // other in a circle. (Cached pages of these rooms may hold what goes, too.)
        let mut rooms: Vec<i64> = expiring(&mut tx, org_id, cutoff, limit)
            .await?
            .into_iter()
            .map(|(room, _)| room)
            .collect();
        rooms.sort_unstable();
        rooms.dedup();
        for room_id in &rooms {
            Self::bump_edit_version(&mut tx, *room_id).await?;
        }
        // The messages, chosen again now that their rooms are held (another sweep may have
        // taken some meanwhile), and only in the rooms held.
        let mut by_room: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (room, id) in expiring(&mut tx, org_id, cutoff, limit).await? {
            if rooms.binary_search(&room).is_ok() {
                by_room.entry(room).or_default().push(id);
            }
        }
        let mut purged: u64 = 0;
        for (room_id, ids) in by_room {
            let mut highest_seq: Option<i64> = None;
            // Replies that went, by their thread's root.
            let mut replies_gone: BTreeMap<i64, i64> = BTreeMap::new();
            for chunk in ids.chunks(CHUNK) {
                for (seq, parent) in delete_messages(&mut tx, room_id, chunk).await? {
                    purged += 1;
                    highest_seq = Some(highest_seq.map_or(seq, |top| top.max(seq)));
                    if let Some(root) = parent {
                        *replies_gone.entry(root).or_default() += 1;
                    }
                }
            }
            // Unread counts start after what went: the highest seq that did.
            if let Some(seq) = highest_seq {
                sqlx::query("UPDATE rooms SET purged_seq = $2 WHERE id = $1 AND purged_seq < $2")
                    .bind(room_id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            // A thread kept for its younger replies counts only the replies it still has.
            for (root, gone) in replies_gone {
                sqlx::query(
                    "UPDATE messages SET reply_count = CASE WHEN reply_count > $3 \
                       THEN reply_count - $3 ELSE 0 END \
                     WHERE room_id = $1 AND id = $2",
                )
                .bind(room_id)
                .bind(root)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(purged)
    }
}

impl SqlStore {
    /// Deletes up to `limit` messages of the deleted room noted first, in one transaction, and
    /// forgets the room once none are left; `None` when no deleted room is left.
    pub(super) async fn purge_erased_batch(&self, limit: i64) -> StoreResult<Option<u64>> {
        let mut tx = self.write.begin().await?;
        let room: Option<(i64,)> =
            sqlx::query_as("SELECT room_id FROM erased_rooms ORDER BY erased_at, room_id LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let Some((room_id,)) = room else {
            return Ok(None);
        };
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM messages WHERE room_id = $1 ORDER BY id LIMIT $2")
                .bind(room_id)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        let mut purged: u64 = 0;
        for chunk in ids.chunks(CHUNK) {
            purged += delete_messages(&mut tx, room_id, chunk).await?.len() as u64;
        }
        if (ids.len() as i64) < limit {
            sqlx::query("DELETE FROM erased_rooms WHERE room_id = $1")
                .bind(room_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(purged))
    }
}

/// [`EXPIRING`]'s rows.
async fn expiring(
    tx: &mut Tx<'_>,
    org_id: i64,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(EXPIRING)
        .bind(org_id)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// Deletes messages `ids` of `room_id` and what hangs off them (reactions, mentions, thread
/// follows); returns the seq and thread root of each message that went.
async fn delete_messages(
    tx: &mut Tx<'_>,
    room_id: i64,
    ids: &[i64],
) -> StoreResult<Vec<(i64, Option<i64>)>> {
    let list = placeholders(2, ids.len());
    for dependent in [
        "DELETE FROM reactions WHERE room_id = $1 AND message_id IN",
        "DELETE FROM thread_follows WHERE room_id = $1 AND root_id IN",
        "DELETE FROM mentions WHERE room_id = $1 AND message_id IN",
    ] {
        let sql = format!("{dependent} ({list})");
        let mut query = sqlx::query(&sql).bind(room_id);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    let sql = format!(
        "DELETE FROM messages WHERE room_id = $1 AND id IN ({list}) RETURNING seq, parent_id"
    );
    let mut query = sqlx::query_as::<_, (i64, Option<i64>)>(&sql).bind(room_id);
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(&mut **tx).await?)
}
