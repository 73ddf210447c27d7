//! A per-process cache of serialised message pages.
//!
//! Reading a page is the most frequent call in a chat service and, on PostgreSQL, by far the
//! dearest: fifty rows scattered over as many heap pages, decoded and turned into JSON. A page
//! only changes when a message arrives (the room's `last_msg_id` moves) or one is edited or
//! deleted (`edit_version` moves), and the database hands out both with the membership check in
//! one cheap query. So every request still asks the database whether the reader has a seat and
//! where the room stands, and the cache answers only when nothing changed since the page was
//! built. Nothing is ever served stale, across any number of replicas, without any invalidation
//! messages.

use std::sync::Arc;

use axum::body::Bytes;
use chatboard_store::{PageCursor, PageVersion, Timeline};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Which page: room, timeline, cursor and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The room.
    pub room_id: i64,
    /// Which of its messages.
    pub timeline: Timeline,
    /// The cursor as requested.
    pub cursor: PageCursor,
    /// The page size as requested.
    pub limit: u32,
}

/// A serialised page (as anyone sees it: no reaction marked as the reader's), the room state it
/// was built from, and which of its messages have reactions.
#[derive(Clone)]
struct CachedPage {
    version: PageVersion,
    json: Bytes,
    reacted: Arc<[i64]>,
}

#[derive(Clone)]
struct ByLength;

impl Weighter<PageKey, CachedPage> for ByLength {
    fn weight(&self, _key: &PageKey, page: &CachedPage) -> u64 {
        page.json.len() as u64 + 64
    }
}

/// Message pages by key, bounded by memory.
pub struct PageCache {
    pages: Option<Cache<PageKey, CachedPage, ByLength>>,
}

/// A typical page weighs about this much; it sizes the cache's index.
const TYPICAL_PAGE_BYTES: u64 = 12 * 1024;

impl PageCache {
    /// A cache of up to `megabytes` MiB of JSON; 0 turns it off.
    pub fn new(megabytes: u32) -> Self {
        let capacity = u64::from(megabytes) * 1024 * 1024;
        let pages = (capacity > 0).then(|| {
            let items = (capacity / TYPICAL_PAGE_BYTES).max(16) as usize;
            Cache::with_weighter(items, capacity, ByLength)
        });
        Self { pages }
    }

    /// Whether pages are kept at all.
    pub fn enabled(&self) -> bool {
        self.pages.is_some()
    }

    /// The cached page if the room has not changed in a way that could alter it since, with
    /// the ids of its messages that have reactions.
    pub fn get(&self, key: &PageKey, now: PageVersion) -> Option<(Bytes, Arc<[i64]>)> {
        let page = self.pages.as_ref()?.get(key)?;
        still_current(key.cursor, page.version, now).then_some((page.json, page.reacted))
    }

    /// Remembers a page built after reading `version`.
    pub fn put(&self, key: PageKey, version: PageVersion, json: Bytes, reacted: Arc<[i64]>) {
        if let Some(pages) = &self.pages {
            pages.insert(
                key,
                CachedPage {
                    version,
                    json,
                    reacted,
                },
            );
        }
    }
}

/// Whether a page built at `then` is still what a query at `now` would return. Edits and deletes
/// can touch any page. New messages only get ids above the room's newest, so they cannot enter a
/// page of messages before an id that was already at or below the newest one.
fn still_current(cursor: PageCursor, then: PageVersion, now: PageVersion) -> bool {
    if then.edit_version != now.edit_version {
        return false;
    }
    match cursor {
        PageCursor::Before(id) if then.last_msg_id.is_some_and(|newest| id <= newest) => true,
        _ => then.last_msg_id == now.last_msg_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(last: Option<i64>, edits: i64) -> PageVersion {
        PageVersion {
            last_msg_id: last,
            edit_version: edits,
            last_seq: last.unwrap_or(0),
        }
    }

    #[test]
    fn new_messages_invalidate_only_pages_they_can_enter() {
        let (then, now) = (v(Some(100), 3), v(Some(105), 3));
        assert!(!still_current(PageCursor::Newest, then, now));
        assert!(!still_current(PageCursor::After(90), then, now));
        assert!(still_current(PageCursor::Before(50), then, now));
        assert!(still_current(PageCursor::Before(100), then, now));
        // A cursor above the newest id at the time would take in the new messages.
        assert!(!still_current(PageCursor::Before(200), then, now));
        assert!(!still_current(
            PageCursor::Before(5),
            v(None, 0),
            v(Some(1), 0)
        ));
    }

    #[test]
    fn edits_invalidate_every_page() {
        let (then, now) = (v(Some(100), 3), v(Some(100), 4));
        for cursor in [
            PageCursor::Newest,
            PageCursor::Before(50),
            PageCursor::After(50),
        ] {
            assert!(!still_current(cursor, then, now));
        }
        assert!(still_current(PageCursor::Newest, then, then));
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = PageCache::new(0);
        let key = PageKey {
            room_id: 1,
            timeline: Timeline::All,
            cursor: PageCursor::Newest,
            limit: 50,
        };
        cache.put(key, v(Some(1), 0), Bytes::from_static(b"[]"), Arc::from([]));
        assert!(cache.get(&key, v(Some(1), 0)).is_none());
    }
}
