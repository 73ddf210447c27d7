//! The gateway's configuration: environment variables (or their flags; `gateway --help` lists
//! both with their defaults).

use std::net::SocketAddr;

use chatboard_core::config::settings::{HttpSettings, NatsSettings, TokenSettings};
use chatboard_core::config::{
    parse, values, ConfigError, DatabaseConfig, Env, GatewaySettings, JwtSecret,
    UploadQuotaSettings,
};
use clap::Parser;

/// What the `gateway` binary needs: the API's database and signing key, and NATS.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "gateway",
    version,
    about = "ChatBoard WebSocket gateway. Every setting is an environment variable (shown with each flag); see README.md."
)]
pub struct GatewayConfig {
    /// HTTP listen address (WebSockets, health, metrics).
    #[arg(
        long = "addr",
        env = "CHATBOARD_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub addr: SocketAddr,
    /// The platform's database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The api-server's signing key: the gateway checks the tokens it signs.
    #[arg(long = "jwt-secret", env = "CHATBOARD_JWT_SECRET", hide_env_values = true,
        value_parser = values::jwt_secret)]
    pub jwt_secret: JwtSecret,
    /// The api-server's previous signing key, while keys are rotated (as the api-server's).
    #[arg(long = "jwt-secret-previous", env = "CHATBOARD_JWT_SECRET_PREVIOUS",
        hide_env_values = true, value_parser = values::jwt_secret)]
    pub jwt_secret_previous: Option<JwtSecret>,
    /// Token lifetimes (as the api-server's).
    #[command(flatten)]
    pub tokens: TokenSettings,
    /// Messages per minute one user may post over this gateway's sockets; 0 disables.
    #[arg(
        long = "rate-limit-per-user",
        env = "CHATBOARD_RATE_LIMIT_PER_USER",
        default_value_t = 100
    )]
    pub rate_limit_per_user: u32,
    /// `@room` and `@here` in messages posted over sockets reach nobody in a room of more
    /// members than this (as the api-server's); 0 = no limit.
    #[arg(
        long = "room-mentions-max-members",
        env = "CHATBOARD_ROOM_MENTIONS_MAX_MEMBERS",
        default_value_t = chat::ROOM_MENTIONS_MAX_MEMBERS
    )]
    pub room_mentions_max_members: u32,
    /// NATS with JetStream: gateways hear about new messages from NATS (nats://host:4222).
    #[arg(long = "nats-url", env = "NATS_URL", hide_env_values = true,
        value_parser = values::nats_url)]
    pub nats_url: String,
    /// NATS subjects.
    #[command(flatten)]
    pub nats: NatsSettings,
    /// Connections.
    #[command(flatten)]
    pub gateway: GatewaySettings,
    /// Upload quotas (files posted over sockets count against the room's organization).
    #[command(flatten)]
    pub upload_quotas: UploadQuotaSettings,
    /// Slow, idle and greedy HTTP clients.
    #[command(flatten)]
    pub http: HttpSettings,
}

impl GatewayConfig {
    /// Reads the gateway's configuration from `env` and the command line `args`.
    pub fn from_env(
        env: &Env,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        parse(env, args)
    }
}
