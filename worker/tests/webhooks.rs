//! Webhook delivery end to end against a real receiver: events posted through the store are
//! relayed, fanned out to the webhooks that want them and delivered signed; failures are
//! retried with backoff, attempts are bounded, 410 switches a webhook off, non-public targets
//! are refused, and a receiver that was down gets everything once it is back. Both engines in
//! the single-node shape; PostgreSQL with JetStream and two worker replicas in the scale-out
//! shape. (The store's fan-out and claims alone: `webhook_fan_out.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chatboard_core::config::WebhookSettings;
use chatboard_core::model::DeliveryStatus;
use chatboard_store::Store;
use common::receiver::{Received, Receiver};
use common::{db, in_process, parts, post, settings, settle_outbox, setup, webhook};
use testing::{nats_url, unique_prefix, RefusedPort, TestDb, TestEngine};
use worker::queue::NatsJobQueue;
use worker::runtime::start_scale_out;

/// Waits until `done` holds for the webhook's delivery log.
async fn wait_for_log(
    store: &Arc<dyn Store>,
    hook: i64,
    done: impl Fn(&[chatboard_core::model::WebhookDelivery]) -> bool,
) -> Vec<chatboard_core::model::WebhookDelivery> {
    for _ in 0..500 {
        let log = store.webhook_deliveries(hook, None, 100).await.unwrap();
        if done(&log) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "delivery log never got there: {:?}",
        store.webhook_deliveries(hook, None, 100).await.unwrap()
    );
}

fn message_ids(got: &[Received], path: &str) -> HashSet<i64> {
    got.iter()
        .filter(|r| r.path == path && r.event == "message.created")
        .filter_map(|r| r.body["data"]["id"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_signed_to_the_webhooks_that_want_them_sqlite() {
    events_are_delivered_signed(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_signed_to_the_webhooks_that_want_them_postgres() {
    events_are_delivered_signed(TestEngine::Postgres).await;
}

async fn events_are_delivered_signed(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    let rx = Receiver::start().await;
    let messages_only = webhook(
        &s.store,
        s.org,
        &rx.url("/messages", "k1"),
        &["message.created"],
        "k1",
    )
    .await;
    let everything = webhook(&s.store, s.org, &rx.url("/all", "k2"), &["*"], "k2").await;
    let _joins_only = webhook(
        &s.store,
        s.org,
        &rx.url("/joins", "k3"),
        &["member.joined"],
        "k3",
    )
    .await;
    let running = in_process(&s.store, settings());
    post(&s.store, s.room, s.author, 10).await;

    let got = rx
        .wait_for(Duration::from_secs(20), |got| {
            message_ids(got, "/messages").len() == 10 && message_ids(got, "/all").len() == 10
        })
        .await;
    assert!(
        got.iter().all(|r| r.signature_ok),
        "every signature verifies: {got:?}"
    );
    assert!(
        got.iter().all(|r| r.path != "/joins"),
        "member.joined only: {got:?}"
    );
    let first = got.iter().find(|r| r.path == "/messages").unwrap();
    let body = &first.body;
    assert_eq!(body["type"], "message.created");
    assert_eq!(body["org_id"], s.org);
    assert!(
        body["id"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    assert!(body["created_at"].as_str().is_some(), "{body}");
    assert_eq!(body["data"]["room"], s.room);
    assert!(first.delivery.parse::<i64>().is_ok(), "{first:?}");
    // Each request is its own delivery; the room's creation (before the webhooks) is not sent.
    let deliveries: HashSet<&str> = got.iter().map(|r| r.delivery.as_str()).collect();
    assert_eq!(deliveries.len(), got.len());

    let log = wait_for_log(&s.store, messages_only, |log| {
        log.len() == 10 && log.iter().all(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    assert!(
        log.iter().all(|d| d.attempts == 1
            && d.last_status_code == Some(200)
            && d.delivered_at.is_some()
            && d.next_attempt_at.is_none()),
        "{log:?}"
    );
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let older = s
        .store
        .webhook_deliveries(messages_only, Some(log[4].id), 100)
        .await
        .unwrap();
    assert_eq!(older.len(), 5);
    assert_eq!(
        s.store
            .webhook_deliveries(everything, None, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_until_the_target_accepts() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = webhook(&s.store, s.org, &rx.url("/flaky", "k"), &["*"], "k").await;
    rx.script(&[500, 503, 502]);
    let running = in_process(&s.store, settings());
    post(&s.store, s.room, s.author, 1).await;

    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    assert_eq!(log[0].attempts, 4, "{log:?}");
    assert_eq!(log[0].last_status_code, Some(200));
    assert_eq!(log[0].last_error, None);
    let got = rx.received();
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 503, 502, 200]
    );
    // Every attempt is the same delivery of the same event, freshly signed.
    assert!(got
        .iter()
        .all(|r| r.delivery == got[0].delivery && r.body["id"] == got[0].body["id"]));
    assert!(got.iter().all(|r| r.signature_ok));
    running.shut_down().await;
}

/// A receiver answering the next requests with `codes`, and a webhook of the setup's organization
/// taking `message.created` at its `path`.
async fn scripted_hook(s: &common::Setup, path: &str, codes: &[u16]) -> (Receiver, i64) {
    scripted_hook_of(s, path, &["message.created"], codes).await
}

/// [`scripted_hook`] for a webhook taking `events`.
async fn scripted_hook_of(
    s: &common::Setup,
    path: &str,
    events: &[&str],
    codes: &[u16],
) -> (Receiver, i64) {
    let rx = Receiver::start().await;
    let hook = webhook(&s.store, s.org, &rx.url(path, "k"), events, "k").await;
    rx.script(codes);
    (rx, hook)
}

/// A test delivery is retried like any other, though its webhook takes no `webhook.test`
/// events (few do): it was given up after its first failure as "no longer among the webhook's
/// events", which a test is never among.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_delivery_is_retried_until_the_target_accepts() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let (_rx, hook) = scripted_hook(&s, "/flaky", &[503]).await;
    let running = in_process(&s.store, settings());
    s.store
        .create_test_delivery(hook, None, chrono::Utc::now())
        .await
        .unwrap();
    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| matches!(d.status, DeliveryStatus::Delivered | DeliveryStatus::Failed))
    })
    .await;
    assert_eq!(log[0].event_type, "webhook.test");
    assert_eq!(log[0].status, DeliveryStatus::Delivered, "{log:?}");
    assert_eq!(log[0].attempts, 2, "{log:?}");
    running.shut_down().await;
}

/// A message deleted while its delivery waits for a retry is not sent after all: a deleted
/// message keeps nothing of what it said, and the retries (for hours, with a target down)
/// carried its text to the target long after the deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_before_its_delivery_is_not_sent() {
    deleted_before_delivery(false).await;
}

/// The same with the message's room deleted: its messages wait for their purge, and the
/// delivery must not take one of them for a message still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_room_was_deleted_is_not_sent() {
    deleted_before_delivery(true).await;
}

/// Posts a message with a secret in it, and waits until its delivery to `hook` (whose target
/// refuses it) has been tried once.
async fn secret_tried_once(s: &common::Setup, hook: i64) -> chatboard_core::model::Message {
    tried_once(s, hook, "the password is hunter2", Default::default()).await
}

/// Posts `body`, mentioning `mentions`, and waits until its delivery to `hook` (whose target
/// refuses it) has been tried once.
async fn tried_once(
    s: &common::Setup,
    hook: i64,
    body: &str,
    mentions: chatboard_store::Mentioned,
) -> chatboard_core::model::Message {
    let message = chatboard_store::NewMessage {
        file: None,
        room_id: s.room,
        sender_id: s.author,
        body: body.into(),
        client_msg_id: None,
        parent_id: None,
        mentions,
    };
    let (posted, _) = s
        .store
        .post_message(message, chrono::Utc::now())
        .await
        .unwrap();
    wait_for_log(&s.store, hook, |log| {
        log.first().is_some_and(|d| d.attempts >= 1)
    })
    .await;
    posted
}

/// Stops the worker, so that no attempt is under way as the edit lands, edits the message to
/// `body` (mentioning no one), and starts a new worker, which takes the delivery up after it.
async fn edited_while_stopped(
    s: &common::Setup,
    running: worker::runtime::Running,
    message: i64,
    body: &str,
) -> worker::runtime::Running {
    running.shut_down().await;
    s.store
        .edit_message(
            s.room,
            message,
            body,
            &Default::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    in_process(&s.store, settings())
}

/// A message posted while its webhook's target is down, then deleted (or its room, when
/// `room`): its delivery fails as deleted before its attempts run out.
async fn deleted_before_delivery(room: bool) {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let (_rx, hook) = scripted_hook(&s, "/down", &[503; 100]).await;
    let running = in_process(&s.store, settings());
    let posted = secret_tried_once(&s, hook).await;
    if room {
        s.store.delete_room(s.room, s.author).await.unwrap();
    } else {
        s.store
            .delete_message(s.room, posted.id, s.author, chrono::Utc::now())
            .await
            .unwrap();
    }
    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(
        log[0].last_error.as_deref(),
        Some("the message was deleted"),
        "{log:?}"
    );
    assert!(
        log[0].attempts < 8,
        "given up before its attempts ran out: {log:?}"
    );
    running.shut_down().await;
}

/// A message edited while its delivery waits for a retry goes out as it stands: a secret posted
/// by mistake and edited out is not carried to the target by the retries after the edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_edited_before_its_delivery_is_sent_as_edited() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let (rx, hook) = scripted_hook(&s, "/flaky", &[503, 503]).await;
    let running = in_process(&s.store, settings());
    let posted = secret_tried_once(&s, hook).await;
    let seen_before_edit = rx.received().len();
    let running =
        edited_while_stopped(&s, running, posted.id, "the password is in the vault").await;
    wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    let after: Vec<_> = rx.received().into_iter().skip(seen_before_edit).collect();
    assert!(!after.is_empty());
    for got in &after {
        assert_eq!(got.body["type"], "message.created", "{:?}", got.body);
        assert_eq!(
            got.body["data"]["body"], "the password is in the vault",
            "{:?}",
            got.body
        );
        assert!(got.body["data"]["edited_at"].is_string(), "{:?}", got.body);
    }
    running.shut_down().await;
}

/// A mention an edit took away is not delivered after the edit: it would tell of a mention that
/// no longer is, with text that no longer names the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_edited_out_before_its_delivery_is_not_sent_on_sqlite() {
    mention_edited_out(TestEngine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_edited_out_before_its_delivery_is_not_sent_on_postgres() {
    mention_edited_out(TestEngine::Postgres).await;
}

async fn mention_edited_out(engine: TestEngine) {
    let Some((_db, s)) = db(engine).await else {
        return;
    };
    let bob = common::member(&s, "bob@example.com", "Bob").await;
    let (_rx, hook) = scripted_hook_of(&s, "/down", &["message.mentioned"], &[503; 100]).await;
    let running = in_process(&s.store, settings());
    let mention = chatboard_store::Mentioned {
        named: vec![bob],
        everyone: vec![bob],
    };
    let posted = tried_once(&s, hook, "@bob@example.com can you look?", mention).await;
    let running = edited_while_stopped(&s, running, posted.id, "never mind").await;
    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(
        log[0].last_error.as_deref(),
        Some("the mention was edited out"),
        "{log:?}"
    );
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_bounded_and_the_last_error_kept() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = webhook(&s.store, s.org, &rx.url("/down", "k"), &["*"], "k").await;
    rx.script(&[503; 10]);
    let running = in_process(
        &s.store,
        WebhookSettings {
            max_attempts: 3,
            ..settings()
        },
    );
    post(&s.store, s.room, s.author, 1).await;

    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(log[0].attempts, 3);
    assert_eq!(log[0].last_status_code, Some(503));
    assert_eq!(log[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(log[0].next_attempt_at, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 3, "no attempt after the last");
    // The webhook itself stays on: the next event is tried again.
    assert!(s.store.webhook(hook).await.unwrap().unwrap().is_active);
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_switches_the_webhook_off() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = webhook(&s.store, s.org, &rx.url("/gone", "k"), &["*"], "k").await;
    rx.script(&[410]);
    let running = in_process(&s.store, settings());
    post(&s.store, s.room, s.author, 1).await;

    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!((log[0].attempts, log[0].last_status_code), (1, Some(410)));
    let hook_now = s.store.webhook(hook).await.unwrap().unwrap();
    assert!(!hook_now.is_active);
    assert!(hook_now.disabled_reason.unwrap().contains("410"));
    // Nothing more is queued or sent to it.
    post(&s.store, s.room, s.author, 3).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(
        s.store
            .webhook_deliveries(hook, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_targets_time_out_and_are_retried() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = webhook(&s.store, s.org, &rx.url("/slow", "k"), &["*"], "k").await;
    rx.set_delay(Duration::from_millis(1500));
    let running = in_process(
        &s.store,
        WebhookSettings {
            timeout: Duration::from_secs(1),
            max_attempts: 2,
            ..settings()
        },
    );
    post(&s.store, s.room, s.author, 1).await;
    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(log[0].attempts, 2);
    assert_eq!(log[0].last_status_code, None);
    assert_eq!(log[0].last_error.as_deref(), Some("no answer within 1 s"));
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_at_delivery() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    let rx = Receiver::start().await;
    // Stored directly, as if it had been checked when the name still resolved elsewhere.
    let by_ip = webhook(&s.store, s.org, &rx.url("/ip", "k"), &["*"], "k").await;
    let port = rx.base.rsplit(':').next().unwrap().to_owned();
    let by_name = webhook(
        &s.store,
        s.org,
        &format!("http://localhost:{port}/name"),
        &["*"],
        "k",
    )
    .await;
    // A name that resolves nowhere: its log reads as the private name's does, so that admins
    // cannot tell which internal names exist (a public name of theirs may be a CNAME to one).
    let nowhere = webhook(
        &s.store,
        s.org,
        "http://no-such-host.invalid/name",
        &["*"],
        "k",
    )
    .await;
    let running = in_process(
        &s.store,
        WebhookSettings {
            allow_private: false,
            max_attempts: 1,
            ..settings()
        },
    );
    post(&s.store, s.room, s.author, 1).await;
    let mut errors = Vec::new();
    for (hook, expected) in [
        (by_ip, "127.0.0.1 is not a public address"),
        (
            by_name,
            "localhost is not a public internet address, or does not resolve",
        ),
        (
            nowhere,
            "no-such-host.invalid is not a public internet address, or does not resolve",
        ),
    ] {
        let log = wait_for_log(&s.store, hook, |log| {
            log.first()
                .is_some_and(|d| d.status == DeliveryStatus::Failed)
        })
        .await;
        let error = log[0].last_error.clone().unwrap();
        assert!(error.contains(expected), "{error}");
        errors.push(error);
    }
    assert_eq!(
        errors[1].replace("localhost", "no-such-host.invalid"),
        errors[2],
        "one wording for both"
    );
    assert!(
        rx.received().is_empty(),
        "nothing reached the private address"
    );
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_everything_once_back() {
    let Some((_db, s)) = db(TestEngine::Sqlite).await else {
        return;
    };
    // A port nobody listens on yet, held so that no other test's server is given it:
    // connections are refused.
    let port = RefusedPort::new();
    let addr = port.addr();
    let hook = webhook(
        &s.store,
        s.org,
        &format!("http://{addr}/back"),
        &["message.created"],
        "k",
    )
    .await;
    let running = in_process(
        &s.store,
        WebhookSettings {
            backoff_base: Duration::from_millis(100),
            ..settings()
        },
    );
    post(&s.store, s.room, s.author, 20).await;
    wait_for_log(&s.store, hook, |log| {
        log.len() == 20 && log.iter().all(|d| d.status == DeliveryStatus::Retrying)
    })
    .await;
    let log = s.store.webhook_deliveries(hook, None, 100).await.unwrap();
    assert!(
        log[0]
            .last_error
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{log:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    let rx = Receiver::start_on(port).await;
    rx.url("/back", "k");
    let got = rx
        .wait_for(Duration::from_secs(30), |got| {
            message_ids(got, "/back").len() == 20
        })
        .await;
    assert!(got.iter().all(|r| r.signature_ok));
    wait_for_log(&s.store, hook, |log| {
        log.iter().all(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scale_out_workers_deliver_every_event() {
    let Some(nats) = nats_url() else { return };
    let Some((_db, s)) = db(TestEngine::Postgres).await else {
        return;
    };
    let (rx, hook) = scripted_hook(&s, "/pair", &[500; 5]).await;
    let prefix = unique_prefix();
    let mut replicas = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..2 {
        let client = async_nats::connect(&nats).await.unwrap();
        let queue = Arc::new(NatsJobQueue::start(client, &prefix).await.unwrap());
        queues.push(queue.clone());
        replicas.push(start_scale_out(parts(&s.store, settings()), queue).unwrap());
    }
    post(&s.store, s.room, s.author, 60).await;
    rx.wait_for(Duration::from_secs(30), |got| {
        message_ids(got, "/pair").len() == 60
    })
    .await;
    let log = wait_for_log(&s.store, hook, |log| {
        log.len() == 60 && log.iter().all(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    // Leases keep the replicas off each other's deliveries: one success per event.
    let successes = rx.received().iter().filter(|r| r.answered == 200).count();
    assert_eq!(successes, 60);
    assert_eq!(log.iter().map(|d| d.attempts).sum::<i32>(), 65);
    for replica in replicas {
        replica.shut_down().await;
    }
    let mut pending = u64::MAX;
    for _ in 0..100 {
        pending = queues[0].pending().await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0, "every job was consumed");
    queues[0].delete().await.unwrap();
}

/// The database goes away while an attempt is under way, for longer than the recorder used to
/// keep trying (about 1.5 s); once it is back, the outcome is recorded, and the target got the
/// event once. (The recorder gave the outcome up; the claim lapsed and the event was sent
/// again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_waits_for_the_database_to_come_back() {
    let Some((_db, url)) = TestDb::create(TestEngine::Sqlite).await else {
        return;
    };
    let s = setup(&url).await;
    settle_outbox(&s.store).await;
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(500));
    let hook = webhook(&s.store, s.org, &rx.url("/once", "k"), &["*"], "k").await;
    // Timeout 1 s: the claim used to last 3 s, now 13 s.
    let running = in_process(
        &s.store,
        WebhookSettings {
            timeout: Duration::from_secs(1),
            ..settings()
        },
    );
    post(&s.store, s.room, s.author, 1).await;
    for _ in 0..500 {
        if rx.max_in_flight() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rx.max_in_flight() > 0, "the attempt never started");
    // The deliveries' table is out of reach for 5 s, while the target answers.
    testing::execute_sql(
        &url,
        "ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_away",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    testing::execute_sql(
        &url,
        "ALTER TABLE webhook_deliveries_away RENAME TO webhook_deliveries",
    )
    .await;
    let log = wait_for_log(&s.store, hook, |log| {
        log.first()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    assert_eq!(log[0].attempts, 1, "{log:?}");
    assert_eq!(rx.received().len(), 1, "sent again");
    running.shut_down().await;
}
