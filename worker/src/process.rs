//! `worker`: background jobs for the scale-out shape: the outbox relay into the JetStream job
//! queue, the jobs (webhook deliveries queued per event) and the webhook dispatcher. Run as many
//! replicas as you like: jobs are de-duplicated by event id and deliveries are claimed under a
//! lease.
//!
//! The process itself lives here, in the library, so that one binary can be every service (see
//! the `chatboard` binary and the Dockerfile).

use std::sync::Arc;

use futures::FutureExt;

use crate::mail::EmailTiming;
use crate::queue::NatsJobQueue;
use crate::runtime::{start_scale_out, Parts};
use crate::service::{router, ServiceState, SmtpProbe, WorkerMetrics};
use anyhow::Context;
use chatboard_core::config::{redact_url, ConfigError, Env};

use crate::config::WorkerConfig;
use chatboard_core::presence::{NatsPresence, PresenceSettings};

/// Runs the `worker` process until SIGTERM; what its binary's `main` (and the image's
/// multi-call `chatboard` binary, when invoked as `worker`) does.
pub async fn run() -> anyhow::Result<()> {
    chatboard_core::telemetry::init_logging();
    let config = Env::from_process()
        .and_then(|env| WorkerConfig::from_env(&env, std::env::args_os().skip(1)))
        .map_err(ConfigError::exit_on_command_line)
        .context("invalid configuration")?;
    // Migrations are the api-server's job.
    let store = chatboard_store::open(&config.database).await?;
    // As the other services': the URL's credentials, and a silent link noticed within 30 s.
    let nats = chatboard_core::bus::connect_options(&config.nats_url)
        .name("chatboard-worker")
        .connect(chatboard_core::bus::server_list(&config.nats_url).as_slice())
        .await
        .with_context(|| format!("NATS {}", redact_url(&config.nats_url)))?;
    let queue = NatsJobQueue::start_replicated(
        nats.clone(),
        &config.nats.nats_prefix,
        config.nats.stream_replicas(),
    )
    .await
    .context("creating the job stream")?
    .with_outbox(store.clone());
    // Presence tells the digest job who is offline; the worker only reads it.
    let presence = NatsPresence::start(
        nats.clone(),
        &config.nats.nats_prefix,
        PresenceSettings {
            ttl: config.nats.presence_ttl,
            replicas: config.nats.stream_replicas(),
        },
    )
    .await
    .context("opening the presence bucket")?;
    let metrics = Arc::new(WorkerMetrics::new()?);
    // The worker deletes files; it never signs URLs, so it needs no signing key.
    let storage = objects::from_settings(&config.uploads, &[], None).0;
    let running = start_scale_out(
        Parts {
            store: store.clone(),
            presence: Arc::new(presence),
            webhooks: config.webhooks,
            email: config.email.clone(),
            email_timing: EmailTiming::default(),
            objects: storage.clone(),
            metrics: metrics.clone(),
        },
        Arc::new(queue),
    )?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    let stop = chatboard_core::shutdown::signal().shared();
    tracing::info!(%addr, "worker running; health and metrics on http://{addr}/");
    println!("ChatBoard worker is running (health and metrics at http://{addr}/)");
    let app = router(ServiceState {
        store: store.clone(),
        nats,
        metrics,
        smtp: config.email.smtp_url.clone().map(SmtpProbe::new),
        objects: storage,
    });
    // On the signal the tasks stop at once, alongside the listener's drain rather than after
    // it: the relay round, the webhook attempts and the email in flight finish, and the mailer
    // hands back the rest of its batch, within the pod's grace.
    let tasks = {
        let stop = stop.clone();
        async move {
            stop.await;
            running.shut_down().await;
        }
    };
    let serving = chatboard_core::http_server::serve(listener, app, config.http, stop);
    tokio::pin!(serving, tasks);
    let mut tasks_done = false;
    let served = tokio::select! {
        served = &mut serving => served,
        () = &mut tasks => {
            tasks_done = true;
            serving.await
        }
    };
    // A listener that failed ends the process; the tasks go with it.
    served?;
    if !tasks_done {
        tasks.await;
    }
    store.close().await;
    Ok(())
}
