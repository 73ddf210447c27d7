//! The message's row: its columns, the stored forms of its lists, and the message it makes.

use chrono::{DateTime, Utc};

use crate::NewMessage;
use chatboard_core::model::{FileRef, Message, ReactionCount};

/// Columns of the message object.
pub(in crate::sql) const MESSAGE_COLUMNS: &str =
    "id, room_id, org_id, seq, sender_id, body, client_msg_id, is_deleted, created_at, edited_at, \
     file_id, file_name, file_type, file_size, parent_id, reply_count, last_reply_at, last_repliers, \
     reactions, mention_ids, reactions_version";

/// [`MESSAGE_COLUMNS`] of the table aliased `alias`, for queries that join it.
pub(in crate::sql) fn message_columns_of(alias: &str) -> String {
    MESSAGE_COLUMNS
        .split(", ")
        .map(|column| format!("{alias}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most repliers a thread root lists.
const REPLIERS_SHOWN: usize = 3;

/// The repliers list after `replier` posted: them first, then the others, at most
/// [`REPLIERS_SHOWN`].
pub(in crate::sql) fn repliers_after(stored: Option<&str>, replier: i64) -> String {
    let earlier = parse_ids(stored).into_iter().filter(|&id| id != replier);
    std::iter::once(replier)
        .chain(earlier)
        .take(REPLIERS_SHOWN)
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored form of an id list (`None` when empty).
pub(in crate::sql) fn encode_ids(ids: &[i64]) -> Option<String> {
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A message's stored reaction counts (`me` is the reader's business, filled in later); an
/// unreadable value reads as none.
fn parse_reactions(stored: Option<&str>) -> Vec<ReactionCount> {
    stored
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// The stored form of a message's reaction counts (without `me`).
pub(in crate::sql) fn encode_reactions(counts: &[ReactionCount]) -> Option<String> {
    if counts.is_empty() {
        return None;
    }
    let stored: Vec<serde_json::Value> = counts
        .iter()
        .map(|c| serde_json::json!({"emoji": c.emoji, "count": c.count}))
        .collect();
    Some(serde_json::Value::Array(stored).to_string())
}

/// The user ids of a stored id list (malformed entries are skipped).
fn parse_ids(stored: Option<&str>) -> Vec<i64> {
    stored
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

/// A stored message with its post's place in the batch that stored it.
#[derive(sqlx::FromRow)]
pub(in crate::sql) struct BatchRow {
    #[sqlx(flatten)]
    pub(in crate::sql) message: MessageRow,
    /// Position of the post in its batch, from 1.
    pub(in crate::sql) n: i64,
}

/// A message as stored ([`MESSAGE_COLUMNS`]).
#[derive(sqlx::FromRow, Default)]
pub(in crate::sql) struct MessageRow {
    pub(in crate::sql) id: i64,
    pub(in crate::sql) room_id: i64,
    org_id: i64,
    seq: i64,
    pub(in crate::sql) sender_id: Option<i64>,
    pub(in crate::sql) body: String,
    pub(in crate::sql) client_msg_id: Option<String>,
    is_deleted: bool,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    pub(in crate::sql) file_id: Option<String>,
    pub(in crate::sql) file_name: Option<String>,
    pub(in crate::sql) file_type: Option<String>,
    pub(in crate::sql) file_size: Option<i64>,
    pub(in crate::sql) parent_id: Option<i64>,
    reply_count: i64,
    last_reply_at: Option<DateTime<Utc>>,
    last_repliers: Option<String>,
    reactions: Option<String>,
    pub(in crate::sql) mention_ids: Option<String>,
    #[sqlx(default)]
    reactions_version: i64,
}

impl MessageRow {
    /// The row a post will store, before the database gives it its id, organization and seq
    /// (0 here): no edits, replies or reactions yet.
    pub(in crate::sql) fn unsaved(msg: &NewMessage, now: DateTime<Utc>) -> Self {
        let file = msg.file.as_ref();
        Self {
            room_id: msg.room_id,
            sender_id: Some(msg.sender_id),
            body: msg.body.clone(),
            client_msg_id: msg.client_msg_id.clone(),
            created_at: now,
            file_id: file.map(|f| f.id.clone()),
            file_name: file.map(|f| f.filename.clone()),
            file_type: file.map(|f| f.content_type.clone()),
            file_size: file.map(|f| f.size),
            parent_id: msg.parent_id,
            mention_ids: encode_ids(&msg.mentions.named),
            ..Self::default()
        }
    }

    /// An [`unsaved`](Self::unsaved) row as the database stored it: with its id, organization
    /// and seq.
    pub(in crate::sql) fn saved(self, id: i64, org_id: i64, seq: i64) -> Self {
        Self {
            id,
            org_id,
            seq,
            ..self
        }
    }
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Message {
            id: r.id,
            room: r.room_id,
            org: r.org_id,
            sender: r.sender_id,
            body: r.body,
            file: r.file_id.map(|id| {
                FileRef::new(
                    id,
                    r.file_name.unwrap_or_default(),
                    r.file_type.unwrap_or_default(),
                    r.file_size.unwrap_or_default(),
                )
            }),
            client_msg_id: r.client_msg_id,
            is_deleted: r.is_deleted,
            created_at: r.created_at,
            edited_at: r.edited_at,
            parent_id: r.parent_id,
            reply_count: r.reply_count,
            last_reply_at: r.last_reply_at,
            repliers: parse_ids(r.last_repliers.as_deref()),
            reactions: parse_reactions(r.reactions.as_deref()),
            mentions: parse_ids(r.mention_ids.as_deref()),
            reactions_version: r.reactions_version,
            seq: r.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replier_moves_to_the_front_of_the_repliers_once() {
        assert_eq!(repliers_after(None, 4), "4");
        assert_eq!(repliers_after(Some("3,2"), 4), "4,3,2");
        assert_eq!(repliers_after(Some("3,4,2"), 4), "4,3,2");
        assert_eq!(repliers_after(Some("3,2,1"), 4), "4,3,2");
        assert_eq!(parse_ids(Some("4,x,2")), vec![4, 2]);
        assert_eq!(encode_ids(&[4, 2]), Some("4,2".to_owned()));
        assert_eq!(encode_ids(&[]), None);
        assert_eq!(
            message_columns_of("m").split(", ").next(),
            Some("m.id"),
            "every column gets the alias"
        );
    }
}
