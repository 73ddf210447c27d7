//! The search index against writes racing it: what the worker indexes while a message is being
//! deleted. PostgreSQL (on SQLite one writer does both in turn).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Engine, TestApp};

/// The worker indexing a message whose deletion is written and not yet committed. Its read saw
/// the message undeleted, and its insert came after the deletion had removed the message's
/// words (none yet): the deleted text's words stayed in the index for good. It now waits for
/// the deletion and leaves the message out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_in_flight_keeps_its_words_out_of_the_index() {
    let Some(app) = TestApp::spawn(Engine::Postgres).await else {
        return;
    };
    let (_org, room, alice, _bob) = app.room_for_two().await;
    let id = app.send(&alice, room, "a secret walrus").await;
    // The deletion's write, as `delete_message` makes it, held open.
    let deletion = testing::HeldLocks::take(
        &app.db_url,
        &format!("UPDATE messages SET is_deleted = TRUE, body = '' WHERE id = {id}"),
    )
    .await;
    let store = app.state.store.clone();
    let indexing = tokio::spawn(async move { store.index_new_messages(&[(room, id)]).await });
    // Either it waits for the deletion (as it should), or it is done already.
    while !indexing.is_finished() && testing::waiting_for_locks(&app.db_url).await < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deletion.commit().await;
    indexing.await.unwrap().unwrap();
    let kept = testing::query_texts(
        &app.db_url,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM message_words WHERE message_id = {id}"),
    )
    .await;
    assert_eq!(kept, ["0"], "the deleted message's words are in the index");
}
