//! A retention sweep working through a backlog ends after the batch in hand when the worker is
//! stopped, and the outbox's pruning is not begun: a shutdown used to wait for the whole
//! backlog, which could outlast a pod's grace period. Both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{post, setup};
use testing::{execute_sql, TestDb, TestEngine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sweep_ends_after_its_batch_on_sqlite() {
    a_stopped_sweep_ends_after_its_batch(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sweep_ends_after_its_batch_on_postgres() {
    a_stopped_sweep_ends_after_its_batch(TestEngine::Postgres).await;
}

/// Messages the backlog holds: more than two batches of 1,000.
const BACKLOG: usize = 2_500;

async fn a_stopped_sweep_ends_after_its_batch(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    post(&s.store, s.room, s.author, BACKLOG).await;
    execute_sql(
        &url,
        &format!("UPDATE orgs SET retention_days = 30 WHERE id = {}", s.org),
    )
    .await;
    execute_sql(
        &url,
        "UPDATE messages SET created_at = '2020-01-01T00:00:00Z'",
    )
    .await;
    // Their events are past the outbox's retention too.
    execute_sql(
        &url,
        "UPDATE outbox SET created_at = '2020-01-01T00:00:00Z', \
           published_at = '2020-01-01T00:00:00Z'",
    )
    .await;
    let (sweeper, metrics) = common::sweeper(&s.store);
    // Stopped from the start: the sweep takes one batch and ends.
    let (stop, stopped) = tokio::sync::watch::channel(true);
    sweeper.run(Duration::from_secs(3600), stopped).await;
    assert_eq!(metrics.messages_purged.get(), 1_000);
    // Nor does it begin pruning the outbox's backlog.
    assert_eq!(metrics.outbox_pruned.get(), 0);
    drop(stop);
    // The rest goes at the next sweep.
    assert_eq!(sweeper_left(&s).await, BACKLOG as u64 - 1_000);
}

/// What a full sweep still finds to delete.
async fn sweeper_left(s: &common::Setup) -> u64 {
    common::sweeper(&s.store).0.sweep().await.unwrap()
}
