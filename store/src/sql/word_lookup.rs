//! How a search finds the messages with its words, chosen from how frequent they are.

/// Where a search's candidates come from (PostgreSQL; SQLite's FTS5 index serves every word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordLookup {
    /// Rare words: one lookup in the word index for the whole organization, then the matches
    /// in the reader's rooms kept. Costs what the organization's matches cost, so only for
    /// words in a few hundred messages.
    Organization,
    /// Words in up to a few percent of messages: one lookup in the word index per room of the
    /// reader's, each stopping at the room's newest matches.
    RoomByRoom,
    /// Frequent words: each room's newest messages read backwards until enough match.
    Walk,
}

/// The placeholders (`$n`) of the values a search's candidate statement uses.
pub(crate) struct HitParams<'a> {
    /// The query, in the engine's syntax.
    pub words: &'a str,
    /// Conditions on `m`, the message.
    pub filters: &'a str,
    /// The organization searched.
    pub org: &'a str,
    /// The reader.
    pub reader: &'a str,
    /// Most candidates of one room.
    pub per_room: &'a str,
    /// Most candidates in all.
    pub candidates: &'a str,
    /// The words whose occurrences make a message's score, where the engine scores that way
    /// (SQLite; see `score_words`).
    pub score_words: &'a [String],
}
