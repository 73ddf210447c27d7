//! A delivery being attempted stays claimed while its webhook is switched off and on: nobody
//! else attempts it meanwhile, and its outcome is recorded. An outcome that comes back while
//! the webhook is off parks the delivery; switching it on makes it due. On both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use chatboard_core::model::DeliveryStatus;
use chatboard_store::{AttemptOutcome, AttemptResult, Store, WebhookPatch};
use chrono::{Duration, Utc};
use common::{post, settle_outbox, setup, webhook};
use testing::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_webhook_off_and_on_keeps_claims_sqlite() {
    switching_off_and_on_keeps_claims(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_webhook_off_and_on_keeps_claims_postgres() {
    switching_off_and_on_keeps_claims(TestEngine::Postgres).await;
}

async fn switch(store: &Arc<dyn Store>, hook: i64, on: bool) {
    let patch = WebhookPatch {
        is_active: Some(on),
        ..Default::default()
    };
    store.update_webhook(hook, patch, Utc::now()).await.unwrap();
}

async fn switching_off_and_on_keeps_claims(engine: TestEngine) {
    let Some((_db, url)) = testing::TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let hook = webhook(&s.store, s.org, "http://hooks.example.com/", &["*"], "k").await;
    post(&s.store, s.room, s.author, 2).await;
    let events = s.store.outbox_unpublished(10).await.unwrap();
    let now = Utc::now();
    assert_eq!(s.store.fan_out_deliveries(&events, now).await.unwrap(), 2);

    // A worker claims both and starts sending.
    let lease = now + Duration::seconds(60);
    let claimed = s
        .store
        .claim_due_deliveries(now, lease, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    // Meanwhile an ADMIN switches the webhook off and on again.
    switch(&s.store, hook, false).await;
    switch(&s.store, hook, true).await;
    let again = s
        .store
        .claim_due_deliveries(Utc::now(), Utc::now() + Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "claimed twice while the first attempt runs: {again:?}"
    );

    // The first is delivered; the second fails while the webhook is off again.
    let outcome = |delivery: &chatboard_store::DueDelivery, result| AttemptOutcome {
        delivery_id: delivery.id,
        webhook_id: hook,
        claimed_until: lease,
        result,
    };
    let delivered = outcome(&claimed[0], AttemptResult::Delivered { status_code: 200 });
    switch(&s.store, hook, false).await;
    let retry = outcome(
        &claimed[1],
        AttemptResult::Retry {
            status_code: Some(503),
            error: "busy".into(),
            next_attempt_at: Utc::now(),
        },
    );
    s.store
        .record_attempts(&[delivered, retry], Utc::now())
        .await
        .unwrap();
    let log = s.store.webhook_deliveries(hook, None, 10).await.unwrap();
    let status = |id: i64| log.iter().find(|d| d.id == id).unwrap();
    assert_eq!(status(claimed[0].id).status, DeliveryStatus::Delivered);
    let parked = status(claimed[1].id);
    assert_eq!(parked.status, DeliveryStatus::Retrying);
    assert_eq!(parked.attempts, 1);
    assert_eq!(parked.next_attempt_at, None, "parked while switched off");
    let due = |at| {
        let store = s.store.clone();
        async move {
            store
                .claim_due_deliveries(at, at + Duration::seconds(60), 10, &[])
                .await
                .unwrap()
        }
    };
    assert!(due(Utc::now() + Duration::hours(1)).await.is_empty());

    // Switched on, it is due at once.
    switch(&s.store, hook, true).await;
    let resumed = due(Utc::now()).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].id, claimed[1].id);
}
