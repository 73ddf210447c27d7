//! `worker`: background jobs for the scale-out shape. So far it relays the outbox into the
//! JetStream job queue; run as many replicas as you like (jobs are de-duplicated by event id).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatboard_core::config::{redact_url, Env, WorkerConfig};
use worker::queue::NatsJobQueue;
use worker::relay::Relay;
use worker::service::{router, watch_backlog, ServiceState, WorkerMetrics};

/// Events handed over per relay round.
const RELAY_BATCH: u32 = 500;
/// Pause between rounds when the outbox is empty.
const RELAY_IDLE: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chatboard_core::telemetry::init_logging();
    let config = WorkerConfig::from_env(&Env::from_process()).context("invalid configuration")?;
    // Migrations are the api-server's job.
    let store = chatboard_core::store::connect(&config.database_url, config.db_max_connections)
        .await
        .with_context(|| format!("database {}", redact_url(&config.database_url)))?;
    let nats = async_nats::ConnectOptions::new()
        .name("chatboard-worker")
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("NATS {}", redact_url(&config.nats_url)))?;
    let queue = NatsJobQueue::start(nats.clone(), &config.nats_prefix)
        .await
        .context("creating the job stream")?;
    let metrics = Arc::new(WorkerMetrics::new()?);
    let backlog = tokio::spawn(watch_backlog(
        store.clone(),
        metrics.clone(),
        Duration::from_secs(5),
    ));
    let relay = Relay::new(store.clone(), Arc::new(queue), RELAY_BATCH);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let relaying = tokio::spawn(relay.run(metrics.clone(), RELAY_IDLE, async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "worker running; health and metrics on http://{addr}/");
    println!("ChatBoard worker is running (health and metrics at http://{addr}/)");
    let app = router(ServiceState {
        store: store.clone(),
        nats,
        metrics,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(chatboard_core::shutdown::signal())
        .await?;
    // Finish the round in progress, then stop.
    let _ = stop_tx.send(true);
    let _ = relaying.await;
    backlog.abort();
    store.close().await;
    Ok(())
}
