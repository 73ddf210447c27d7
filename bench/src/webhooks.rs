//! The webhook benchmark: one organization with `webhooks` webhooks (all subscribed to
//! `message.created`) pointing at a local receiver in this process, `messages` messages
//! posted through the store, and the worker's real job pipeline (the single-node in-process
//! shape, or the scale-out shape with JetStream) delivering them. Prints deliveries per second
//! and the event-to-receipt lag.
//!
//! Backlog mode (no `--rate`) posts everything first and times the drain; with `--rate` the
//! messages are posted at that pace while the worker runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use chatboard_core::config::WebhookSettings;
use chatboard_core::model::AccessLevel;
use chatboard_store::{NewMessage, NewRoom, NewUser, NewWebhook, Store};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use testing::{TestDb, TestEngine};

/// What one run is asked to do.
pub struct Plan {
    /// sqlite (a scratch file) or postgres (a scratch database on DATABASE_URL's server).
    pub engine: TestEngine,
    /// With NATS: the scale-out pipeline (relay → JetStream → consumer); without: in-process.
    pub nats_url: Option<String>,
    /// Webhooks subscribed.
    pub webhooks: usize,
    /// Messages posted.
    pub messages: usize,
    /// Messages per second, or everything up front.
    pub rate: Option<f64>,
    /// Requests in flight at once (`CHATBOARD_WEBHOOK_CONCURRENCY`).
    pub concurrency: u32,
}

/// What the receiver saw.
struct Tally {
    received: AtomicU64,
    lag_ms: Mutex<Histogram<u64>>,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

async fn receive(tally: Arc<Tally>, body: Bytes) -> &'static str {
    let now = Instant::now();
    let created = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["created_at"].as_str().map(str::to_owned))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    if let Some(created) = created {
        let lag = (Utc::now() - created.with_timezone(&Utc))
            .num_milliseconds()
            .max(0) as u64;
        if let Ok(mut h) = tally.lag_ms.lock() {
            let _ = h.record(lag);
        }
    }
    if let Ok(mut first) = tally.first.lock() {
        first.get_or_insert(now);
    }
    if let Ok(mut last) = tally.last.lock() {
        *last = Some(now);
    }
    tally.received.fetch_add(1, Ordering::Relaxed);
    "ok"
}

/// Runs the benchmark and prints its result.
pub async fn run(plan: Plan) -> anyhow::Result<()> {
    let (_db, url) = TestDb::create(plan.engine)
        .await
        .context("postgres needs DATABASE_URL (a server where the user may create databases)")?;
    let store = chatboard_store::connect(&url, 8).await?;
    store.migrate().await?;
    let tally = Arc::new(Tally {
        received: AtomicU64::new(0),
        lag_ms: Mutex::new(Histogram::new(3)?),
        first: Mutex::new(None),
        last: Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(axum::routing::post({
        let tally = tally.clone();
        move |body: Bytes| receive(tally.clone(), body)
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (room, author, _org) = population(&store, &receiver, plan.webhooks).await?;
    let expected = (plan.messages * plan.webhooks) as u64;

    let settings = WebhookSettings {
        allow_private: true,
        concurrency: plan.concurrency,
        ..WebhookSettings::default()
    };
    let metrics = Arc::new(worker::service::WorkerMetrics::new()?);
    let parts = || worker::runtime::Parts {
        store: store.clone(),
        presence: Arc::new(chatboard_core::presence::LocalPresence::new()),
        webhooks: settings,
        email: chatboard_core::config::EmailSettings::default(),
        email_timing: worker::mail::EmailTiming::default(),
        objects: None,
        metrics: metrics.clone(),
    };
    let start_pipeline = || async {
        match &plan.nats_url {
            Some(nats) => {
                // As the services connect: credentials in the URL, several servers.
                let client = chatboard_core::bus::connect_options(nats)
                    .connect(chatboard_core::bus::server_list(nats).as_slice())
                    .await?;
                let prefix = format!("bench{}", std::process::id());
                let queue = Arc::new(worker::queue::NatsJobQueue::start(client, &prefix).await?);
                let running = worker::runtime::start_scale_out(parts(), queue.clone())?;
                anyhow::Ok((running, Some(queue)))
            }
            None => Ok((worker::runtime::start_in_process(parts())?, None)),
        }
    };
    let started;
    let running;
    match plan.rate {
        None => {
            post(&store, room, author, plan.messages).await?;
            started = Instant::now();
            running = start_pipeline().await?;
        }
        Some(rate) => {
            running = start_pipeline().await?;
            started = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut tick = tokio::time::interval(gap);
            for _ in 0..plan.messages {
                tick.tick().await;
                post(&store, room, author, 1).await?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while tally.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let received = tally.received.load(Ordering::Relaxed);
    let (running, queue) = running;
    running.shut_down().await;
    if let Some(queue) = queue {
        let _ = queue.delete().await;
    }
    let (p50, p99, max) = {
        let lag = tally
            .lag_ms
            .lock()
            .map_err(|_| anyhow::anyhow!("lag lock"))?;
        (
            lag.value_at_quantile(0.5),
            lag.value_at_quantile(0.99),
            lag.max(),
        )
    };
    let first = *tally.first.lock().map_err(|_| anyhow::anyhow!("lock"))?;
    let last = *tally.last.lock().map_err(|_| anyhow::anyhow!("lock"))?;
    let window = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    println!(
        "| {} | {} | {} webhooks | {} messages | {} | {received}/{expected} delivered | {:.0} deliveries/s (from start {:.0}/s) | lag p50 {} ms, p99 {} ms, max {} ms |",
        match plan.engine {
            TestEngine::Sqlite => "sqlite",
            TestEngine::Postgres => "postgres",
        },
        if plan.nats_url.is_some() { "jetstream" } else { "in-process" },
        plan.webhooks,
        plan.messages,
        plan.rate.map_or("backlog".to_owned(), |r| format!("{r} msg/s")),
        received as f64 / window.as_secs_f64().max(1e-9),
        received as f64 / elapsed.as_secs_f64().max(1e-9),
        p50,
        p99,
        max,
    );
    anyhow::ensure!(
        received >= expected,
        "only {received} of {expected} deliveries arrived"
    );
    store.close().await;
    Ok(())
}

/// A user, an org, a room, and the webhooks; returns (room, author, org).
async fn population(
    store: &Arc<dyn Store>,
    receiver: &str,
    webhooks: usize,
) -> anyhow::Result<(i64, i64, i64)> {
    let now = Utc::now();
    let user = store
        .create_user(
            NewUser {
                email: "bench@example.com".into(),
                password_hash: "!".into(),
                first_name: String::new(),
                last_name: String::new(),
            },
            now,
        )
        .await?;
    let org = store.create_org(user.id, "Bench", now).await?;
    let room = store
        .create_room(
            NewRoom {
                org_id: org.id,
                name: "hooks".into(),
                access_level: AccessLevel::Public,
                created_by: user.id,
            },
            now,
        )
        .await?;
    // Only the messages count: hand the setup events over now.
    let setup: Vec<i64> = store
        .outbox_unpublished(100)
        .await?
        .iter()
        .map(|e| e.position)
        .collect();
    store.mark_published(&setup, now).await?;
    for i in 0..webhooks {
        store
            .create_webhook(
                NewWebhook {
                    org_id: org.id,
                    url: format!("{receiver}/hook/{i}"),
                    events: vec!["message.created".into()],
                    secret: format!("whsec_bench_{i}"),
                    is_active: true,
                    managed: false,
                    max_attempts: None,
                    created_by: None,
                },
                now,
            )
            .await?;
    }
    Ok((room.id, user.id, org.id))
}

async fn post(store: &Arc<dyn Store>, room: i64, sender: i64, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        store
            .post_message(
                NewMessage {
                    file: None,
                    room_id: room,
                    sender_id: sender,
                    body: format!("webhook bench {i}"),
                    client_msg_id: None,
                    parent_id: None,
                    mentions: Default::default(),
                },
                Utc::now(),
            )
            .await?;
    }
    Ok(())
}
