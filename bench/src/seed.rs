//! The benchmark data set: two users in one org sharing `rooms` PUBLIC rooms; the first room
//! holds `messages` messages, the others `per_room` each. The reader has read all but the last
//! few messages of every room, so unread counts are small but non-zero everywhere.
//!
//! Structure goes through the API (so it is exactly what the service would create); the bulk of
//! messages goes straight into PostgreSQL with `generate_series`, keeping each room's `last_seq`
//! equal to its message count as the service would.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

/// What the load runs need.
#[derive(Serialize, Deserialize)]
pub struct Seeded {
    /// API base URL.
    pub api: String,
    /// Token of the user in every room (reads, unread counts).
    pub reader_token: String,
    /// Token of the user who posts.
    pub writer_token: String,
    /// The room with the most messages.
    pub big_room: i64,
    /// An id about 1,000 messages above the oldest of the big room: `before` it is a deep page.
    pub deep_cursor: i64,
    /// Every room, the big one first.
    pub rooms: Vec<i64>,
    /// The depth data set's extras (`depth-seed` only).
    #[serde(default)]
    pub depth: Option<crate::depth_seed::DepthSeeded>,
}

/// Two people in a new organization: the reader, who created it (its ADMIN), and the writer,
/// invited with `writer_role` and in.
pub struct Team {
    /// The reader's access token.
    pub reader_token: String,
    /// The writer's access token.
    pub writer_token: String,
    /// The reader's user id.
    pub reader_id: i64,
    /// The writer's user id.
    pub writer_id: i64,
    /// The organization.
    pub org: i64,
}

/// Registers a reader and a writer (addresses unique to this process) and puts them in a new
/// organization named `org_name`, through the API.
pub async fn two_person_org(
    http: &reqwest::Client,
    api: &str,
    org_name: &str,
    writer_role: &str,
) -> anyhow::Result<Team> {
    let tag = std::process::id();
    let reader = account(http, api, &format!("reader-{tag}@bench.example.com")).await?;
    let writer = account(http, api, &format!("writer-{tag}@bench.example.com")).await?;
    let body = json!({"name": org_name});
    let org = id_of(&call(http, api, "POST", "/api/orgs/", &reader.1, body).await?)?;
    let invite = call(
        http,
        api,
        "POST",
        &format!("/api/orgs/{org}/invite/"),
        &reader.1,
        json!({"email": writer.0, "role": writer_role}),
    )
    .await?;
    let token = invite["token"].as_str().context("invite token")?;
    let accept = json!({"token": token});
    call(
        http,
        api,
        "POST",
        "/api/orgs/accept-invite/",
        &writer.1,
        accept,
    )
    .await?;
    let reader_id = id_of(&call(http, api, "GET", "/auth/me/", &reader.1, Value::Null).await?)?;
    let writer_id = id_of(&call(http, api, "GET", "/auth/me/", &writer.1, Value::Null).await?)?;
    Ok(Team {
        reader_token: reader.1,
        writer_token: writer.1,
        reader_id,
        writer_id,
        org,
    })
}

/// Unread messages left in each room for the reader.
const UNREAD_PER_ROOM: i64 = 5;

pub async fn seed(
    api: &str,
    database_url: Option<&str>,
    messages: i64,
    rooms: usize,
    per_room: i64,
) -> anyhow::Result<Seeded> {
    if rooms == 0 || (database_url.is_some() && messages < 2_000) {
        bail!("need at least one room and 2,000 messages");
    }
    let http = reqwest::Client::new();
    let team = two_person_org(&http, api, "Bench", "MEMBER").await?;
    let org_id = team.org;

    let mut room_ids = Vec::with_capacity(rooms);
    for n in 0..rooms {
        let room = call(
            &http,
            api,
            "POST",
            "/api/rooms/",
            &team.reader_token,
            json!({"org": org_id, "name": format!("room {n}")}),
        )
        .await?;
        room_ids.push(id_of(&room)?);
    }
    let (reader_id, writer_id) = (team.reader_id, team.writer_id);

    // Without the database (a single node's SQLite, say) the rooms start empty: enough for the
    // post scenarios, not for the list and unread ones.
    let deep_cursor = match database_url {
        Some(url) => {
            load_messages(
                url,
                &room_ids,
                org_id,
                messages,
                per_room,
                (reader_id, writer_id),
            )
            .await?
        }
        None => 0,
    };
    Ok(Seeded {
        api: api.to_owned(),
        reader_token: team.reader_token,
        writer_token: team.writer_token,
        big_room: room_ids[0],
        deep_cursor,
        rooms: room_ids,
        depth: None,
    })
}

/// Indexes the bulk-loaded messages as the worker would have (`message_words`, in the shape the
/// schema has: older binaries, compared against in the benchmarks, index at insert or keep no
/// organization beside the words).
pub async fn fill_search_index(db: &sqlx::PgPool) -> anyhow::Result<()> {
    let (table, with_org): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('message_words') IS NOT NULL, EXISTS (SELECT 1 FROM \
           information_schema.columns WHERE table_schema = current_schema() \
           AND table_name = 'message_words' AND column_name = 'org_id')",
    )
    .fetch_one(db)
    .await?;
    let sql = match (table, with_org) {
        (false, _) => return Ok(()),
        (true, true) => {
            "INSERT INTO message_words (room_id, message_id, org_id, words) \
             SELECT room_id, id, org_id, search_vector FROM messages WHERE NOT is_deleted \
             ON CONFLICT (room_id, message_id) DO NOTHING"
        }
        (true, false) => {
            "INSERT INTO message_words (room_id, message_id, words) \
             SELECT room_id, id, search_vector FROM messages WHERE NOT is_deleted \
             ON CONFLICT (room_id, message_id) DO NOTHING"
        }
    };
    sqlx::query(sql)
        .execute(db)
        .await
        .context("indexing the loaded messages")?;
    Ok(())
}

/// Bulk-loads `messages` into the first room and `per_room` into each other, leaves the reader
/// a few unread in each, and returns the deep-page cursor of the first room.
async fn load_messages(
    database_url: &str,
    room_ids: &[i64],
    org_id: i64,
    messages: i64,
    per_room: i64,
    (reader_id, writer_id): (i64, i64),
) -> anyhow::Result<i64> {
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await?;
    println!("loading {messages} messages into room {}", room_ids[0]);
    bulk_messages(&db, room_ids[0], org_id, messages, reader_id, writer_id).await?;
    println!(
        "loading {per_room} messages into each of {} other rooms",
        room_ids.len() - 1
    );
    for &room in &room_ids[1..] {
        bulk_messages(&db, room, org_id, per_room, reader_id, writer_id).await?;
    }
    // The reader has read everything but the last few messages of each room.
    sqlx::query(
        "UPDATE room_members rm SET last_read_seq = GREATEST(r.last_seq - $2, 0), \
           last_read_msg_id = (SELECT id FROM messages m WHERE m.room_id = r.id \
                               AND m.seq = GREATEST(r.last_seq - $2, 1)) \
         FROM rooms r WHERE r.id = rm.room_id AND rm.user_id = $1",
    )
    .bind(reader_id)
    .bind(UNREAD_PER_ROOM)
    .execute(&db)
    .await?;
    fill_search_index(&db).await?;
    // Steady state, as autovacuum would leave it: statistics and the visibility map current.
    sqlx::query("VACUUM ANALYZE").execute(&db).await?;
    let (oldest,): (i64,) = sqlx::query_as("SELECT MIN(id) FROM messages WHERE room_id = $1")
        .bind(room_ids[0])
        .fetch_one(&db)
        .await?;
    Ok(oldest + 1_000)
}

/// Appends `count` messages to a room, alternating senders, with seq and `last_seq` in step.
async fn bulk_messages(
    db: &sqlx::PgPool,
    room: i64,
    org: i64,
    count: i64,
    a: i64,
    b: i64,
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let (start,): (i64,) = sqlx::query_as(
        "UPDATE rooms SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq - $2",
    )
    .bind(room)
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messages (room_id, org_id, seq, sender_id, body, created_at) \
         SELECT $1, $2, $3 + g, CASE WHEN g % 2 = 0 THEN $4 ELSE $5 END, \
                'Benchmark message ' || g || ': the quick brown fox jumps over the lazy dog.', \
                now() - make_interval(secs => $6 - g) \
         FROM generate_series(1, $6) AS g ORDER BY g",
    )
    .bind(room)
    .bind(org)
    .bind(start)
    .bind(a)
    .bind(b)
    .bind(count)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Registers an account and logs in: (email, access token).
pub(crate) async fn account(
    http: &reqwest::Client,
    api: &str,
    email: &str,
) -> anyhow::Result<(String, String)> {
    let password = "bench-password-1";
    http.post(format!("{api}/auth/register/"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .error_for_status()
        .context("register (is CHATBOARD_RATE_LIMIT_PER_IP=0 set?)")?;
    let tokens: Value = http
        .post(format!("{api}/auth/token/"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = tokens["access"]
        .as_str()
        .context("access token")?
        .to_owned();
    Ok((email.to_owned(), access))
}

/// One API call with a bearer token; the JSON answer, or an error for a non-2xx status.
pub(crate) async fn call(
    http: &reqwest::Client,
    api: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut request = http
        .request(method, format!("{api}{path}"))
        .bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// The `id` of an API object.
pub(crate) fn id_of(value: &Value) -> anyhow::Result<i64> {
    value["id"].as_i64().context("object without id")
}
