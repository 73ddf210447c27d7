//! Search: the query syntax (the same on both engines), who may search what, and the quick
//! switcher's room and member lookups.
//!
//! A query is words, all of which a message must contain (any case): `"exact phrase"`,
//! `-word` or `-"phrase"` to leave out, `pre*` for words starting with `pre`. Words are runs of
//! letters and digits, as both engines split text: `e-mail` is the phrase `e mail`.

use std::time::Duration;

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::Message;
use chatboard_core::model::{AccessLevel, OrgMember, Room};
use chatboard_store::{search_fold, MessageSearch, RoomLookup, SearchTerm, SearchTerms};
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::instrument;

use crate::error::{ChatError, ChatResult};
use crate::validate::Validator;
use crate::Chat;

/// Most terms one query may have.
pub const MAX_TERMS: usize = 10;
/// Longest word looked for.
const MAX_WORD: usize = 64;
/// Shortest prefix a `pre*` term may have: a single character starts so many different words
/// that the index reads them all, room by room (350 ms for `1*` over a million messages).
pub const MIN_PREFIX: usize = 2;
/// Longest query.
pub const MAX_QUERY: usize = 500;
/// Words a snippet shows at most.
const SNIPPET_WORDS: usize = 24;
/// Words a snippet shows before its first match.
const SNIPPET_LEAD: usize = 6;

/// A message found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The message, as the searcher sees it.
    pub message: Message,
    /// Relevance within this query (higher is better).
    pub score: f64,
    /// Its text around the first match, as HTML (see [`snippet_html`]).
    pub snippet: String,
}

/// A search of an organization's messages, as asked.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The query (see the module's documentation).
    pub q: String,
    /// Only this room (which the searcher must sit in).
    pub room: Option<i64>,
    /// Only messages of this user.
    pub from: Option<i64>,
    /// Only messages sent before this.
    pub before: Option<DateTime<Utc>>,
    /// Only messages sent at or after this.
    pub after: Option<DateTime<Utc>>,
    /// Only messages with a file.
    pub with_file: bool,
    /// Only replies in threads.
    pub in_thread: bool,
    /// Continue after this (score, id).
    pub cursor: Option<(f64, i64)>,
    /// Page size.
    pub limit: u32,
}

/// The terms of `q`, or why it finds nothing.
pub fn parse_query(q: &str) -> Result<SearchTerms, String> {
    let mut terms = SearchTerms::default();
    let mut rest = q.trim();
    while !rest.is_empty() {
        let (negated, body) = match rest.strip_prefix('-') {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let (raw, quoted, next) = match body.strip_prefix('"') {
            Some(inner) => match inner.find('"') {
                Some(end) => (&inner[..end], true, &inner[end + 1..]),
                None => (inner, true, ""),
            },
            None => {
                let end = body.find(char::is_whitespace).unwrap_or(body.len());
                (&body[..end], false, &body[end..])
            }
        };
        rest = next.trim_start();
        let prefix = !quoted && raw.ends_with('*');
        let words: Vec<String> = raw
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(search_fold)
            .collect();
        if words.iter().any(|w| w.chars().count() > MAX_WORD) {
            return Err(format!("Words of at most {MAX_WORD} characters."));
        }
        let term = match words.as_slice() {
            [] => continue,
            [word] if prefix && word.chars().count() < MIN_PREFIX => {
                return Err(format!(
                    "A prefix* needs at least {MIN_PREFIX} letters or digits before the *."
                ));
            }
            [word] if prefix => SearchTerm::Prefix(word.clone()),
            [word] => SearchTerm::Word(word.clone()),
            _ => SearchTerm::Phrase(words),
        };
        if negated {
            terms.exclude.push(term);
        } else {
            terms.include.push(term);
        }
        if terms.include.len() + terms.exclude.len() > MAX_TERMS {
            return Err(format!("At most {MAX_TERMS} words or phrases."));
        }
    }
    if terms.include.is_empty() {
        return Err("Give at least one word to look for.".to_owned());
    }
    Ok(terms)
}

/// The part of `body` around its first match of `terms`, as HTML: the text escaped, each word
/// that matches in `<mark>`, `…` where text was left out. Made here, not by the engines, so
/// both give the same snippet (PostgreSQL's headline drops what looks like HTML tags).
pub fn snippet_html(body: &str, terms: &SearchTerms) -> String {
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (at, c) in body.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                words.push((from, at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        words.push((from, body.len()));
    }
    let matches = |word: &str| {
        let word = search_fold(word);
        terms.include.iter().any(|term| match term {
            SearchTerm::Word(w) => word == *w,
            SearchTerm::Prefix(p) => word.starts_with(p.as_str()),
            SearchTerm::Phrase(ws) => ws.contains(&word),
        })
    };
    let marked: Vec<bool> = words.iter().map(|&(a, b)| matches(&body[a..b])).collect();
    let first = marked.iter().position(|&m| m).unwrap_or(0);
    let from_word = first.saturating_sub(SNIPPET_LEAD);
    let to_word = (from_word + SNIPPET_WORDS).min(words.len());
    let from = if from_word == 0 {
        0
    } else {
        words[from_word].0
    };
    let to = if to_word == words.len() {
        body.len()
    } else {
        words[to_word - 1].1
    };
    let mut html = String::with_capacity(to - from + 32);
    if from > 0 {
        html.push('…');
    }
    let mut at = from;
    for (i, &(a, b)) in words.iter().enumerate().take(to_word).skip(from_word) {
        escape_into(&mut html, &body[at..a]);
        if marked[i] {
            html.push_str("<mark>");
            escape_into(&mut html, &body[a..b]);
            html.push_str("</mark>");
        } else {
            escape_into(&mut html, &body[a..b]);
        }
        at = b;
    }
    escape_into(&mut html, &body[at..to]);
    if to < body.len() {
        html.push('…');
    }
    html
}

/// Appends `text` with HTML's special characters escaped.
fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            other => html.push(other),
        }
    }
}

/// How long a search waits for a turn before it is answered `server_busy` (503).
const SEARCH_WAIT: Duration = Duration::from_secs(5);

/// Turns to search, a few per core: a search holds a database connection for a few
/// milliseconds, and for up to hundreds when its words are matched by a large share of the
/// messages (see README, "Search"). Searches beyond the turns wait, so they never take every
/// pooled connection from the rest of the chat.
pub(crate) struct SearchSlots {
    turns: Semaphore,
    wait: Duration,
}

impl SearchSlots {
    /// As many turns as the store runs searches at once.
    pub(crate) fn new() -> Self {
        Self::with(chatboard_store::search_concurrency(), SEARCH_WAIT)
    }

    /// `turns` turns, each waited for at most `wait`.
    fn with(turns: usize, wait: Duration) -> Self {
        Self {
            turns: Semaphore::new(turns),
            wait,
        }
    }

    /// A turn, held until dropped; `server_busy` after waiting too long for one.
    async fn turn(&self) -> ChatResult<SemaphorePermit<'_>> {
        let busy = || {
            ChatError::refused_because(
                ErrorCode::ServerBusy,
                "The server is running as many searches as it can; try again shortly.",
            )
        };
        tokio::time::timeout(self.wait, self.turns.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())
    }
}

impl Chat {
    /// The messages of an organization's rooms that `user_id` sits in matching `request`,
    /// best first; 404 for someone outside the organization or a room they do not sit in.
    #[instrument(skip(self, request), err(level = "debug"))]
    pub async fn search(
        &self,
        user_id: i64,
        org_id: i64,
        request: SearchRequest,
    ) -> ChatResult<Vec<Found>> {
        let mut v = Validator::default();
        if request.q.chars().count() > MAX_QUERY {
            v.add("q", format!("At most {MAX_QUERY} characters."));
        }
        let terms = match parse_query(&request.q) {
            Ok(terms) => Some(terms),
            Err(problem) => {
                v.add("q", problem);
                None
            }
        };
        v.finish()?;
        if let Some(room) = request.room {
            if self.member_access(room, user_id).await?.room.org != org_id {
                return Err(ChatError::not_found());
            }
        }
        let terms = terms.unwrap_or_default();
        let search = MessageSearch {
            org_id,
            reader: user_id,
            terms: terms.clone(),
            room_id: request.room,
            sender_id: request.from,
            before: request.before,
            after: request.after,
            with_file: request.with_file,
            in_thread: request.in_thread,
            after_hit: request.cursor,
            limit: request.limit,
        };
        let hits = {
            let _turn = self.0.search_slots.turn().await?;
            self.store().search_messages(&search).await?
        };
        // Results come only from the caller's seats, and a seat in an organization's room is
        // only held by its members (leaving takes the seats), so results prove membership; an
        // empty page might be an outsider's, who gets 404. One query less for most searches.
        if hits.is_empty() {
            self.org_role(org_id, user_id).await?;
        }
        let scores: Vec<f64> = hits.iter().map(|h| h.score).collect();
        let mut messages: Vec<Message> = hits.into_iter().map(|h| h.message).collect();
        self.mark_own_reactions(user_id, &mut messages).await?;
        Ok(messages
            .into_iter()
            .zip(scores)
            .map(|(message, score)| Found {
                snippet: snippet_html(&message.body, &terms),
                message,
                score,
            })
            .collect())
    }

    /// Rooms of the organization whose name starts with `prefix`: those `user_id` may open,
    /// or with `joinable` those they may join and do not sit in (MANAGER_ONLY ones too for
    /// MANAGERs and ADMINs, as joining admits them).
    pub async fn find_rooms(
        &self,
        user_id: i64,
        org_id: i64,
        prefix: &str,
        joinable: bool,
        limit: u32,
    ) -> ChatResult<Vec<Room>> {
        let role = self.org_role(org_id, user_id).await?;
        let lookup = if joinable {
            RoomLookup::Joinable {
                manager_only: AccessLevel::ManagerOnly.admits(role),
            }
        } else {
            RoomLookup::Openable
        };
        Ok(self
            .store()
            .find_rooms(org_id, user_id, prefix.trim(), lookup, limit)
            .await?)
    }

    /// Members of the organization whose address or name starts with `prefix`.
    pub async fn find_org_members(
        &self,
        user_id: i64,
        org_id: i64,
        prefix: &str,
        limit: u32,
    ) -> ChatResult<Vec<OrgMember>> {
        self.org_role(org_id, user_id).await?;
        Ok(self
            .store()
            .find_org_members(org_id, prefix.trim(), limit)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> SearchTerm {
        SearchTerm::Word(w.into())
    }

    #[test]
    fn the_query_syntax_reads_as_documented() {
        let terms =
            parse_query(r#"Deploy "release notes" -staging rel* -"dry run" e-mail"#).unwrap();
        assert_eq!(
            terms.include,
            vec![
                word("deploy"),
                SearchTerm::Phrase(vec!["release".into(), "notes".into()]),
                SearchTerm::Prefix("rel".into()),
                SearchTerm::Phrase(vec!["e".into(), "mail".into()]),
            ]
        );
        assert_eq!(
            terms.exclude,
            vec![
                word("staging"),
                SearchTerm::Phrase(vec!["dry".into(), "run".into()])
            ]
        );
        assert_eq!(parse_query(r#""unclosed phrase"#).unwrap().include.len(), 1);
        assert_eq!(
            parse_query("naïve Ünïcode").unwrap().include[1],
            word("ünïcode")
        );
    }

    #[test]
    fn snippets_are_escaped_marked_and_cut_around_the_first_match() {
        let terms = parse_query("deploy rel*").unwrap();
        assert_eq!(
            snippet_html("<b>Deploy</b> & release!", &terms),
            "&lt;b&gt;<mark>Deploy</mark>&lt;/b&gt; &amp; <mark>release</mark>!"
        );
        let long: String = (0..60).map(|i| format!("w{i} ")).collect::<String>() + "deploy end";
        let snippet = snippet_html(&long, &terms);
        assert!(snippet.starts_with("…w54 "), "{snippet}");
        assert!(snippet.ends_with("<mark>deploy</mark> end"), "{snippet}");
        assert_eq!(snippet_html("", &terms), "");
        // Greek's sigma, final or not, capital or not, is one letter to a search.
        let terms = parse_query("ΟΔΥΣΣΕΑΣ").unwrap();
        assert_eq!(terms.include, vec![word("οδυσσεασ")]);
        assert_eq!(
            snippet_html("Οδυσσεας, ΟΔΥΣΣΕΑΣ", &terms),
            "<mark>Οδυσσεας</mark>, <mark>ΟΔΥΣΣΕΑΣ</mark>"
        );
    }

    #[tokio::test]
    async fn searches_beyond_the_turns_wait_then_are_told_the_server_is_busy() {
        let slots = SearchSlots::with(1, Duration::from_millis(50));
        let first = slots.turn().await.unwrap();
        let refused = slots.turn().await.err().unwrap();
        assert_eq!(refused.code(), ErrorCode::ServerBusy);
        drop(first);
        assert!(slots.turn().await.is_ok(), "a freed turn is taken");
    }

    #[test]
    fn queries_that_find_nothing_are_refused() {
        for q in ["", "   ", "-only -exclusions", "*** ---", "\"\""] {
            assert!(parse_query(q).is_err(), "{q:?}");
        }
        let many: String = (0..11).map(|i| format!("w{i} ")).collect();
        assert!(parse_query(&many).is_err());
        assert!(parse_query(&"x".repeat(65)).is_err());
        // A one-letter prefix would read nearly every word of the index.
        assert!(parse_query("a*").is_err());
        assert!(parse_query("deploy -1*").is_err());
        assert!(parse_query("ab*").is_ok());
    }
}
