//! Search: the query syntax (words, phrases, exclusions, prefixes) on both engines alike,
//! ranking, snippets, filters, paging, who may find what, new messages reaching the index
//! through the worker (PostgreSQL) and edits and deletes reaching it at once. Both engines. (The
//! quick switcher's lookups are in `lookups.rs`.)
//!
//! Each test runs the worker's jobs in-process ([`TestJobs`]); searches wait until they have
//! handled every event so far, unless a test says otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;

use testing::both_engines;
use testing::jobs::{settled, TestJobs};

use common::{Engine, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    the_query_syntax_finds_the_same_on_both_engines,
    results_are_ranked_snippeted_and_paged,
    filters_narrow_the_results,
    only_what_the_reader_may_read_is_found,
    edits_and_deletes_reach_the_index_at_once,
    new_messages_are_found_once_the_worker_indexed_them,
    a_worker_role_that_does_not_own_the_index_still_indexes,
    a_busy_room_does_not_crowd_out_the_others,
    a_busy_room_does_not_crowd_out_the_others_for_a_frequent_word,
    a_reader_in_many_rooms_finds_a_frequent_word_in_each,
    a_closed_store_searches_no_more,
    frequent_words_find_the_newest_matches,
    a_score_tells_nothing_of_other_tenants_messages,
);

/// On PostgreSQL a search statement runs for `CHATBOARD_SEARCH_TIMEOUT_MS` at most: past it
/// the database cancels it and the search is answered `503 server_busy`, rather than holding
/// a search connection and the database for as long as a search of most of a large
/// organization's messages reads. Here the messages are locked, so no search can end in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_past_its_time_limit_is_stopped() {
    let Some(app) = TestApp::spawn_with(Engine::Postgres, |c| {
        c.database.pool.db_search_timeout = std::time::Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let jobs = TestJobs::start(app.state.store.clone());
    let (org, room, alice, bob) = app.room_for_two().await;
    app.send(&alice, room, "a needle in the stack").await;
    settled(&app.state.store).await;
    let held =
        testing::HeldLocks::take(&app.db_url, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").await;
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        search_now(&app, &bob, org, "q=needle"),
    )
    .await;
    held.release().await;
    let r = r.expect("the search stopped within 30 s");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), "server_busy");
    assert!(r.text.contains("too long"), "{}", r.text);
    assert_eq!(found_now(&app, &bob, org, "needle").await.len(), 1);
    drop(jobs);
}

/// The API server with the worker's jobs beside it.
async fn spawn(engine: Engine) -> Option<(TestApp, TestJobs)> {
    let app = TestApp::spawn(engine).await?;
    let jobs = TestJobs::start(app.state.store.clone());
    Some((app, jobs))
}

/// A search, once the worker has handled every event so far.
async fn search(app: &TestApp, user: &TestUser, org: i64, query: &str) -> common::Reply {
    settled(&app.state.store).await;
    search_now(app, user, org, query).await
}

/// A search, at once.
async fn search_now(app: &TestApp, user: &TestUser, org: i64, query: &str) -> common::Reply {
    app.get(&format!("/api/orgs/{org}/search/?{query}"), &user.access)
        .await
}

/// The ids found for `q`, in order, once the worker has handled every event so far.
async fn found(app: &TestApp, user: &TestUser, org: i64, q: &str) -> Vec<i64> {
    settled(&app.state.store).await;
    found_now(app, user, org, q).await
}

/// The ids found for `q` at once, in order.
async fn found_now(app: &TestApp, user: &TestUser, org: i64, q: &str) -> Vec<i64> {
    let q: String = url_encode(q);
    let r = search_now(app, user, org, &format!("q={q}")).await;
    assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
    r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["message"]["id"].as_i64().unwrap())
        .collect()
}

/// The ids of every page of a search from `first`, following `next`; at most `most` of them
/// (a cursor that never ends fails the test rather than looping).
async fn all_pages(app: &TestApp, user: &TestUser, first: String, most: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next {
        let page = app.get(&path, &user.access).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        for hit in page.body["results"].as_array().unwrap() {
            seen.push(hit["message"]["id"].as_i64().unwrap());
        }
        next = page.body["next"].as_str().map(str::to_owned);
        assert!(
            next.is_none() || !page.body["results"].as_array().unwrap().is_empty(),
            "{path}: an empty page links on"
        );
        if next.is_some() {
            // A page that links on is followed by one with results: the last one links nowhere.
            let after = app.get(next.as_deref().unwrap(), &user.access).await;
            assert!(
                !after.body["results"].as_array().unwrap().is_empty(),
                "{path} linked to an empty page"
            );
        }
        assert!(seen.len() <= most, "{seen:?}");
    }
    seen
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn set(ids: &[i64]) -> HashSet<i64> {
    ids.iter().copied().collect()
}

async fn the_query_syntax_finds_the_same_on_both_engines(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let notes = app
        .send(&alice, room, "Deploy the Release Notes today")
        .await;
    let scattered = app.send(&alice, room, "release the notes").await;
    let staging = app.send(&bob, room, "staging deploy failed").await;
    let deployment = app.send(&bob, room, "deployment done").await;
    let unicode = app.send(&bob, room, "naïve Ünïcode text").await;
    let email = app.send(&bob, room, "send the e-mail please").await;
    // PostgreSQL's parser kept these whole: none of their parts was found there.
    let joined = app
        .send(
            &alice,
            room,
            "ask bob@example.com: https://docs.example.com/v1.5 src/main.rs",
        )
        .await;

    assert_eq!(
        set(&found(&app, &bob, org, "deploy").await),
        set(&[notes, staging])
    );
    assert_eq!(
        set(&found(&app, &bob, org, "DEPLOY").await),
        set(&[notes, staging])
    );
    assert_eq!(
        set(&found(&app, &bob, org, "deploy*").await),
        set(&[notes, staging, deployment])
    );
    assert_eq!(
        found(&app, &bob, org, "\"release notes\"").await,
        vec![notes]
    );
    assert_eq!(
        set(&found(&app, &bob, org, "release notes").await),
        set(&[notes, scattered])
    );
    assert_eq!(found(&app, &bob, org, "deploy -staging").await, vec![notes]);
    assert_eq!(
        found(&app, &bob, org, "notes -\"release notes\"").await,
        vec![scattered]
    );
    assert_eq!(found(&app, &bob, org, "ünïcode").await, vec![unicode]);
    // Greek's sigma is written "ς" at the end of a word and "σ" elsewhere, and capitalized "Σ"
    // in both places: lowercasing "ΟΔΥΣΣΕΑΣ" letter by letter ends it in "σ".
    let lower = app.send(&bob, room, "Οδυσσεας sailed").await;
    let upper = app.send(&bob, room, "ΟΔΥΣΣΕΑΣ SAILED").await;
    for name in ["οδυσσεας", "ΟΔΥΣΣΕΑΣ", "οδυσσεασ", "οδυσσεα*"] {
        assert_eq!(
            set(&found(&app, &bob, org, name).await),
            set(&[lower, upper]),
            "{name}"
        );
    }
    // A name run into digits ends its letters with "ς" all the same.
    let handle = app.send(&bob, room, "ping Νίκος1 and ΝΊΚΟΣ2").await;
    for name in ["Νίκος1", "νίκοσ1", "ΝΊΚΟΣ2", "νίκος2"] {
        assert_eq!(found(&app, &bob, org, name).await, vec![handle], "{name}");
    }
    assert_eq!(found(&app, &bob, org, "e-mail").await, vec![email]);
    for part in [
        "example",
        "bob@example.com",
        "docs",
        "v1",
        "main.rs",
        "\"example com\"",
    ] {
        assert_eq!(found(&app, &bob, org, part).await, vec![joined], "{part}");
    }
    assert!(found(&app, &bob, org, "nothing-like-this").await.is_empty());

    for bad in ["", "-only", "%22%22", &"x".repeat(65)] {
        let r = search(&app, &bob, org, &format!("q={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert!(r.body["errors"]["q"].is_array(), "{}", r.text);
    }
}

async fn results_are_ranked_snippeted_and_paged(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    let rich = app.send(&alice, room, "banana banana banana banana").await;
    let poor = app
        .send(
            &alice,
            room,
            "one banana in a long sentence about many other things here",
        )
        .await;
    let (older, newer) = (
        app.send(&alice, room, "<b>banana</b> & co").await,
        app.send(&alice, room, "<b>banana</b> & co").await,
    );
    let r = search(&app, &alice, org, "q=banana").await;
    let ids: Vec<i64> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{}", r.text);
    assert_eq!(ids[0], rich, "the most relevant first: {}", r.text);
    let at = |id: i64| ids.iter().position(|&x| x == id).unwrap();
    assert!(at(newer) < at(older), "equals newest first: {ids:?}");
    assert!(at(rich) < at(poor));
    let hit = &r.body["results"][at(newer)];
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>banana</mark>"), "{snippet}");
    assert!(
        snippet.contains("&lt;b&gt;") && snippet.contains("&amp;"),
        "{snippet}"
    );
    assert!(hit["score"].as_f64().unwrap() > 0.0);

    // Pages of one, following `next`, see each once and end.
    let first = format!("/api/orgs/{org}/search/?q=banana&limit=1");
    assert_eq!(all_pages(&app, &alice, first, 4).await, ids);
    // Numbers that no next link carries: refused, not an empty or repeated page.
    for cursor in ["nonsense", "NaN_1", "inf_1", "-inf_1", "0.5_0", "0.5_-3"] {
        let r = search(&app, &alice, org, &format!("q=banana&cursor={cursor}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cursor}: {}", r.text);
        assert_eq!(
            r.body["errors"]["cursor"][0],
            "Use the cursor of a next link."
        );
    }
}

async fn filters_narrow_the_results(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let other = app.room(&alice, org, "random", "PUBLIC").await;
    let in_general = app.send(&alice, room, "lunch plans").await;
    let in_random = app.send(&bob, other, "lunch at noon").await;
    let reply = app
        .post(
            &format!("/api/rooms/{room}/messages/"),
            Some(&bob.access),
            json!({"body": "lunch yes", "parent_id": in_general}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let ids = |r: &common::Reply| -> HashSet<i64> {
        r.body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text))
            .iter()
            .map(|h| h["message"]["id"].as_i64().unwrap())
            .collect()
    };
    let r = search(&app, &alice, org, &format!("q=lunch&room={other}")).await;
    assert_eq!(ids(&r), set(&[in_random]));
    let r = search(&app, &alice, org, &format!("q=lunch&from={}", bob.id)).await;
    assert_eq!(ids(&r), set(&[in_random, reply]));
    let r = search(&app, &alice, org, "q=lunch&in=thread").await;
    assert_eq!(ids(&r), set(&[reply]));
    let r = search(&app, &alice, org, "q=lunch&after=2999-01-01").await;
    assert!(ids(&r).is_empty());
    let r = search(&app, &alice, org, "q=lunch&before=2999-01-01T00:00:00Z").await;
    assert_eq!(ids(&r).len(), 3);
    let r = search(&app, &alice, org, "q=lunch&has=file").await;
    assert!(ids(&r).is_empty(), "no attachments here");
    for bad in [
        "has=pdf",
        "in=room",
        "before=yesterday",
        "room=x",
        "limit=51",
    ] {
        let r = search(&app, &alice, org, &format!("q=lunch&{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
}

async fn only_what_the_reader_may_read_is_found(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let secret = app.room(&alice, org, "leads", "PRIVATE").await;
    app.send(&alice, secret, "quarterly figures").await;
    let open = app.send(&alice, room, "quarterly party").await;
    assert_eq!(found(&app, &bob, org, "quarterly").await, vec![open]);
    assert_eq!(found(&app, &alice, org, "quarterly").await.len(), 2);
    let r = search(&app, &bob, org, &format!("q=quarterly&room={secret}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Another organization's member learns nothing, not even that the org exists.
    let mallory = app.user("mallory@example.com").await;
    let elsewhere = app.org(&mallory, "Elsewhere").await;
    let r = search(&app, &mallory, org, "q=quarterly").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(found(&app, &mallory, elsewhere, "quarterly")
        .await
        .is_empty());
    let r = search(
        &app,
        &mallory,
        elsewhere,
        &format!("q=quarterly&room={room}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Someone who leaves the organization finds nothing there any more.
    let r = app
        .delete(&format!("/api/orgs/{org}/members/{}/", bob.id), &bob.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = search(&app, &bob, org, "q=quarterly").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

async fn edits_and_deletes_reach_the_index_at_once(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let id = app.send(&alice, room, "the old wording").await;
    assert_eq!(found(&app, &bob, org, "old").await, vec![id]);
    let r = app
        .patch(
            &format!("/api/rooms/{room}/messages/{id}/"),
            &alice.access,
            json!({"body": "the new wording"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(found_now(&app, &bob, org, "old").await.is_empty());
    assert_eq!(found_now(&app, &bob, org, "new").await, vec![id]);
    let r = app
        .delete(&format!("/api/rooms/{room}/messages/{id}/"), &alice.access)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(found_now(&app, &bob, org, "wording").await.is_empty());
}

/// The worker adds new messages to the word index after their commit, many at once, on both
/// engines. A message edited or deleted before the worker gets to it is indexed (or left out)
/// by the edit or delete itself, and the worker does not put its old words back.
async fn new_messages_are_found_once_the_worker_indexed_them(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let posted = app.send(&alice, room, "an unusual walrus").await;
    let edited = app.send(&alice, room, "first draft").await;
    let deleted = app.send(&alice, room, "regrettable remark").await;
    let r = app
        .patch(
            &format!("/api/rooms/{room}/messages/{edited}/"),
            &alice.access,
            json!({"body": "final version"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .delete(
            &format!("/api/rooms/{room}/messages/{deleted}/"),
            &alice.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        found_now(&app, &bob, org, "walrus").await.is_empty(),
        "no worker has run yet"
    );
    assert_eq!(found_now(&app, &bob, org, "final").await, vec![edited]);
    let jobs = TestJobs::start(app.state.store.clone());
    jobs.settled().await;
    assert_eq!(found_now(&app, &bob, org, "walrus").await, vec![posted]);
    assert_eq!(found_now(&app, &bob, org, "final").await, vec![edited]);
    assert!(found_now(&app, &bob, org, "draft").await.is_empty());
    assert!(found_now(&app, &bob, org, "regrettable").await.is_empty());
    if engine == Engine::Sqlite {
        // FTS5 takes a removal's words on trust: removing words it never held would have
        // corrupted the index, which its own check reports as an error.
        testing::db::execute_sql(
            &app.db_url,
            "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
        )
        .await;
    }
}

/// Each room offers its newest 20 matches: an old match in a quiet room is found however many
/// newer ones a busy room has. A search of one room takes all its candidates from that room.
async fn a_busy_room_does_not_crowd_out_the_others(engine: Engine) {
    busy_and_quiet_rooms(engine, false).await;
}

/// The same once the engine's statistics know the word is in most messages (`ANALYZE`), which
/// PostgreSQL finds by walking each room's newest messages instead of its index.
async fn a_busy_room_does_not_crowd_out_the_others_for_a_frequent_word(engine: Engine) {
    busy_and_quiet_rooms(engine, true).await;
}

async fn busy_and_quiet_rooms(engine: Engine, analyze: bool) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, busy, alice, bob) = app.room_for_two().await;
    let quiet = app.room(&alice, org, "quiet", "PUBLIC").await;
    let old = app.send(&bob, quiet, "ping from the quiet room").await;
    for n in 0..30 {
        app.send(&alice, busy, &format!("ping {n}")).await;
    }
    settled(&app.state.store).await;
    if analyze {
        testing::db::execute_sql(&app.db_url, "ANALYZE").await;
    }
    let seen = all_pages(
        &app,
        &bob,
        format!("/api/orgs/{org}/search/?q=ping&limit=7"),
        31,
    )
    .await;
    assert_eq!(seen.len(), 21, "20 of the busy room, 1 of the quiet one");
    assert!(seen.contains(&old));
    let first = format!("/api/orgs/{org}/search/?q=ping&room={busy}&limit=7");
    let seen = all_pages(&app, &bob, first, 31).await;
    assert_eq!(seen.len(), 30, "a search of one room reaches past 20");
}

/// Once the engine's statistics know a word is in most messages (`ANALYZE`), PostgreSQL walks
/// each room's newest messages for it instead of its index (its own guess for a prefix is far
/// off): the same messages are found either way, the newest first among equals.
async fn frequent_words_find_the_newest_matches(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let word = if n % 2 == 0 { "common" } else { "component" };
        ids.push(
            app.send(&alice, room, &format!("a {word} thing, number {n}"))
                .await,
        );
    }
    let rare = app.send(&alice, room, "the odd one out").await;
    testing::db::execute_sql(&app.db_url, "ANALYZE").await;
    let newest: Vec<i64> = ids.iter().rev().take(20).copied().collect();
    let mut found_prefix = found(&app, &bob, org, "com* thing").await;
    assert_eq!(found_prefix.len(), 20, "the room's newest 20 matches");
    found_prefix.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(found_prefix, newest);
    let evens: Vec<i64> = ids.iter().step_by(2).rev().copied().collect();
    let mut found_word = found(&app, &bob, org, "common").await;
    found_word.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(found_word, evens);
    assert_eq!(found(&app, &bob, org, "odd").await, vec![rare]);
    assert!(found(&app, &bob, org, "com* -thing").await.is_empty());
}

/// A frequent word is found in each of a reader's many rooms (70, more than one statement's
/// worth of branches when PostgreSQL merged the rooms' walks; they are walked in turn now).
async fn a_reader_in_many_rooms_finds_a_frequent_word_in_each(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, _, alice, bob) = app.room_for_two().await;
    let mut posted = Vec::new();
    for n in 0..70 {
        let room = app.room(&alice, org, &format!("room {n}"), "PUBLIC").await;
        posted.push(app.send(&bob, room, &format!("ping {n}")).await);
    }
    settled(&app.state.store).await;
    testing::db::execute_sql(&app.db_url, "ANALYZE").await;
    let first = format!("/api/orgs/{org}/search/?q=ping&limit=50");
    let seen = all_pages(&app, &bob, first, 70).await;
    assert_eq!(set(&seen), set(&posted), "one match in each room");
    assert_eq!(seen.len(), posted.len(), "each once");
}

/// Closing the store (shutdown, or a test's outage) closes the connections searches run on too
/// (PostgreSQL gives searches a pool of their own).
async fn a_closed_store_searches_no_more(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    app.send(&alice, room, "an unusual walrus").await;
    let search = chatboard_store::MessageSearch {
        org_id: org,
        reader: bob.id,
        terms: chatboard_store::SearchTerms {
            include: vec![chatboard_store::SearchTerm::Word("walrus".to_owned())],
            exclude: Vec::new(),
        },
        room_id: None,
        sender_id: None,
        before: None,
        after: None,
        with_file: false,
        in_thread: false,
        after_hit: None,
        limit: 20,
    };
    settled(&app.state.store).await;
    let found = app.state.store.search_messages(&search).await.unwrap();
    assert_eq!(found.len(), 1);
    app.state.store.close().await;
    assert!(app.state.store.search_messages(&search).await.is_err());
}

/// The worker may run as a role granted the tables' rows but not their ownership, which
/// PostgreSQL requires for merging a GIN index's pending list: the messages are still indexed,
/// and the job (with the webhooks and digests queued behind it) does not fail.
async fn a_worker_role_that_does_not_own_the_index_still_indexes(engine: Engine) {
    if engine != Engine::Postgres {
        return;
    }
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (org, room, alice, bob) = app.room_for_two().await;
    let posted = app.send(&alice, room, "an unusual walrus").await;
    let role = format!("chatboard_worker_{}", std::process::id());
    for statement in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        testing::db::execute_sql(&app.db_url, &statement).await;
    }
    let mut url = reqwest::Url::parse(&app.db_url).unwrap();
    url.set_username(&role).unwrap();
    let store = chatboard_store::connect(url.as_str(), 2).await.unwrap();
    let jobs = TestJobs::start(store.clone());
    jobs.settled().await;
    assert_eq!(found_now(&app, &bob, org, "walrus").await, vec![posted]);
    store.close().await;
    drop(jobs);
    testing::db::execute_sql(&app.db_url, &format!("DROP OWNED BY {role}")).await;
    testing::db::execute_sql(&app.db_url, &format!("DROP ROLE {role}")).await;
}

/// A hit's score comes from its own message alone: another organization's messages using the
/// word leave it as it was. (On SQLite it was FTS5's BM25, which weighs a word by how many
/// messages of the whole index hold it: a reader could watch their own message's score to
/// learn whether other tenants wrote a word, and when.)
async fn a_score_tells_nothing_of_other_tenants_messages(engine: Engine) {
    let Some((app, _jobs)) = spawn(engine).await else {
        return;
    };
    let (org, room, alice, _bob) = app.room_for_two().await;
    app.send(&alice, room, "project falcon").await;
    app.send(&alice, room, "project sparrow").await;
    let score = |r: common::Reply| r.body["results"][0]["score"].as_f64().unwrap();
    let before = score(search(&app, &alice, org, "q=falcon").await);

    let eve = app.user("eve@example.com").await;
    let other = app.org(&eve, "Elsewhere").await;
    let theirs = app.room(&eve, other, "general", "PUBLIC").await;
    for n in 0..5 {
        app.send(&eve, theirs, &format!("falcon sighting {n}"))
            .await;
    }
    let seen = search(&app, &eve, other, "q=falcon").await;
    assert_eq!(
        seen.body["results"].as_array().unwrap().len(),
        5,
        "{}",
        seen.text
    );
    let after = score(search(&app, &alice, org, "q=falcon").await);
    assert_eq!(before, after, "the score moved with another org's messages");
}
