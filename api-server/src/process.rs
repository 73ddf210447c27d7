//! `api-server`: the REST API for the scale-out shape (PostgreSQL, several replicas).
//!
//! The process itself lives here, in the library, so that one binary can be every service (see
//! the `chatboard` binary and the Dockerfile).

use anyhow::Context;
use chatboard_core::config::{parse, ConfigError, DatabaseConfig, Env};
use clap::Subcommand;

use crate::config::Config;

/// What to do: the api-server's and the single node's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

/// Runs the `api-server` process until SIGTERM; what its binary's `main` (and the image's
/// multi-call `chatboard` binary, when invoked as `api-server`) does. `api-server migrate`
/// applies the migrations and exits; `api-server [serve]` serves.
pub async fn run() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let env = Env::from_process().context("invalid configuration")?;
    let first = args.first().and_then(|a| a.to_str()).map(str::to_owned);
    if first.as_deref() == Some("migrate") {
        // Only the database: the chart's migration Job has no signing key or NATS.
        let database: DatabaseConfig = parse(&env, args.split_off(1))
            .map_err(ConfigError::exit_on_command_line)
            .context("invalid configuration")?;
        chatboard_core::telemetry::init_logging();
        let store = crate::migrate(&database).await?;
        store.close().await;
        tracing::info!("migrations applied");
        return Ok(());
    }
    if first.as_deref() == Some("serve") {
        args.remove(0);
    }
    let config = Config::from_env(&env, args)
        .map_err(ConfigError::exit_on_command_line)
        .context("invalid configuration")?;
    chatboard_core::telemetry::init_logging();
    chatboard_core::open_files::raise_open_files_limit();
    let state = crate::build_state(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (CHATBOARD_ADDR)", config.addr))?;
    let addr = listener.local_addr()?;
    let stop = chatboard_core::shutdown::signal();
    tracing::info!(%addr, "api-server listening on http://{addr}");
    crate::serve(listener, state.clone(), stop).await?;
    state.store.close().await;
    Ok(())
}
