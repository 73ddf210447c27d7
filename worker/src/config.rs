//! The worker's configuration: environment variables (or their flags; `worker --help` lists
//! both with their defaults). It needs the database and NATS, and no signing key.

use std::net::SocketAddr;

use chatboard_core::config::settings::{HttpSettings, NatsSettings};
use chatboard_core::config::{
    parse, values, ConfigError, DatabaseConfig, EmailSettings, Env, UploadSettings, WebhookSettings,
};
use clap::Parser;

/// What the `worker` binary needs.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "worker",
    version,
    about = "ChatBoard background worker. Every setting is an environment variable (shown with each flag); see README.md."
)]
pub struct WorkerConfig {
    /// Health and metrics listen address.
    #[arg(
        long = "addr",
        env = "CHATBOARD_ADDR",
        default_value = "127.0.0.1:8082"
    )]
    pub addr: SocketAddr,
    /// The platform's database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// NATS with JetStream: the worker hands jobs over through NATS JetStream
    /// (nats://host:4222).
    #[arg(long = "nats-url", env = "NATS_URL", hide_env_values = true,
        value_parser = values::nats_url)]
    pub nats_url: String,
    /// NATS subjects.
    #[command(flatten)]
    pub nats: NatsSettings,
    /// Webhook delivery.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    /// Email sending and digests.
    #[command(flatten)]
    pub email: EmailSettings,
    /// Upload storage (for the expiry and cleanup jobs).
    #[command(flatten)]
    pub uploads: UploadSettings,
    /// Slow, idle and greedy HTTP clients.
    #[command(flatten)]
    pub http: HttpSettings,
}

impl WorkerConfig {
    /// Reads the worker's configuration from `env` and the command line `args`.
    pub fn from_env(
        env: &Env,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        parse(env, args)
    }
}
