//! `api-server`: the REST API for the scale-out shape (PostgreSQL, several replicas).
//!
//! The process itself lives here, in the library, so that one binary can be every service (see
//! the `chatboard` binary and the Dockerfile).

use anyhow::Context;
use chatboard_core::config::{Config, DatabaseConfig, Env};
use clap::{Parser, Subcommand};

/// ChatBoard REST API server. Configuration comes from the environment; see README.md.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do: the api-server's and the single node's subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

/// Runs the `api-server` process until SIGTERM; what its binary's `main` (and the image's
/// multi-call `chatboard` binary, when invoked as `api-server`) does.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    chatboard_core::telemetry::init_logging();
    let env = Env::from_process();
    if let Some(Command::Migrate) = cli.command {
        // Only the database: the chart's migration Job has no signing key or NATS.
        let database = DatabaseConfig::from_env(&env).context("invalid configuration")?;
        let store = crate::migrate(&database).await?;
        store.close().await;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let config = Config::for_api_server(&env).context("invalid configuration")?;
    let state = crate::build_state(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api-server listening on http://{addr}");
    crate::serve(listener, state.clone(), crate::shutdown_signal()).await?;
    state.store.close().await;
    Ok(())
}
