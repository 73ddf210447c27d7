//! A gateway's hub ends with it: its shard threads and tasks do not outlive a dropped gateway
//! while the process, its runtime and its bus go on (a test binary, or an embedder restarting
//! its gateway). Alone in its binary, with no other gateway: it counts the process's threads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatboard_core::presence::LocalPresence;
use common::{eventually, quick_settings, Platform};
use testing::http::TestApp;
use testing::TestEngine;

/// Threads of this process whose name marks them as a hub's shard.
fn shard_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("hub-shard-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gateway_leaves_no_shard_threads_behind() {
    // The API alone (no gateway yet), on SQLite and the in-process bus, which outlive the
    // gateway below.
    let app = TestApp::spawn_with(TestEngine::Sqlite, |_| {})
        .await
        .unwrap();
    assert_eq!(shard_threads(), 0);
    let gateway = Platform::gateway_state(
        app.state.store.clone(),
        app.state.bus.clone(),
        Arc::new(LocalPresence::new()),
        &app.state.tokens,
        quick_settings(),
        &app.state.config.chat_settings(),
    )
    .await;
    // Threads take their names once running.
    assert!(
        eventually(Duration::from_secs(10), || async { shard_threads() > 0 }).await,
        "the gateway starts shards"
    );
    drop(gateway);
    assert!(
        eventually(Duration::from_secs(10), || async { shard_threads() == 0 }).await,
        "{} shard threads left after the gateway was dropped",
        shard_threads()
    );
}
