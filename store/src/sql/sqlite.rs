//! SQLite: the store's shared SQL (the sibling files, compiled here as submodules) and the
//! statements that differ on this engine.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::rows::{message_columns_of, placeholders, BatchRow, MessageRow, MESSAGE_COLUMNS};
use super::word_lookup::{HitParams, WordLookup};
use crate::sqlite_connections::TakenConn;
use crate::{Engine, NewMessage, SearchTerm, SearchTerms, StoreResult};
use chatboard_core::events::{DomainEvent, EventType};
use chatboard_core::model::Message;
use outbox::{insert_rows_sql, plain_post_event, write_rows, EventRow, OUTBOX_COLUMNS};
use post_queue::{bind_insert, PendingPost};
use reactions::{own_emoji_column, LockedRow, ReactionWrites};
use write_queue::{write_each, MAX_BATCH};

type Db = sqlx::Sqlite;
/// Reads go through the reader connections, writes through the one writer connection, both held
/// by the store (see `sqlite_connections`).
type ReadPool = crate::sqlite_connections::SqliteConnections;
type WritePool = crate::sqlite_connections::SqliteConnections;
type Tx<'a> = crate::sqlite_connections::WriteTx;

const ENGINE: Engine = Engine::Sqlite;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// The single writer already serialises claims.
const CLAIM_LOCK: &str = "";
/// Each webhook (`w`) with its oldest due deliveries (`d`, up to `$3` of them due at `$1`),
/// read from the (webhook, due time) index.
const DUE_PER_WEBHOOK: &str = "webhooks w JOIN webhook_deliveries d ON d.id IN ( \
       SELECT x.id FROM webhook_deliveries x \
       WHERE x.webhook_id = w.id AND x.status IN ('pending', 'retrying') AND x.next_attempt_at <= $1 \
       ORDER BY x.next_attempt_at LIMIT $3)";
/// The single writer already serialises claims.
const PICKED_LOCK: &str = "";
/// The single writer already serialises claims.
const EMAIL_CLAIM_LOCK: &str = "";

/// Write transactions already run one at a time on the single writer connection.
const ORG_LOCK: &str = "";
/// SQLite has one writer at a time: nothing to lock.
const CREDENTIALS_LOCK: &str = "";
/// SQLite has one writer at a time: nothing to lock.
const ROOM_DELETE_LOCK: &str = "";
/// SQLite has one writer at a time: nothing to lock.
const WEBHOOK_LOCK: &str = "";
/// SQLite has one writer at a time: nothing to lock.
const FAN_OUT_LOCK: &str = "";

/// Nothing to keep: FTS5 finds every match through its index.
pub(super) struct WordStats;

impl WordStats {
    /// The only one.
    pub(super) fn new() -> Self {
        Self
    }

    /// Always the index: FTS5 finds every word through it, rare or frequent.
    pub(super) async fn lookup(&self, _read: &ReadPool, _terms: &SearchTerms) -> WordLookup {
        WordLookup::RoomByRoom
    }
}

/// The words a message's score counts (SQLite): every included word, those of phrases too.
/// FTS5's own BM25 weighs each word by how many messages of the whole index hold it, across
/// every organization and room, so a reader could learn from their own messages' scores
/// whether other tenants' messages use a word; a score from the message alone tells nothing.
fn score_words(terms: &SearchTerms) -> Vec<String> {
    terms
        .include
        .iter()
        .flat_map(|term| match term {
            // Folded already (see `SearchTerm`).
            SearchTerm::Word(w) | SearchTerm::Prefix(w) => vec![w.clone()],
            SearchTerm::Phrase(words) => words.clone(),
        })
        .collect()
}

/// A search's candidates, as on PostgreSQL: the newest `per_room` matches of each of the
/// reader's rooms in the organization, then the newest `candidates` of those; with their
/// relevance: how often the query's words occur in the message (see `score_words`).
fn candidate_hits(_lookup: WordLookup, p: &HitParams<'_>) -> String {
    let HitParams {
        words,
        filters,
        org,
        reader,
        per_room,
        candidates,
        score_words,
    } = p;
    // Occurrences of each word in the text folded as the words are (as a substring: `plan`
    // counts in `plans`, as a prefix search would match it).
    let folded = "replace(lower(m.body), 'ς', 'σ')";
    let counts: Vec<String> = score_words
        .iter()
        .map(|w| {
            format!(
                "(length({folded}) - length(replace({folded}, {w}, ''))) * 1.0 \
                 / length({w})"
            )
        })
        .collect();
    let score = if counts.is_empty() {
        "0.0".to_owned()
    } else {
        counts.join(" + ")
    };
    // The matches are materialised first, then numbered within their rooms. FTS5 looks only
    // at the organization's messages (its column of the index), the words only at the bodies.
    format!(
        "WITH matched AS MATERIALIZED ( \
           SELECT m.id, m.room_id, {score} AS score \
           FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid \
           WHERE messages_fts MATCH ('org_id : ' || {org} || ' AND body : (' || {words} || ')') \
             AND {filters} AND m.org_id = {org} \
             AND m.room_id IN (SELECT room_id FROM room_members WHERE user_id = {reader})) \
         SELECT id, room_id, score FROM ( \
           SELECT id, room_id, score, \
             ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY id DESC) AS nth FROM matched) \
         WHERE nth <= {per_room} ORDER BY id DESC LIMIT {candidates}"
    )
}

/// Adds new messages to the FTS5 index (see [`crate::SearchStore::index_new_messages`]), as
/// many as a statement takes at once: one index segment for them all, where a trigger in each
/// posting transaction made one per transaction for FTS5 to merge. Deleted messages and those
/// already indexed (by an edit, or an earlier call) are skipped.
async fn index_new(write: &WritePool, messages: &[(i64, i64)]) -> StoreResult<()> {
    for chunk in messages.chunks(INDEX_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO messages_fts (rowid, body, org_id) \
             SELECT m.id, m.body, m.org_id FROM messages m WHERE m.id IN ({}) AND NOT m.is_deleted \
               AND NOT EXISTS (SELECT 1 FROM messages_fts_docsize d WHERE d.id = m.id) \
             ORDER BY m.id",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (_, id) in chunk {
            query = query.bind(*id);
        }
        query.execute(write).await?;
    }
    Ok(())
}

/// Messages [`index_new`] names in one statement (SQLite allows 32,766 parameters).
const INDEX_PER_STATEMENT: usize = 500;

/// Nothing to do: a trigger keeps the FTS5 index in the edit's transaction.
async fn words_changed(_tx: &mut Tx<'_>, _room_id: i64, _msg_id: i64) -> StoreResult<()> {
    Ok(())
}

/// Nothing to do: a trigger keeps the FTS5 index in the delete's transaction.
async fn words_removed(_tx: &mut Tx<'_>, _room_id: i64, _msg_id: i64) -> StoreResult<()> {
    Ok(())
}

/// The query in FTS5 syntax: `"word"`, `"pre"*`, `"two words"`, the included ones together
/// (AND), each excluded one after `NOT`. Terms hold letters and digits only.
fn match_text(terms: &SearchTerms) -> String {
    fn one(term: &SearchTerm) -> String {
        match term {
            SearchTerm::Word(w) => format!("\"{w}\""),
            SearchTerm::Prefix(w) => format!("\"{w}\"*"),
            SearchTerm::Phrase(words) => format!("\"{}\"", words.join(" ")),
        }
    }
    let included: Vec<String> = terms.include.iter().map(one).collect();
    let mut text = format!("({})", included.join(" "));
    for term in &terms.exclude {
        text.push_str(" NOT ");
        text.push_str(&one(term));
    }
    text
}

/// Begins a transaction of the write path (posts, reactions): plainly, on SQLite.
async fn begin_write(write: &WritePool) -> Result<Tx<'static>, sqlx::Error> {
    write.begin().await
}

/// Stores a message and its `message.created` event in one transaction on the single writer
/// connection, which already orders every write; see the PostgreSQL version for the rules.
/// Returns nothing when the sender is not a member or already sent this `client_msg_id`.
///
/// A plain post (no thread, no mentions of others) is one statement round trip to the
/// connection's thread instead of four: `BEGIN`, the insert, its outbox row and `COMMIT` travel
/// as one statement string (and no ping follows: the store holds its connections itself). Each
/// round trip wakes that thread and then the waiting task, and on a busy machine waits for a CPU
/// both ways (BENCHMARKS.md counts the wake-ups).
async fn insert_message(
    write: &WritePool,
    msg: &NewMessage,
    now: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    if msg.is_plain() {
        return insert_plain(write, msg, now).await;
    }
    let mut tx = write.begin().await?;
    let mut events = Vec::new();
    let stored = insert_in(&mut tx, msg, now, &mut events).await?;
    write_rows(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(stored)
}

/// A plain post in one round trip (see `insert_message`): a batch of one.
async fn insert_plain(
    write: &WritePool,
    msg: &NewMessage,
    now: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    Ok(insert_plain_posts(write, &[(msg, now)])
        .await?
        .pop()
        .flatten())
}

/// Plain posts (each with its time) in one transaction. On a file database the writer's direct
/// connection runs them and answers once (`direct_posts`; REST posts 1.16 to 1.25× faster in
/// alternating runs, BENCHMARKS.md). Otherwise (an in-memory database, whose one connection is
/// sqlx's) in one round trip to the connection's thread: `BEGIN`, each
/// post's two statements and `COMMIT` travel as one statement string, for a single post and for
/// a group commit alike. Per-statement round trips made a busy writer fall behind its senders
/// (BENCHMARKS.md, "SQLite's posts in one round trip"). The posts are padded to a power of two
/// with posts to no room, which store nothing, so the connection prepares and caches a handful
/// of strings.
///
/// The transaction is opened in SQL, so sqlx does not know of it: on an error this rolls it
/// back itself, and should that fail or the future be dropped half-way, the writer rolls it back
/// before its next use (see `SqliteConnections::acquire`).
async fn insert_plain_posts(
    write: &WritePool,
    posts: &[(&NewMessage, DateTime<Utc>)],
) -> StoreResult<Vec<Option<Message>>> {
    if let Some(turn) = write.direct_turn().await? {
        return direct_posts::insert(turn.writer(), posts).await;
    }
    let slots = posts.len().next_power_of_two();
    let Some(sql) = PLAIN_POSTS.get(slots.trailing_zeros() as usize) else {
        let more = format!(
            "a batch of {} posts is more than the writer takes",
            posts.len()
        );
        return Err(sqlx::Error::Protocol(more).into());
    };
    let events = posts
        .iter()
        .map(|(msg, now)| plain_post_event(msg, *now))
        .collect::<StoreResult<Vec<_>>>()?;
    let mut query = sqlx::query_as::<_, BatchRow>(sql);
    for ((msg, now), event) in posts.iter().zip(&events) {
        query = bind_insert(query, msg, *now)
            .bind(event.event_id.as_str())
            .bind(event.payload.as_str());
    }
    for _ in posts.len() * PLAIN_POST_PARAMS..slots * PLAIN_POST_PARAMS {
        query = query.bind(None::<i64>);
    }
    let mut open = OpenTransaction {
        conn: write.acquire().await?,
        ended: false,
    };
    let rows = query.fetch_all(&mut *open.conn).await;
    // Success ends in `COMMIT`; on an error, nothing may stay open (SQLite rolls some failures
    // back itself, so a failed `ROLLBACK` may mean nothing was left: closing is safe either way).
    open.ended = rows.is_ok()
        || sqlx::query("ROLLBACK")
            .execute(&mut *open.conn)
            .await
            .is_ok();
    let mut answers: Vec<Option<Message>> = posts.iter().map(|_| None).collect();
    for row in rows? {
        if let Some(answer) = usize::try_from(row.n - 1)
            .ok()
            .and_then(|i| answers.get_mut(i))
        {
            *answer = Some(Message::from(row.message));
        }
    }
    Ok(answers)
}

/// The statement strings of [`insert_plain_posts`], by size: entry `k` holds `2^k` posts, up to
/// the most a write queue's batch takes.
static PLAIN_POSTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=MAX_BATCH.next_power_of_two().trailing_zeros())
        .map(|k| {
            let posts: String = (1..=1usize << k).map(plain_post_sql).collect();
            format!("BEGIN; {posts}COMMIT")
        })
        .collect()
});

/// The two statements, each ended by `; `, of the `n`th plain post of a statement string (from
/// 1), its parameters numbered on from the posts before it: the insert ([`insert_sql`],
/// returning also `n`) and the outbox row, written only when the insert stored a row
/// (`changes()` counts the insert's own rows, not its trigger's), with the event id and the
/// payload (the 12th and 13th parameters) given the stored message's id and organization.
fn plain_post_sql(n: usize) -> String {
    let first = (n - 1) * PLAIN_POST_PARAMS + 1;
    format!(
        "{}, {n} AS n; \
         INSERT INTO {OUTBOX_COLUMNS} \
         SELECT {}, '{}', m.org_id, m.room_id, json_set({}, '$.id', m.id, '$.org', m.org_id), {} \
         FROM messages m WHERE changes() = 1 AND m.id = last_insert_rowid(); ",
        insert_sql(first),
        param(first, 12),
        EventType::MessageCreated.as_str(),
        param(first, 13),
        param(first, 5),
    )
}

/// Parameters of one post in [`plain_post_sql`].
const PLAIN_POST_PARAMS: usize = 13;

/// The placeholder of a statement's `nth` parameter (from 1) when its parameters are numbered
/// from `first`.
fn param(first: usize, nth: usize) -> String {
    format!("${}", first + nth - 1)
}

/// The writer connection inside a transaction that sqlx does not track: rolled back before the
/// connection's next use unless the transaction was seen to end.
struct OpenTransaction {
    conn: TakenConn,
    ended: bool,
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.roll_back_on_release();
        }
    }
}

/// A post's insert, its parameters numbered from `first` (`$1` to `$11` when 1): the message at
/// its room's next seq, if the sender may post and has not used this `client_msg_id` (which also
/// sees posts earlier in the same transaction); a trigger moves the room's position
/// (`0013_room_position_by_trigger.sql`).
fn insert_sql(first: usize) -> String {
    insert_sql_returning(first, MESSAGE_COLUMNS)
}

/// [`insert_sql`] returning `returning` instead of the whole message.
fn insert_sql_returning(first: usize, returning: &str) -> String {
    let p = |nth: usize| param(first, nth);
    let (room, sender, client_msg_id) = (p(1), p(2), p(3));
    format!(
        "INSERT INTO messages (room_id, org_id, seq, sender_id, body, client_msg_id, \
           created_at, file_id, file_name, file_type, file_size, parent_id, mention_ids) \
         SELECT r.id, r.org_id, r.last_seq + 1, {sender}, {}, {client_msg_id}, {}, {}, {}, {}, \
           {}, {}, {} \
         FROM rooms r \
         WHERE r.id = {room} \
           AND EXISTS (SELECT 1 FROM room_members WHERE room_id = {room} AND user_id = {sender}) \
           AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = r.org_id \
             AND o.suspended = 0 AND o.archived_at IS NULL) \
           AND ({client_msg_id} IS NULL OR NOT EXISTS ( \
             SELECT 1 FROM messages WHERE room_id = {room} AND sender_id = {sender} \
               AND client_msg_id = {client_msg_id})) \
         RETURNING {returning}",
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10),
        p(11),
    )
}

/// A post's insert inside a transaction of sqlx's (`insert_in`), made once.
static INSERT: LazyLock<String> = LazyLock::new(|| insert_sql(1));

/// One post inside `tx` ([`insert_sql`]); for a reply, its thread's counters and follows too.
/// The post's outbox rows are added to `events`, for the caller to write together with the
/// rest of its transaction's, saving each a round trip to the connection's thread.
async fn insert_in(
    tx: &mut Tx<'_>,
    msg: &NewMessage,
    now: DateTime<Utc>,
    events: &mut Vec<EventRow>,
) -> StoreResult<Option<Message>> {
    let row: Option<MessageRow> = bind_insert(sqlx::query_as(&INSERT), msg, now)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let message = Message::from(row);
    let org_id = message.org;
    events.push(EventRow::new(
        org_id,
        &DomainEvent::MessageCreated(message.clone()),
        now,
    )?);
    if let Some(thread) = threads::record_reply(tx, &message, now).await? {
        events.push(EventRow::new(org_id, &thread, now)?);
    }
    if !msg.mentions.everyone.is_empty() {
        let mentioned =
            mentions::record_mentions(tx, &message, &msg.mentions.everyone, now).await?;
        for (event, at) in &mentioned {
            events.push(EventRow::new(org_id, event, *at)?);
        }
    }
    Ok(Some(message))
}

/// Reads the messages a batch of reaction changes touches, each with the reactor's own emoji:
/// one row per (room, message, reactor) key that names a message. (The single writer already
/// serialises the batch with every other write.)
async fn lock_for_reactions(
    tx: &mut Tx<'_>,
    keys: &[(i64, i64, i64)],
) -> StoreResult<Vec<LockedRow>> {
    let sql = format!(
        "SELECT $3 AS reactor, {columns}, {own} FROM messages m WHERE m.room_id = $1 AND m.id = $2",
        columns = message_columns_of("m"),
        own = own_emoji_column("$3"),
    );
    let mut rows = Vec::with_capacity(keys.len());
    for (room_id, msg_id, reactor) in keys {
        let row: Option<LockedRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(msg_id)
            .bind(reactor)
            .fetch_optional(&mut **tx)
            .await?;
        rows.extend(row);
    }
    Ok(rows)
}

/// Writes what a batch of reaction changes decided: the reactions' rows, the messages' counts,
/// the rooms' edit versions (their cached pages go stale) and the events. (Statement by
/// statement: SQLite has no round trips to save.)
async fn record_reactions(tx: &mut Tx<'_>, writes: &ReactionWrites) -> StoreResult<()> {
    for (room_id, msg_id, emoji, user_id, at) in &writes.added {
        sqlx::query(
            "INSERT INTO reactions (room_id, message_id, emoji, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(msg_id)
        .bind(emoji)
        .bind(user_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    for (msg_id, emoji, user_id) in &writes.removed {
        sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3")
            .bind(msg_id)
            .bind(emoji)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    }
    for (room_id, msg_id, counts, version) in &writes.counts {
        sqlx::query(
            "UPDATE messages SET reactions = $3, reactions_version = $4 \
             WHERE room_id = $1 AND id = $2",
        )
        .bind(room_id)
        .bind(msg_id)
        .bind(counts)
        .bind(version)
        .execute(&mut **tx)
        .await?;
    }
    for room_id in &writes.rooms {
        SqlStore::bump_edit_version(tx, *room_id).await?;
    }
    let sql = insert_rows_sql(1);
    for event in &writes.events {
        event.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Group commit: the queued posts (of any rooms) go in one transaction, in turn, so the batch
/// costs one commit (one WAL append and its locks) instead of one per post; plain posts in one
/// round trip ([`insert_plain_posts`]). Should any statement fail, the whole batch is rolled back
/// and each post tries again alone, for an answer of its own.
async fn insert_batch(
    write: &WritePool,
    batch: &[PendingPost],
) -> Vec<StoreResult<Option<Message>>> {
    let together = async {
        if batch.iter().all(|post| post.msg.is_plain()) {
            let posts: Vec<_> = batch.iter().map(|post| (&post.msg, post.now)).collect();
            return insert_plain_posts(write, &posts).await;
        }
        let mut tx = write.begin().await?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        for post in batch {
            answers.push(insert_in(&mut tx, &post.msg, post.now, &mut events).await?);
        }
        write_rows(&mut tx, &events).await?;
        tx.commit().await?;
        StoreResult::Ok(answers)
    };
    match together.await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, posts = batch.len(), "a batch of posts failed; storing them one by one");
            write_each(write, batch).await
        }
    }
}

#[path = "sqlite_direct_posts.rs"]
mod direct_posts;
#[path = "email.rs"]
mod email;
#[path = "invites.rs"]
mod invites;
#[path = "mentions.rs"]
mod mentions;
#[path = "messages.rs"]
mod messages;
#[path = "orgs.rs"]
mod orgs;
#[path = "outbox.rs"]
mod outbox;
#[path = "post_queue.rs"]
mod post_queue;
#[path = "reactions.rs"]
mod reactions;
#[path = "retention.rs"]
mod retention;
#[path = "rooms.rs"]
mod rooms;
#[path = "search.rs"]
mod search;
#[path = "sessions.rs"]
mod sessions;
#[path = "store.rs"]
mod store;
#[path = "tenants.rs"]
mod tenants;
#[path = "threads.rs"]
mod threads;
#[path = "uploads.rs"]
mod uploads;
#[path = "users.rs"]
mod users;
#[path = "webhook_outcomes.rs"]
mod webhook_outcomes;
#[path = "webhook_queue.rs"]
mod webhook_queue;
#[path = "webhooks.rs"]
mod webhooks;
#[path = "write_queue.rs"]
mod write_queue;

pub use store::SqlStore;
