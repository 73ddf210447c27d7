//! A webhook whose target fails every attempt for too long is switched off, on both engines:
//! the failing mark, what clears it and what restarts its count, with the outcomes' own times.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chatboard_core::model::DeliveryStatus;
use chatboard_store::{AttemptResult, WebhookPatch};
use chrono::{Duration, SubsecRound, Utc};
use common::{outcome_of, post, settle_outbox, setup, webhook};
use testing::{both_engines, TestEngine};

both_engines!(a_webhook_failing_for_too_long_is_switched_off);

/// Every attempt failing since a time marks the webhook failing since then; a delivered one
/// (from the URL it points at) clears the mark, and a failure long after the last one starts a
/// new count. A delivery given up for good switches the webhook off once it has failed, and
/// been left unchanged, for the limit (72 hours here), and its waiting deliveries are parked;
/// switching it on again clears the mark. Times are the outcomes' own, hours apart.
async fn a_webhook_failing_for_too_long_is_switched_off(engine: TestEngine) {
    let Some((_db, url)) = testing::TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let hook = webhook(&s.store, s.org, "http://down.example.com/", &["*"], "k").await;
    post(&s.store, s.room, s.author, 8).await;
    let events = s.store.outbox_unpublished(10).await.unwrap();
    // Whole microseconds, as PostgreSQL keeps them.
    let t0 = Utc::now().trunc_subsecs(6);
    s.store.fan_out_deliveries(&events, t0).await.unwrap();
    let lease = t0 + Duration::seconds(60);
    let claimed = s
        .store
        .claim_due_deliveries(t0, lease, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 8);
    let limit = Some(Duration::hours(72));
    let retry = || AttemptResult::Retry {
        status_code: Some(503),
        error: "down".into(),
        next_attempt_at: t0 + Duration::hours(1000),
    };
    let failed = || AttemptResult::Failed {
        status_code: Some(503),
        error: "down".into(),
    };
    let record = |i: usize, result: AttemptResult, at: chrono::DateTime<Utc>| {
        let outcome = outcome_of(&claimed[i], lease, result);
        let store = s.store.clone();
        async move {
            store.record_attempts(&[outcome], limit, at).await.unwrap();
            store.webhook(hook).await.unwrap().unwrap()
        }
    };
    // Attempts failing every hour from `from` to `to`, as retries of a busy webhook do.
    let keep_failing = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>| {
        let record = &record;
        async move {
            let mut at = from;
            while at <= to {
                record(5, retry(), at).await;
                at += Duration::hours(1);
            }
        }
    };

    let hooked = record(0, retry(), t0).await;
    assert_eq!(hooked.failing_since, Some(t0));
    let hooked = record(
        1,
        AttemptResult::Delivered { status_code: 200 },
        t0 + Duration::hours(1),
    )
    .await;
    assert_eq!(hooked.failing_since, None, "a delivery clears the mark");
    let since = t0 + Duration::hours(2);
    let hooked = record(2, retry(), since).await;
    assert_eq!(hooked.failing_since, Some(since));
    let mut elsewhere = outcome_of(
        &claimed[3],
        lease,
        AttemptResult::Delivered { status_code: 200 },
    );
    elsewhere.url = "http://elsewhere.example.com/".into();
    s.store
        .record_attempts(&[elsewhere], limit, since + Duration::minutes(30))
        .await
        .unwrap();
    let hooked = s.store.webhook(hook).await.unwrap().unwrap();
    assert_eq!(
        hooked.failing_since,
        Some(since),
        "another URL's success says nothing"
    );

    // Quiet for three hours after a failure: the next failure counts from itself.
    let restart = since + Duration::hours(3);
    let hooked = record(4, failed(), restart).await;
    assert!(hooked.is_active);
    assert_eq!(
        hooked.failing_since,
        Some(restart),
        "a failure after a quiet spell"
    );

    // Failing throughout, but changed 10 hours in: on at 72 hours, off 72 hours after the change.
    keep_failing(restart, restart + Duration::hours(71)).await;
    // A request that changes nothing is no change.
    let unchanged = s
        .store
        .update_webhook(hook, WebhookPatch::default(), restart + Duration::hours(5))
        .await
        .unwrap();
    assert_eq!(unchanged.failing_since, Some(restart), "an empty change");
    let change = WebhookPatch {
        events: Some(vec!["*".into()]),
        ..Default::default()
    };
    let changed = restart + Duration::hours(10);
    s.store.update_webhook(hook, change, changed).await.unwrap();
    let hooked = record(6, failed(), restart + Duration::hours(72)).await;
    assert!(hooked.is_active, "switched off 62 hours after a change");
    assert_eq!(
        hooked.failing_since,
        Some(changed),
        "failing since the change, from which the switch-off counts"
    );
    keep_failing(restart + Duration::hours(73), restart + Duration::hours(81)).await;
    let hooked = record(7, failed(), changed + Duration::hours(72)).await;
    assert!(
        !hooked.is_active,
        "failing for 72 hours since the change, and on"
    );
    assert_eq!(
        hooked.disabled_reason.as_deref(),
        Some("every attempt to the target failed for 72 hours or more")
    );
    let log = s.store.webhook_deliveries(hook, None, 10).await.unwrap();
    let waiting: Vec<_> = log
        .iter()
        .filter(|d| d.status == DeliveryStatus::Retrying)
        .collect();
    assert!(!waiting.is_empty());
    assert!(
        waiting.iter().all(|d| d.next_attempt_at.is_none()),
        "its retries are parked: {waiting:?}"
    );

    let on = WebhookPatch {
        is_active: Some(true),
        ..Default::default()
    };
    let hooked = s
        .store
        .update_webhook(hook, on, changed + Duration::hours(73))
        .await
        .unwrap();
    assert!(hooked.is_active);
    assert_eq!((hooked.failing_since, hooked.disabled_reason), (None, None));
}
