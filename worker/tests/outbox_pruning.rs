//! The outbox keeps an event for `CHATBOARD_OUTBOX_RETENTION_DAYS`: older ones go once handed
//! over and once no webhook delivery of theirs is still to be attempted (SQLite and PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use chatboard_store::{Store, WebhookPatch};
use chrono::Utc;
use common::{post, setup, webhook};
use testing::{TestDb, TestEngine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_pruned_on_sqlite() {
    old_events_are_pruned(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_pruned_on_postgres() {
    old_events_are_pruned(TestEngine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_owed_to_a_webhook_that_stays_off_are_pruned_on_sqlite() {
    events_owed_to_a_webhook_that_stays_off_are_pruned(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_owed_to_a_webhook_that_stays_off_are_pruned_on_postgres() {
    events_owed_to_a_webhook_that_stays_off_are_pruned(TestEngine::Postgres).await;
}

/// Positions of every event left in the outbox.
async fn left(store: &Arc<dyn Store>) -> Vec<i64> {
    store
        .outbox_after(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect()
}

async fn old_events_are_pruned(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let store = &s.store;
    let hook = webhook(store, s.org, "http://127.0.0.1:9/hook", &["*"], "secret").await;
    post(store, s.room, s.author, 3).await;
    let old = store.outbox_unpublished(1000).await.unwrap();
    // One old event still owes its webhook a delivery.
    let owed = old.last().unwrap().clone();
    assert_eq!(
        store
            .fan_out_deliveries(std::slice::from_ref(&owed), Utc::now())
            .await
            .unwrap(),
        1
    );
    let before = Utc::now();
    post(store, s.room, s.author, 2).await;
    let all = store.outbox_unpublished(1000).await.unwrap();
    let (handed, waiting) = all.split_at(all.len() - 1);
    let positions: Vec<i64> = handed.iter().map(|e| e.position).collect();
    store.mark_published(&positions, Utc::now()).await.unwrap();
    let newer_handed = handed[handed.len() - 1].position;
    let waiting = waiting[0].position;

    // Past `before`: the old events handed over and owing nothing go (in batches of two here).
    let pruned = store.prune_outbox(before, 2).await.unwrap();
    assert_eq!(pruned as usize, old.len() - 1);
    assert_eq!(left(store).await, [owed.position, newer_handed, waiting]);
    assert_eq!(store.prune_outbox(before, 1000).await.unwrap(), 0);

    // Later: the newer handed-over event goes too; the one owed a delivery and the one not yet
    // handed over stay, and the delivery log still shows the delivery.
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.prune_outbox(later, 1000).await.unwrap(), 1);
    assert_eq!(left(store).await, [owed.position, waiting]);
    let log = store.webhook_deliveries(hook, None, 10).await.unwrap();
    assert_eq!(log.len(), 1);

    // A job whose position now holds another event (ids given out again after a restore of
    // the database) reaches no webhook: deliveries are written from the row at the position,
    // which may be another organization's.
    let unsent = all.last().unwrap();
    let mut other = unsent.clone();
    other.id = "another-event".into();
    let other_org = store
        .create_org(s.author, "Elsewhere", Utc::now())
        .await
        .unwrap();
    webhook(
        store,
        other_org.id,
        "http://127.0.0.1:9/other",
        &["*"],
        "secret",
    )
    .await;
    let mut elsewhere = unsent.clone();
    elsewhere.org_id = other_org.id;
    for stranger in [other, elsewhere] {
        assert_eq!(
            store
                .fan_out_deliveries(std::slice::from_ref(&stranger), Utc::now())
                .await
                .unwrap(),
            0
        );
    }

    // A job queue further behind than that hands over an event whose row is gone: it reaches
    // no webhook, and does not fail (its batch would be handed over again for ever).
    let gone = old.first().unwrap();
    assert_eq!(
        store
            .fan_out_deliveries(std::slice::from_ref(gone), Utc::now())
            .await
            .unwrap(),
        0
    );
}

/// A webhook switched off (by its admin, or by a 410 from its target) parks its deliveries.
/// Their events used to stay in the outbox, message text and all, for as long as it stayed off;
/// past retention they go, with the parked deliveries, and with one whose claim lapsed as the
/// webhook went off (never parked).
async fn events_owed_to_a_webhook_that_stays_off_are_pruned(engine: TestEngine) {
    let Some((_db, url)) = TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    let store = &s.store;
    let hook = webhook(store, s.org, "http://127.0.0.1:9/hook", &["*"], "secret").await;
    post(store, s.room, s.author, 2).await;
    let events = store.outbox_unpublished(1000).await.unwrap();
    assert_eq!(
        store.fan_out_deliveries(&events, Utc::now()).await.unwrap() as usize,
        events.len()
    );
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    store.mark_published(&positions, Utc::now()).await.unwrap();
    // One delivery is being attempted as the webhook goes off, by a worker that then dies: its
    // claim lapses unrecorded, and it was never parked.
    let now = Utc::now();
    let lease = now + chrono::Duration::minutes(10);
    let claimed = store
        .claim_due_deliveries(now, lease, 1, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let off = WebhookPatch {
        is_active: Some(false),
        ..WebhookPatch::default()
    };
    // At the claim's time: the claim still holds as the webhook goes off, so it is not parked.
    store.update_webhook(hook, off, now).await.unwrap();

    let later = Utc::now() + chrono::Duration::seconds(1);
    let all = left(store).await.len(); // the set-up's events too, all handed over
    assert_eq!(store.prune_outbox(later, 1000).await.unwrap() as usize, all);
    assert_eq!(left(store).await, Vec::<i64>::new());
    // Their deliveries go with them, as those of any event pruned.
    assert!(store
        .webhook_deliveries(hook, None, 10)
        .await
        .unwrap()
        .is_empty());
}
