//! `api-server`: the REST API for the scale-out shape (PostgreSQL, several replicas).

use anyhow::Context;
use chatboard_core::config::{Config, Env};
use clap::{Parser, Subcommand};

/// ChatBoard REST API server. Configuration comes from the environment; see README.md.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    chatboard_core::telemetry::init_logging();
    let config = Config::for_api_server(&Env::from_process()).context("invalid configuration")?;
    if let Some(Command::Migrate) = cli.command {
        let store = api_server::migrate(&config).await?;
        store.close().await;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let state = api_server::build_state(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api-server listening on http://{addr}");
    api_server::serve(listener, state.clone(), api_server::shutdown_signal()).await?;
    state.store.close().await;
    Ok(())
}
