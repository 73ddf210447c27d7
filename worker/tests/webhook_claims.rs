//! A delivery being attempted stays claimed while its webhook is switched off and on: nobody
//! else attempts it meanwhile, and its outcome is recorded. An outcome that comes back while
//! the webhook is off parks the delivery; switching it on makes it due. On both engines. A 410
//! from a URL the webhook no longer points at does not switch it off. On PostgreSQL, an outcome
//! recorded while the webhook is being switched on leaves nothing parked, and an event fanned
//! out while it is being switched off is not queued for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use chatboard_core::events::OutboxEvent;
use chatboard_core::model::DeliveryStatus;
use chatboard_store::{AttemptOutcome, AttemptResult, ManagedWebhook, Store, WebhookPatch};
use chrono::{Duration, Utc};
use common::{db, outcome_of, post, settle_outbox, setup, webhook, Setup};
use testing::{both_engines, TestEngine};

both_engines!(
    switching_off_and_on_keeps_claims,
    a_gone_answer_from_a_former_url_leaves_the_webhook_on,
    a_managed_webhook_moved_to_another_org_keeps_none_of_the_old_ones_events,
    a_retry_scheduled_for_later_is_not_backlog_yet,
    narrowing_the_events_drops_what_is_queued_of_the_others,
    a_claim_is_filled_past_the_deliveries_of_deleted_messages,
    a_claim_skipping_busy_webhooks_takes_the_others_oldest_first,
);

/// A Webhook resource pointed at another Organization: the deliveries it held of the first
/// one's events (due, and in its log) go, rather than being signed with the new secret, sent to
/// the new URL and shown to the new org's admins.
async fn a_managed_webhook_moved_to_another_org_keeps_none_of_the_old_ones_events(
    engine: TestEngine,
) {
    let Some((_db, url)) = testing::TestDb::create(engine).await else {
        return;
    };
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let globex = s
        .store
        .create_org(s.author, "Globex", Utc::now())
        .await
        .unwrap();
    let managed = |org_id: i64, target: &str| ManagedWebhook {
        resource_key: "tenants/hook".into(),
        org_id,
        url: target.into(),
        events: vec!["*".into()],
        secret: "a secret of sixteen bytes".into(),
        active: true,
        max_attempts: None,
    };
    let hook = s
        .store
        .apply_managed_webhook(managed(s.org, "http://acme.example.com/"), Utc::now())
        .await
        .unwrap()
        .webhook_id;
    post(&s.store, s.room, s.author, 2).await;
    let events = s.store.outbox_unpublished(10).await.unwrap();
    assert_eq!(
        s.store
            .fan_out_deliveries(&events, Utc::now())
            .await
            .unwrap(),
        2
    );
    let moved = s
        .store
        .apply_managed_webhook(managed(globex.id, "http://globex.example.com/"), Utc::now())
        .await
        .unwrap();
    assert_eq!(moved.webhook_id, hook);
    let due = s
        .store
        .claim_due_deliveries(Utc::now(), Utc::now() + Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    assert!(due.is_empty(), "the old org's events went out: {due:?}");
    assert!(s
        .store
        .webhook_deliveries(hook, None, 10)
        .await
        .unwrap()
        .is_empty());
}

/// The backlog gauges count what is due or being attempted, and age from when it came due: a
/// failing target's retry an hour ahead is not waiting (the dispatcher is idle), and is once
/// its hour has come.
async fn a_retry_scheduled_for_later_is_not_backlog_yet(engine: TestEngine) {
    let Some((_db, s, _hook, claimed, lease)) =
        one_delivery_claimed(engine, "http://hooks.example.com/").await
    else {
        return;
    };
    let now = Utc::now();
    assert_eq!(
        s.store.delivery_backlog(now).await.unwrap(),
        (1, None),
        "being attempted, not waiting"
    );
    let retry_at = now + Duration::hours(1);
    let retry = AttemptResult::Retry {
        status_code: Some(503),
        error: "busy".into(),
        next_attempt_at: retry_at,
    };
    s.store
        .record_attempts(&[outcome_of(&claimed, lease, retry)], None, now)
        .await
        .unwrap();
    assert_eq!(s.store.delivery_backlog(now).await.unwrap(), (0, None));
    let later = retry_at + Duration::seconds(1);
    let (count, due_since) = s.store.delivery_backlog(later).await.unwrap();
    assert_eq!(count, 1, "due once its time has come");
    let due_since = due_since.unwrap();
    assert!(
        (due_since - retry_at).num_milliseconds().abs() < 5,
        "due since {due_since}, retry at {retry_at}"
    );
}

/// An ADMIN narrows a webhook's events to stop messages reaching its target: what was already
/// queued of them (retrying for up to a week, or parked while it is off) was still sent. It is
/// given up, marked failed, and what the webhook still takes stays queued; one being attempted
/// meanwhile is given up if the attempt fails.
async fn narrowing_the_events_drops_what_is_queued_of_the_others(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    let hook = hooked(&s).await;
    let events = posted(&s, 3).await;
    assert_eq!(
        s.store
            .fan_out_deliveries(&events, Utc::now())
            .await
            .unwrap(),
        3
    );
    // One is being attempted.
    let lease = Utc::now() + Duration::seconds(60);
    let in_flight = s
        .store
        .claim_due_deliveries(Utc::now(), lease, 1, &[])
        .await
        .unwrap();
    assert_eq!(in_flight.len(), 1);
    let narrow = |events: &[&str]| WebhookPatch {
        events: Some(events.iter().map(|e| e.to_string()).collect()),
        ..Default::default()
    };
    let statuses = || async {
        let log = s.store.webhook_deliveries(hook, None, 10).await.unwrap();
        log.iter().map(|d| d.status).collect::<Vec<_>>()
    };
    s.store
        .update_webhook(
            hook,
            narrow(&["message.created", "member.joined"]),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(statuses().await, [DeliveryStatus::Pending; 3]);
    s.store
        .update_webhook(hook, narrow(&["member.joined"]), Utc::now())
        .await
        .unwrap();
    let attempted = AttemptOutcome {
        delivery_id: in_flight[0].id,
        webhook_id: hook,
        url: in_flight[0].url.clone(),
        claimed_until: lease,
        result: AttemptResult::Retry {
            status_code: Some(503),
            error: "busy".into(),
            next_attempt_at: Utc::now(),
        },
    };
    s.store
        .record_attempts(&[attempted], None, Utc::now())
        .await
        .unwrap();
    assert_eq!(statuses().await, [DeliveryStatus::Failed; 3]);
    let due = s
        .store
        .claim_due_deliveries(Utc::now(), Utc::now() + Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
}

/// A claim returns as many deliveries as it was asked for while that many are due, even when
/// some of those it picked carried messages deleted since (marked failed, not returned): the
/// dispatcher reads a short claim as "nothing more is due" and waits before the next. It came
/// back short, and the deliveries behind waited a poll interval for nothing.
async fn a_claim_is_filled_past_the_deliveries_of_deleted_messages(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    hooked(&s).await;
    let events = posted(&s, 4).await;
    // The first two are due first, and their messages are deleted.
    let first = Utc::now() - Duration::seconds(10);
    s.store
        .fan_out_deliveries(&events[..2], first)
        .await
        .unwrap();
    s.store
        .fan_out_deliveries(&events[2..], first + Duration::seconds(1))
        .await
        .unwrap();
    let page = common::newest(&s, 10).await;
    let mut ids: Vec<i64> = page.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    for id in &ids[..2] {
        s.store
            .delete_message(s.room, *id, s.author, Utc::now())
            .await
            .unwrap();
    }
    let claimed = s
        .store
        .claim_due_deliveries(Utc::now(), Utc::now() + Duration::seconds(60), 2, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "{claimed:?}");
}

/// A claim that skips webhooks busy with all their slots takes the other active webhooks'
/// deliveries, oldest due first, as many as asked; the skipped ones stay for a later claim.
/// (Read webhook by webhook: see migration `webhook_deliveries_due_by_webhook`.)
async fn a_claim_skipping_busy_webhooks_takes_the_others_oldest_first(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    let busy = webhook(&s.store, s.org, "http://busy.example.com/", &["*"], "k").await;
    let other = webhook(&s.store, s.org, "http://other.example.com/", &["*"], "k").await;
    let off = webhook(&s.store, s.org, "http://off.example.com/", &["*"], "k").await;
    let events = posted(&s, 3).await;
    // Due a second apart, oldest first: each event queued for all three webhooks.
    let start = Utc::now() - Duration::seconds(10);
    for (i, event) in events.iter().enumerate() {
        let at = start + Duration::seconds(i as i64);
        s.store
            .fan_out_deliveries(std::slice::from_ref(event), at)
            .await
            .unwrap();
    }
    switch(&s.store, off, false).await;
    let claim = |limit: u32, skip: Vec<i64>| {
        let store = s.store.clone();
        async move {
            let due = store
                .claim_due_deliveries(Utc::now(), Utc::now() + Duration::seconds(60), limit, &skip)
                .await
                .unwrap();
            due.iter()
                .map(|d| (d.webhook_id, d.event.id.clone()))
                .collect::<Vec<_>>()
        }
    };
    let first = claim(2, vec![busy]).await;
    let ids = |hook: i64, range: std::ops::Range<usize>| {
        events[range]
            .iter()
            .map(|e| (hook, e.id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(first, ids(other, 0..2));
    assert_eq!(claim(10, vec![busy]).await, ids(other, 2..3));
    assert_eq!(claim(10, vec![busy]).await, []);
    assert_eq!(claim(10, vec![]).await, ids(busy, 0..3));
}

/// A webhook of the set-up's org taking every event.
async fn hooked(s: &Setup) -> i64 {
    webhook(&s.store, s.org, "http://hooks.example.com/", &["*"], "k").await
}

/// `n` messages posted into the set-up's room: their events, not handed over yet.
async fn posted(s: &Setup, n: usize) -> Vec<OutboxEvent> {
    post(&s.store, s.room, s.author, n).await;
    s.store.outbox_unpublished(10).await.unwrap()
}

async fn switch(store: &Arc<dyn Store>, hook: i64, on: bool) {
    let patch = WebhookPatch {
        is_active: Some(on),
        ..Default::default()
    };
    store.update_webhook(hook, patch, Utc::now()).await.unwrap();
}

async fn switching_off_and_on_keeps_claims(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    let hook = hooked(&s).await;
    let events = posted(&s, 2).await;
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
        url: delivery.url.clone(),
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
        .record_attempts(&[delivered, retry], None, Utc::now())
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

/// A store with a webhook at `target` and the delivery of one message to it claimed: the
/// database and its URL, the setup, the webhook, the delivery and its lease. `None` without
/// the engine.
async fn one_delivery_claimed(
    engine: TestEngine,
    target: &str,
) -> Option<(
    (testing::TestDb, String),
    common::Setup,
    i64,
    chatboard_store::DueDelivery,
    chrono::DateTime<Utc>,
)> {
    let (db, url) = testing::TestDb::create(engine).await?;
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let hook = webhook(&s.store, s.org, target, &["*"], "k").await;
    post(&s.store, s.room, s.author, 1).await;
    let events = s.store.outbox_unpublished(10).await.unwrap();
    let now = Utc::now();
    s.store.fan_out_deliveries(&events, now).await.unwrap();
    let lease = now + Duration::seconds(60);
    let mut claimed = s
        .store
        .claim_due_deliveries(now, lease, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    Some(((db, url), s, hook, claimed.remove(0), lease))
}

/// An attempt at the old URL answers 410 after an ADMIN moved the webhook to a new one (the
/// usual way to retire an endpoint): the webhook stays on and the delivery goes to the new URL.
/// It used to switch the moved webhook off.
async fn a_gone_answer_from_a_former_url_leaves_the_webhook_on(engine: TestEngine) {
    let Some((_db, s, hook, claimed, lease)) =
        one_delivery_claimed(engine, "http://old.example.com/").await
    else {
        return;
    };

    let moved = WebhookPatch {
        url: Some("http://new.example.com/".into()),
        ..Default::default()
    };
    s.store
        .update_webhook(hook, moved, Utc::now())
        .await
        .unwrap();
    s.store
        .record_attempts(
            &[outcome_of(&claimed, lease, AttemptResult::Gone)],
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    let stored = s.store.webhook(hook).await.unwrap().unwrap();
    assert!(stored.is_active, "switched off by its former URL's 410");

    let lease = Utc::now() + Duration::seconds(60);
    let due = s
        .store
        .claim_due_deliveries(Utc::now(), lease, 10, &[])
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "the delivery is due again");
    assert_eq!(due[0].url, "http://new.example.com/");

    // A 410 from the URL it points at still switches it off.
    s.store
        .record_attempts(
            &[outcome_of(&due[0], lease, AttemptResult::Gone)],
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    let stored = s.store.webhook(hook).await.unwrap().unwrap();
    assert!(!stored.is_active, "a 410 from its own URL switches it off");
}

/// PostgreSQL: an ADMIN switches a webhook back on while the outcome of one of its deliveries
/// (attempted while it was off) is being recorded. The outcome used to read the webhook as off
/// from before the switch committed and park the delivery, which the switch, having looked
/// before, never woke: the webhook was on and the delivery waited for ever. Now recording waits
/// for the switch, and the delivery is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_recorded_while_the_webhook_is_switched_on_is_not_parked() {
    let Some(((_db, url), s, hook, claimed, lease)) =
        one_delivery_claimed(TestEngine::Postgres, "http://hooks.example.com/").await
    else {
        return;
    };
    switch(&s.store, hook, false).await;

    // The switch back on, as the store makes it, with its transaction still open.
    let switching_on = testing::HeldLocks::take(
        &url,
        &format!(
            "UPDATE webhooks SET is_active = TRUE, disabled_reason = NULL WHERE id = {hook}; \
             UPDATE webhook_deliveries SET next_attempt_at = now() \
             WHERE webhook_id = {hook} AND status IN ('pending', 'retrying') \
               AND next_attempt_at IS NULL"
        ),
    )
    .await;
    let store = s.store.clone();
    let retry = outcome_of(
        &claimed,
        lease,
        AttemptResult::Retry {
            status_code: Some(503),
            error: "busy".into(),
            next_attempt_at: Utc::now(),
        },
    );
    let recording =
        tokio::spawn(async move { store.record_attempts(&[retry], None, Utc::now()).await });
    // Recorded at once (as before), or waiting for the switch (as now).
    while !recording.is_finished() && testing::waiting_for_locks(&url).await < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    switching_on.commit().await;
    recording.await.unwrap().unwrap();

    let log = s.store.webhook_deliveries(hook, None, 10).await.unwrap();
    assert_eq!(log[0].status, DeliveryStatus::Retrying);
    assert!(
        log[0].next_attempt_at.is_some(),
        "parked under a webhook that is on"
    );
}

/// PostgreSQL: an event fanned out while its webhook is being switched off. The fan-out read
/// the webhook as on and queued a delivery after the switch-off had parked the others: due,
/// never claimed while the webhook is off, and keeping its event (a message's text) past the
/// outbox's retention for as long. The fan-out now waits for the switch-off and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_fanned_out_as_its_webhook_is_switched_off_is_not_queued() {
    let Some((_db, url)) = testing::TestDb::create(TestEngine::Postgres).await else {
        return;
    };
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let hook = hooked(&s).await;
    let events = posted(&s, 1).await;
    let switching_off = testing::HeldLocks::take(
        &url,
        &format!("UPDATE webhooks SET is_active = FALSE WHERE id = {hook}"),
    )
    .await;
    let store = s.store.clone();
    let fanning = tokio::spawn(async move { store.fan_out_deliveries(&events, Utc::now()).await });
    // Either it waits for the switch-off (as it should), or it is done already.
    while !fanning.is_finished() && testing::waiting_for_locks(&url).await < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    switching_off.commit().await;
    assert_eq!(
        fanning.await.unwrap().unwrap(),
        0,
        "queued for a webhook switched off"
    );
}
