//! Search: messages by their words (PostgreSQL full-text search, SQLite FTS5, the same query
//! syntax on both), and rooms and members by name prefix for quick switching.

use async_trait::async_trait;
use chatboard_core::model::{Message, OrgMember, Room};
use chrono::{DateTime, Utc};

use super::StoreResult;

/// A word as searches compare it: lowercased, and Greek's final sigma ("ς") as the other
/// ("σ"). Lowercasing "Σ" gives either, by its place in the word or letter by letter
/// (PostgreSQL), so words of the same letters would otherwise differ by how they were written.
pub fn search_fold(word: &str) -> String {
    word.to_lowercase().replace('ς', "σ")
}

/// One part of a query, in words as both engines split text (folded by [`search_fold`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchTerm {
    /// A whole word.
    Word(String),
    /// Words starting with this.
    Prefix(String),
    /// Words next to each other, in this order.
    Phrase(Vec<String>),
}

/// What a query looks for: every `include`d term and none of the `exclude`d ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchTerms {
    /// Terms a message must have (at least one).
    pub include: Vec<SearchTerm>,
    /// Terms it must not have.
    pub exclude: Vec<SearchTerm>,
}

/// Which rooms a lookup by name returns, for the user it is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomLookup {
    /// Rooms the user may open: seated in them, or PUBLIC (the quick switcher).
    Openable,
    /// Rooms the user does not sit in and may join: PUBLIC ones, and MANAGER_ONLY ones too
    /// when `manager_only` (the user is a MANAGER or ADMIN). Never direct messages.
    Joinable {
        /// Whether MANAGER_ONLY rooms are included.
        manager_only: bool,
    },
}

/// A search of an organization's messages, as one reader may run it.
#[derive(Debug, Clone)]
pub struct MessageSearch {
    /// The organization.
    pub org_id: i64,
    /// Who searches: only rooms they sit in are searched.
    pub reader: i64,
    /// The words.
    pub terms: SearchTerms,
    /// Only this room.
    pub room_id: Option<i64>,
    /// Only messages of this sender.
    pub sender_id: Option<i64>,
    /// Only messages sent before this.
    pub before: Option<DateTime<Utc>>,
    /// Only messages sent at or after this.
    pub after: Option<DateTime<Utc>>,
    /// Only messages with a file.
    pub with_file: bool,
    /// Only replies in threads.
    pub in_thread: bool,
    /// Continue after this (score, id) of the previous page.
    pub after_hit: Option<(f64, i64)>,
    /// Page size.
    pub limit: u32,
}

/// A message found, with how well it matches.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The message.
    pub message: Message,
    /// Relevance (higher is better), comparable within one query only.
    pub score: f64,
}

/// Most matches of one query that are ranked: the newest ones.
pub const SEARCH_CANDIDATES: u32 = 200;
/// Most of those that come from one room (unless the search names the room): its newest
/// matches. This bounds a search's work by the reader's rooms, however frequent the word and
/// however busy the rooms they are not in.
pub const SEARCH_PER_ROOM: u32 = 20;

/// Search.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// A page of the messages matching `search`, best first (newer first among equals), taken
    /// from the [`SEARCH_CANDIDATES`] newest matches, at most [`SEARCH_PER_ROOM`] of each room
    /// (all of them from the room a search names).
    async fn search_messages(&self, search: &MessageSearch) -> StoreResult<Vec<SearchHit>>;
    /// Adds new messages, by (room, id), to the word index searches look up, after their
    /// commit: the worker calls this for `message.created` events, many at once (PostgreSQL's
    /// `message_words`, SQLite's FTS5 table). Messages already indexed, deleted or gone are
    /// skipped, so calling it again is harmless.
    async fn index_new_messages(&self, messages: &[(i64, i64)]) -> StoreResult<()>;
    /// Up to `limit` rooms of the organization, of the kind `lookup` names, whose name starts
    /// with `prefix` (any case), by name.
    async fn find_rooms(
        &self,
        org_id: i64,
        user_id: i64,
        prefix: &str,
        lookup: RoomLookup,
        limit: u32,
    ) -> StoreResult<Vec<Room>>;
    /// Up to `limit` members of the organization whose address, first or last name starts
    /// with `prefix` (any case), by address.
    async fn find_org_members(
        &self,
        org_id: i64,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<OrgMember>>;
}
