//! Search: messages through the engine's full-text index (the engine file says how:
//! `candidate_hits`, `match_text`), rooms and members by prefix.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{candidate_hits, index_new, match_text, score_words, Db, HitParams, SqlStore};
use crate::sql::rows::{
    folded, like_prefix, message_columns_of, user_name_starts, MessageRow, OrgMemberRow, RoomRow,
    ROOM_COLUMNS,
};
use crate::{
    MessageSearch, RoomLookup, SearchHit, SearchStore, StoreResult, SEARCH_CANDIDATES,
    SEARCH_PER_ROOM,
};
use chatboard_core::model::{Message, OrgMember, Room};

/// A message found and its relevance.
#[derive(sqlx::FromRow)]
struct ScoredRow {
    #[sqlx(flatten)]
    message: MessageRow,
    score: f64,
}

/// A value bound to a statement built piece by piece.
enum Arg {
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
    Float(f64),
}

/// The values of a statement being built, numbered as they are added.
#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    /// Adds a value and returns its placeholder.
    fn add(&mut self, arg: Arg) -> String {
        self.0.push(arg);
        format!("${}", self.0.len())
    }

    /// Binds every value, in order.
    fn bind<'q, O>(
        &'q self,
        mut query: sqlx::query::QueryAs<'q, Db, O, <Db as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, Db, O, <Db as sqlx::Database>::Arguments<'q>> {
        for arg in &self.0 {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_str()),
                Arg::Time(v) => query.bind(*v),
                Arg::Float(v) => query.bind(*v),
            };
        }
        query
    }
}

impl SqlStore {
    /// The page's messages with their scores: the newest candidates, ranked, after the cursor,
    /// read by their key (room, id; by id alone PostgreSQL has no index) in the same statement.
    async fn ranked_page(&self, search: &MessageSearch, text: &str) -> StoreResult<Vec<ScoredRow>> {
        let mut args = Args::default();
        let org = args.add(Arg::Int(search.org_id));
        let words = args.add(Arg::Text(text.to_owned()));
        let reader = args.add(Arg::Int(search.reader));
        let mut filters = String::new();
        if let Some(room) = search.room_id {
            filters.push_str(&format!(" AND m.room_id = {}", args.add(Arg::Int(room))));
        }
        if let Some(sender) = search.sender_id {
            filters.push_str(&format!(
                " AND m.sender_id = {}",
                args.add(Arg::Int(sender))
            ));
        }
        if let Some(before) = search.before {
            filters.push_str(&format!(
                " AND m.created_at < {}",
                args.add(Arg::Time(before))
            ));
        }
        if let Some(after) = search.after {
            filters.push_str(&format!(
                " AND m.created_at >= {}",
                args.add(Arg::Time(after))
            ));
        }
        if search.with_file {
            filters.push_str(" AND m.file_id IS NOT NULL");
        }
        if search.in_thread {
            filters.push_str(" AND m.parent_id IS NOT NULL");
        }
        // A search of one room takes all its candidates from that room.
        let per_room = match search.room_id {
            Some(_) => SEARCH_CANDIDATES,
            None => SEARCH_PER_ROOM,
        };
        let per_room = args.add(Arg::Int(i64::from(per_room)));
        let candidates = args.add(Arg::Int(i64::from(SEARCH_CANDIDATES)));
        let cursor = match search.after_hit {
            Some((score, id)) => {
                let score = args.add(Arg::Float(score));
                let id = args.add(Arg::Int(id));
                format!("WHERE s.score < {score} OR (s.score = {score} AND s.id < {id})")
            }
            None => String::new(),
        };
        let limit = args.add(Arg::Int(i64::from(search.limit)));
        let score_words: Vec<String> = score_words(&search.terms)
            .into_iter()
            .map(|w| args.add(Arg::Text(w)))
            .collect();
        let lookup = self.word_stats.lookup(&self.read, &search.terms).await;
        let filters = format!("NOT m.is_deleted {filters}");
        let hits = candidate_hits(
            lookup,
            &HitParams {
                words: &words,
                filters: &filters,
                org: &org,
                reader: &reader,
                per_room: &per_room,
                candidates: &candidates,
                score_words: &score_words,
            },
        );
        // The newest matches with their relevance (bounded by the reader's rooms, whatever the
        // word's frequency), then the best of only those.
        let sql = format!(
            "WITH hits AS ({hits}), page AS ( \
               SELECT s.id, s.room_id, s.score FROM hits s \
               {cursor} ORDER BY s.score DESC, s.id DESC LIMIT {limit}) \
             SELECT {columns}, page.score FROM page \
             JOIN messages m ON m.room_id = page.room_id AND m.id = page.id \
             ORDER BY page.score DESC, page.id DESC",
            columns = message_columns_of("m"),
        );
        // Kept prepared, and run on its generic plan (the search pool's setting): the choice a
        // generic plan could get wrong (the index, for the whole organization or room by room,
        // or each room's newest messages) is made above from the word statistics, each choice a
        // statement of its own.
        let rows = args
            .bind(sqlx::query_as::<_, ScoredRow>(&sql))
            .fetch_all(&self.search)
            .await?;
        Ok(rows)
    }
}

#[async_trait]
impl SearchStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn search_messages(&self, search: &MessageSearch) -> StoreResult<Vec<SearchHit>> {
        let text = match_text(&search.terms);
        let rows = self.ranked_page(search, &text).await?;
        Ok(rows
            .into_iter()
            .map(|row| SearchHit {
                message: Message::from(row.message),
                score: row.score,
            })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(messages = messages.len()))]
    async fn index_new_messages(&self, messages: &[(i64, i64)]) -> StoreResult<()> {
        index_new(&self.write, messages).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_rooms(
        &self,
        org_id: i64,
        user_id: i64,
        prefix: &str,
        lookup: RoomLookup,
        limit: u32,
    ) -> StoreResult<Vec<Room>> {
        let seated =
            "EXISTS (SELECT 1 FROM room_members x WHERE x.room_id = r.id AND x.user_id = $2)";
        let which = match lookup {
            RoomLookup::Openable => {
                format!("((r.access_level = 'PUBLIC' AND NOT r.is_dm) OR {seated})")
            }
            RoomLookup::Joinable { manager_only } => {
                let levels = if manager_only {
                    "('PUBLIC', 'MANAGER_ONLY')"
                } else {
                    "('PUBLIC')"
                };
                format!("r.access_level IN {levels} AND NOT r.is_dm AND NOT {seated}")
            }
        };
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r \
             WHERE r.org_id = $1 AND {name} LIKE $3 ESCAPE '\\' AND {which} \
             ORDER BY lower(r.name), r.id LIMIT $4",
            name = folded("r.name")
        );
        let rows: Vec<RoomRow> = sqlx::query_as(&sql)
            .bind(org_id)
            .bind(user_id)
            .bind(like_prefix(prefix))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(Room::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_org_members(
        &self,
        org_id: i64,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<OrgMember>> {
        let sql = format!(
            "SELECT m.user_id, u.email, u.first_name, u.last_name, m.role, m.joined_at \
             FROM org_members m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND ({}) \
             ORDER BY lower(u.email) LIMIT $3",
            user_name_starts("$2")
        );
        let rows: Vec<OrgMemberRow> = sqlx::query_as(&sql)
            .bind(org_id)
            .bind(like_prefix(prefix))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(OrgMember::try_from).collect()
    }
}
