//! PostgreSQL: the store's shared SQL (the sibling files, compiled here as submodules) and the
//! statements that differ on this engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::rows::message_columns_of;
use super::word_lookup::{HitParams, WordLookup};
use crate::{Engine, SearchTerm, SearchTerms, StoreResult};
use outbox::OUTBOX_COLUMNS;
use posts::{insert_batch, insert_message};
use reactions::{own_emoji_column, LockedRow, ReactionWrites};

type Db = sqlx::Postgres;
type Pool = sqlx::Pool<Db>;
/// Reads and writes go through the same pool.
type ReadPool = Pool;
type WritePool = Pool;
type Tx<'a> = sqlx::Transaction<'a, Db>;

const ENGINE: Engine = Engine::Postgres;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
/// Claiming deliveries skips rows another worker is claiming at that moment.
const CLAIM_LOCK: &str = "FOR UPDATE OF d SKIP LOCKED";
/// Each webhook (`w`) with its oldest due deliveries (`d`, up to `$3` of them due at `$1`),
/// read from the (webhook, due time) index. Not locked here: only the claim's final pick is
/// (see `PICKED_LOCK`), not up to `$3` rows of every webhook.
const DUE_PER_WEBHOOK: &str = "webhooks w CROSS JOIN LATERAL ( \
       SELECT x.id, x.next_attempt_at FROM webhook_deliveries x \
       WHERE x.webhook_id = w.id AND x.status IN ('pending', 'retrying') AND x.next_attempt_at <= $1 \
       ORDER BY x.next_attempt_at LIMIT $3) d";
/// A claim's final pick skips rows another worker is claiming at that moment.
const PICKED_LOCK: &str = "FOR UPDATE SKIP LOCKED";
/// Claiming emails skips rows another worker is claiming at that moment.
const EMAIL_CLAIM_LOCK: &str = "FOR UPDATE SKIP LOCKED";

/// Serialises membership changes of one organization (last-admin checks) across concurrent
/// transactions: the org's row is locked. Not `FOR UPDATE`: that also blocks the key-share
/// check a write referring to the org makes (a reply updating its room's row twice), so a room's
/// deletion (org, then room) and a reply (room, then that check) waited on each other.
const ORG_LOCK: &str = " FOR NO KEY UPDATE";
/// Taken on an account's row while a login is recorded against its password hash: a
/// password change (which updates the row) waits for the login, then revokes it.
const CREDENTIALS_LOCK: &str = " FOR SHARE";
/// Taken on rooms about to be deleted, before their messages: a post (which takes its room's
/// row first) either commits before or finds the room gone, and edits, replies and reactions
/// (room, then message) never wait on the deletion in a circle.
const ROOM_DELETE_LOCK: &str = " FOR UPDATE";
/// Taken on webhooks whose attempts are being recorded: a webhook switched off or on meanwhile
/// either commits first (the outcomes then see it) or waits for them (and then parks or wakes
/// what they left), so no delivery is left parked under a webhook that is on.
const WEBHOOK_LOCK: &str = " FOR NO KEY UPDATE";
/// Taken on the webhooks an event fans out to: a webhook being switched off, or pointed at
/// another organization, is waited for and read again, so the event is not queued for it. In
/// order of id, as outcomes lock them, so that the two never wait on each other in a circle.
const FAN_OUT_LOCK: &str = " FOR SHARE OF w";

/// A share of the messages above which a query's words count as frequent: walking each room's
/// newest messages backwards then finds its matches sooner than the GIN index.
const FREQUENT_SHARE: f32 = 0.05;
/// A share of the messages under which a query's words count as rare: a lookup for the whole
/// organization then costs less than one per room of the reader's (in a million messages, a
/// thousand matches). Measured with 50 rooms of 200: a word in 200 messages 1.1 ms against
/// 2.8; one in 20,000, 242 ms against 136.
const RARE_SHARE: f32 = 0.001;
/// How long the word statistics are used before they are read again.
const WORD_STATS_TTL: Duration = Duration::from_secs(600);

/// PostgreSQL's own statistics of the most common words in messages (`pg_stats`'
/// `most_common_elems` of `messages.search_vector`, kept by `ANALYZE`), read now and then. They
/// tell whether a prefix is frequent, which the planner misjudges by itself: it guesses a small
/// share for any prefix, and took the GIN index room by room for `com*` with `common` in every
/// message (700 ms instead of 2).
pub(super) struct WordStats(Mutex<Option<(Instant, CommonWords)>>);

/// Common words and the share of messages each is in.
type CommonWords = Arc<HashMap<String, f32>>;

impl WordStats {
    /// Nothing read yet.
    pub(super) fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// The common words and their shares, read again when older than [`WORD_STATS_TTL`]. Empty
    /// when they cannot be read (then the planner decides alone).
    async fn words(&self, read: &Pool) -> CommonWords {
        if let Some((at, words)) = &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            if at.elapsed() < WORD_STATS_TTL {
                return words.clone();
            }
        }
        let rows: Result<Vec<(String, f32)>, sqlx::Error> = sqlx::query_as(
            "SELECT u.word, u.share FROM pg_stats s, \
               unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u(word, share) \
             WHERE s.schemaname = current_schema() AND s.tablename = 'messages' \
               AND s.attname = 'search_vector' AND u.word IS NOT NULL",
        )
        .fetch_all(read)
        .await;
        let mut words = HashMap::new();
        for (word, share) in rows.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the word statistics failed");
            Vec::new()
        }) {
            // As the terms are folded: a word's two spellings, each with its own share.
            *words.entry(crate::search_fold(&word)).or_insert(0.0) += share;
        }
        let words = Arc::new(words);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), words.clone()));
        words
    }

    /// How a search for `terms` finds its candidates, from the share of messages that have
    /// every term it must contain (the words taken as independent of each other, as the
    /// planner does): at least [`FREQUENT_SHARE`], each room's newest messages are walked;
    /// under [`RARE_SHARE`] (a word missing from the statistics counts as 0), the organization
    /// is looked up at once; in between, room by room. A prefix is never taken for rare: the
    /// statistics leave out many words, and a prefix can cover thousands of them.
    pub(super) async fn lookup(&self, read: &Pool, terms: &SearchTerms) -> WordLookup {
        fn share(words: &HashMap<String, f32>, term: &SearchTerm) -> f32 {
            let word = |w: &str| words.get(w).copied().unwrap_or(0.0);
            match term {
                SearchTerm::Word(w) => word(w),
                SearchTerm::Prefix(p) => words
                    .iter()
                    .filter(|(w, _)| w.starts_with(p.as_str()))
                    .map(|(_, share)| share)
                    .sum::<f32>()
                    .clamp(RARE_SHARE, 1.0),
                SearchTerm::Phrase(ws) => ws.iter().map(|w| word(w)).product(),
            }
        }
        if terms.include.is_empty() {
            return WordLookup::RoomByRoom;
        }
        let words = self.words(read).await;
        let share: f32 = terms.include.iter().map(|t| share(&words, t)).product();
        if share >= FREQUENT_SHARE {
            WordLookup::Walk
        } else if share < RARE_SHARE {
            WordLookup::Organization
        } else {
            WordLookup::RoomByRoom
        }
    }
}

/// A search's candidates: of the reader's rooms in the organization, the newest messages that
/// have every word of the query (see [`match_text`]) and pass the filters (on `m`, the
/// message), at most `per_room` of a room, then the newest `candidates` of those; their keys
/// and relevance (`score`, higher is better), ranked on the rows as they are read.
///
/// The words are looked up in the GIN index of `message_words`, which the worker fills a
/// moment after each post: for rare words once for the organization (every match of the
/// organization is read, a few hundred, and those in the reader's rooms kept, then numbered
/// within their rooms), otherwise once per room. With [`WordLookup::Walk`] (frequent words)
/// each room's newest messages are read backwards until enough match, written so that no index
/// can serve the match; this also finds messages the worker has not indexed yet.
fn candidate_hits(lookup: WordLookup, p: &HitParams<'_>) -> String {
    let HitParams {
        words,
        filters,
        org,
        reader,
        per_room,
        candidates,
        ..
    } = p;
    // Each candidate's relevance, computed on the row already read (`ts_rank`, higher is
    // better), and the reader's rooms in the organization.
    let rank = format!("ts_rank(m.search_vector, (SELECT to_tsquery('simple', {words})))::float8");
    let seated = format!(
        "room_members rm JOIN rooms r ON r.id = rm.room_id AND r.org_id = {org} \
         WHERE rm.user_id = {reader}"
    );
    match lookup {
        // `+ 0`: a lookup per room is what this statement avoids; the planner would otherwise
        // turn the reader's rooms into one.
        WordLookup::Organization => format!(
            "SELECT id, room_id, score FROM ( \
               SELECT m.id, m.room_id, {rank} AS score, \
                 ROW_NUMBER() OVER (PARTITION BY m.room_id ORDER BY m.id DESC) AS nth \
               FROM message_words w \
               JOIN messages m ON m.room_id = w.room_id AND m.id = w.message_id \
               WHERE w.org_id = {org} AND w.words @@ to_tsquery('simple', {words}) \
                 AND w.room_id + 0 IN (SELECT rm.room_id FROM {seated}) \
                 AND {filters}) x \
             WHERE nth <= {per_room} ORDER BY id DESC LIMIT {candidates}"
        ),
        WordLookup::RoomByRoom => format!(
            "SELECT x.id, x.room_id, x.score FROM (SELECT rm.room_id FROM {seated}) rm \
             CROSS JOIN LATERAL ( \
               SELECT m.id, m.room_id, {rank} AS score FROM message_words w \
               JOIN messages m ON m.room_id = w.room_id AND m.id = w.message_id \
               WHERE w.room_id = rm.room_id AND w.words @@ to_tsquery('simple', {words}) \
                 AND {filters} \
               ORDER BY w.message_id + 0 DESC LIMIT {per_room}) x \
             ORDER BY x.id DESC LIMIT {candidates}"
        ),
        // The rooms and the query are computed once, then each room is walked in turn. The
        // walk's plan is small and run again for each room: a statement that merged the rooms'
        // walks instead (a `UNION ALL` of one branch per room, read newest first until the
        // 200th candidate, 250 rows instead of 1,000 for 50 rooms) spent more starting its
        // 64 branches' executor nodes than the rows saved (`pgbench`: 1,100 to 1,700
        // statements per second against 1,900 to 2,100).
        WordLookup::Walk => format!(
            "WITH k AS MATERIALIZED ( \
               SELECT array(SELECT rm.room_id FROM {seated} ORDER BY rm.room_id) AS rooms, \
                 to_tsquery('simple', {words}) AS q) \
             SELECT x.id, x.room_id, x.score FROM k, unnest(k.rooms) AS rm(room_id) \
             CROSS JOIN LATERAL ( \
               SELECT m.id, m.room_id, \
                 ts_rank(m.search_vector, (SELECT k.q FROM k))::float8 AS score \
               FROM messages m WHERE m.room_id = rm.room_id \
                 AND (m.search_vector @@ (SELECT k.q FROM k)) IS TRUE AND {filters} \
               ORDER BY m.id DESC LIMIT {per_room}) x \
             ORDER BY x.id DESC LIMIT {candidates}"
        ),
    }
}

/// Adds new messages to `message_words` (see [`crate::SearchStore::index_new_messages`]): one
/// statement for them all, then the GIN index's pending list is merged into it at once.
async fn index_new(write: &Pool, messages: &[(i64, i64)]) -> StoreResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let rooms: Vec<i64> = messages.iter().map(|m| m.0).collect();
    let ids: Vec<i64> = messages.iter().map(|m| m.1).collect();
    // DO NOTHING: an edit may have indexed the message already, with newer words. FOR SHARE:
    // a deletion written and not yet committed is waited for, and the message then read again
    // (left out, deleted); one coming after waits for these rows, and its removal sees them.
    // Without it, a deletion between this read and this insert left the words in for good.
    sqlx::query(
        "INSERT INTO message_words (room_id, message_id, org_id, words) \
         SELECT m.room_id, m.id, m.org_id, m.search_vector FROM messages m \
         JOIN UNNEST($1::int8[], $2::int8[]) AS k(room_id, id) \
           ON m.room_id = k.room_id AND m.id = k.id \
         WHERE NOT m.is_deleted ORDER BY m.room_id, m.id FOR SHARE OF m \
         ON CONFLICT (room_id, message_id) DO NOTHING",
    )
    .bind(&rooms)
    .bind(&ids)
    .execute(write)
    .await?;
    // Only an optimisation: the rows are in and searches already see them in the pending list,
    // which PostgreSQL also merges by itself (autovacuum, or when it outgrows
    // `gin_pending_list_limit`). A failure here (say, a role that may not maintain the index)
    // must not fail the job and hold up the webhooks and digests queued behind it.
    if let Err(e) = sqlx::query("SELECT gin_clean_pending_list('message_words_search'::regclass)")
        .execute(write)
        .await
    {
        tracing::warn!(error = %e, "merging the search index's pending list failed; left to autovacuum");
    }
    Ok(())
}

/// An edit's new words reach the index in its own transaction; indexed now if the worker has
/// not got to the message yet (its later insert then leaves these words alone).
async fn words_changed(tx: &mut Tx<'_>, room_id: i64, msg_id: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO message_words (room_id, message_id, org_id, words) \
         SELECT room_id, id, org_id, search_vector FROM messages \
         WHERE room_id = $1 AND id = $2 AND NOT is_deleted \
         ON CONFLICT (room_id, message_id) DO UPDATE SET words = EXCLUDED.words",
    )
    .bind(room_id)
    .bind(msg_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A deleted message leaves the index in its own transaction.
async fn words_removed(tx: &mut Tx<'_>, room_id: i64, msg_id: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM message_words WHERE room_id = $1 AND message_id = $2")
        .bind(room_id)
        .bind(msg_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The words a message's score counts: none, `ts_rank` scores each message from its own text.
fn score_words(_terms: &SearchTerms) -> Vec<String> {
    Vec::new()
}

/// The query in `to_tsquery` syntax: `'word'`, `'pre':*`, `('two' <-> 'words')`, `!'not'`,
/// all joined by `&`. Terms hold letters and digits only, so nothing needs escaping.
///
/// Terms come folded ([`crate::search_fold`]), but the index holds words as PostgreSQL's
/// `lower()` makes them, letter by letter: "Σ" is always "σ" and a written "ς" stays. So a
/// term with "σ" at the end of a run of letters ("νίκοσ", "νίκοσ1") is also looked for with
/// "ς" there, as it is written (before another letter, "ς" is a misspelling).
fn match_text(terms: &SearchTerms) -> String {
    fn word(w: &str, suffix: &str) -> String {
        let mut written = String::with_capacity(w.len());
        let mut letters = w.chars().peekable();
        while let Some(c) = letters.next() {
            let last_letter = letters.peek().is_none_or(|next| !next.is_alphabetic());
            written.push(if c == 'σ' && last_letter { 'ς' } else { c });
        }
        if written == w {
            format!("'{w}'{suffix}")
        } else {
            format!("('{w}'{suffix} | '{written}'{suffix})")
        }
    }
    fn one(term: &SearchTerm) -> String {
        match term {
            SearchTerm::Word(w) => word(w, ""),
            SearchTerm::Prefix(w) => word(w, ":*"),
            SearchTerm::Phrase(words) => {
                let quoted: Vec<String> = words.iter().map(|w| word(w, "")).collect();
                format!("({})", quoted.join(" <-> "))
            }
        }
    }
    terms
        .include
        .iter()
        .map(one)
        .chain(terms.exclude.iter().map(|t| format!("!{}", one(t))))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// Begins a transaction of the write path (posts, reactions) whose statements run on their
/// generic plans, in the same round trip as `BEGIN`. PostgreSQL otherwise planned their
/// statements (arrays of a batch, a CTE of several tables) again on every run, since a plan for
/// the actual arrays looked cheaper: planning was a fifth of the database's CPU per post.
async fn begin_write(write: &Pool) -> Result<Tx<'static>, sqlx::Error> {
    write
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await
}

/// Locks the messages a batch of reaction changes touches, in key order (so concurrent batches
/// never wait on each other in a circle), each read with the reactor's own emoji: one row per
/// (room, message, reactor) key that names a message. Their rooms' rows are locked first, in id
/// order, as posts lock them: a reply holds its room while it updates its root, so a batch
/// holding the root and then waiting for the room would wait on it in a circle.
async fn lock_for_reactions(
    tx: &mut Tx<'_>,
    keys: &[(i64, i64, i64)],
) -> StoreResult<Vec<LockedRow>> {
    let mut rooms: Vec<i64> = keys.iter().map(|k| k.0).collect();
    rooms.sort_unstable();
    rooms.dedup();
    sqlx::query("SELECT id FROM rooms WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE")
        .bind(rooms)
        .execute(&mut **tx)
        .await?;
    let sql = format!(
        "SELECT v.reactor, {columns}, {own} FROM messages m \
         JOIN UNNEST($1::int8[], $2::int8[], $3::int8[]) AS v(room_id, id, reactor) \
           ON m.room_id = v.room_id AND m.id = v.id \
         ORDER BY m.room_id, m.id FOR UPDATE OF m",
        columns = message_columns_of("m"),
        own = own_emoji_column("v.reactor"),
    );
    let rooms: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let ids: Vec<i64> = keys.iter().map(|k| k.1).collect();
    let reactors: Vec<i64> = keys.iter().map(|k| k.2).collect();
    Ok(sqlx::query_as(&sql)
        .bind(rooms)
        .bind(ids)
        .bind(reactors)
        .fetch_all(&mut **tx)
        .await?)
}

/// Writes what a batch of reaction changes decided, in one statement whatever the batch's
/// size: the reactions' rows, the messages' counts, the rooms' edit versions (their cached pages
/// go stale) and the events.
async fn record_reactions(tx: &mut Tx<'_>, writes: &ReactionWrites) -> StoreResult<()> {
    let sql = format!(
        "WITH added AS ( \
           INSERT INTO reactions (room_id, message_id, emoji, user_id, created_at) \
           SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::timestamptz[]) \
           ON CONFLICT (message_id, emoji, user_id) DO NOTHING), \
         removed AS ( \
           DELETE FROM reactions r \
           USING UNNEST($6::int8[], $7::text[], $8::int8[]) AS d(message_id, emoji, user_id) \
           WHERE r.message_id = d.message_id AND r.emoji = d.emoji AND r.user_id = d.user_id), \
         versions AS ( \
           UPDATE rooms SET edit_version = edit_version + 1 WHERE id = ANY($9::int8[])), \
         events AS ( \
           INSERT INTO {OUTBOX_COLUMNS} SELECT * FROM UNNEST($10::text[], $11::text[], \
             $12::int8[], $13::int8[], $14::text[], $15::timestamptz[])) \
         UPDATE messages m SET reactions = c.reactions, reactions_version = c.version \
         FROM UNNEST($16::int8[], $17::int8[], $18::text[], $19::int8[]) \
           AS c(room_id, id, reactions, version) \
         WHERE m.room_id = c.room_id AND m.id = c.id"
    );
    let added = &writes.added;
    let removed = &writes.removed;
    let events = &writes.events;
    let counts = &writes.counts;
    sqlx::query(&sql)
        .bind(added.iter().map(|a| a.0).collect::<Vec<i64>>())
        .bind(added.iter().map(|a| a.1).collect::<Vec<i64>>())
        .bind(added.iter().map(|a| a.2.as_str()).collect::<Vec<&str>>())
        .bind(added.iter().map(|a| a.3).collect::<Vec<i64>>())
        .bind(added.iter().map(|a| a.4).collect::<Vec<DateTime<Utc>>>())
        .bind(removed.iter().map(|r| r.0).collect::<Vec<i64>>())
        .bind(removed.iter().map(|r| r.1.as_str()).collect::<Vec<&str>>())
        .bind(removed.iter().map(|r| r.2).collect::<Vec<i64>>())
        .bind(&writes.rooms)
        .bind(
            events
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(events.iter().map(|e| e.event_type).collect::<Vec<&str>>())
        .bind(events.iter().map(|e| e.org_id).collect::<Vec<i64>>())
        .bind(
            events
                .iter()
                .map(|e| e.room_id)
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.payload.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.created_at)
                .collect::<Vec<DateTime<Utc>>>(),
        )
        .bind(counts.iter().map(|c| c.0).collect::<Vec<i64>>())
        .bind(counts.iter().map(|c| c.1).collect::<Vec<i64>>())
        .bind(
            counts
                .iter()
                .map(|c| c.2.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(counts.iter().map(|c| c.3).collect::<Vec<i64>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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
#[path = "postgres_posts.rs"]
mod posts;
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
