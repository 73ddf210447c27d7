//! The `worker` binary: configuration errors; relaying a real database's outbox into JetStream
//! and running the jobs, with health and metrics served.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatboard_core::model::DeliveryStatus;

use common::receiver::Receiver;
use common::{post, settle_outbox, setup, store_with_room, webhook};
use testing::process::{base_url_in, Service};
use testing::{nats_url, unique_prefix, RefusedPort, TestDb, TestEngine};
use worker::queue::NatsJobQueue;

fn worker() -> Command {
    testing::process::bare_command(env!("CARGO_BIN_EXE_worker"), &std::env::temp_dir())
}

#[test]
fn missing_settings_are_named() {
    for (env, missing) in [
        (vec![("NATS_URL", "nats://127.0.0.1:4222")], "DATABASE_URL"),
        (vec![("DATABASE_URL", "sqlite://x.db")], "NATS_URL"),
        (
            vec![("DATABASE_URL", "sqlite://x.db"), ("NATS_URL", "http://x")],
            "NATS_URL",
        ),
    ] {
        let out = worker().envs(env).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(missing), "{missing}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_the_outbox_and_reports_it() {
    let Some(nats_url) = nats_url() else { return };
    let Some((_db, db_url)) = TestDb::create(TestEngine::Postgres).await else {
        return;
    };
    let (store, room, author) = store_with_room(&db_url).await;
    post(&store, room, author, 20).await;
    let (waiting, _) = store.outbox_backlog().await.unwrap();
    assert!(waiting >= 21);

    let prefix = unique_prefix();
    let dead_smtp = RefusedPort::new();
    let mut cmd = worker();
    cmd.env("DATABASE_URL", &db_url)
        .env("NATS_URL", &nats_url)
        .env("CHATBOARD_NATS_PREFIX", &prefix)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        // Nobody listens there: readiness reports it without failing on it.
        .env("CHATBOARD_SMTP_URL", format!("smtp://{}", dead_smtp.addr()))
        .env("CHATBOARD_HTTP_HEADER_TIMEOUT_MS", "300")
        .stderr(Stdio::null());
    let mut child = Service::start(cmd);
    // Logs are JSON lines on stdout too; the banner is the plain one.
    let banner = child.wait_for("its banner", |line| {
        line.starts_with("ChatBoard worker is running")
    });
    let base = base_url_in(&banner).expect("the banner names the address");
    testing::slow_client::assert_half_a_head_is_hung_up_on(&base).await;

    let mut relayed = false;
    for _ in 0..100 {
        if store.outbox_backlog().await.unwrap().0 == 0 {
            relayed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(relayed, "the outbox emptied");
    let client = async_nats::connect(&nats_url).await.unwrap();
    let queue = NatsJobQueue::start(client, &prefix).await.unwrap();
    // The worker's own consumer runs the jobs: the work queue empties.
    let mut pending = u64::MAX;
    for _ in 0..100 {
        pending = queue.pending().await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "every job was consumed");
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let checks: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        checks["checks"],
        serde_json::json!({"database": "ok", "nats": "ok", "smtp": "error"})
    );
    let metrics = testing::process::scrape(&base).await;
    assert!(
        metrics.contains(&format!("chatboard_outbox_relayed_total {waiting}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("chatboard_jobs_total{result=\"ok\",type=\"message.created\"} 20"),
        "{metrics}"
    );
    for name in [
        "chatboard_webhook_backlog",
        "chatboard_webhook_attempts_total",
        "chatboard_webhook_request_seconds",
        "chatboard_webhook_delivery_lag_seconds",
        "chatboard_webhook_attempts_per_delivery",
    ] {
        assert!(metrics.contains(name), "{name} missing: {metrics}");
    }

    let status = child.stop();
    assert!(
        status.success(),
        "the worker stops cleanly on SIGTERM: {status}"
    );
    queue.delete().await.unwrap();
    store.close().await;
}

/// Starts the worker binary and returns it once it serves.
fn start_worker(db_url: &str, nats_url: &str, prefix: &str) -> Service {
    let mut cmd = worker();
    cmd.env("DATABASE_URL", db_url)
        .env("NATS_URL", nats_url)
        .env("CHATBOARD_NATS_PREFIX", prefix)
        .env("CHATBOARD_ADDR", "127.0.0.1:0")
        .env("CHATBOARD_WEBHOOK_ALLOW_PRIVATE", "true")
        // A 1 s timeout makes the claim lease 13 s, so a dead worker's claims lapse quickly.
        .env("CHATBOARD_WEBHOOK_TIMEOUT", "1")
        .env("CHATBOARD_WEBHOOK_BACKOFF_BASE_MS", "50")
        .env("CHATBOARD_WEBHOOK_CONCURRENCY", "4")
        .stderr(Stdio::null());
    let mut child = Service::start(cmd);
    child.wait_for("its banner", |line| {
        line.starts_with("ChatBoard worker is running")
    });
    child
}

/// A worker killed (SIGKILL) in the middle of a batch of deliveries: after a restart every
/// event reaches the receiver at least once, and every delivery ends delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_delivery() {
    let Some(nats_url) = nats_url() else { return };
    let Some((_db, db_url)) = TestDb::create(TestEngine::Postgres).await else {
        return;
    };
    let s = setup(&db_url).await;
    settle_outbox(&s.store).await;
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(100));
    let hook = webhook(
        &s.store,
        s.org,
        &rx.url("/crash", "k"),
        &["message.created"],
        "k",
    )
    .await;
    post(&s.store, s.room, s.author, 60).await;
    let prefix = unique_prefix();

    let first = start_worker(&db_url, &nats_url, &prefix);
    rx.wait_for(Duration::from_secs(30), |got| got.len() >= 12)
        .await;
    first.kill();
    let before = rx.received().len();
    let log = s.store.webhook_deliveries(hook, None, 100).await.unwrap();
    let unsettled = log
        .iter()
        .filter(|d| d.status != DeliveryStatus::Delivered)
        .count();
    assert!(
        before < 60 && unsettled > 0,
        "killed mid-batch: {before} received, {unsettled} unsettled"
    );

    let second = start_worker(&db_url, &nats_url, &prefix);
    let got = rx
        .wait_for(Duration::from_secs(60), |got| {
            got.iter()
                .filter_map(|r| r.body["data"]["id"].as_i64())
                .collect::<HashSet<_>>()
                .len()
                == 60
        })
        .await;
    assert!(got.iter().all(|r| r.signature_ok));
    let mut settled = false;
    for _ in 0..200 {
        let log = s.store.webhook_deliveries(hook, None, 100).await.unwrap();
        if log.len() == 60 && log.iter().all(|d| d.status == DeliveryStatus::Delivered) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "every delivery ends delivered");
    assert!(second.stop().success());
    let client = async_nats::connect(&nats_url).await.unwrap();
    NatsJobQueue::start(client, &prefix)
        .await
        .unwrap()
        .delete()
        .await
        .unwrap();
}
