//! Webhook delivery shares the dispatcher's slots fairly: a target that hangs holds a quarter
//! of them at most, and one organization (however many webhooks it points at hanging targets)
//! all but a quarter, so the others keep delivering.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chatboard_core::config::WebhookSettings;
use chatboard_core::model::AccessLevel;
use chrono::Utc;
use common::receiver::Receiver;
use common::{db, in_process, post, room, settings, webhook};
use testing::TestEngine;

/// A target that hangs holds a quarter of the dispatcher's slots at most; the others keep
/// delivering at full speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_cannot_take_every_slot() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let slow_rx = Receiver::start().await;
    slow_rx.set_delay(Duration::from_millis(1500));
    let fast_rx = Receiver::start().await;
    webhook(&s.store, s.org, &slow_rx.url("/slow", "k"), &["*"], "k").await;
    webhook(&s.store, s.org, &fast_rx.url("/fast", "k"), &["*"], "k").await;
    post(&s.store, s.room, s.author, 20).await;
    let running = in_process(
        &s.store,
        WebhookSettings {
            concurrency: 8,
            timeout: Duration::from_secs(5),
            ..settings()
        },
    );
    fast_rx
        .wait_for(Duration::from_secs(20), |got| got.len() == 20)
        .await;
    assert!(
        slow_rx.max_in_flight() <= 2,
        "slow target held {} slots",
        slow_rx.max_in_flight()
    );
    assert!(
        slow_rx.received().len() < 20,
        "the fast target did not wait for the slow one"
    );
    running.shut_down().await;
}

/// An organization pointing several webhooks at a target that hangs held a quarter of the slots
/// per webhook: with four, all of them, and every other organization's deliveries waited for
/// them to time out. One organization leaves a quarter to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organization_cannot_take_every_slot() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let slow_rx = Receiver::start().await;
    slow_rx.set_delay(Duration::from_millis(1500));
    let fast_rx = Receiver::start().await;
    for path in ["/slow-1", "/slow-2", "/slow-3", "/slow-4"] {
        webhook(&s.store, s.org, &slow_rx.url(path, "k"), &["*"], "k").await;
    }
    let other = s
        .store
        .create_org(s.author, "Other", Utc::now())
        .await
        .unwrap();
    let other_room = room(&s.store, other.id, s.author, "news", AccessLevel::Public).await;
    webhook(&s.store, other.id, &fast_rx.url("/fast", "k"), &["*"], "k").await;
    post(&s.store, s.room, s.author, 20).await;
    post(&s.store, other_room, s.author, 20).await;
    let running = in_process(
        &s.store,
        WebhookSettings {
            concurrency: 8,
            timeout: Duration::from_secs(5),
            ..settings()
        },
    );
    fast_rx
        .wait_for(Duration::from_secs(30), |got| {
            got.iter().filter(|r| r.event == "message.created").count() == 20
        })
        .await;
    assert!(
        slow_rx.max_in_flight() <= 6,
        "one organization held {} of 8 slots",
        slow_rx.max_in_flight()
    );
    running.shut_down().await;
}
