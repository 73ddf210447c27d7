//! The data set of issue 20's figures: one organization of `messages` messages spread evenly
//! over `rooms` rooms, the reader seated in `seated` of them (PUBLIC ones; the others PRIVATE
//! rooms of the writer's). Every message has the word `common`; exactly one (in a reader's
//! room) has `needle`; a root in the reader's first room has `replies` replies; every 100th
//! message of the reader's rooms mentions the reader.
//!
//! Structure goes through the API; the bulk goes straight into PostgreSQL, with seqs, room
//! counters, thread counters and mention rows as the service keeps them.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::seed::{call, id_of, two_person_org, Seeded};

/// What the depth scenarios need beyond [`Seeded`].
#[derive(Serialize, Deserialize, Clone)]
pub struct DepthSeeded {
    /// The organization searched.
    pub org: i64,
    /// The room of the thread.
    pub thread_room: i64,
    /// The thread's root.
    pub thread_root: i64,
    /// The reader's rooms with their first message id (ids are consecutive within a room).
    pub reader_rooms: Vec<(i64, i64)>,
    /// Messages per room.
    pub per_room: i64,
}

/// Seeds the data set; `database_url` is the PostgreSQL database the API serves.
pub async fn seed(
    api: &str,
    database_url: &str,
    messages: i64,
    rooms: usize,
    seated: usize,
    replies: i64,
) -> anyhow::Result<Seeded> {
    if seated == 0 || seated > rooms || messages < rooms as i64 * 2 {
        bail!("need 0 < seated <= rooms and at least two messages a room");
    }
    let http = reqwest::Client::new();
    // A MANAGER may create rooms: the writer makes the rooms the reader is not in.
    let team = two_person_org(&http, api, "Depth", "MANAGER").await?;
    let (org, reader_id, writer_id) = (team.org, team.reader_id, team.writer_id);
    let mut room_ids = Vec::with_capacity(rooms);
    for n in 0..rooms {
        let (by, level) = if n < seated {
            (&team.reader_token, "PUBLIC")
        } else {
            (&team.writer_token, "PRIVATE")
        };
        let body = json!({"org": org, "name": format!("room {n}"), "access_level": level});
        room_ids.push(id_of(
            &call(&http, api, "POST", "/api/rooms/", by, body).await?,
        )?);
    }

    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await?;
    let per_room = messages / rooms as i64;
    println!("loading {per_room} messages into each of {rooms} rooms");
    let mut reader_rooms = Vec::new();
    for (n, &room) in room_ids.iter().enumerate() {
        let first = bulk(&db, room, org, per_room, writer_id, reader_id).await?;
        if n < seated {
            reader_rooms.push((room, first));
        }
    }
    // One message with a rare word, in the reader's last room.
    let (needle_room, needle_first) = reader_rooms[seated - 1];
    sqlx::query("UPDATE messages SET body = body || ' needle' WHERE room_id = $1 AND id = $2")
        .bind(needle_room)
        .bind(needle_first + per_room / 2)
        .execute(&db)
        .await?;
    // A thread: the first message of the reader's first room, answered `replies` times.
    let (thread_room, thread_root) = reader_rooms[0];
    println!("adding a thread of {replies} replies and the reader's mentions");
    let mut tx = db.begin().await?;
    let (start,): (i64,) = sqlx::query_as(
        "UPDATE rooms SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq - $2",
    )
    .bind(thread_room)
    .bind(replies)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at, parent_id) \
         SELECT $1, $2, $3 + g, $4, 'reply ' || g || ' in the common thread', now(), $5 \
         FROM generate_series(1, $6) AS g ORDER BY g",
    )
    .bind(thread_room)
    .bind(org)
    .bind(start)
    .bind(writer_id)
    .bind(thread_root)
    .bind(replies)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE messages SET reply_count = $3, last_reply_at = now(), \
           last_reply_id = (SELECT MAX(id) FROM messages WHERE parent_id = $2), last_repliers = $4 \
         WHERE room_id = $1 AND id = $2",
    )
    .bind(thread_room)
    .bind(thread_root)
    .bind(replies)
    .bind(writer_id.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE rooms SET last_msg_id = (SELECT MAX(id) FROM messages WHERE room_id = $1) WHERE id = $1")
        .bind(thread_room)
        .execute(&mut *tx)
        .await?;
    // Every 100th message of the reader's rooms mentions the reader.
    for &(room, _) in &reader_rooms {
        sqlx::query(
            "INSERT INTO mentions (message_id, room_id, user_id) \
             SELECT id, room_id, $2 FROM messages WHERE room_id = $1 AND seq % 100 = 0",
        )
        .bind(room)
        .bind(reader_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    crate::seed::fill_search_index(&db).await?;
    sqlx::query("VACUUM ANALYZE").execute(&db).await?;
    Ok(Seeded {
        api: api.to_owned(),
        reader_token: team.reader_token,
        writer_token: team.writer_token,
        big_room: thread_room,
        deep_cursor: thread_root + 1_000,
        rooms: reader_rooms.iter().map(|(room, _)| *room).collect(),
        depth: Some(DepthSeeded {
            org,
            thread_room,
            thread_root,
            reader_rooms,
            per_room,
        }),
    })
}

/// Appends `count` messages to a room (senders alternating) and returns the first one's id.
async fn bulk(
    db: &sqlx::PgPool,
    room: i64,
    org: i64,
    count: i64,
    a: i64,
    b: i64,
) -> anyhow::Result<i64> {
    let mut tx = db.begin().await?;
    let (start,): (i64,) = sqlx::query_as(
        "UPDATE rooms SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq - $2",
    )
    .bind(room)
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    // Words from a small vocabulary (so every query term has many matches) around `common`.
    let (first,): (i64,) = sqlx::query_as(
        "WITH m AS (INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at) \
         SELECT $1, $2, $3 + g, CASE WHEN g % 2 = 0 THEN $4 ELSE $5 END, \
                'Message ' || g || ' about the ' || \
                (ARRAY['release','deploy','budget','lunch','design','review','launch','support'])[1 + g % 8] || \
                ' plan, a common ' || \
                (ARRAY['question','update','problem','idea','note','draft'])[1 + g % 6] || \
                ' for the team.', \
                now() - make_interval(secs => $6 - g) \
         FROM generate_series(1, $6) AS g ORDER BY g RETURNING id) SELECT MIN(id) FROM m",
    )
    .bind(room)
    .bind(org)
    .bind(start)
    .bind(a)
    .bind(b)
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE rooms SET last_msg_id = (SELECT MAX(id) FROM messages WHERE room_id = $1) WHERE id = $1")
        .bind(room)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(first)
}
