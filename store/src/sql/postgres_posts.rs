//! PostgreSQL: storing posts, alone or as a group commit (`post_queue.rs`), with their events.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::outbox::{plain_post_event, write_event, write_events, EventRow, OUTBOX_COLUMNS};
use super::post_queue::{bind_insert, PendingPost};
use super::write_queue::write_each;
use super::{begin_write, mentions, threads, Pool};
use crate::sql::rows::{encode_ids, message_columns_of, BatchRow, MessageRow, MESSAGE_COLUMNS};
use crate::{NewMessage, StoreResult};
use chatboard_core::events::{DomainEvent, EventType};
use chatboard_core::model::Message;

/// The insert of a post: the room's next slot, then the message in it (see [`insert_message`]).
/// `$1` to `$11` are the post's values ([`bind_insert`]).
const INSERT_SQL: &str = "WITH slot AS ( \
       UPDATE rooms SET last_seq = last_seq + 1, \
         last_msg_id = nextval(pg_get_serial_sequence('messages', 'id')) \
       WHERE id = $1 \
         AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2) \
         AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = rooms.org_id \
           AND NOT o.suspended AND o.archived_at IS NULL) \
         AND ($3::text IS NULL OR NOT EXISTS ( \
           SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3)) \
       RETURNING org_id, last_seq, last_msg_id), \
     m AS ( \
       INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at, \
         file_id, file_name, file_type, file_size, parent_id, mention_ids) \
       OVERRIDING SYSTEM VALUE \
       SELECT last_msg_id, $1, org_id, last_seq, $2, $4, $3, $5, $6, $7, $8, $9, $10, $11 \
       FROM slot \
       RETURNING ";

/// A post's insert inside a transaction: [`INSERT_SQL`] returning the message.
static INSERT: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_SQL}{MESSAGE_COLUMNS}) SELECT * FROM m"));

/// A plain post in one statement, outside any transaction (a statement is atomic by itself):
/// [`INSERT_SQL`], and its event, written only if the message was. Before, a post was four round
/// trips (`BEGIN`, the insert, the event, `COMMIT`), and each woke the database's backend and
/// then the writer; in one, the database spends a sixth less CPU per post and answers sooner
/// (BENCHMARKS.md, "PostgreSQL's posts in one statement"). `$12` is the event's id, `$13` its payload after the
/// organization ([`payload_after_org`]).
static PLAIN_POST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{INSERT_SQL}{MESSAGE_COLUMNS}), \
         event AS ( \
           INSERT INTO {OUTBOX_COLUMNS} \
           SELECT $12, '{}', m.org_id, m.room_id, {}, $5 FROM m) \
         SELECT * FROM m",
        EventType::MessageCreated.as_str(),
        payload_of("m", "$13"),
    )
});

/// What a plain post's event payload (the unsaved message, id and organization 0) holds after
/// its organization: the message serializes as `{"id":…,"room":…,"org":…` and then this. `None`
/// should it ever open otherwise; the post then takes the transaction path.
fn payload_after_org(payload: &str, room_id: i64) -> Option<&str> {
    payload.strip_prefix(&format!("{{\"id\":0,\"room\":{room_id},\"org\":0"))
}

/// The SQL expression of a plain post's event payload: the stored message `m` (a table alias)
/// opening it, `rest` ([`payload_after_org`]) the remainder.
fn payload_of(m: &str, rest: &str) -> String {
    format!(
        "'{{\"id\":' || {m}.id || ',\"room\":' || {m}.room_id || ',\"org\":' || {m}.org_id || {rest}"
    )
}

/// A batch's `message.created` events for its statement to write ([`PLAIN_BATCH`]), one per
/// post: the event ids and the payloads after the organization ([`payload_after_org`]).
struct BatchEvents {
    ids: Vec<String>,
    payloads_after_org: Vec<String>,
}

impl BatchEvents {
    /// The events of `posts`, if every post is plain.
    fn of(posts: &[&PendingPost]) -> StoreResult<Option<Self>> {
        let mut events = Self {
            ids: Vec::with_capacity(posts.len()),
            payloads_after_org: Vec::with_capacity(posts.len()),
        };
        for post in posts {
            if !post.msg.is_plain() {
                return Ok(None);
            }
            let event = plain_post_event(&post.msg, post.now)?;
            let Some(rest) = payload_after_org(&event.payload, post.msg.room_id) else {
                return Ok(None);
            };
            events.payloads_after_org.push(rest.to_owned());
            events.ids.push(event.event_id);
        }
        Ok(Some(events))
    }
}

/// Whether `post` is the first of its batch with its room, sender and `client_msg_id` (`seen`
/// holds those met so far): a retry queued in the same batch as its original goes no further
/// than the original.
fn first_of_its_send(seen: &mut HashSet<(i64, i64, String)>, post: &PendingPost) -> bool {
    let msg = &post.msg;
    match &msg.client_msg_id {
        Some(id) => seen.insert((msg.room_id, msg.sender_id, id.clone())),
        None => true,
    }
}

/// The columns both batch statements take, one entry per post, as arrays.
struct BatchColumns<'a> {
    rooms: Vec<i64>,
    senders: Vec<i64>,
    bodies: Vec<&'a str>,
    client_ids: Vec<Option<&'a str>>,
    times: Vec<DateTime<Utc>>,
    /// The ids mentioned by address, encoded as stored.
    named: Vec<Option<String>>,
}

impl<'a> BatchColumns<'a> {
    fn of(posts: &[&'a PendingPost]) -> Self {
        Self {
            rooms: posts.iter().map(|p| p.msg.room_id).collect(),
            senders: posts.iter().map(|p| p.msg.sender_id).collect(),
            bodies: posts.iter().map(|p| p.msg.body.as_str()).collect(),
            client_ids: posts
                .iter()
                .map(|p| p.msg.client_msg_id.as_deref())
                .collect(),
            times: posts.iter().map(|p| p.now).collect(),
            named: posts
                .iter()
                .map(|p| encode_ids(&p.msg.mentions.named))
                .collect(),
        }
    }
}

/// A plain post and its event in one statement ([`PLAIN_POST`]).
async fn insert_plain(
    write: &Pool,
    msg: &NewMessage,
    event: &EventRow,
    payload_after_org: &str,
) -> StoreResult<Option<Message>> {
    // Outside a transaction the commit comes after the statement's rows: reading every response
    // up to the end, as `fetch_all` does, makes the answer wait for it and carry its error.
    let rows: Vec<MessageRow> = bind_insert(sqlx::query_as(&PLAIN_POST), msg, event.created_at)
        .bind(event.event_id.as_str())
        .bind(payload_after_org)
        .fetch_all(write)
        .await?;
    Ok(rows.into_iter().next().map(Message::from))
}

/// Stores a message and its `message.created` event, atomically. The insert takes the room's
/// row lock, the next seq and the id (allocated under that lock, which keeps ids in commit order
/// within the room) and stores the message; it stores nothing when the sender is not a member,
/// the organization takes no posts, or the sender already sent this `client_msg_id`. The event
/// is the message as stored. A plain post is one statement ([`insert_plain`]); a reply or a
/// post mentioning everyone is a transaction of several.
pub(super) async fn insert_message(
    write: &Pool,
    msg: &NewMessage,
    now: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    if msg.is_plain() {
        let event = plain_post_event(msg, now)?;
        if let Some(rest) = payload_after_org(&event.payload, msg.room_id) {
            return insert_plain(write, msg, &event, rest).await;
        }
    }
    let mut tx = begin_write(write).await?;
    let row: Option<MessageRow> = bind_insert(sqlx::query_as(&INSERT), msg, now)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let message = Message::from(row);
    let event = DomainEvent::MessageCreated(message.clone());
    write_event(&mut tx, message.org, &event, now).await?;
    if let Some(thread) = threads::record_reply(&mut tx, &message, now).await? {
        write_event(&mut tx, message.org, &thread, now).await?;
    }
    if !msg.mentions.everyone.is_empty() {
        let mentioned =
            mentions::record_mentions(&mut tx, &message, &msg.mentions.everyone, now).await?;
        write_events(&mut tx, message.org, &mentioned).await?;
    }
    tx.commit().await?;
    Ok(Some(message))
}

/// Stores several posts, to one room or several, in one transaction (see `post_queue.rs`): the
/// rooms' locks first, in id order (every writer takes them in that order, so two never wait
/// for each other), then the posts that may go in, their ids allocated under the locks and their
/// seqs in id order within each room, their events, and the rooms' counters. One answer per
/// post, in order: the message, or `None` for a sender without a seat, an organization that
/// takes no posts, or an already used `client_msg_id`.
async fn insert_batch_atomic(
    write: &Pool,
    batch: &[PendingPost],
) -> StoreResult<Vec<Option<Message>>> {
    let none = || batch.iter().map(|_| None).collect::<Vec<_>>();
    let mut wanted: Vec<i64> = batch.iter().map(|p| p.msg.room_id).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut tx = begin_write(write).await?;
    // Rooms of suspended or archived organizations take no posts (each post then learns why
    // alone); their rows are not locked.
    let open_rooms: Vec<i64> = sqlx::query_scalar(
        "SELECT r.id FROM rooms r JOIN orgs o ON o.id = r.org_id \
         WHERE r.id = ANY($1) AND NOT o.suspended AND o.archived_at IS NULL \
         ORDER BY r.id FOR UPDATE OF r",
    )
    .bind(&wanted)
    .fetch_all(&mut *tx)
    .await?;
    let rooms: Vec<i64> = batch.iter().map(|p| p.msg.room_id).collect();
    let senders: Vec<i64> = batch.iter().map(|p| p.msg.sender_id).collect();
    let client_ids: Vec<Option<String>> =
        batch.iter().map(|p| p.msg.client_msg_id.clone()).collect();
    let allowed: Vec<(i64,)> = sqlx::query_as(
        "SELECT t.n FROM unnest($1::bigint[], $2::bigint[], $3::text[]) \
           WITH ORDINALITY AS t(room_id, sender_id, client_msg_id, n) \
         WHERE t.room_id = ANY($4) \
           AND EXISTS (SELECT 1 FROM room_members rm \
             WHERE rm.room_id = t.room_id AND rm.user_id = t.sender_id) \
           AND (t.client_msg_id IS NULL OR NOT EXISTS ( \
             SELECT 1 FROM messages m WHERE m.room_id = t.room_id AND m.sender_id = t.sender_id \
               AND m.client_msg_id = t.client_msg_id))",
    )
    .bind(&rooms)
    .bind(&senders)
    .bind(&client_ids)
    .bind(&open_rooms)
    .fetch_all(&mut *tx)
    .await?;
    // A retry queued in the same batch as its original goes no further than the original.
    let mut seen = HashSet::new();
    let chosen: Vec<usize> = allowed
        .into_iter()
        .filter_map(|(n,)| usize::try_from(n - 1).ok())
        .filter(|&i| i < batch.len())
        .filter(|&i| first_of_its_send(&mut seen, &batch[i]))
        .collect();
    if chosen.is_empty() {
        tx.rollback().await?;
        return Ok(none());
    }
    let posts: Vec<&PendingPost> = chosen.iter().map(|&i| &batch[i]).collect();
    let columns = BatchColumns::of(&posts);
    let parents: Vec<Option<i64>> = posts.iter().map(|p| p.msg.parent_id).collect();
    // The events are written after the insert, each message's in id order with its thread's
    // (a batch of plain posts alone takes `PLAIN_BATCH`, its events in its statement).
    let returned = message_columns_of("m");
    let sql = format!(
        "WITH t AS MATERIALIZED ( \
           SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, u.* \
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], \
             $6::bigint[], $7::text[]) \
             WITH ORDINALITY AS u(room_id, sender_id, body, client_msg_id, created_at, parent_id, \
               mention_ids, n)), \
         m AS ( \
           INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, created_at, \
             parent_id, mention_ids) \
           OVERRIDING SYSTEM VALUE \
           SELECT t.id, t.room_id, r.org_id, \
                  r.last_seq + row_number() OVER (PARTITION BY t.room_id ORDER BY t.id), \
                  t.sender_id, t.body, t.client_msg_id, t.created_at, t.parent_id, t.mention_ids \
           FROM t JOIN rooms r ON r.id = t.room_id \
           RETURNING {MESSAGE_COLUMNS}), \
         {MOVE_ROOMS} \
         SELECT {returned}, t.n FROM m JOIN t ON t.id = m.id ORDER BY m.id",
    );
    let rows: Vec<BatchRow> = sqlx::query_as(&sql)
        .bind(&columns.rooms)
        .bind(&columns.senders)
        .bind(&columns.bodies)
        .bind(&columns.client_ids)
        .bind(&columns.times)
        .bind(&parents)
        .bind(&columns.named)
        .fetch_all(&mut *tx)
        .await?;
    let mut answers = none();
    let mut events: HashMap<i64, Vec<(DomainEvent, DateTime<Utc>)>> = HashMap::new();
    for row in rows {
        // n numbers the chosen posts from 1; map it back to the batch.
        let Some(&i) = usize::try_from(row.n - 1).ok().and_then(|k| chosen.get(k)) else {
            continue;
        };
        let message = Message::from(row.message);
        let now = batch[i].now;
        let org_events = events.entry(message.org).or_default();
        org_events.push((DomainEvent::MessageCreated(message.clone()), now));
        // Replies in id order, so each sees its root as the replies before it left it.
        if let Some(thread) = threads::record_reply(&mut tx, &message, now).await? {
            org_events.push((thread, now));
        }
        let everyone = &batch[i].msg.mentions.everyone;
        if !everyone.is_empty() {
            org_events.extend(mentions::record_mentions(&mut tx, &message, everyone, now).await?);
        }
        answers[i] = Some(message);
    }
    for (org_id, events) in events {
        if !events.is_empty() {
            write_events(&mut tx, org_id, &events).await?;
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// A batch statement's CTE moving each room's counters past its posts in `t` (their ids and
/// rooms).
const MOVE_ROOMS: &str = "moved AS ( \
       UPDATE rooms r SET last_seq = r.last_seq + c.n, last_msg_id = c.newest \
       FROM (SELECT room_id, COUNT(*) AS n, MAX(id) AS newest FROM t GROUP BY room_id) c \
       WHERE r.id = c.room_id)";

/// A batch of plain posts in one statement outside any transaction (atomic by itself), as a
/// plain post alone is: the rooms' locks in id order, the posts that may go in (a seat, an
/// organization that takes posts, an unused `client_msg_id`), their ids allocated under the
/// locks in batch order and their seqs in id order within each room, their events and the
/// rooms' counters. The transaction it replaces took six round trips (`BEGIN` and its setting,
/// the locks, the check, the insert, `COMMIT`), each waking the database's backend and the
/// writer, while the queue behind it waited (BENCHMARKS.md, "A batch of posts in one statement
/// on PostgreSQL"). `$1` to `$8`: rooms, senders, bodies, `client_msg_id`s, times, ids
/// mentioned by address, event ids, event payloads after the organization. As with a post
/// alone ([`INSERT_SQL`]), the seats and `client_msg_id`s are read as the statement began, before
/// it waited for the rooms: a `client_msg_id` used meanwhile by another replica fails the
/// statement on the unique index (the posts then go one by one), and a seat lost meanwhile
/// lets a post in, as it would have just before the loss.
static PLAIN_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH open_rooms AS MATERIALIZED ( \
           SELECT r.id, r.org_id, r.last_seq FROM rooms r JOIN orgs o ON o.id = r.org_id \
           WHERE r.id = ANY($1::bigint[]) AND NOT o.suspended AND o.archived_at IS NULL \
           ORDER BY r.id FOR UPDATE OF r), \
         allowed AS MATERIALIZED ( \
           SELECT u.*, o.org_id, o.last_seq \
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], \
             $6::text[], $7::text[], $8::text[]) \
             WITH ORDINALITY AS u(room_id, sender_id, body, client_msg_id, created_at, \
               mention_ids, event_id, payload_after_org, n) \
           JOIN open_rooms o ON o.id = u.room_id \
           WHERE EXISTS (SELECT 1 FROM room_members rm \
               WHERE rm.room_id = u.room_id AND rm.user_id = u.sender_id) \
             AND (u.client_msg_id IS NULL OR NOT EXISTS ( \
               SELECT 1 FROM messages m WHERE m.room_id = u.room_id \
                 AND m.sender_id = u.sender_id AND m.client_msg_id = u.client_msg_id))), \
         t AS MATERIALIZED ( \
           SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, a.* \
           FROM (SELECT * FROM allowed ORDER BY n) a), \
         m AS ( \
           INSERT INTO messages (id, room_id, org_id, seq, sender_id, body, client_msg_id, \
             created_at, mention_ids) \
           OVERRIDING SYSTEM VALUE \
           SELECT t.id, t.room_id, t.org_id, \
                  t.last_seq + row_number() OVER (PARTITION BY t.room_id ORDER BY t.id), \
                  t.sender_id, t.body, t.client_msg_id, t.created_at, t.mention_ids \
           FROM t \
           RETURNING {MESSAGE_COLUMNS}), \
         {MOVE_ROOMS}, \
         events AS ( \
           INSERT INTO {OUTBOX_COLUMNS} \
           SELECT t.event_id, '{created}', m.org_id, m.room_id, {payload}, t.created_at \
           FROM m JOIN t ON t.id = m.id ORDER BY m.id) \
         SELECT {returned}, t.n FROM m JOIN t ON t.id = m.id ORDER BY m.id",
        created = EventType::MessageCreated.as_str(),
        payload = payload_of("m", "t.payload_after_org"),
        returned = message_columns_of("m"),
    )
});

/// Stores a batch of plain posts with [`PLAIN_BATCH`], or `None` when one of them is not plain
/// (the transaction's path then takes the batch). A post repeating the `client_msg_id` of one
/// before it in the batch goes no further than that one: it is answered `None`, and its sender
/// then finds the first one stored.
async fn insert_plain_batch(
    write: &Pool,
    batch: &[PendingPost],
) -> StoreResult<Option<Vec<Option<Message>>>> {
    let mut seen = HashSet::new();
    let chosen: Vec<usize> = (0..batch.len())
        .filter(|&i| first_of_its_send(&mut seen, &batch[i]))
        .collect();
    let posts: Vec<&PendingPost> = chosen.iter().map(|&i| &batch[i]).collect();
    let Some(events) = BatchEvents::of(&posts)? else {
        return Ok(None);
    };
    let columns = BatchColumns::of(&posts);
    // Outside a transaction the commit comes after the statement's rows: `fetch_all` reads every
    // response up to the end, so the answer waits for the commit and carries its error.
    let rows: Vec<BatchRow> = sqlx::query_as(&PLAIN_BATCH)
        .bind(&columns.rooms)
        .bind(&columns.senders)
        .bind(&columns.bodies)
        .bind(&columns.client_ids)
        .bind(&columns.times)
        .bind(&columns.named)
        .bind(&events.ids)
        .bind(&events.payloads_after_org)
        .fetch_all(write)
        .await?;
    let mut answers: Vec<Option<Message>> = batch.iter().map(|_| None).collect();
    for row in rows {
        // n numbers the posts sent from 1; map it back to the batch.
        let Some(&i) = usize::try_from(row.n - 1).ok().and_then(|k| chosen.get(k)) else {
            continue;
        };
        answers[i] = Some(Message::from(row.message));
    }
    Ok(Some(answers))
}

/// One answer per post of the batch, stored together when possible: plain posts in one
/// statement, others in one transaction. If the statement or the transaction fails as a whole
/// (say, a retry on another replica won a unique-index race), nothing of it was stored, and
/// the posts go one by one so each gets its own answer.
pub(super) async fn insert_batch(
    write: &Pool,
    batch: &[PendingPost],
) -> Vec<StoreResult<Option<Message>>> {
    // The batched statements carry no attachments: a batch with one goes post by post.
    if batch.iter().any(|p| p.msg.file.is_some()) {
        return write_each(write, batch).await;
    }
    let stored = match insert_plain_batch(write, batch).await {
        Ok(Some(answers)) => Ok(answers),
        Ok(None) => insert_batch_atomic(write, batch).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, posts = batch.len(), "batched post failed; posting one by one");
            write_each(write, batch).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mentioned;

    /// A plain post's event opens as [`PLAIN_POST`] rebuilds it, so plain posts take the one
    /// statement (were it to open otherwise, they would silently take the slower path).
    #[test]
    fn a_plain_posts_event_opens_with_its_id_room_and_organization() {
        let msg = NewMessage {
            room_id: 42,
            sender_id: 7,
            body: "hello".into(),
            client_msg_id: Some("k".into()),
            file: None,
            parent_id: None,
            mentions: Mentioned::default(),
        };
        let event = plain_post_event(&msg, Utc::now()).expect("an event");
        let rest = payload_after_org(&event.payload, 42).expect("the opening the statement writes");
        assert!(rest.starts_with(",\"sender\":7,"), "{rest}");
        assert!(payload_after_org(&event.payload, 43).is_none());
    }
}
