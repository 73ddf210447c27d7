//! `chatboard`: the whole platform in one process on the embedded default (SQLite in a data
//! directory, in-process bus): the REST API and the WebSocket gateway on one port, and the
//! worker's jobs (webhook deliveries) in-process. It composes the same service libraries as the
//! scale-out binaries.
//!
//! Invoked under another service's name (`api-server`, `gateway`, `worker`, `operator`, e.g.
//! through a symlink) it is that service: the container image ships this one binary, linked
//! under each name, instead of five that mostly hold the same code.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use api_server::process::Command;
use chatboard_core::config::{ConfigError, Env};
use chatboard_core::presence::LocalPresence;

mod config;

use config::SingleNode;

/// mimalloc returns freed memory to the system shortly after a burst (glibc's arenas kept it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match invoked_as().as_deref() {
        Some("api-server") => api_server::process::run().await,
        Some("gateway") => gateway::process::run().await,
        Some("worker") => worker::process::run().await,
        Some("operator") => operator::process::run().await,
        _ => single_node().await,
    }
}

/// The name this binary was started under (argv[0] without directories or extension).
fn invoked_as() -> Option<String> {
    let arg0 = std::env::args_os().next()?;
    Path::new(&arg0).file_stem()?.to_str().map(str::to_owned)
}

/// The single node: API, gateway and jobs in this process.
async fn single_node() -> anyhow::Result<()> {
    let node = Env::from_process()
        .and_then(|env| SingleNode::from_env(&env, std::env::args_os().skip(1)))
        .map_err(ConfigError::exit_on_command_line)
        .context("invalid configuration")?;
    chatboard_core::telemetry::init_logging();
    let (config, data_dir) = (node.api, node.data_dir);
    if let Some(Command::Migrate) = node.command {
        let store = api_server::migrate(&config.database).await?;
        store.close().await;
        tracing::info!("migrations applied");
        return Ok(());
    }
    chatboard_core::open_files::raise_open_files_limit();
    let state = api_server::build_state(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "chatboard listening");
    // Before the banner: a SIGTERM from then on drains the node (see `shutdown::signal`).
    let stop = chatboard_core::shutdown::signal();
    println!(
        "ChatBoard is running at http://{addr}/  (API docs: http://{addr}/api/docs/, data: {})",
        data_dir.display()
    );
    // The gateway shares the API's actions (store, in-process bus, posting limits) and its port;
    // the worker's digest job reads the gateway's presence (who is offline).
    let presence: Arc<dyn chatboard_core::presence::Presence> = Arc::new(LocalPresence::new());
    let gateway = gateway::GatewayState::start(gateway::GatewayParts {
        chat: state.chat.clone(),
        tokens: state.tokens.clone(),
        presence: presence.clone(),
        settings: node.gateway,
        registry: state.metrics.registry().clone(),
    })
    .await
    .context("cannot start the WebSocket gateway")?;
    // Background jobs (webhook deliveries) run in this process, with no queue in between.
    let worker_metrics =
        worker::service::WorkerMetrics::register_in(state.metrics.registry().clone())
            .context("registering the worker's metrics")?;
    let jobs = worker::runtime::start_in_process(worker::runtime::Parts {
        store: state.store.clone(),
        presence: presence.clone(),
        webhooks: config.webhooks,
        email: config.email.clone(),
        email_timing: worker::mail::EmailTiming::default(),
        objects: state.objects.clone(),
        metrics: Arc::new(worker_metrics),
    })
    .context("cannot start the background jobs")?;
    let draining = gateway.clone();
    api_server::serve_with(
        listener,
        state.clone(),
        gateway::router(gateway),
        async move {
            stop.await;
            // Close every socket with 1012 so clients reconnect after the restart.
            draining.shut_down(gateway::session::DRAIN_TIMEOUT).await;
        },
    )
    .await?;
    jobs.shut_down().await;
    state.store.close().await;
    Ok(())
}
