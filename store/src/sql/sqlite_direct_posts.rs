//! Plain posts stored by the writer's direct connection (`sqlite_direct_writer`): the batch's
//! statements run one after another on that thread, which answers once for the batch, where
//! sqlx's connection thread handed over each statement's result and each row separately.

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, ToSql};

use super::outbox::plain_post_event;
use super::{insert_sql_returning, OUTBOX_COLUMNS};
use crate::sql::rows::MessageRow;
use crate::sqlite_direct_writer::{in_transaction, DirectWriter};
use crate::{NewMessage, StoreResult};
use chatboard_core::events::EventType;
use chatboard_core::model::Message;

/// A post's insert ([`insert_sql_returning`]) returning what the database decides.
static INSERT: LazyLock<String> = LazyLock::new(|| insert_sql_returning(1, "id, org_id, seq"));

/// A stored post's `message.created` row: its payload given the message's id and organization,
/// as the one-statement batch of the sqlx path writes it.
static OUTBOX: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO {OUTBOX_COLUMNS} VALUES ($1, '{}', $2, $3, \
           json_set($4, '$.id', $5, '$.org', $2), $6)",
        EventType::MessageCreated.as_str()
    )
});

/// A plain post as it will be stored, with its event, owned, for the writer's thread.
struct DirectPost {
    /// The row before the database gives it its id, organization and seq.
    row: MessageRow,
    /// Its time as sqlx writes a time, so that both paths store the same text.
    created_at: String,
    event_id: String,
    payload: String,
}

/// What the database decided for a stored post.
struct StoredKeys {
    id: i64,
    org_id: i64,
    seq: i64,
}

/// Stores plain posts (each with its time) in one transaction on `direct` (during the caller's
/// `DirectTurn`); `None` for a post the sender may not make (no seat, or a
/// `client_msg_id` already used).
pub(super) async fn insert(
    direct: &DirectWriter,
    posts: &[(&NewMessage, DateTime<Utc>)],
) -> StoreResult<Vec<Option<Message>>> {
    let rows = posts
        .iter()
        .map(|(msg, now)| direct_post(msg, *now))
        .collect::<StoreResult<Vec<_>>>()?;
    // The rows travel to the thread and back, to become the answers.
    let (rows, stored) = direct
        .run(move |conn| store(conn, &rows).map(|stored| (rows, stored)))
        .await?;
    Ok(rows
        .into_iter()
        .zip(stored)
        .map(|(post, keys)| keys.map(|k| Message::from(post.row.saved(k.id, k.org_id, k.seq))))
        .collect())
}

/// A post's row and its event's.
fn direct_post(msg: &NewMessage, now: DateTime<Utc>) -> StoreResult<DirectPost> {
    let event = plain_post_event(msg, now)?;
    Ok(DirectPost {
        row: MessageRow::unsaved(msg, now),
        created_at: now.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        event_id: event.event_id,
        payload: event.payload,
    })
}

/// Runs on the writer's thread: each post's insert and, when it stored a row, its outbox row.
fn store(conn: &mut Connection, posts: &[DirectPost]) -> rusqlite::Result<Vec<Option<StoredKeys>>> {
    in_transaction(conn, |tx| {
        let mut insert = tx.prepare_cached(&INSERT)?;
        let mut outbox = tx.prepare_cached(&OUTBOX)?;
        posts
            .iter()
            .map(|post| {
                let row = &post.row;
                let values: [(&str, &dyn ToSql); 11] = [
                    ("$1", &row.room_id),
                    ("$2", &row.sender_id),
                    ("$3", &row.client_msg_id),
                    ("$4", &row.body),
                    ("$5", &post.created_at),
                    ("$6", &row.file_id),
                    ("$7", &row.file_name),
                    ("$8", &row.file_type),
                    ("$9", &row.file_size),
                    ("$10", &row.parent_id),
                    ("$11", &row.mention_ids),
                ];
                let keys = insert
                    .query_row(&values[..], |row| {
                        Ok(StoredKeys {
                            id: row.get(0)?,
                            org_id: row.get(1)?,
                            seq: row.get(2)?,
                        })
                    })
                    .optional()?;
                if let Some(k) = &keys {
                    let event: [(&str, &dyn ToSql); 6] = [
                        ("$1", &post.event_id),
                        ("$2", &k.org_id),
                        ("$3", &post.row.room_id),
                        ("$4", &post.payload),
                        ("$5", &k.id),
                        ("$6", &post.created_at),
                    ];
                    outbox.execute(&event[..])?;
                }
                Ok(keys)
            })
            .collect()
    })
}
