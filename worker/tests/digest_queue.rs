//! When a digest is due: its wait counts from when its messages were noted for the member, not
//! from when they were posted. Through the email store and the digest writer; both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatboard_store::{DigestNote, EmailStore, Store};
use chrono::Utc;
use common::{member, setup, Setup};
use testing::{TestDb, TestEngine};
use tokio::sync::Notify;
use worker::digest::DigestWriter;

testing::both_engines!(the_wait_counts_from_when_messages_are_noted,);

/// A digest writer whose window (and mention delay) is `window`.
fn writer(store: &Arc<dyn Store>, window: Duration) -> DigestWriter {
    let store: Arc<dyn EmailStore> = store.clone();
    DigestWriter::new(store, window, window, None, Arc::new(Notify::new()))
}

/// Notes for `user` a message of the setup's room posted an hour ago, as a job catching up
/// on old events would.
async fn note_an_hour_old_message(s: &Setup, user: i64, event: &str) {
    let posted = Utc::now() - chrono::Duration::hours(1);
    let note = DigestNote {
        event_id: event.into(),
        user_id: user,
    };
    s.store
        .add_digest_items(&[note], 1_000_000, s.room, posted, false)
        .await
        .unwrap();
}

async fn the_wait_counts_from_when_messages_are_noted(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let bob = member(&s, "bob@example.com", "Bob").await;
    note_an_hour_old_message(&s, bob, "e1").await;
    // Posted an hour ago, noted just now: a ten-minute window has not passed (a backlog of
    // old events used to be mailed at once, a digest each round as it was noted).
    assert_eq!(
        writer(&s.store, Duration::from_secs(600))
            .write_due()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        writer(&s.store, Duration::ZERO).write_due().await.unwrap(),
        1
    );
}
