//! The retention sweeper deletes refresh tokens a day after they expired, and the login families
//! they leave empty; live families keep every token, used ones included, so that presenting a
//! used one still revokes its family. Both engines. (Nothing deleted them: every sign-in and
//! every refresh added a row for good.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use chatboard_store::{RefreshOutcome, Store};
use chrono::Utc;
use common::setup;
use testing::{TestDb, TestEngine};
use worker::retention::RetentionSweeper;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_pruned_on_sqlite() {
    expired_sessions_are_pruned(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_pruned_on_postgres() {
    expired_sessions_are_pruned(TestEngine::Postgres).await;
}

fn sweeper(store: &Arc<dyn Store>) -> RetentionSweeper {
    common::sweeper(store).0
}

async fn expired_sessions_are_pruned(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let store = &s.store;
    let now = Utc::now();
    let day = chrono::Duration::days(1);

    // A sign-in of ten days ago, refreshed once, whose tokens expired three days ago.
    let old_start = now - day * 10;
    assert!(store
        .start_session(s.author, "!", "old", "old-1", now - day * 3, old_start)
        .await
        .unwrap());
    let rotated = store
        .rotate_refresh("old", "old-1", "old-2", now - day * 3, old_start)
        .await
        .unwrap();
    assert_eq!(rotated, RefreshOutcome::Rotated { user_id: s.author });
    // A live one, refreshed once: its used token stays for reuse detection.
    assert!(store
        .start_session(s.author, "!", "live", "live-1", now + day * 7, now)
        .await
        .unwrap());
    store
        .rotate_refresh("live", "live-1", "live-2", now + day * 7, now)
        .await
        .unwrap();

    // Two tokens and one family go.
    assert_eq!(sweeper(store).prune_sessions().await.unwrap(), 3);
    assert_eq!(sweeper(store).prune_sessions().await.unwrap(), 0);

    // The live family works as before: its used token, presented again, revokes it.
    assert_eq!(
        store
            .rotate_refresh("live", "live-1", "live-3", now + day * 7, Utc::now())
            .await
            .unwrap(),
        RefreshOutcome::Reused
    );
    assert_eq!(
        store
            .rotate_refresh("old", "old-2", "old-3", now + day * 7, Utc::now())
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}
